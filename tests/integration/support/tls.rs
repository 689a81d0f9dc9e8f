//! A throw-away certificate authority for TLS tests.
use std::path::PathBuf;
use std::process::Command;

use super::{require, set_mode};

/// A private CA and a server certificate it signed for 127.0.0.1 and localhost, made with openssl.
pub struct TestCa {
    dir: tempfile::TempDir,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl TestCa {
    pub fn new() -> Self {
        let openssl = require("/usr/bin/openssl", "openssl");
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o755);
        let path = |name: &str| dir.path().join(name);
        std::fs::write(
            path("server.ext"),
            "subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n",
        )
        .unwrap();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        let steps: [Vec<&str>; 3] = [
            [
                &["req", "-x509"][..],
                &ec,
                &["-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=keypost test CA", "-days", "2"],
            ]
            .concat(),
            [&["req"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]].concat(),
            vec![
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        ];
        for args in steps {
            let output = Command::new(&openssl).current_dir(dir.path()).args(&args).output().unwrap();
            assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        }
        set_mode(&path("server.key"), 0o644); // read by the servers' unprivileged processes in tests only
        Self { ca_cert: path("ca.pem"), server_cert: path("server.pem"), server_key: path("server.key"), dir }
    }
}
