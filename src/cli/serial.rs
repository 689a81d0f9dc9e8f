//! `keypost serial` and `keypost verify`: make or check one serial by hand with a product's configured scheme.
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use time::Date;

use super::Globals;
use crate::config::Loaded;
use crate::serial::Maker;

/// Print the serial for a licensee name.
#[derive(Debug, Args)]
pub struct SerialArgs {
    /// Product id, as in `[[product]] id = ...`
    #[arg(long, short = 'p')]
    pub product: String,
    /// Licensee name (normalised by the product's rule before use)
    #[arg(long, short = 'n')]
    pub name: String,
    /// Seat count written into `block` serials (ignored by `name-cbc`)
    #[arg(long, default_value_t = 1)]
    pub seats: u32,
    /// Issue date written into `block` serials, YYYY-MM-DD [default: today, UTC]
    #[arg(long, value_parser = parse_date)]
    pub date: Option<Date>,
}

/// Check a serial against a licensee name: prints `valid: ...` and exits 0, or a reason and exits 1.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Product id, as in `[[product]] id = ...`
    #[arg(long, short = 'p')]
    pub product: String,
    /// Licensee name as the buyer typed it
    #[arg(long, short = 'n')]
    pub name: String,
    /// Serial as the buyer typed it (case, spaces and dashes do not matter)
    #[arg(long, short = 's')]
    pub serial: String,
}

pub fn serial(args: SerialArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(globals)?;
    let maker = product_maker(&loaded, &args.product)?;
    let issued = args.date.unwrap_or_else(|| time::OffsetDateTime::now_utc().date());
    let serial = maker
        .make(&args.name, args.seats, issued)
        .with_context(|| format!("Failed to make a serial for product {:?}", args.product))?;
    println!("{serial}");
    Ok(ExitCode::SUCCESS)
}

pub fn verify(args: VerifyArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(globals)?;
    let maker = product_maker(&loaded, &args.product)?;
    match maker.verify(&args.name, &args.serial) {
        Ok(verified) => {
            let mut line = format!("valid: licensee {:?}", verified.licensee);
            if let Some(seats) = verified.seats {
                line.push_str(&format!(", seats {seats}"));
            }
            if let Some(issued) = verified.issued {
                line.push_str(&format!(", issued {issued}"));
            }
            if let Some(key_id) = &verified.key_id {
                line.push_str(&format!(", key {key_id}"));
                if verified.retired_key {
                    line.push_str(" (retired)");
                }
            }
            println!("{line}");
            Ok(ExitCode::SUCCESS)
        }
        Err(reason) => {
            println!("invalid: {reason}");
            Ok(ExitCode::from(super::EXIT_ERROR))
        }
    }
}

/// The product's serial maker, or an error listing the product ids the configuration knows.
fn product_maker(loaded: &Loaded, id: &str) -> anyhow::Result<Maker> {
    let Some(product) = loaded.product(id) else {
        let known: Vec<String> = loaded.config.products.iter().map(|p| format!("{:?}", p.id)).collect();
        let known = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
        anyhow::bail!("unknown product {id:?} in {}; known products: {known}", loaded.path.display());
    };
    product
        .serial
        .maker(&loaded.base_dir)
        .with_context(|| format!("Failed to load the serial settings of product {id:?} ({})", loaded.path.display()))
}

fn parse_date(text: &str) -> Result<Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text, format).map_err(|err| format!("expected YYYY-MM-DD: {err}"))
}
