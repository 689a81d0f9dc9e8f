//! Buyer mail (a lost-licence request): no provider signs it, so there is no signature to demand. What keypost
//! can check is what the vendor's own receiving server found (`trust.authserv_id`): its topmost
//! Authentication-Results must be there, and must not say the From address was forged (`dmarc=fail`, or a failed
//! DKIM or SPF check with no pass for the From's own domain). A pass counts only when it vouches for the From
//! domain (DMARC, or DKIM `header.d` / SPF `smtp.mailfrom` in the From's domain or a parent of it): anyone passes
//! SPF for their own domain while writing someone else's From. A forwarded request is refused, since the
//! server's verdict is about the forwarder, not the From inside. Without `authserv_id` the From address is taken
//! as written; the harm a forger can do is bounded by where the answer goes (only to the address on file) and the
//! rate limit.
use super::auth_results::syntax;
use super::domain::{quote, sanitize};
use crate::email::Email;

/// How the buyer's From was judged, or why it is refused.
pub fn check(email: &Email, authserv_id: Option<&str>) -> Result<String, String> {
    if email.forwarded.is_some() || email.attached_original.is_some() {
        return Err("a forwarded message: the buyer must write from their own address".to_owned());
    }
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
    let from_domain = email.from.as_ref().and_then(|f| f.address.rsplit_once('@')).map(|(_, d)| d.to_ascii_lowercase());
    let passed = results.clauses.iter().any(|c| c.result == "pass" && vouches_for(c, from_domain.as_deref()));
    let failed = has(&["dkim", "spf"], "fail");
    match (passed, failed) {
        (true, _) => Ok(format!("authentication-results {}: pass", quote(&wanted))),
        (false, true) => {
            Err("your server found the From unverified (dkim/spf=fail, nothing passed for its domain)".to_owned())
        }
        (false, false) => Ok(format!("authentication-results {}: nothing failed", quote(&wanted))),
    }
}

/// Whether a passing clause speaks for the From domain: DMARC for the From's domain (`header.from`, which the
/// alignment check is about; a result without it is about this message), DKIM by its signing domain, SPF by the
/// envelope sender's domain, each equal to the From's domain or a parent of it.
fn vouches_for(clause: &syntax::Clause, from_domain: Option<&str>) -> bool {
    let Some(from_domain) = from_domain else { return false };
    let aligned = |domain: &str| {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        !domain.is_empty() && (from_domain == domain || from_domain.ends_with(&format!(".{domain}")))
    };
    match clause.method.as_str() {
        "dmarc" => clause.property("header", "from").is_none_or(|p| p.value.trim().eq_ignore_ascii_case(from_domain)),
        "dkim" => clause.property("header", "d").is_some_and(|p| aligned(&p.value)),
        "spf" => clause
            .property("smtp", "mailfrom")
            .and_then(|p| p.domain.clone().or_else(|| p.value.rsplit_once('@').map(|(_, d)| d.to_owned())))
            .is_some_and(|d| aligned(&d)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(results: &[&str]) -> Email {
        Email {
            from: crate::email::parse_address("jane@gmail.com"),
            authentication_results: results.iter().map(|r| r.to_string()).collect(),
            ..Email::default()
        }
    }

    #[test]
    fn a_pass_counts_only_for_the_from_domain() {
        let id = Some("mx.acme.example");
        // The forger's own domain passes SPF and DKIM; the victim's domain publishes no DMARC policy.
        let forged = mail(&[
            "mx.acme.example; spf=pass smtp.mailfrom=x@attacker.example; dkim=pass header.d=attacker.example; \
             spf=fail smtp.mailfrom=jane@gmail.com",
        ]);
        assert!(check(&forged, id).unwrap_err().contains("nothing passed"), "a pass for another domain");
        assert!(check(&mail(&["mx.acme.example; spf=pass smtp.mailfrom=jane@gmail.com"]), id).is_ok());
        assert!(check(&mail(&["mx.acme.example; dkim=pass header.d=gmail.com"]), id).is_ok());
        assert!(check(&mail(&["mx.acme.example; dkim=pass header.d=evilgmail.com; dkim=fail"]), id).is_err());
        let other = mail(&["mx.acme.example; dmarc=pass header.from=attacker.example; spf=fail"]);
        assert!(check(&other, id).is_err(), "a DMARC pass for another From domain");
        assert!(check(&mail(&["mx.acme.example; dmarc=pass header.from=Gmail.com; spf=fail"]), id).is_ok());
    }

    #[test]
    fn a_forwarded_request_is_refused() {
        let mut forwarded = mail(&["mx.acme.example; dmarc=pass"]);
        forwarded.attached_original = Some(b"From: jane@gmail.com\r\n\r\nmy key?".to_vec());
        assert!(check(&forwarded, Some("mx.acme.example")).unwrap_err().contains("forwarded"));
        assert!(check(&forwarded, None).is_err(), "also without the server's verdict");
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
