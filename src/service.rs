//! Living under systemd: sd_notify READY/STATUS/WATCHDOG/STOPPING and graceful SIGTERM/SIGINT.
