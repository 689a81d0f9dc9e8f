//! RFC 8601 §2.2 grammar for one Authentication-Results value, with RFC 5322 CFWS (nested comments, quoted
//! pairs, folding) and RFC 2045 quoted strings. No crate parses this header (mail-auth only writes it; the one
//! parser on crates.io panics on input it does not expect), so this follows the ABNF:
//!
//! ```text
//! payload    = [CFWS] authserv-id [ CFWS authres-version ] ( no-result / 1*resinfo ) [CFWS]
//! authserv-id = value                       ; token / quoted-string
//! no-result  = [CFWS] ";" [CFWS] "none"
//! resinfo    = [CFWS] ";" methodspec [ CFWS reasonspec ] [ CFWS 1*propspec ]
//! methodspec = [CFWS] method [CFWS] "=" [CFWS] result
//! method     = Keyword [ [CFWS] "/" [CFWS] 1*DIGIT [CFWS] ]
//! reasonspec = "reason" [CFWS] "=" [CFWS] value
//! propspec   = ptype [CFWS] "." [CFWS] property [CFWS] "=" pvalue
//! pvalue     = [CFWS] ( value / [ [ local-part ] "@" ] domain-name ) [CFWS]
//! ```
//!
//! A value ends only where the grammar says so: a quoted string (`header.i="x header.d=paypal.com y"@evil`)
//! is one local-part, never split on its spaces. One leniency, on the safe side: an unquoted pvalue may hold
//! any token or atext character (`/`, `=`, `?` too), because servers write base64 `header.b=` values unquoted;
//! it still ends at whitespace, `(`, `;` or the end. Anything else that does not fit is an error, not a guess.
//! Pure; never panics (no indexing).

/// Why a header value does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at character {at}")]
pub(crate) struct SyntaxError {
    pub what: &'static str,
    pub at: usize,
}

/// A `ptype.property=pvalue`, e.g. `header.d=paypal.com`; names lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Property {
    pub ptype: String,
    pub name: String,
    /// The value as written, quotes and escapes removed (`local@domain` for the address form).
    pub value: String,
    /// The domain-name of the `[local-part] "@" domain-name` form, lower-cased; `None` for a plain value.
    pub domain: Option<String>,
}

/// One `method=result [reason=...] ptype.property=value ...` clause; method and result lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Clause {
    pub method: String,
    pub result: String,
    pub properties: Vec<Property>,
}

impl Clause {
    /// The value of `ptype.name`, when present once or more (the first).
    pub fn property(&self, ptype: &str, name: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.ptype == ptype && p.name == name)
    }
}

/// A parsed header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Results {
    /// Lower-cased.
    pub authserv_id: String,
    pub clauses: Vec<Clause>,
}

/// Only the authserv-id, so the caller can tell whose header it is before asking for the rest.
pub(crate) fn authserv_id(value: &str) -> Result<String, SyntaxError> {
    let mut cursor = Cursor::new(value);
    cursor.cfws()?;
    Ok(cursor.authserv_id()?.to_ascii_lowercase())
}

/// The whole header value.
pub(crate) fn parse(value: &str) -> Result<Results, SyntaxError> {
    let mut cursor = Cursor::new(value);
    cursor.cfws()?;
    let authserv_id = cursor.authserv_id()?.to_ascii_lowercase();
    cursor.cfws()?;
    if cursor.peek().is_some_and(|c| c.is_ascii_digit()) {
        cursor.digits()?;
        cursor.cfws()?;
    }
    let (mut clauses, mut none) = (Vec::new(), false);
    loop {
        cursor.cfws()?;
        match cursor.peek() {
            None => break,
            Some(';') => cursor.bump(),
            Some(_) => return Err(cursor.error("expected \";\"")),
        }
        cursor.cfws()?;
        let method = cursor.keyword()?;
        cursor.cfws()?;
        if method == "none" && cursor.peek().is_none() && clauses.is_empty() {
            none = true;
            break;
        }
        clauses.push(cursor.resinfo(method)?);
    }
    if clauses.is_empty() && !none {
        return Err(cursor.error("no result and no \"none\""));
    }
    Ok(Results { authserv_id, clauses })
}

/// RFC 2045 tspecials, plus space: what ends a token.
fn is_token_char(c: char) -> bool {
    !(c.is_control() || c.is_whitespace() || "()<>@,;:\\\"/[]?=".contains(c))
}

/// What an unquoted pvalue may hold: token characters and RFC 5322 atext (`/`, `=`, `?`) and dots.
fn is_bare_value_char(c: char) -> bool {
    is_token_char(c) || "/=?".contains(c)
}

fn is_domain_char(c: char) -> bool {
    c.is_alphanumeric() || c == '-' || c == '.' || c == '_'
}

struct Cursor {
    chars: Vec<char>,
    at: usize,
}

impl Cursor {
    fn new(value: &str) -> Self {
        Self { chars: value.chars().collect(), at: 0 }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn bump(&mut self) {
        self.at += 1;
    }

    fn error(&self, what: &'static str) -> SyntaxError {
        SyntaxError { what, at: self.at }
    }

    fn expect(&mut self, wanted: char, what: &'static str) -> Result<(), SyntaxError> {
        if self.peek() == Some(wanted) {
            self.bump();
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    /// Whitespace (folding included: CR and LF are whitespace here) and comments, nested, with quoted pairs.
    fn cfws(&mut self) -> Result<(), SyntaxError> {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => self.bump(),
                Some('(') => self.comment()?,
                _ => return Ok(()),
            }
        }
    }

    fn comment(&mut self) -> Result<(), SyntaxError> {
        let start = self.at;
        let mut depth = 0usize;
        loop {
            match self.peek() {
                None => return Err(SyntaxError { what: "unclosed comment", at: start }),
                Some('\\') => {
                    self.bump();
                    if self.peek().is_none() {
                        return Err(SyntaxError { what: "unclosed comment", at: start });
                    }
                }
                Some('(') => depth += 1,
                Some(')') => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        self.bump();
                        return Ok(());
                    }
                }
                Some(_) => {}
            }
            self.bump();
        }
    }

    fn run(&mut self, accept: impl Fn(char) -> bool) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek().filter(|c| accept(*c)) {
            out.push(c);
            self.bump();
        }
        out
    }

    /// RFC 5321 Ldh-str: letters, digits and `-`, not ending in `-`.
    fn keyword(&mut self) -> Result<String, SyntaxError> {
        let start = self.at;
        let word = self.run(|c| c.is_ascii_alphanumeric() || c == '-');
        if word.is_empty() || word.ends_with('-') {
            return Err(SyntaxError { what: "expected a keyword", at: start });
        }
        Ok(word.to_ascii_lowercase())
    }

    fn digits(&mut self) -> Result<String, SyntaxError> {
        let digits = self.run(|c| c.is_ascii_digit());
        if digits.is_empty() { Err(self.error("expected a version number")) } else { Ok(digits) }
    }

    /// RFC 2045 quoted-string (RFC 5322 form): quoted pairs unescaped, folding removed.
    fn quoted_string(&mut self) -> Result<String, SyntaxError> {
        let start = self.at;
        self.expect('"', "expected a quoted string")?;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(SyntaxError { what: "unclosed quoted string", at: start }),
                Some('"') => {
                    self.bump();
                    return Ok(out);
                }
                Some('\\') => {
                    self.bump();
                    let escaped = self.peek().ok_or(SyntaxError { what: "unclosed quoted string", at: start })?;
                    out.push(escaped);
                }
                Some('\r' | '\n') => {}
                Some(c) => out.push(c),
            }
            self.bump();
        }
    }

    /// RFC 2045 value: token / quoted-string.
    fn value(&mut self) -> Result<String, SyntaxError> {
        if self.peek() == Some('"') {
            return self.quoted_string();
        }
        let token = self.run(is_token_char);
        if token.is_empty() { Err(self.error("expected a token or a quoted string")) } else { Ok(token) }
    }

    /// The authserv-id without the job ID that OpenDKIM and OpenDMARC append with `AuthservIDWithJobID`:
    /// `mx.example/4ZxY7s1K` (unquoted in most versions, though "/" ends a token; quoted in later ones). The
    /// server's own header must be recognised in that form too, or a header below it would be read instead.
    fn authserv_id(&mut self) -> Result<String, SyntaxError> {
        let quoted = self.peek() == Some('"');
        let id = self.value()?;
        if !quoted && self.peek() == Some('/') {
            self.bump();
            if self.run(is_token_char).is_empty() {
                return Err(self.error("expected a job ID after the authserv-id's \"/\""));
            }
            return Ok(id);
        }
        match id.split_once('/') {
            Some((host, job)) if quoted && !host.is_empty() && !job.is_empty() => Ok(host.to_owned()),
            _ => Ok(id),
        }
    }

    /// After the `;` and the method keyword (CFWS skipped): the rest of one resinfo.
    fn resinfo(&mut self, method: String) -> Result<Clause, SyntaxError> {
        if self.peek() == Some('/') {
            self.bump();
            self.cfws()?;
            self.digits()?;
            self.cfws()?;
        }
        self.expect('=', "expected \"=\" after the method")?;
        self.cfws()?;
        let result = self.keyword()?;
        let mut properties = Vec::new();
        loop {
            self.cfws()?;
            if matches!(self.peek(), None | Some(';')) {
                return Ok(Clause { method, result, properties });
            }
            let word = self.keyword()?;
            self.cfws()?;
            match self.peek() {
                Some('=') if word == "reason" && properties.is_empty() => {
                    self.bump();
                    self.cfws()?;
                    self.value()?;
                }
                Some('.') => properties.push(self.propspec(word)?),
                _ => return Err(self.error("expected \".\" in a property")),
            }
        }
    }

    /// After `ptype` (CFWS skipped), at the `.`.
    fn propspec(&mut self, ptype: String) -> Result<Property, SyntaxError> {
        self.expect('.', "expected \".\" in a property")?;
        self.cfws()?;
        let name = self.keyword()?;
        self.cfws()?;
        self.expect('=', "expected \"=\" after a property")?;
        self.cfws()?;
        let (value, domain) = self.pvalue()?;
        Ok(Property { ptype, name, value, domain })
    }

    /// `value / [ [ local-part ] "@" ] domain-name`.
    fn pvalue(&mut self) -> Result<(String, Option<String>), SyntaxError> {
        let local = match self.peek() {
            Some('"') => self.quoted_string()?,
            Some('@') => String::new(),
            _ => {
                let bare = self.run(is_bare_value_char);
                if bare.is_empty() {
                    return Err(self.error("expected a property value"));
                }
                bare
            }
        };
        if self.peek() != Some('@') {
            return Ok((local, None));
        }
        self.bump();
        let start = self.at;
        let domain = self.run(is_domain_char);
        if domain.is_empty() || domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
            return Err(SyntaxError { what: "expected a domain name after \"@\"", at: start });
        }
        let domain = domain.to_lowercase();
        Ok((format!("{local}@{domain}"), Some(domain)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d_and_i(value: &str) -> (Option<String>, Option<(String, Option<String>)>) {
        let results = parse(value).unwrap();
        let clause = &results.clauses[0];
        let d = clause.property("header", "d").map(|p| p.value.clone());
        let i = clause.property("header", "i").map(|p| (p.value.clone(), p.domain.clone()));
        (d, i)
    }

    #[test]
    fn a_quoted_local_part_is_one_value_never_split_on_its_spaces() {
        let (d, i) = d_and_i("mx.vendor.example; dkim=pass header.i=\"x header.d=paypal.com y\"@evil.example");
        assert_eq!(d, None);
        assert_eq!(i, Some(("x header.d=paypal.com y@evil.example".into(), Some("evil.example".into()))));
    }

    #[test]
    fn comments_nest_hold_escapes_and_semicolons_and_are_dropped() {
        let results = parse(
            "MX.Vendor.example 1; (a (nested \\) comment); with) dkim = pass (good sig) header.d=paypal.com \
             header.s=\"pp1\"; spf=fail smtp.mailfrom=x@y.example",
        )
        .unwrap();
        assert_eq!(results.authserv_id, "mx.vendor.example");
        assert_eq!(results.clauses.len(), 2);
        let dkim = &results.clauses[0];
        assert_eq!((dkim.method.as_str(), dkim.result.as_str()), ("dkim", "pass"));
        assert_eq!(dkim.property("header", "d").unwrap().value, "paypal.com");
        assert_eq!(dkim.property("header", "s").unwrap().value, "pp1");
        assert_eq!(results.clauses[1].property("smtp", "mailfrom").unwrap().domain.as_deref(), Some("y.example"));
    }

    #[test]
    fn escapes_inside_a_quoted_string_do_not_end_it() {
        let (d, _) = d_and_i("mx.vendor.example; dkim=pass header.d=\"pay\\\"pal.com\" header.s=a");
        assert_eq!(d.as_deref(), Some("pay\"pal.com"));
    }

    #[test]
    fn a_quoted_authserv_id_a_version_a_reason_and_folding_are_understood() {
        let results = parse(
            "\"mx.vendor.example\" 1;\r\n\tdkim/1=pass reason=\"good; signature\"\r\n header.d=paypal.com\r\n \
             header.b=AbC/+9=x; none-of-these=neutral",
        )
        .unwrap();
        assert_eq!(results.authserv_id, "mx.vendor.example");
        assert_eq!(results.clauses[0].property("header", "b").unwrap().value, "AbC/+9=x");
        assert_eq!(results.clauses[1].method, "none-of-these");
    }

    #[test]
    fn none_means_no_clauses() {
        assert_eq!(parse("mx.vendor.example; none").unwrap().clauses, []);
        assert_eq!(parse("mx.vendor.example 1 ; none (nothing checked)").unwrap().clauses, []);
    }

    #[test]
    fn what_does_not_fit_the_grammar_is_an_error_not_a_guess() {
        for value in [
            "",
            "(only a comment)",
            "mx.vendor.example",
            "mx.vendor.example; dkim=pass header.d=\"paypal.com",
            "mx.vendor.example; dkim=pass (unclosed header.d=paypal.com",
            "mx.vendor.example; dkim=pass header.d paypal.com",
            "mx.vendor.example; dkim pass",
            "mx.vendor.example; dkim=pass header.i=x@",
            "mx.vendor.example dkim=pass",
            "mx.vendor.example; dkim=pass header.d=paypal.com\"x y\"",
        ] {
            assert!(parse(value).is_err(), "{value:?} parsed as {:?}", parse(value));
        }
    }

    #[test]
    fn a_job_id_after_the_authserv_id_is_read_past_quoted_or_not() {
        // OpenDKIM's and OpenDMARC's AuthservIDWithJobID: Postfix queue IDs after a "/".
        for value in [
            "mx.vendor.example/4ZxY7s1Kq2z9Ab; dkim=pass header.d=paypal.com",
            "\"MX.vendor.example/4ZxY7s1Kq2z9Ab\"; dkim=pass header.d=paypal.com",
        ] {
            let results = parse(value).unwrap();
            assert_eq!(results.authserv_id, "mx.vendor.example", "{value:?}");
            assert_eq!(results.clauses[0].property("header", "d").unwrap().value, "paypal.com");
            assert_eq!(authserv_id(value).unwrap(), "mx.vendor.example");
        }
        for value in ["mx.vendor.example/; dkim=pass", "mx.vendor.example/ ; dkim=pass"] {
            assert!(parse(value).is_err(), "{value:?}");
        }
        assert_eq!(parse("\"mx/\"; none").unwrap().authserv_id, "mx/", "no job ID: the value as written");
    }

    #[test]
    fn the_authserv_id_alone_is_read_even_when_the_rest_is_broken() {
        assert_eq!(authserv_id(" (c) MX.vendor.example; dkim=").unwrap(), "mx.vendor.example");
        assert!(authserv_id("  ").is_err());
    }
}
