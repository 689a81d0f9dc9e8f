//! `keypost aside show | release | drop`: carried out where the state is written (the daemon's loop, or the
//! tool when no daemon runs), so the mailbox move and the state change never interleave with a pass.
//! Release moves the message back to the inbox and forgets its record: it is read as new (its order, if it
//! has one now, goes through the same exactly-once checks). Drop moves it to the ignored folder and records
//! it ignored with the vendor's reason, audited. The move comes first: if the commit then fails, the message
//! is where the vendor asked and at worst still listed.
use anyhow::Context as _;

use super::core::Core;
use crate::control::Answer;
use crate::control::answer::{self, AsideEntry};
use crate::mailbox::Disposition;
use crate::mailbox::aside::{AsideFolder, Named};
use crate::store::{Change, SourceRecord};

/// One set-aside message named by the vendor, with its record.
struct Found {
    source: String,
    key: String,
    record: SourceRecord,
}

impl Found {
    fn named(&self) -> Named<'_> {
        Named { key: &self.key, sha256: self.record.sha256.as_deref() }
    }

    fn entry(&self) -> AsideEntry {
        let at = time::OffsetDateTime::from_unix_timestamp(self.record.at)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_else(|| self.record.at.to_string());
        AsideEntry { id: self.key.clone(), source: self.source.clone(), at, reason: self.record.note.clone() }
    }
}

impl Core {
    /// The set-aside message `id` names: its key, or `source/key`.
    fn find_aside(&self, id: &str) -> anyhow::Result<Found> {
        let mut found: Vec<Found> = self
            .store
            .set_aside()?
            .into_iter()
            .filter(|(source, key, _)| key == id || format!("{source}/{key}") == id)
            .map(|(source, key, record)| Found { source, key, record })
            .collect();
        match found.len() {
            0 => anyhow::bail!("nothing set aside has the id {id:?} (see keypost aside list)"),
            1 => Ok(found.remove(0)),
            _ => anyhow::bail!("{id:?} names set-aside messages in several sources: give it as source/key"),
        }
    }

    fn aside_folder(&self) -> anyhow::Result<&AsideFolder> {
        self.aside.as_ref().context("no [mailbox] is configured, so there is no set-aside folder")
    }

    pub(super) async fn aside_show(&self, id: &str) -> anyhow::Result<Answer> {
        let found = self.find_aside(id)?;
        let message = self.aside_folder()?.read(found.named()).await?;
        Ok(answer::aside_shown(&found.entry(), message.as_deref()))
    }

    pub(super) async fn aside_release(&self, id: &str) -> anyhow::Result<Answer> {
        let found = self.find_aside(id)?;
        let moved = self.aside_folder()?.move_to(found.named(), None).await?;
        anyhow::ensure!(moved, "{id} is no longer in the set-aside folder (moved by hand?); nothing was done");
        let mut change = Change::new();
        change.forget_source(&found.source, &found.key);
        let label = format!("{}/{}", found.source, found.key);
        change.audit(self.now().unix_timestamp(), "released", &label, "put back in the inbox by the vendor");
        self.store.commit_durable(change).await.context("Moved back, but failed to record the release")?;
        tracing::info!(command = "aside release", "Set-aside message put back in the inbox.");
        Ok(answer::aside_released(id))
    }

    pub(super) async fn aside_drop(&self, id: &str, reason: &str) -> anyhow::Result<Answer> {
        let found = self.find_aside(id)?;
        let moved = self.aside_folder()?.move_to(found.named(), Some(Disposition::Ignored)).await?;
        let now = self.now().unix_timestamp();
        let note = format!("dropped by the vendor: {reason}");
        let record = SourceRecord { disposition: Disposition::Ignored, at: now, note: note.clone(), sha256: None };
        let mut change = Change::new();
        change.put_source(&found.source, &found.key, &record);
        change.audit(now, "dropped", &format!("{}/{}", found.source, found.key), note);
        self.store.commit_durable(change).await.context("Failed to record the drop")?;
        Ok(answer::aside_dropped(id, moved))
    }
}
