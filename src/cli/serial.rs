//! `keypost serial`, `keypost verify` and `keypost activate`: make or check one serial, or make an activation
//! code, by hand with a product's configured scheme, editions and keys.
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use time::Date;

use super::Globals;
use crate::config::Loaded;
use crate::serial::{Maker, Term, Terms, Verified, VerifyError};

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
    /// Edition, one of the product's `editions` (several joined by `+`) [default: its first, if it has editions]
    #[arg(long)]
    pub edition: Option<String>,
    /// Last valid day: YYYY-MM-DD, a term such as `365d` counted from the issue date, or `perpetual` [default]
    #[arg(long)]
    pub expires: Option<String>,
}

/// Check a serial against a licensee name: prints `valid: ...` and exits 0, or `invalid: reason` and exits 1
/// (also for a licence that expired before today, or before --at).
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
    /// Check as of this day, YYYY-MM-DD [default: today, UTC]
    #[arg(long, value_parser = parse_date)]
    pub at: Option<Date>,
}

/// Print the offline activation code for a serial on one machine (the app checks it without a network).
#[derive(Debug, Args)]
pub struct ActivateArgs {
    /// Product id, as in `[[product]] id = ...`
    #[arg(long, short = 'p')]
    pub product: String,
    /// Serial as the buyer typed it
    #[arg(long, short = 's')]
    pub serial: String,
    /// Machine id as the app shows it (surrounding spaces are ignored; case matters)
    #[arg(long, short = 'm')]
    pub machine: String,
    /// Licensee name: when given, the serial is first verified in full (name, expiry)
    #[arg(long, short = 'n')]
    pub name: Option<String>,
}

pub fn serial(args: SerialArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(globals)?;
    let (maker, terms) = product_maker(&loaded, &args.product)?;
    let issued = args.date.unwrap_or_else(today);
    let mut licence = terms.licence(None, args.seats, issued);
    if let Some(edition) = &args.edition {
        licence = licence.with_edition(terms.bits(edition).map_err(anyhow::Error::msg).context("--edition")?);
    }
    if let Some(expires) = &args.expires {
        licence.expires = parse_expiry(expires, issued).context("--expires")?;
    }
    let serial = maker
        .issue(&args.name, &licence)
        .with_context(|| format!("Failed to make a serial for product {:?}", args.product))?;
    outln!("{serial}");
    Ok(ExitCode::SUCCESS)
}

pub fn verify(args: VerifyArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(globals)?;
    let (maker, terms) = product_maker(&loaded, &args.product)?;
    match maker.verify_at(&args.name, &args.serial, args.at.unwrap_or_else(today)) {
        Ok(verified) => {
            outln!("valid: {}", describe(&args.product, &verified, &terms));
            Ok(ExitCode::SUCCESS)
        }
        Err(reason) => invalid(&reason),
    }
}

pub fn activate(args: ActivateArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let loaded = super::load_config(globals)?;
    let (maker, _) = product_maker(&loaded, &args.product)?;
    if let Some(name) = &args.name
        && let Err(reason) = maker.verify_at(name, &args.serial, today())
    {
        return invalid(&reason);
    }
    match maker.activation_code(&args.serial, &args.machine) {
        Ok(code) => {
            outln!("{code}");
            Ok(ExitCode::SUCCESS)
        }
        Err(reason) => invalid(&reason),
    }
}

fn invalid(reason: &VerifyError) -> anyhow::Result<ExitCode> {
    outln!("invalid: {reason}");
    Ok(ExitCode::from(super::EXIT_ERROR))
}

/// `product "pro", licensee "jane doe", edition pro, seats 3, issued 2026-11-22, expires 2027-11-22, key K1`:
/// what the serial says, the fields its scheme and layout carry.
fn describe(product: &str, verified: &Verified, terms: &Terms) -> String {
    let mut line = format!("product {product:?}, licensee {:?}", verified.licensee);
    if verified.layout.is_some() {
        let edition = verified.edition.map_or_else(|| "none".to_owned(), |bits| terms.names(bits));
        line.push_str(&format!(", edition {edition}"));
    }
    if let Some(seats) = verified.seats {
        line.push_str(&format!(", seats {seats}"));
    }
    if let Some(issued) = verified.issued {
        let expires = verified.expires.map_or_else(|| "never".to_owned(), |date| date.to_string());
        line.push_str(&format!(", issued {issued}, expires {expires}"));
    }
    if let Some(key_id) = &verified.key_id {
        line.push_str(&format!(", key {key_id}"));
        if verified.retired_key {
            line.push_str(" (retired)");
        }
    }
    line
}

/// The product's serial maker and terms, or an error listing the product ids the configuration knows.
fn product_maker(loaded: &Loaded, id: &str) -> anyhow::Result<(Maker, Terms)> {
    let Some(product) = loaded.product(id) else {
        let known: Vec<String> = loaded.config.products.iter().map(|p| format!("{:?}", p.id)).collect();
        let known = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
        anyhow::bail!("unknown product {id:?} in {}; known products: {known}", loaded.path.display());
    };
    let Some(serial) = &product.serial else {
        anyhow::bail!("product {id:?} hands out pool codes, not serials (see keypost pool status)");
    };
    let context = || format!("Failed to load the serial settings of product {id:?} ({})", loaded.path.display());
    let maker = serial.maker(&loaded.base_dir).with_context(context)?;
    let terms = serial.terms().with_context(context)?;
    Ok((maker, terms))
}

fn today() -> Date {
    time::OffsetDateTime::now_utc().date()
}

/// `--expires`: a date, or a term (`365d`, `perpetual`) counted from the issue date.
fn parse_expiry(text: &str, issued: Date) -> anyhow::Result<Option<Date>> {
    match Term::parse(text) {
        Some(Term::Perpetual) => Ok(None),
        Some(term) => term.expiry(issued).map(Some).ok_or_else(|| anyhow::anyhow!("{text:?} ends after 9999")),
        None => parse_date(text)
            .map(Some)
            .map_err(|err| anyhow::anyhow!("expected YYYY-MM-DD, a term like 365d, or perpetual: {err}")),
    }
}

fn parse_date(text: &str) -> Result<Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text, format).map_err(|err| format!("expected YYYY-MM-DD: {err}"))
}
