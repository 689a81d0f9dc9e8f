//! [`AnySource`] and [`AnyMailer`]: the source and mailer the configuration asks for, as one type each, so
//! the CLI builds one `Daemon<AnySource, AnyMailer>`. The IMAP and SMTP implementations add their variants here.
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::Loaded;
use crate::mailbox::maildir::Maildir;
use crate::mailbox::{Disposition, RawMail, Source};
use crate::reply::files::FilesMailer;
use crate::reply::{Mailer, Outgoing, SendError};

pub enum AnySource {
    Maildir(Maildir),
}

impl AnySource {
    pub fn from_config(loaded: &Loaded) -> anyhow::Result<Self> {
        let mailbox = loaded.config.mailbox.as_ref().context("keypost run needs a [mailbox] section")?;
        let max_bytes = loaded.config.templates.max_message_bytes;
        match (&mailbox.maildir, &mailbox.imap) {
            (Some(maildir), _) => Ok(Self::Maildir(Maildir::open(maildir, &loaded.base_dir, max_bytes)?)),
            (None, Some(_)) => anyhow::bail!("the IMAP source is not part of this build yet"),
            (None, None) => anyhow::bail!("[mailbox] needs [mailbox.maildir] or [mailbox.imap]"),
        }
    }
}

impl Source for AnySource {
    fn name(&self) -> String {
        match self {
            Self::Maildir(source) => source.name(),
        }
    }

    async fn fetch_new(&mut self, max: usize) -> anyhow::Result<Vec<RawMail>> {
        match self {
            Self::Maildir(source) => source.fetch_new(max).await,
        }
    }

    async fn settle(&mut self, key: &str, disposition: Disposition) -> anyhow::Result<()> {
        match self {
            Self::Maildir(source) => source.settle(key, disposition).await,
        }
    }

    async fn wait_for_new(&mut self, max_wait: Duration) -> anyhow::Result<()> {
        match self {
            Self::Maildir(source) => source.wait_for_new(max_wait).await,
        }
    }
}

pub enum AnyMailer {
    Files(FilesMailer),
}

impl AnyMailer {
    pub fn from_config(loaded: &Loaded) -> anyhow::Result<Self> {
        let outbox = loaded.config.outbox.as_ref().context("keypost needs an [outbox] section to send replies")?;
        match (&outbox.files, &outbox.smtp) {
            (Some(files), _) => Ok(Self::Files(files_mailer(&loaded.resolve(&files.dir))?)),
            (None, Some(_)) => anyhow::bail!("the SMTP mailer is not part of this build yet"),
            (None, None) => anyhow::bail!("[outbox] needs [outbox.smtp] or [outbox.files]"),
        }
    }
}

fn files_mailer(dir: &Path) -> anyhow::Result<FilesMailer> {
    FilesMailer::new(dir).with_context(|| format!("Failed to create the outbox folder {}", dir.display()))
}

impl Mailer for AnyMailer {
    async fn send(&self, mail: &Outgoing) -> Result<(), SendError> {
        match self {
            Self::Files(mailer) => mailer.send(mail).await,
        }
    }
}
