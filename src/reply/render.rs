//! Rendering replies, vendor notices and alerts into [`Outgoing`] messages with lettre's builder.
//! Values from an order are untrusted: control characters are dropped before they reach a header, the
//! HTML body escapes them, and the recipient is only ever the buyer address a trusted order carried.
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart};
use sha2::{Digest, Sha256};

use super::Alert;
use super::link::{self, DownloadLink, DownloadLinkConfig};
use super::placeholder::{self, Escape};
use super::{BodySource, Outgoing, ReplyConfig, ReplyTemplateConfig, VendorCopy};
use crate::order::{BuyerEmail, Recipient, is_forbidden_char};
use crate::problems::{ConfigError, Problems};

const DEFAULT_SUBJECT: &str = "Your {product} license";
const DEFAULT_TEXT: &str = "Hello {buyer_name},

thank you for your order {order_id}. Here is your license for {product} ({seats} seat(s)).

Licensed to: {licensee}
Serial:      {serial}

Type the name exactly as shown above, including capitals and accents.
{activation_url}
{download_url}
";

const RENEWAL_SUBJECT: &str = "Your {product} license, renewed";
const RENEWAL_TEXT: &str = "Hello {buyer_name},

your {product} license was renewed (order {order_id}). Here is your serial for the new period.

Licensed to: {licensee}
Serial:      {serial}
Valid until: {expires}

Type the name exactly as shown above, including capitals and accents.
{activation_url}
{download_url}
";

/// What `{expires}` says of a licence without an expiry date.
pub const PERPETUAL: &str = "never (perpetual license)";

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{key}: {problem}")]
    Placeholder { key: String, problem: placeholder::PlaceholderError },
    #[error("{0:?} is not a usable mail address")]
    Address(String),
    #[error("cannot build the message: {0}")]
    Build(String),
    #[error("no product {0:?} in the configuration")]
    UnknownProduct(String),
}

/// A loaded template: the files read, every placeholder checked.
#[derive(Debug, Clone)]
struct Template {
    key: String,
    subject: String,
    text: String,
    html: Option<String>,
}

#[derive(Debug, Clone)]
struct Product {
    name: String,
    download_url: Option<String>,
    /// Signs `download_url` afresh for each rendering (a resend mails a new link).
    download_link: Option<DownloadLink>,
    activation_url: Option<String>,
    template: Option<Template>,
}

/// Everything a license reply says.
#[derive(Debug, Clone)]
pub struct LicenseReply<'a> {
    pub provider: &'a str,
    pub order_id: &'a str,
    pub line: u32,
    pub product: &'a str,
    pub licensee: &'a str,
    pub serial: &'a str,
    pub seats: u32,
    pub buyer_name: Option<&'a str>,
    pub buyer_email: &'a BuyerEmail,
    pub recipient: Recipient,
    /// The licence's last valid day (`YYYY-MM-DD`), `None` for a perpetual licence: `{expires}`.
    pub expires: Option<&'a str>,
    /// The licence continues an earlier one (a renewal or an extension): the renewal template is used.
    pub renewal: bool,
    /// 0 for the original reply; n for the n-th resend asked for by the vendor (a new Message-ID).
    pub resend: u32,
}

/// What the renderer needs of one `[[product]]` (see `ProductConfig::reply_view`).
#[derive(Debug, Clone, Copy)]
pub struct ProductReply<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub download_url: Option<&'a str>,
    pub download_link: Option<&'a DownloadLinkConfig>,
    pub activation_url: Option<&'a str>,
    /// The product's own reply template, instead of `[reply.template]`.
    pub template: Option<&'a ReplyTemplateConfig>,
}

/// Renders messages from the `[reply]` configuration and the products' templates.
#[derive(Debug, Clone)]
pub struct Renderer {
    from: Mailbox,
    reply_to: Option<Mailbox>,
    vendor: Mailbox,
    vendor_copy: VendorCopy,
    domain: String,
    default: Template,
    renewal: Template,
    products: HashMap<String, Product>,
}

impl Renderer {
    /// Reads template files (relative to `base_dir`) and checks everything; every problem is reported against
    /// `file`, the configuration. `products` in their configuration order.
    pub fn new(
        reply: &ReplyConfig,
        products: &[ProductReply<'_>],
        file: &Path,
        base_dir: &Path,
    ) -> Result<Self, ConfigError> {
        let mut problems = Problems::new(file);
        reply.validate_for_sending(&mut problems);
        let from = mailbox(&mut problems, "reply.from", reply.from.as_deref());
        let vendor = mailbox(&mut problems, "reply.vendor", reply.vendor.as_deref());
        let reply_to = reply.reply_to.as_deref().and_then(|r| mailbox(&mut problems, "reply.reply_to", Some(r)));
        let default = match &reply.template {
            Some(template) => load(template, "reply.template", base_dir, &mut problems),
            None => Some(Template {
                key: "reply".into(),
                subject: DEFAULT_SUBJECT.into(),
                text: DEFAULT_TEXT.into(),
                html: None,
            }),
        };
        let renewal = match &reply.renewal {
            Some(template) => load(template, "reply.renewal", base_dir, &mut problems),
            None => Some(Template {
                key: "reply.renewal".into(),
                subject: RENEWAL_SUBJECT.into(),
                text: RENEWAL_TEXT.into(),
                html: None,
            }),
        };
        let mut by_id = HashMap::new();
        for (index, product) in products.iter().enumerate() {
            let key = format!("product[{index}].reply");
            let template = product.template.and_then(|t| load(t, &key, base_dir, &mut problems));
            if let Some(url) = product.activation_url {
                super::check_placeholders(&format!("product[{index}].activation_url"), url, &mut problems);
            }
            let download_link = product.download_link.and_then(|link| {
                download_link(&format!("product[{index}]"), product.download_url, link, base_dir, &mut problems)
            });
            let entry = Product {
                name: product.name.to_owned(),
                download_url: product.download_url.map(str::to_owned),
                download_link,
                activation_url: product.activation_url.map(str::to_owned),
                template,
            };
            by_id.insert(product.id.to_owned(), entry);
        }
        match (from, vendor, default, renewal) {
            (Some(from), Some(vendor), Some(default), Some(renewal)) if !problems.has_errors() => {
                let domain = from.email.domain().to_owned();
                let vendor_copy = reply.vendor_copy;
                Ok(Self { from, reply_to, vendor, vendor_copy, domain, default, renewal, products: by_id })
            }
            _ => Err(ConfigError(problems.into_items())),
        }
    }

    /// The deterministic Message-ID (without brackets) of one purpose for one order line.
    pub fn message_id(&self, purpose: &str, parts: &[&str]) -> String {
        let mut hasher = Sha256::new();
        for part in std::iter::once(&purpose).chain(parts) {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        let digest = hasher.finalize();
        format!("keypost.{purpose}.{}@{}", hex::encode(digest.get(..12).unwrap_or_default()), self.domain)
    }

    /// The reply carrying a license, plus a separate vendor notice when so configured.
    pub fn license(&self, reply: &LicenseReply<'_>) -> Result<(Outgoing, Option<Outgoing>), RenderError> {
        let product =
            self.products.get(reply.product).ok_or_else(|| RenderError::UnknownProduct(reply.product.into()))?;
        let template = match reply.renewal {
            true => &self.renewal,
            false => product.template.as_ref().unwrap_or(&self.default),
        };
        let values = self.values(reply, product)?;
        let subject = clean(&render(template, "subject", &template.subject, &values, Escape::None)?);
        let text = render(template, "text", &template.text, &values, Escape::None)?;
        let html = template.html.as_ref().map(|h| render(template, "html", h, &values, Escape::Html)).transpose()?;
        let line = reply.line.to_string();
        let resend = reply.resend.to_string();
        let mut ids = vec![reply.provider, reply.order_id, line.as_str()];
        if reply.resend > 0 {
            ids.push(&resend);
        }
        let id = self.message_id(if reply.resend > 0 { "resend" } else { "reply" }, &ids);
        let to = match reply.recipient {
            Recipient::Buyer => {
                let address = reply
                    .buyer_email
                    .as_str()
                    .parse()
                    .map_err(|_| RenderError::Address(reply.buyer_email.to_string()))?;
                Mailbox::new(reply.buyer_name.map(clean), address)
            }
            Recipient::Vendor => self.vendor.clone(),
        };
        let bcc = self.vendor_copy == VendorCopy::Bcc && reply.recipient == Recipient::Buyer;
        let main = self.build(&id, to, bcc, &subject, text, html)?;
        let notice = match self.vendor_copy {
            VendorCopy::Notice if reply.recipient == Recipient::Buyer => {
                Some(self.notice(reply, &product.name, &ids)?)
            }
            _ => None,
        };
        Ok((main, notice))
    }

    fn values(
        &self,
        reply: &LicenseReply<'_>,
        product: &Product,
    ) -> Result<BTreeMap<&'static str, String>, RenderError> {
        let mut values = BTreeMap::from([
            ("licensee", reply.licensee.to_owned()),
            ("serial", reply.serial.to_owned()),
            ("product", product.name.clone()),
            ("seats", reply.seats.to_string()),
            ("order_id", reply.order_id.to_owned()),
            ("provider", reply.provider.to_owned()),
            ("buyer_name", clean(reply.buyer_name.unwrap_or(reply.licensee))),
            ("expires", reply.expires.unwrap_or(PERPETUAL).to_owned()),
        ]);
        if let Some(url) = &product.download_url {
            let signed = match &product.download_link {
                Some(link) => link.for_now(url).ok_or(RenderError::Build(format!("cannot sign {url}")))?,
                None => url.clone(),
            };
            values.insert("download_url", signed);
        }
        if let Some(url) = &product.activation_url {
            let rendered = placeholder::render(url, &values, Escape::None)
                .map_err(|problem| RenderError::Placeholder { key: "product.activation_url".into(), problem })?;
            values.insert("activation_url", rendered);
        }
        Ok(values)
    }

    fn notice(&self, reply: &LicenseReply<'_>, product: &str, ids: &[&str]) -> Result<Outgoing, RenderError> {
        let body = format!(
            "keypost sent a license.\n\nProvider: {}\nOrder:    {}\nProduct:  {product}\nSeats:    {}\nLicensee: {}\nBuyer:    {}\n",
            reply.provider, reply.order_id, reply.seats, reply.licensee, reply.buyer_email
        );
        let subject = clean(&format!("[keypost] sold {product} ({} {})", reply.provider, reply.order_id));
        self.build(&self.message_id("notice", ids), self.vendor.clone(), false, &subject, body, None)
    }

    /// A message to the vendor about a review, a set-aside message, a revocation or a failure.
    pub fn alert(&self, alert: &Alert) -> Result<Outgoing, RenderError> {
        let id = self.message_id("alert", &[&alert.cause()]);
        let subject = clean(&format!("[keypost] {}", alert.title()));
        self.build(&id, self.vendor.clone(), false, &subject, alert.body(), None)
    }

    /// A plain message from `from` to one address (the answer to a writer with no license on file).
    pub fn plain(&self, id: &str, to: &str, subject: &str, text: &str) -> Result<Outgoing, RenderError> {
        let to = to.parse().map_err(|_| RenderError::Address(to.to_owned()))?;
        self.build(id, to, false, &clean(subject), text.to_owned(), None)
    }

    /// The periodic digest, to `to` (default the vendor); one Message-ID per period.
    pub fn digest(&self, report: &super::digest::Report, to: Option<&str>) -> Result<Outgoing, RenderError> {
        let to = match to {
            Some(to) => to.parse().map_err(|_| RenderError::Address(to.to_owned()))?,
            None => self.vendor.clone(),
        };
        let id = self.message_id("digest", &[&report.period]);
        self.build(&id, to, false, &clean(&report.subject()), report.body(), None)
    }

    fn build(
        &self,
        id: &str,
        to: Mailbox,
        bcc: bool,
        subject: &str,
        text: String,
        html: Option<String>,
    ) -> Result<Outgoing, RenderError> {
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{id}>")));
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        if bcc {
            builder = builder.bcc(self.vendor.clone());
        }
        let message = match html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(text, html)),
            None => builder.header(ContentType::TEXT_PLAIN).body(text),
        }
        .map_err(|err| RenderError::Build(err.to_string()))?;
        let envelope = message.envelope();
        Ok(Outgoing {
            message_id: id.to_owned(),
            from: envelope.from().map(ToString::to_string).unwrap_or_default(),
            to: envelope.to().iter().map(ToString::to_string).collect(),
            bytes: message.formatted(),
        })
    }
}

fn render(
    template: &Template,
    part: &str,
    text: &str,
    values: &BTreeMap<&str, String>,
    escape: Escape,
) -> Result<String, RenderError> {
    placeholder::render(text, values, escape)
        .map_err(|problem| RenderError::Placeholder { key: format!("{}.{part}", template.key), problem })
}

/// Drops characters that must never reach a header (CR, LF, other controls, bidi overrides).
fn clean(value: &str) -> String {
    value.chars().filter(|c| !is_forbidden_char(*c)).collect()
}

fn mailbox(problems: &mut Problems, key: &str, value: Option<&str>) -> Option<Mailbox> {
    match value?.parse::<Mailbox>() {
        Ok(mailbox) => Some(mailbox),
        Err(err) => {
            problems.error(key, format!("not a mail address: {err}"));
            None
        }
    }
}

/// Reads a template's bodies and checks its placeholders, reporting problems under `key`.
/// Checks a product's `download_link` and loads its secret (relative files from `base_dir`); `None` after
/// reporting a problem under `{key}.download_link` / `{key}.download_url`.
fn download_link(
    key: &str,
    url: Option<&str>,
    config: &DownloadLinkConfig,
    base_dir: &Path,
    problems: &mut Problems,
) -> Option<DownloadLink> {
    let Some(url) = url else {
        problems.error(format!("{key}.download_link"), "needs the product's download_url to sign");
        return None;
    };
    if link::sign(url, "", 0).is_none() {
        problems.error(format!("{key}.download_url"), "must be scheme://host/path without % escapes to be signed");
    }
    if !(1..=link::MAX_DAYS).contains(&config.days) {
        problems.error(format!("{key}.download_link.days"), format!("must be 1 to {}", link::MAX_DAYS));
    }
    match config.secret.load(base_dir) {
        Ok(secret) if !problems.has_errors() => Some(DownloadLink::new(secret, config.days)),
        Ok(_) => None,
        Err(err) => {
            problems.error(format!("{key}.download_link.secret"), err);
            None
        }
    }
}

fn load(config: &ReplyTemplateConfig, key: &str, base_dir: &Path, problems: &mut Problems) -> Option<Template> {
    config.validate(key, problems);
    let text = read_body(&config.text, &format!("{key}.text"), base_dir, problems)?;
    let html = match &config.html {
        Some(source) => Some(read_body(source, &format!("{key}.html"), base_dir, problems)?),
        None => None,
    };
    Some(Template { key: key.to_owned(), subject: config.subject.clone(), text, html })
}

fn read_body(source: &BodySource, key: &str, base_dir: &Path, problems: &mut Problems) -> Option<String> {
    match source {
        BodySource::Inline(text) => Some(text.clone()),
        BodySource::File { file } => match std::fs::read_to_string(base_dir.join(file)) {
            Ok(text) => {
                super::check_placeholders(&format!("{key} ({})", file.display()), &text, problems);
                Some(text)
            }
            Err(err) => {
                problems.error(key, format!("cannot read {}: {err}", file.display()));
                None
            }
        },
    }
}

#[cfg(test)]
mod tests;
