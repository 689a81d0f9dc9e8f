//! A vendor tool run as root (`sudo keypost lookup ...`) against the state of a service that runs as another user
//! must not leave files in it that the service cannot open: the store creates files (on the first start, when it
//! moves an old state over) and a root-owned one stops the next `keypost run` with "permission denied".
//!
//! The tools become the state folder's owner (its uid and gid, no other groups) before they open the state, so
//! everything they write is the service's, exactly as if the service had written it. Refusing with a command to
//! use instead does not work for the packaged unit: its `DynamicUser=` has no user name while the service is
//! stopped, and its state is reached through `/var/lib/private`, which only root may enter. So the tool enters
//! the state folder while still root and afterwards reaches it as `/proc/self/cwd` (a process may always follow
//! its own links there, whatever the path to it the owner may not pass);
//! what only root may read (the configuration's secrets) is read before. `keypost run` is refused instead: a daemon reads its
//! mailbox and secrets all the time, and the service is the way to run it as its user.
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use nix::unistd::{Gid, Uid, User, geteuid, getuid};

/// The user a root process should act as: the owner of a state folder that is not root's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// The state folder's owner, when this process is root and the folder exists and belongs to another user.
pub fn foreign_owner(state: &Path) -> anyhow::Result<Option<Owner>> {
    if !geteuid().is_root() {
        return Ok(None);
    }
    match std::fs::metadata(state) {
        Ok(meta) if meta.uid() != 0 => Ok(Some(Owner { uid: meta.uid(), gid: meta.gid() })),
        Ok(_) => Ok(None),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(anyhow::Error::new(err).context(format!("Failed to read the owner of {}", state.display()))),
    }
}

impl Owner {
    /// The owner's name, or `uid N` (a systemd `DynamicUser=` has no name while its service is stopped).
    pub fn name(&self) -> String {
        match User::from_uid(Uid::from_raw(self.uid)) {
            Ok(Some(user)) => user.name,
            _ => format!("uid {}", self.uid),
        }
    }

    /// Enters `state` (while still root: the way there may pass folders only root may enter), then becomes the
    /// owner for good (supplementary groups, gid, then uid: from root, setuid also drops the saved id, so there is
    /// no way back). Returns the state folder's path from here on: `/proc/self/cwd`.
    pub fn become_owner(&self, state: &Path) -> anyhow::Result<PathBuf> {
        std::env::set_current_dir(state).with_context(|| format!("Failed to enter {}", state.display()))?;
        let (uid, gid) = (Uid::from_raw(self.uid), Gid::from_raw(self.gid));
        nix::unistd::setgroups(&[gid]).context("Failed to drop root's groups")?;
        nix::unistd::setgid(gid).with_context(|| format!("Failed to take the group id {gid}"))?;
        nix::unistd::setuid(uid).with_context(|| format!("Failed to become {}", self.name()))?;
        anyhow::ensure!(geteuid() == uid && getuid() == uid, "still root after setuid({uid})");
        tracing::debug!(uid = self.uid, gid = self.gid, "Acting as the state folder's owner.");
        let here = PathBuf::from("/proc/self/cwd");
        anyhow::ensure!(
            crate::store::Store::exists(&here),
            "cannot reach the state folder as {} through {}",
            self.name(),
            here.display()
        );
        Ok(here)
    }
}

/// `keypost run` as root against another user's state: refused, with what to run instead.
pub fn refuse_root_daemon(state: &Path, once: bool) -> anyhow::Result<()> {
    let Some(owner) = foreign_owner(state)? else { return Ok(()) };
    let name = owner.name();
    let run = if once { "keypost run --once" } else { "keypost run" };
    let instead = match name.strip_prefix("uid ") {
        Some(_) => "start the service (`sudo systemctl start keypost`), which runs it as its own user".to_owned(),
        None => format!("start the service (`sudo systemctl start keypost`) or run `sudo -u {name} {run}`"),
    };
    anyhow::bail!(
        "`{run}` as root would leave root-owned files in the state folder {}, which belongs to {name}, and the \
         service could no longer open them: {instead}",
        state.display()
    )
}

/// Makes the configuration's own paths absolute, so they still lead where they did after [`Owner::become_owner`]
/// changed the working folder.
pub fn absolute_paths(loaded: &mut crate::config::Loaded) -> anyhow::Result<()> {
    loaded.base_dir = std::path::absolute(&loaded.base_dir).context("Failed to resolve the config's folder")?;
    loaded.path = std::path::absolute(&loaded.path).context("Failed to resolve the config's path")?;
    Ok(())
}
