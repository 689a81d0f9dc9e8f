//! [`AnySource`] and [`AnyMailer`]: the source and mailer the configuration asks for, as one type each, so
//! the CLI builds one `Daemon<AnySource, AnyMailer>`.
use std::time::Duration;

use anyhow::Context as _;

use crate::config::Loaded;
use crate::mailbox::imap::ImapSource;
use crate::mailbox::maildir::Maildir;
use crate::mailbox::{Disposition, RawMail, Source};
use crate::reply::files::FilesMailer;
use crate::reply::smtp::SmtpMailer;
use crate::reply::{Mailer, Outgoing, SendError};

pub enum AnySource {
    Maildir(Maildir),
    Imap(Box<ImapSource>),
}

impl AnySource {
    pub fn from_config(loaded: &Loaded) -> anyhow::Result<Self> {
        let mailbox = loaded.config.mailbox.as_ref().context("keypost run needs a [mailbox] section")?;
        let max_bytes = loaded.config.templates.max_message_bytes;
        match (&mailbox.maildir, &mailbox.imap) {
            (Some(maildir), _) => Ok(Self::Maildir(Maildir::open(maildir, &loaded.base_dir, max_bytes)?)),
            (None, Some(imap)) => Ok(Self::Imap(Box::new(ImapSource::new(imap, &loaded.base_dir, max_bytes)?))),
            (None, None) => anyhow::bail!("[mailbox] needs [mailbox.maildir] or [mailbox.imap]"),
        }
    }

    /// Reaches the mailbox before start-up is reported complete. A server that cannot be reached yet is only
    /// logged: the source keeps trying with backoff inside each later call.
    pub async fn connect(&mut self) {
        if let Self::Imap(source) = self
            && let Err(err) = source.connect().await
        {
            tracing::warn!("Cannot reach the mailbox yet; will keep trying: {err:#}");
        }
    }
}

impl Source for AnySource {
    fn name(&self) -> String {
        match self {
            Self::Maildir(source) => source.name(),
            Self::Imap(source) => source.name(),
        }
    }

    async fn fetch_new(&mut self, max: usize) -> anyhow::Result<Vec<RawMail>> {
        match self {
            Self::Maildir(source) => source.fetch_new(max).await,
            Self::Imap(source) => source.fetch_new(max).await,
        }
    }

    fn more_waiting(&self) -> bool {
        match self {
            Self::Maildir(source) => source.more_waiting(),
            Self::Imap(source) => source.more_waiting(),
        }
    }

    async fn settle(&mut self, key: &str, disposition: Disposition) -> anyhow::Result<()> {
        match self {
            Self::Maildir(source) => source.settle(key, disposition).await,
            Self::Imap(source) => source.settle(key, disposition).await,
        }
    }

    async fn settle_all(&mut self, settled: &[(String, Disposition)]) -> anyhow::Result<()> {
        match self {
            Self::Maildir(source) => source.settle_all(settled).await,
            Self::Imap(source) => source.settle_all(settled).await,
        }
    }

    async fn wait_for_new(&mut self, max_wait: Duration) -> anyhow::Result<()> {
        match self {
            Self::Maildir(source) => source.wait_for_new(max_wait).await,
            Self::Imap(source) => source.wait_for_new(max_wait).await,
        }
    }
}

pub enum AnyMailer {
    Files(FilesMailer),
    Smtp(Box<SmtpMailer>),
}

impl AnyMailer {
    pub fn from_config(loaded: &Loaded) -> anyhow::Result<Self> {
        let outbox = loaded.config.outbox.as_ref().context("keypost needs an [outbox] section to send replies")?;
        match (&outbox.files, &outbox.smtp) {
            (Some(files), _) => {
                let dir = loaded.resolve(&files.dir);
                let mailer = FilesMailer::new(&dir)
                    .with_context(|| format!("Failed to create the outbox folder {}", dir.display()))?;
                Ok(Self::Files(mailer))
            }
            (None, Some(smtp)) => Ok(Self::Smtp(Box::new(SmtpMailer::new(smtp, &loaded.base_dir)?))),
            (None, None) => anyhow::bail!("[outbox] needs [outbox.smtp] or [outbox.files]"),
        }
    }
}

impl Mailer for AnyMailer {
    async fn send(&self, mail: &Outgoing) -> Result<(), SendError> {
        match self {
            Self::Files(mailer) => mailer.send(mail).await,
            Self::Smtp(mailer) => mailer.send(mail).await,
        }
    }
}
