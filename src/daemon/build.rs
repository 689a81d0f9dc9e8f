//! Building the daemon's parts from a loaded configuration: the store, the renderer, the real reader
//! (email parse + templates) and licenser (serial makers), the source and the mailer.
use anyhow::Context as _;

use super::Daemon;
use super::any::{AnyMailer, AnySource};
use super::core::Core;
use super::seams::{Licenser, Reader};
use crate::config::Loaded;
use crate::problems::ConfigError;
use crate::product::ProductConfig;
use crate::reply::Renderer;
use crate::store::Store;
use crate::trust::Verifier;

/// Opens the state database named by `[state] dir`; the store creates the folder itself, private (0700).
pub fn store(loaded: &Loaded) -> anyhow::Result<Store> {
    Ok(Store::open(&state_dir(loaded))?)
}

/// The reply renderer for the `[reply]` section and the products' templates.
pub fn renderer(loaded: &Loaded) -> Result<Renderer, ConfigError> {
    let products: Vec<_> = loaded.config.products.iter().map(ProductConfig::reply_view).collect();
    Renderer::new(&loaded.config.reply, &products, &loaded.path, &loaded.base_dir)
}

/// The store, renderer and licenser.
pub fn core(loaded: &Loaded) -> anyhow::Result<Core> {
    let renderer = renderer(loaded)?;
    let licenser = licenser(loaded)?;
    Ok(with_aside(loaded, Core::new(store(loaded)?, loaded.config.clone(), renderer, licenser)))
}

/// The same around a store the caller already opened (it is opened once per process).
pub fn core_with(loaded: &Loaded, store: Store) -> anyhow::Result<Core> {
    Ok(with_aside(loaded, Core::new(store, loaded.config.clone(), renderer(loaded)?, licenser(loaded)?)))
}

/// The same from a renderer and licenser built earlier (a tool run as root reads the secrets they need before
/// it becomes the state folder's owner).
pub fn core_from(loaded: &Loaded, store: Store, renderer: Renderer, licenser: Box<dyn Licenser>) -> Core {
    with_aside(loaded, Core::new(store, loaded.config.clone(), renderer, licenser))
}

/// Gives the core the mailbox's set-aside folder, when a mailbox is configured.
fn with_aside(loaded: &Loaded, mut core: Core) -> Core {
    let (mailbox, max_bytes) = (loaded.config.mailbox.as_ref(), loaded.config.templates.max_message_bytes);
    core.aside = crate::mailbox::aside::AsideFolder::from_config(mailbox, &loaded.base_dir, max_bytes).ok();
    core
}

/// The state folder named by `[state] dir`, resolved.
pub fn state_dir(loaded: &Loaded) -> std::path::PathBuf {
    loaded.resolve(&loaded.config.state.dir)
}

/// The whole daemon as the configuration describes it.
pub fn daemon(loaded: &Loaded) -> anyhow::Result<Daemon<AnySource, AnyMailer>> {
    let core = core(loaded)?;
    let reader = reader(loaded)?;
    // The verifier logs each weak (sender-only) provider itself.
    let verifier = Verifier::new(&loaded.config.trust).context("Failed to set up the trust checks")?;
    let source = AnySource::from_config(loaded)?;
    let mailer = AnyMailer::from_config(loaded)?;
    Ok(Daemon::new(source, mailer, core, reader, verifier))
}

/// Email parse + provider templates.
pub fn reader(loaded: &Loaded) -> anyhow::Result<Box<dyn Reader>> {
    Ok(Box::new(super::real::TemplateReader::load(loaded)?))
}

/// One serial maker per product.
pub fn licenser(loaded: &Loaded) -> anyhow::Result<Box<dyn Licenser>> {
    Ok(Box::new(super::real::SerialLicenser::load(loaded)?))
}
