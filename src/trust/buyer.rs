//! Buyer mail (a lost-licence request): no provider signs it, so there is no signature to demand. What keypost
//! can check is what the vendor's own receiving server found (`trust.authserv_id`): its topmost
//! Authentication-Results must be there, and must not say the From address was forged (`dmarc=fail`, or a failed
//! DKIM or SPF check with neither passing). Without `authserv_id` the From address is taken as written; the
//! harm a forger can do is bounded by where the answer goes (only to the address on file) and the rate limit.
use super::auth_results::syntax;
use super::domain::{quote, sanitize};
use crate::email::Email;

/// How the buyer's From was judged, or why it is refused.
pub fn check(email: &Email, authserv_id: Option<&str>) -> Result<String, String> {
    let Some(authserv_id) = authserv_id else {
        return Ok("From as written (no trust.authserv_id)".to_owned());
    };
    let wanted = authserv_id.trim().to_ascii_lowercase();
    let value = email
        .authentication_results
        .iter()
        .find(|value| syntax::authserv_id(value).is_ok_and(|id| id == wanted))
        .ok_or_else(|| format!("no Authentication-Results header from {}", quote(authserv_id)))?;
    let results = syntax::parse(value).map_err(|err| sanitize(&format!("unreadable Authentication-Results: {err}")))?;
    let has = |methods: &[&str], result: &str| {
        results.clauses.iter().any(|c| methods.contains(&c.method.as_str()) && c.result == result)
    };
    if has(&["dmarc"], "fail") {
        return Err("your server found the From forged (dmarc=fail)".to_owned());
    }
    let passed = has(&["dmarc", "dkim", "spf"], "pass");
    let failed = has(&["dkim", "spf"], "fail");
    match (passed, failed) {
        (true, _) => Ok(format!("authentication-results {}: pass", quote(&wanted))),
        (false, true) => Err("your server found the From unverified (dkim/spf=fail, nothing passed)".to_owned()),
        (false, false) => Ok(format!("authentication-results {}: nothing failed", quote(&wanted))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(results: &[&str]) -> Email {
        Email { authentication_results: results.iter().map(|r| r.to_string()).collect(), ..Email::default() }
    }

    #[test]
    fn without_an_authserv_id_the_from_is_taken_as_written() {
        assert!(check(&mail(&[]), None).is_ok());
    }

    #[test]
    fn the_vendors_server_verdict_decides_when_one_is_configured() {
        let id = Some("mx.acme.example");
        assert!(check(&mail(&["mx.acme.example; dkim=pass header.d=gmail.com; dmarc=pass"]), id).is_ok());
        assert!(check(&mail(&["mx.acme.example; spf=none"]), id).is_ok(), "nothing failed");
        let forged = check(&mail(&["mx.acme.example; dkim=none; spf=softfail; dmarc=fail"]), id);
        assert!(forged.unwrap_err().contains("dmarc=fail"));
        assert!(check(&mail(&["mx.acme.example; dkim=fail; spf=fail"]), id).is_err());
        assert!(check(&mail(&["other.example; dmarc=pass"]), id).unwrap_err().contains("no Authentication-Results"));
    }
}
