//! `keypost pool`: fill a product's code pool and see its stock. Like the order tools, each becomes a
//! [`Request`] carried out by the running daemon over its control socket, or by this process when none runs.
//! The import file is read here (the daemon, in its sandbox, may not be able to read the vendor's files).
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;

use super::Globals;
use super::orders::carry_out_with;
use crate::config::Loaded;
use crate::control::Request;
use crate::control::protocol::MAX_REQUEST_BYTES;

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Add codes to a product's pool: one code per line; blank lines, repeats and codes already in the pool or
    /// handed out are skipped and counted (importing the same file again adds nothing). Orders that waited for
    /// codes are answered right after.
    Import {
        /// A product with [product.pool] in the configuration
        product: String,
        /// The file of codes, one per line
        file: PathBuf,
    },
    /// Show each pool's stock: available, handed out, revoked, low-water mark, orders waiting
    Status {
        /// One JSON array instead of lines
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: PoolCommand, globals: &Globals) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(globals)?;
    let request = match command {
        PoolCommand::Import { product, file } => import_request(&loaded, product, &file)?,
        PoolCommand::Status { json } => Request::PoolStatus { pools: pools(&loaded), json },
    };
    carry_out_with(&loaded, request)
}

/// Every pool product of the configuration with its low-water mark.
fn pools(loaded: &Loaded) -> Vec<(String, u32)> {
    loaded.config.products.iter().filter_map(|p| Some((p.id.clone(), p.pool.as_ref()?.low_water))).collect()
}

fn import_request(loaded: &Loaded, product: String, file: &std::path::Path) -> anyhow::Result<Request> {
    if !loaded.product(&product).is_some_and(|p| p.is_pool()) {
        let known: Vec<String> = pools(loaded).into_iter().map(|(id, _)| format!("{id:?}")).collect();
        let known = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
        anyhow::bail!("product {product:?} has no [product.pool] in {}; pool products: {known}", loaded.path.display());
    }
    let bytes = std::fs::read(file).with_context(|| format!("Failed to read {}", file.display()))?;
    let text = String::from_utf8(bytes).map_err(|err| {
        anyhow::anyhow!(
            "{} is not UTF-8 text (byte {}); nothing was imported",
            file.display(),
            err.utf8_error().valid_up_to()
        )
    })?;
    let parsed = crate::pool::read_import(&text).map_err(|bad| {
        let lines: Vec<String> = bad.iter().map(|b| format!("  {}:{b}", file.display())).collect();
        anyhow::anyhow!("{} line(s) cannot be codes; nothing was imported:\n{}", bad.len(), lines.join("\n"))
    })?;
    let request = Request::PoolImport { product, codes: parsed.codes, blank: parsed.blank, repeated: parsed.repeated };
    if request.to_line().len() > MAX_REQUEST_BYTES {
        anyhow::bail!("{} is larger than one import may be ({MAX_REQUEST_BYTES} bytes): split it", file.display());
    }
    Ok(request)
}

/// `keypost check`: warns about each pool product without an available code (its orders would wait for review).
/// Reads the state without changing it: directly when it is free, from the running daemon when it holds it.
pub(super) fn check_stock(loaded: &Loaded, problems: &mut crate::problems::Problems) {
    let pools = pools(loaded);
    if pools.is_empty() {
        return;
    }
    let stocks = match stocks(loaded, &pools) {
        Ok(stocks) => stocks,
        Err(err) => {
            problems.warn("product", format!("cannot read the code pools' stock: {err:#}"));
            return;
        }
    };
    for (index, product) in loaded.config.products.iter().enumerate().filter(|(_, p)| p.is_pool()) {
        let available = stocks.iter().find(|s| s.product == product.id).map_or(0, |s| s.available);
        if available == 0 {
            problems.warn(
                format!("product[{index}].pool"),
                format!(
                    "the pool of {:?} has no codes: its orders wait for review until `keypost pool import {} FILE`",
                    product.id, product.id
                ),
            );
        }
    }
}

/// The pools' stock; none at all when the state was never created.
fn stocks(loaded: &Loaded, pools: &[(String, u32)]) -> anyhow::Result<Vec<crate::pool::Stock>> {
    let state = crate::daemon::build::state_dir(loaded);
    if !crate::store::Store::exists(&state) {
        return Ok(Vec::new());
    }
    let request = Request::PoolStatus { pools: pools.to_vec(), json: true };
    if let Some(owner) = super::owner::foreign_owner(&state)? {
        // Opening the service's state as root would leave root-owned files it cannot open (`owner.rs`), and
        // `check` does not give up root: only a running daemon is asked.
        let response = crate::control::ask(&crate::control::socket_path(&state), &request).map_err(|_| {
            anyhow::anyhow!(
                "the state belongs to {} and keypost is not running; `sudo keypost pool status` reads it as its owner",
                owner.name()
            )
        })?;
        return Ok(serde_json::from_str(&anyhow::Result::<crate::control::Answer>::from(response)?.stdout)?);
    }
    // Only read: redb's open to write would mark the file and sync it twice for a look at the stock.
    let answer = match crate::store::Store::open_read(&state) {
        Ok(store) => crate::control::answer::read(&store, &request).context("pool status is a read")??,
        Err(crate::store::StoreError::Locked { .. }) => {
            let response = crate::control::ask(&crate::control::socket_path(&state), &request)?;
            anyhow::Result::<crate::control::Answer>::from(response)?
        }
        Err(err) => return Err(err.into()),
    };
    Ok(serde_json::from_str(&answer.stdout)?)
}
