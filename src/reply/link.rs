//! Expiring download links in the form nginx's `secure_link` module checks, so a stock nginx serves the file
//! only until the link expires. Pure apart from the clock read in [`DownloadLink::for_now`].
//!
//! The nginx side (the secret is the product's `download_link.secret`):
//! ```text
//! location /files/ {
//!     secure_link $arg_md5,$arg_expires;
//!     secure_link_md5 "$secure_link_expires$uri SECRET";
//!     if ($secure_link = "")  { return 403; }   # missing or tampered
//!     if ($secure_link = "0") { return 410; }   # expired
//! }
//! ```
//! The link is `URL?md5=H&expires=T`: `T` is a Unix time, `H` the MD5 of `T`, the URL's path, a space and the
//! secret, in base64url without padding (the module's format).
use md5::{Digest, Md5};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::secret::SecretSource;

/// `download_link = { secret = { file = "..." }, days = 3 }` on a `[[product]]`: sign its `download_url`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownloadLinkConfig {
    /// The secret in the nginx `secure_link_md5` expression, as a secret source.
    pub secret: SecretSource,
    /// Days a link stays valid from the moment a reply (or a resend) is rendered (default 3).
    #[serde(default = "default_days")]
    pub days: u32,
}

fn default_days() -> u32 {
    3
}

/// Most days a link may last (a year): longer links are as good as unsigned ones.
pub const MAX_DAYS: u32 = 366;

/// A product's loaded link signer. `Debug` does not show the secret.
#[derive(Debug, Clone)]
pub struct DownloadLink {
    secret: SecretString,
    days: u32,
}

impl DownloadLink {
    pub fn new(secret: SecretString, days: u32) -> DownloadLink {
        DownloadLink { secret, days }
    }

    /// `url` signed to expire `days` after now.
    pub fn for_now(&self, url: &str) -> Option<String> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        sign(url, self.secret.expose_secret(), now.checked_add(i64::from(self.days) * 86_400)?)
    }
}

/// `url` with `md5` and `expires` query arguments for expiry time `expires` (Unix seconds); `None` when the URL
/// has no path to sign (it must be `scheme://host/path`, the path as nginx's `$uri` sees it: no `%` escapes).
pub fn sign(url: &str, secret: &str, expires: i64) -> Option<String> {
    let after_scheme = url.split_once("://")?.1;
    let path_and_query = after_scheme.find('/').and_then(|at| after_scheme.get(at..))?;
    let (path, query) = path_and_query.split_once('?').map_or((path_and_query, None), |(p, q)| (p, Some(q)));
    if path.contains('%') || path.contains('#') {
        return None;
    }
    let digest = Md5::digest(format!("{expires}{path} {secret}").as_bytes());
    let hash = data_encoding::BASE64URL_NOPAD.encode(&digest);
    let joiner = if query.is_some() { '&' } else { '?' };
    Some(format!("{url}{joiner}md5={hash}&expires={expires}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_carries_the_base64url_md5_of_expiry_path_and_secret() {
        // printf '2147483647/s/link secret' | openssl md5 -binary | openssl base64 | tr +/ -_ | tr -d =
        let signed = sign("http://example.com/s/link", "secret", 2_147_483_647).unwrap();
        assert_eq!(signed, "http://example.com/s/link?md5=0Xgm37lo5nFEuHMDKl_vQg&expires=2147483647");
    }

    #[test]
    fn an_existing_query_is_kept_and_urls_without_a_signable_path_are_refused() {
        let signed = sign("https://dl.example/f/a.zip?v=2", "s", 10).unwrap();
        assert!(signed.starts_with("https://dl.example/f/a.zip?v=2&md5=") && signed.ends_with("&expires=10"));
        assert_eq!(sign("dl.example/f/a.zip", "s", 10), None);
        assert_eq!(sign("https://dl.example", "s", 10), None);
        assert_eq!(sign("https://dl.example/f/a%20b.zip", "s", 10), None);
    }
}
