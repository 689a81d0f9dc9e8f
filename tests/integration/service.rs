//! Integration tests: service (sd_notify messages and the shutdown signal).
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use keypost::service::{Notifier, ShutdownSignal, Stop};

const CHILD_ENV: &str = "KEYPOST_TEST_NOTIFY_CHILD";

/// Runs twice: as the test, it listens like systemd and re-runs itself as a child with NOTIFY_SOCKET set
/// (the environment belongs to a process, so the child gets its own); as the child, it notifies.
#[test]
fn the_notifier_sends_ready_status_watchdog_and_stopping_to_notify_socket() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let notifier = Notifier::from_env();
        assert_eq!(notifier.watchdog_interval(), Some(Duration::from_secs(4)));
        notifier.ready();
        notifier.status("Watching INBOX\nsecond line dropped");
        notifier.watchdog();
        notifier.stopping();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "service::the_notifier_sends_ready_status_watchdog_and_stopping_to_notify_socket"])
        .env(CHILD_ENV, "1")
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "4000000")
        .env_remove("WATCHDOG_PID")
        .status()
        .unwrap();
    assert!(status.success());

    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..4 {
        let n = socket.recv(&mut buf).unwrap();
        messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(messages, ["READY=1\n", "STATUS=Watching INBOX\n", "WATCHDOG=1\n", "STOPPING=1\n"]);
}

#[test]
fn without_notify_socket_the_notifier_is_disabled() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let notifier = Notifier::from_env();
        assert!(!notifier.is_enabled());
        assert_eq!(notifier.watchdog_interval(), None, "a watchdog without a socket to ping is ignored");
        return;
    }
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "service::without_notify_socket_the_notifier_is_disabled"])
        .env(CHILD_ENV, "1")
        .env_remove("NOTIFY_SOCKET")
        .env("WATCHDOG_USEC", "4000000")
        .status()
        .unwrap();
    assert!(status.success(), "the child's assertions failed");
}

#[tokio::test]
async fn sigterm_resolves_the_shutdown_signal_and_does_not_kill_the_process() {
    let mut shutdown = ShutdownSignal::install().unwrap();
    assert!(!shutdown.is_requested());

    let pid = std::process::id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());

    let stop = tokio::time::timeout(Duration::from_secs(5), shutdown.wait()).await.unwrap();
    assert_eq!(stop, Stop::Terminate);
    assert!(shutdown.is_requested());
    // Every clone sees it, including one taken after the signal.
    assert_eq!(shutdown.clone().wait().await, Stop::Terminate);
}

#[test]
fn the_example_service_config_passes_keypost_check() {
    use std::os::unix::fs::PermissionsExt;
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/keypost.example.toml");
    // What systemd's LoadCredential= would provide: private files named as in the unit.
    let credentials = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("imap.password", "imap-secret"),
        ("smtp.password", "smtp-secret"),
        ("acme-pro.key", "000102030405060708090a0b0c0d0e0f"),
    ] {
        let path = credentials.path().join(name);
        std::fs::write(&path, value).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let output = crate::support::keypost(credentials.path(), &["--config", example, "check"])
        .env("CREDENTIALS_DIRECTORY", credentials.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("OK (1 product(s))"), "{stdout}");
}
