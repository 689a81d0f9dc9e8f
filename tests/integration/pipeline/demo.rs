//! The embedded demo, run as a user runs it: the built binary on a copy of `examples/`, twice.
use std::path::Path;
use std::process::Command;

use crate::support::{self, copy_demo};

/// A command on the demo configuration that must succeed; its stdout.
fn keypost(dir: &Path, args: &[&str]) -> String {
    let output = support::keypost(dir, &["--config", "demo.toml"]).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{args:?}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

fn count(summary: &str, name: &str) -> usize {
    let line = summary.lines().find(|l| l.trim_start().starts_with(&format!("{name}:"))).unwrap();
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn the_demo_answers_its_sample_maildir_once_and_a_second_run_finds_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let first = keypost(dir.path(), &["run", "--once"]);
    let got: Vec<usize> = ["fulfilled", "ignored", "set aside", "for review", "revoked", "duplicates"]
        .iter()
        .map(|n| count(&first, n))
        .collect();
    // Four sales fulfilled, the payout ignored, the changed layout set aside, the test sale without a name
    // for review, the refund revoking the first sale, the forwarded copy of it a duplicate.
    assert_eq!(got, [4, 1, 1, 1, 1, 1], "{first}");
    let outbox = dir.path().join("demo-run/outbox");
    let replies = std::fs::read_dir(&outbox)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("keypost.reply."))
        .count();
    assert_eq!(replies, 5, "one reply per licensed line (the FastSpring order has two)");

    let second = keypost(dir.path(), &["run", "--once"]);
    assert_eq!(count(&second, "messages"), 0, "{second}");
    assert!(std::fs::read_dir(dir.path().join("demo-maildir/new")).unwrap().count() > 0, "the seed is untouched");

    let lookup = keypost(dir.path(), &["lookup", "jane.buyer@example.com"]);
    assert!(lookup.contains("REVOKED (refund)"), "{lookup}");
    let export = keypost(dir.path(), &["export", "--format", "csv"]);
    assert_eq!(export, keypost(dir.path(), &["export", "--format", "csv"]), "exports are deterministic");
    assert_eq!(export.lines().count(), 1 + 6, "a header, five licensed lines and the one for review:\n{export}");
}

fn reply_files(outbox: &Path) -> usize {
    let entries = std::fs::read_dir(outbox).unwrap();
    entries.filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("keypost.re")).count()
}

#[test]
fn the_vendor_tools_issue_resend_and_revoke_through_the_built_binary() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    keypost(dir.path(), &["run", "--once"]);
    let outbox = dir.path().join("demo-run/outbox");
    let before = reply_files(&outbox);

    let issued =
        keypost(dir.path(), &["issue", "--product", "acme-pro", "--name", "Bo Ek", "--email", "bo@example.com"]);
    assert!(issued.contains("2 sent, 0 failed"), "the reply and the vendor's notice: {issued}");
    let resent = keypost(dir.path(), &["resend", "paypal", "8HJ45678KL901234M"]);
    assert!(resent.contains("1 sent, 0 failed"), "{resent}");
    assert_eq!(reply_files(&outbox), before + 2, "a manual reply and a resend, each its own message");

    let revoked = keypost(dir.path(), &["revoke", "paypal", "8HJ45678KL901234M", "--reason", "fraud"]);
    assert!(revoked.starts_with("1 license(s)"), "{revoked}");
    assert!(keypost(dir.path(), &["lookup", "Bo Ek"]).contains("manual/M-"));
    assert!(keypost(dir.path(), &["lookup", "8HJ45678KL901234M"]).contains("REVOKED (fraud)"));
}

#[test]
fn a_second_daemon_on_the_same_state_says_another_keypost_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let mut daemon = support::keypost(dir.path(), &["--config", "demo.toml", "run"]).spawn().unwrap();
    let outbox = dir.path().join("demo-run/outbox/sends.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !outbox.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The vendor tools ask the running daemon instead (tests/integration/control.rs); a second daemon cannot.
    let second = support::keypost(dir.path(), &["--config", "demo.toml", "run", "--once"]).output().unwrap();
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    assert!(outbox.exists(), "the daemon answered within 20 s");
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("in use by another keypost process"), "{stderr}");
}

#[test]
fn sigterm_stops_the_watching_daemon_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let daemon = support::keypost(dir.path(), &["--config", "demo.toml", "run"])
        .env("KEYPOST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let done = dir.path().join("demo-run/maildir/.keypost.set-aside/cur");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = daemon.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let output = daemon.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("keypost stopped."), "{stderr}");
}

#[test]
fn export_into_a_closed_pipe_stops_quietly_like_export_piped_into_head() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    keypost(dir.path(), &["run", "--once"]);
    // The reading end is gone before keypost writes: every write fails with EPIPE, deterministically.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = support::keypost(dir.path(), &["--config", "demo.toml", "export"]).stdout(writer).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert_eq!(stderr, "", "nothing to say about a reader that went away");
}

#[test]
fn one_pass_on_the_demo_counts_config_warnings_and_logs_no_progress_or_colour() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    let output = support::keypost(dir.path(), &["--config", "demo.toml", "run", "--once"])
        .env_remove("KEYPOST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("warnings; `keypost check` lists them."), "{stderr}");
    assert!(!stderr.contains("trust.sender_only[0]"), "counted, not listed: {stderr}");
    assert!(!stderr.contains(" INFO "), "a one-pass run logs warnings only by default: {stderr}");
    assert!(!stderr.contains('\u{1b}'), "no colour codes when stderr is not a terminal: {stderr}");
}

#[test]
fn the_man_page_and_completions_are_generated_from_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let run = |what: &str| {
        let output = support::keypost(dir.path(), &["generate", what]).output().unwrap();
        assert!(output.status.success(), "{what}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let man = run("man");
    assert!(man.contains(".TH keypost 1"), "{man}");
    assert!(man.contains("keypost\\-lookup"), "every subcommand is listed: {man}");
    assert!(!man.contains("keypost\\-generate"), "the packaging command stays hidden: {man}");
    assert!(run("bash").contains("complete -F _keypost"));
    assert!(run("zsh").starts_with("#compdef keypost"));
    assert!(run("fish").contains("complete -c keypost"));
}

#[test]
fn commands_that_print_stop_quietly_into_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    for args in [&["template", "check"][..], &["check"], &["serial", "--product", "acme-pro", "--name", "Jane Doe"]] {
        // The reading end is gone before keypost writes: every write fails with EPIPE, deterministically.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output =
            support::keypost(dir.path(), &["--config", "demo.toml"]).args(args).stdout(writer).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?}: {:?}: {stderr}", output.status);
        assert!(!stderr.contains("panicked") && !stderr.contains("error"), "{args:?}: {stderr}");
    }
}

#[test]
fn run_once_finishes_its_work_when_the_log_reader_went_away() {
    let dir = tempfile::tempdir().unwrap();
    copy_demo(dir.path());
    // `keypost run --once 2>&1 | grep -q …`: grep leaves at its first match and the warnings after it hit EPIPE.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = support::keypost(dir.path(), &["--config", "demo.toml", "run", "--once"])
        .env("KEYPOST_LOG", "warn") // the demo logs warnings, so there are writes to fail
        .stderr(writer)
        .output()
        .unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    assert!(String::from_utf8_lossy(&output.stdout).contains("fulfilled: 4"));
    let replies = std::fs::read_dir(dir.path().join("demo-run/outbox")).unwrap().count();
    assert!(replies > 4, "the replies were written: {replies} file(s)");
}
