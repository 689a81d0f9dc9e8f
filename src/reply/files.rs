//! A folder of `.eml` files as a [`super::Mailer`]: the embedded default and a dry run.
//! Each message is written atomically (temporary file, fsync, rename) and named by its Message-ID, so a
//! resend overwrites rather than adds a file. Every send is also appended to `sends.log` (Message-ID and the
//! SHA-256 of the bytes), so duplicates stay visible: tests count them and check they are identical.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use super::{Mailer, Outgoing, SendError};

/// The log of every send, one `message-id sha256` line each.
pub const SENDS_LOG: &str = "sends.log";

#[derive(Debug)]
pub struct FilesMailer {
    dir: PathBuf,
    sent: AtomicU64,
}

impl FilesMailer {
    /// Creates the folder when missing.
    pub fn new(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self { dir: dir.to_owned(), sent: AtomicU64::new(0) })
    }

    /// Sends done by this mailer since it was made.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The file a message is (or would be) written to.
    pub fn path_for(&self, message_id: &str) -> PathBuf {
        let name: String = message_id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || "@._-+".contains(c) { c } else { '_' })
            .collect();
        self.dir.join(format!("{name}.eml"))
    }

    fn write(&self, mail: &Outgoing) -> std::io::Result<()> {
        let target = self.path_for(&mail.message_id);
        let tmp = self.dir.join(format!(".tmp.{}.{}", std::process::id(), fastrand::u64(..)));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&mail.bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &target)?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(SENDS_LOG))?;
        log.write_all(format!("{} {}\n", mail.message_id, hex::encode(Sha256::digest(&mail.bytes))).as_bytes())?;
        log.sync_all()
    }
}

impl Mailer for FilesMailer {
    async fn send(&self, mail: &Outgoing) -> Result<(), SendError> {
        // A full disk or a lost mount may heal: transient, so the outbox keeps the message and retries.
        self.write(mail)
            .map_err(|err| SendError::Transient(format!("cannot write to {}: {err}", self.dir.display())))?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(id: &str, bytes: &[u8]) -> Outgoing {
        Outgoing {
            message_id: id.into(),
            from: "a@x.example".into(),
            to: vec!["b@y.example".into()],
            bytes: bytes.to_vec(),
        }
    }

    #[tokio::test]
    async fn a_resend_overwrites_the_file_but_is_counted_and_logged() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = FilesMailer::new(&dir.path().join("out")).unwrap();
        mailer.send(&mail("keypost.reply.1@acme.example", b"one")).await.unwrap();
        mailer.send(&mail("keypost.reply.1@acme.example", b"one")).await.unwrap();
        mailer.send(&mail("x/../evil", b"two")).await.unwrap();
        assert_eq!(mailer.sent(), 3);
        let mut names: Vec<_> = std::fs::read_dir(dir.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["keypost.reply.1@acme.example.eml", "sends.log", "x_.._evil.eml"]);
        let log = std::fs::read_to_string(dir.path().join("out").join(SENDS_LOG)).unwrap();
        assert_eq!(log.lines().count(), 3);
    }
}
