//! Integration tests: a vendor tool run as root against a state folder another user owns (the service's) acts as
//! that user, so it leaves no root-owned file behind, even where the way to the state passes a folder only root
//! may enter (systemd's `/var/lib/private`); `keypost run` as root there is refused with what to do instead.
//! Needs root (to give the state to another user), as `.ci/test-all` runs.
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use crate::support::{self, copy_demo};

/// Not a user on this machine: like a systemd `DynamicUser=` while its service is stopped.
const OWNER: u32 = 47_011;

fn keypost(dir: &Path, args: &[&str]) -> std::process::Output {
    support::keypost(dir, &["--config", "demo.toml"]).args(args).output().unwrap()
}

fn chown_tree(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid);
        }
    }
}

/// Every path under `path`.
fn tree(path: &Path) -> Vec<std::path::PathBuf> {
    let mut found = vec![path.to_owned()];
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            found.extend(tree(&entry.unwrap().path()));
        }
    }
    found
}

/// Every file and folder under `path` whose owner is not `uid`:`uid`.
fn not_owned_by(path: &Path, uid: u32) -> Vec<String> {
    let mut found = Vec::new();
    let meta = std::fs::symlink_metadata(path).unwrap();
    if meta.uid() != uid || meta.gid() != uid {
        found.push(format!("{} ({}:{})", path.display(), meta.uid(), meta.gid()));
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            found.extend(not_owned_by(&entry.unwrap().path(), uid));
        }
    }
    found
}

/// The demo run once into `dir/private/keypost`, then given to [`OWNER`] (with the outbox) under a folder only
/// root may enter, like systemd's `/var/lib/private`. Returns the state folder.
fn services_state(dir: &Path) -> std::path::PathBuf {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test gives a state folder to another user: run it as root (`bash .ci/test-all` does)"
    );
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy_demo(dir);
    let config = dir.join("demo.toml");
    let text =
        std::fs::read_to_string(&config).unwrap().replace("dir = \"demo-run/state\"", "dir = \"private/keypost\"");
    std::fs::write(&config, text).unwrap();
    let first = keypost(dir, &["run", "--once"]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let state = dir.join("private/keypost");
    std::fs::set_permissions(dir.join("private"), std::fs::Permissions::from_mode(0o700)).unwrap();
    chown_tree(&state, OWNER);
    chown_tree(&dir.join("demo-run/outbox"), OWNER);
    state
}

#[test]
fn a_tool_run_as_root_on_the_services_state_leaves_every_file_owned_by_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let state = services_state(dir);
    let before = tree(&state);
    let written = |path: &Path| std::fs::read(path).unwrap();
    let database = written(&state.join("keypost.redb"));

    let found = keypost(dir, &["lookup", "8HJ45678KL901234M"]);
    assert!(found.status.success(), "{}", String::from_utf8_lossy(&found.stderr));
    let issued = keypost(dir, &["issue", "--product", "acme-pro", "--name", "Bo Ek", "--email", "bo@example.com"]);
    let stdout = String::from_utf8_lossy(&issued.stdout);
    assert!(issued.status.success(), "{stdout}{}", String::from_utf8_lossy(&issued.stderr));
    assert!(stdout.ends_with(": 2 sent, 0 failed\n"), "the reply and the vendor's notice went out: {stdout}");
    let again = keypost(dir, &["lookup", "bo@example.com"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("for \"Bo Ek\""), "the state took the change");
    let status = keypost(dir, &["status"]);
    assert_eq!(status.status.code(), Some(3), "{}", String::from_utf8_lossy(&status.stderr));

    let created: Vec<_> = tree(&state).into_iter().filter(|path| !before.contains(path)).collect();
    assert!(
        !created.is_empty() || written(&state.join("keypost.redb")) != database,
        "the tools wrote to the state, so ownership was tested"
    );
    assert_eq!(not_owned_by(&state, OWNER), Vec::<String>::new(), "nothing in the state is root's");
    assert_eq!(not_owned_by(&dir.join("demo-run/outbox"), OWNER), Vec::<String>::new());

    let refused = keypost(dir, &["run", "--once"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("would leave root-owned files in the state folder"), "{stderr}");
    assert!(stderr.contains(&format!("belongs to uid {OWNER}")), "{stderr}");
    assert!(stderr.contains("sudo systemctl start keypost"), "{stderr}");
    assert_eq!(not_owned_by(&state, OWNER), Vec::<String>::new(), "the refused run touched nothing");
}

#[test]
fn replay_run_as_root_on_the_services_state_leaves_every_file_owned_by_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let state = services_state(dir);
    let before = tree(&state);
    let database = std::fs::read(state.join("keypost.redb")).unwrap();
    // An archive only root may read (in the root-only folder): the replay opens it before it drops to the owner.
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-maildir/new/01-paypal-sale");
    let sale = std::fs::read_to_string(demo).unwrap();
    let missed = sale.replace("5TY12345AB678901C", "7RP98765ZY432109X").replace("<pp-sale-1@", "<pp-sale-missed@");
    let archive = dir.join("private/archive.mbox");
    let mbox = ["From MAILER-DAEMON Mon Nov 30 07:00:00 2026\n", &sale.replace("\r\n", "\n"), "\n"].concat()
        + &["From MAILER-DAEMON Mon Nov 30 07:00:00 2026\n", &missed.replace("\r\n", "\n"), "\n"].concat();
    std::fs::write(&archive, mbox).unwrap();
    std::fs::set_permissions(&archive, std::fs::Permissions::from_mode(0o600)).unwrap();

    let replayed = keypost(dir, &["replay", "private/archive.mbox", "--apply"]);
    let stdout = String::from_utf8_lossy(&replayed.stdout);
    assert!(replayed.status.success(), "{stdout}{}", String::from_utf8_lossy(&replayed.stderr));
    assert!(stdout.contains("answered  paypal/5TY12345AB678901C"), "{stdout}");
    assert!(stdout.contains("new       paypal/7RP98765ZY432109X"), "{stdout}");
    assert!(stdout.contains("applied: fulfilled 1"), "{stdout}");
    let found = keypost(dir, &["lookup", "7RP98765ZY432109X"]);
    assert!(String::from_utf8_lossy(&found.stdout).contains("issue"), "the state took the order");

    let created: Vec<_> = tree(&state).into_iter().filter(|path| !before.contains(path)).collect();
    assert!(
        !created.is_empty() || std::fs::read(state.join("keypost.redb")).unwrap() != database,
        "the replay wrote to the state, so ownership was tested"
    );
    assert_eq!(not_owned_by(&state, OWNER), Vec::<String>::new(), "nothing in the state is root's");
    assert_eq!(not_owned_by(&dir.join("demo-run/outbox"), OWNER), Vec::<String>::new(), "nor in the outbox");
}

#[test]
fn check_run_as_root_on_the_services_state_leaves_it_alone_and_says_how_to_see_the_pool_stock() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let state = services_state(dir);
    let config = dir.join("demo.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[[product]]\nid = \"game\"\nname = \"Game\"\nskus = [\"GAME\"]\npool = { low_water = 1 }\n");
    std::fs::write(&config, text).unwrap();
    let before = tree(&state);

    let checked = keypost(dir, &["check"]);
    let stdout = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{stdout}{}", String::from_utf8_lossy(&checked.stderr));
    assert!(stdout.contains(&format!("the state belongs to uid {OWNER} and keypost is not running")), "{stdout}");
    assert!(stdout.contains("sudo keypost pool status"), "{stdout}");
    assert_eq!(tree(&state), before, "check created nothing in the state");
    assert_eq!(not_owned_by(&state, OWNER), Vec::<String>::new(), "nothing in the state is root's");
    let status = keypost(dir, &["pool", "status"]);
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(stdout.starts_with("game: 0 available"), "{stdout}{}", String::from_utf8_lossy(&status.stderr));
    assert_eq!(not_owned_by(&state, OWNER), Vec::<String>::new(), "pool status acts as the owner");
}
