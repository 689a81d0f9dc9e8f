//! The real [`Reader`] (email parse + provider templates) and [`Licenser`] (one serial maker per product).
use std::collections::HashMap;

use anyhow::Context as _;

use super::seams::{Licenser, Reader, Reading};
use crate::config::Loaded;
use crate::fulfil::Grant;
use crate::problems::ConfigError;
use crate::serial::{Maker, Terms};
use crate::template::{Outcome, Templates};
use crate::trust::ProviderTrust;

/// Parses with [`crate::email::parse`] and classifies with the loaded templates.
pub struct TemplateReader {
    templates: Templates,
}

impl TemplateReader {
    pub fn load(loaded: &Loaded) -> anyhow::Result<Self> {
        let templates = Templates::load(&loaded.config.templates, &loaded.base_dir).map_err(ConfigError)?;
        Ok(Self { templates })
    }
}

impl Reader for TemplateReader {
    fn read(&self, bytes: &[u8]) -> Reading {
        let email = match crate::email::parse(bytes, self.templates.max_message_bytes()) {
            Ok(email) => email,
            Err(err) => return Reading::Unparseable { reason: err.to_string() },
        };
        match self.templates.classify(&email) {
            Outcome::Order { template, order } => {
                Reading::Order { email: Box::new(email), template, order: Box::new(order) }
            }
            Outcome::NotAnOrder { template, reason } => Reading::NotAnOrder { template, reason },
            Outcome::Unrecognised { near_misses, order_like, .. } => Reading::Unrecognised { near_misses, order_like },
            Outcome::Unclassified { provider, closest, .. } => {
                Reading::Unclassified { provider, subject: email.subject.clone(), closest }
            }
            Outcome::Broken { template, problems } => Reading::Broken { template, problems },
        }
    }

    fn provider_trust(&self, provider: &str) -> Option<ProviderTrust> {
        self.templates.provider_trust(provider)
    }
}

/// Each product's [`Maker`] (keys loaded once at start-up) and the [`Terms`] its SKUs sell.
pub struct SerialLicenser {
    makers: HashMap<String, (Maker, Terms)>,
}

impl SerialLicenser {
    pub fn load(loaded: &Loaded) -> anyhow::Result<Self> {
        let mut makers = HashMap::new();
        // A pool product has no serial settings: its codes come from the store (`daemon/pool.rs`).
        for (product, serial) in loaded.config.products.iter().filter_map(|p| Some((p, p.serial.as_ref()?))) {
            let maker = serial
                .maker(&loaded.base_dir)
                .with_context(|| format!("Failed to set up serials for product {:?}", product.id))?;
            let terms = serial.terms().with_context(|| format!("Bad terms for product {:?}", product.id))?;
            makers.insert(product.id.clone(), (maker, terms));
        }
        Ok(Self { makers })
    }
}

impl Licenser for SerialLicenser {
    fn make(&self, grant: &Grant, issued: time::Date) -> Result<String, String> {
        let product = &grant.product;
        let (maker, terms) =
            self.makers.get(product).ok_or_else(|| format!("no serial maker for product {product:?}"))?;
        let mut licence = terms.licence(grant.sku.as_deref(), grant.seats, issued);
        if let Some(expires) = grant.expires.as_deref() {
            let last_day = crate::order::parse_iso_date(expires).ok_or_else(|| format!("bad expiry {expires:?}"))?;
            licence = licence.with_expiry(last_day);
        }
        maker.issue(grant.licensee.as_str(), &licence).map_err(|err| err.to_string())
    }

    fn expiry(&self, grant: &Grant, issued: time::Date) -> Option<time::Date> {
        match grant.expires.as_deref() {
            Some(expires) => crate::order::parse_iso_date(expires),
            None => self.makers.get(&grant.product)?.1.licence(grant.sku.as_deref(), grant.seats, issued).expires,
        }
    }
}
