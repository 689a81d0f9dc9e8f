//! The control socket checks who connects (SO_PEERCRED), not only its file modes: with the state folder and the
//! socket opened to everyone by mistake, a process of another user still gets nothing. The other user is
//! `nobody`, switched to with `setpriv` (util-linux), so this test runs as root, as CI does.
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::Command;

use keypost::control::ControlServer;
use keypost::store::Store;

/// Connects as `uid` (with `setpriv` unless it is ours), sends one lookup, returns the response line.
fn lookup_as(uid: Option<u32>, socket: &Path) -> String {
    let script = "import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n\
                  s.sendall(b'{\"command\":\"lookup\",\"query\":\"jane@example.com\"}\\n')\n\
                  print(s.recv(65536).decode())";
    let socket = socket.to_str().unwrap();
    let mut command = match uid {
        Some(uid) => {
            let mut command = Command::new("setpriv");
            command.args([&format!("--reuid={uid}"), &format!("--regid={uid}"), "--clear-groups", "/usr/bin/python3"]);
            command
        }
        None => Command::new("/usr/bin/python3"),
    };
    let output = command.args(["-c", script, socket]).output().expect("setpriv and /usr/bin/python3");
    assert!(output.status.success(), "client failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_connection_from_another_user_is_refused_by_its_user_id() {
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    assert!(root, "this test switches to the user nobody with setpriv: run it as root (CI does)");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let store = Store::open(&state).unwrap();
    let (server, _jobs) = ControlServer::start(&state, store, Default::default()).unwrap();
    // Everything opened to everyone: only the user-id check stands between another user and the state.
    for (path, mode) in [(dir.path(), 0o755), (state.as_path(), 0o755), (server.path(), 0o666)] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let socket = server.path().to_owned();
    let (stranger, owner) =
        tokio::task::spawn_blocking(move || (lookup_as(Some(65534), &socket), lookup_as(None, &socket))).await.unwrap();
    assert!(stranger.contains("not allowed: user id 65534 is neither root nor keypost's user"), "{stranger}");
    assert!(!stranger.contains("\"status\":\"ok\""), "{stranger}");
    assert!(owner.contains("\"status\":\"ok\""), "root is answered: {owner}");
}
