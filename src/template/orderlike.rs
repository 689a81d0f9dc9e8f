//! Signs that mail no template recognises is still an order notification: a provider keypost has no template
//! for, a provider's new sending address, a sale forwarded by hand. Such mail is set aside for the vendor rather
//! than ignored, because a paid order filed as "not an order" is a buyer who never gets a serial.
//! This only decides whether a person should look; it never makes an order, so it may err towards looking.
use std::sync::LazyLock;

use regex::Regex;

use crate::email::Email;

/// How much of the text is searched: the signs of a notification are near its top.
const TEXT_CHARS: usize = 6_000;

/// Subjects of sale and payment notifications, in the languages providers write to sellers.
static SALE_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)
        payment\s+received | received\s+a\s+payment | you've\s+got\s+money | notification\s+of\s+payment
        | new\s+(?:order|sale|purchase|subscription|subscriber|customer\s+order) | made\s+(?:a|the)\s+sale | you\s+sold
        | \bsale\s+(?:of|for)\b | payment\s+(?:of|from|success|successful|completed|confirmation)\b
        | \b(?:purchase|order)\s+\d | placed\s+by | checkout\s+for
        | (?:order|sale|purchase|payment)\s+notification | \border\s*(?:\#|no\.?|number|nr\.?)\s*[0-9A-Z-]
        | paid\s+(?:your|an?)\s+invoice | invoice\s+paid | recurring\s+(?:payment|charge) | renewal
        | zahlung\s+(?:erhalten|eingegangen) | zahlungseingang | neue\s+bestellung | bestellung\s+(?:nr|\#)
        | verkauft | paiement\s+reçu | reçu\s+un\s+paiement | nouvelle\s+commande | commande\s+(?:n°|no|\#)
        | pago\s+recibido | recibido\s+un\s+pago | nuevo\s+pedido | pedido\s+(?:n°|no|\#)
        | pagamento\s+ricevuto | ricevuto\s+un\s+pagamento | nuovo\s+ordine | ordine\s+(?:n°|no|\#)
        | betaling\s+ontvangen | nieuwe\s+bestelling | pagamento\s+recebido | novo\s+pedido",
    )
    .unwrap_or_else(|err| unreachable!("a fixed pattern: {err}"))
});

/// Labels of the id a notification carries, and words that say money changed hands.
static ORDER_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)
        transaction\s+(?:id|number|code) | order\s+(?:id|number|\#|no) | invoice\s+(?:id|number|\#|no)
        | receipt\s+(?:id|number|\#|no) | reference\s+(?:id|number) | transaktions(?:code|nummer)
        | bestellnummer | rechnungsnummer | numéro\s+de\s+(?:transaction|commande) | n°\s+de\s+commande
        | id\.?\s+de\s+(?:transacción|la\s+transacción) | número\s+de\s+pedido | id\s+transazione
        | numero\s+(?:d'?)?ordine | transactiecode | bestelnummer",
    )
    .unwrap_or_else(|err| unreachable!("a fixed pattern: {err}"))
});

static PAID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)
        \b(?:paid|purchased?|bought|payment|sold|bezahlt|gekauft|zahlung|payé|acheté|paiement|pagado|comprado
        |pago|pagato|acquistato|pagamento|betaald|gekocht|betaling)\b",
    )
    .unwrap_or_else(|err| unreachable!("a fixed pattern: {err}"))
});

/// An amount with its currency, before or after the number: `$29.95`, `US$ 29`, `29,95 €`, `EUR 29.00`.
static AMOUNT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)
        (?:[$€£¥₹]|\b[A-Z]{2}\$|\b(?P<before>[A-Z]{3})\b)\s?\d{1,3}(?:[.,\x20\x{a0}']?\d{3})*(?:[.,]\d{1,2})?\b
        | \b\d{1,3}(?:[.,\x20\x{a0}']?\d{3})*[.,]\d{2}\s?(?:[$€£¥₹]|\b(?P<after>[A-Z]{3})\b)",
    )
    .unwrap_or_else(|err| unreachable!("a fixed pattern: {err}"))
});

/// Why this mail looks like an order notification, or `None`: a sale subject with an amount (or with the sale
/// said again in the text), or an order id label, words of payment and an amount in the text. keypost's own mail (its replies, notices
/// and alerts, should they reach the watched mailbox) never counts.
pub fn signs(email: &Email) -> Option<String> {
    if email.message_id.as_deref().is_some_and(|id| id.starts_with("keypost.")) {
        return None;
    }
    let text: String = email.text.chars().take(TEXT_CHARS).collect();
    let amount = amount(&email.subject).or_else(|| amount(&text));
    let why = match (SALE_SUBJECT.find(&email.subject), amount) {
        (Some(found), Some(amount)) => {
            format!("its subject says {:?} and it names an amount ({amount})", found.as_str())
        }
        // Some notifications name no total (a shop's default staff mail): the text must say it again.
        (Some(found), None) => {
            let again = SALE_SUBJECT.find(&text)?;
            format!("its subject says {:?} and its text {:?}", found.as_str(), again.as_str())
        }
        (None, Some(amount)) => {
            let label = ORDER_LABEL.find(&text)?;
            let paid = PAID.find(&text)?;
            format!("it names {:?}, {:?} and an amount ({amount})", label.as_str(), paid.as_str())
        }
        (None, None) => return None,
    };
    let from = email.from.as_ref().map_or("no sender", |from| from.address.as_str());
    Some(format!("from {from}, {why}"))
}

/// A number after a label of a total (many notifications write the currency on a line of its own).
static LABELLED_AMOUNT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)
        (?:\b|_)(?:total|amount|gross|price|sum|paid|betrag|gesamt|summe|preis|montant|prix|importe|precio|totale
        |prezzo|totaal|bedrag|prijs)[\x20\t:=_a-z]{0,20}?[^\d\n]{0,12}\d[\d.,\x20]*\d",
    )
    .unwrap_or_else(|err| unreachable!("a fixed pattern: {err}"))
});

/// The first amount with a real currency (three capitals count only when they are an ISO 4217 code), else the
/// first number labelled as a total or amount.
fn amount(text: &str) -> Option<String> {
    let with_currency = AMOUNT.captures_iter(text).find_map(|caps| {
        let code = caps.name("before").or_else(|| caps.name("after"));
        let real = code.is_none_or(|code| super::money::is_iso_code(code.as_str()));
        real.then(|| caps.get(0).map(|whole| whole.as_str().trim().to_owned())).flatten()
    });
    with_currency.or_else(|| LABELLED_AMOUNT.find(text).map(|found| found.as_str().trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(subject: &str, text: &str) -> Email {
        Email { subject: subject.into(), text: text.into(), ..Email::default() }
    }

    #[test]
    fn sale_subjects_with_an_amount_look_like_orders_in_several_languages() {
        for (subject, text) in [
            ("Notification of payment received", "You received a payment of $29.95 USD from Jane Doe"),
            ("You've got money", "Jane sent you US$ 10.00"),
            ("Plimus Order Notification - Order #123456", "Total: 49.00 USD"),
            ("Sie haben eine Zahlung erhalten", "Betrag: 29,95 €"),
            ("Vous avez reçu un paiement", "Montant : 19,00 EUR"),
            ("Has recibido un pago", "Importe: 12,50 €"),
            ("Nieuwe bestelling #1001", "Totaal € 15,00"),
        ] {
            assert!(signs(&mail(subject, text)).is_some(), "{subject}");
        }
    }

    #[test]
    fn an_order_id_label_and_payment_words_count_without_a_sale_subject() {
        let forwarded = mail("Fwd: your mail", "Transaction ID: 8AB12345\nThe buyer paid £12.00 for Widget Pro.");
        let why = signs(&forwarded).expect("looks like an order");
        assert!(why.contains("Transaction ID") && why.contains("£12.00"), "{why}");
    }

    #[test]
    fn mail_without_an_amount_or_without_sale_words_does_not() {
        assert_eq!(signs(&mail("New order", "Someone ordered something.")), None, "no amount");
        assert_eq!(signs(&mail("Lunch on Friday?", "It costs $12.00 a head.")), None, "no sale words");
        assert_eq!(signs(&mail("New order", "Ref ABC 123.45 and XYZ 10.00")), None, "not currencies");
    }

    /// Every order among the fixtures (real, rendered and reconstructed layouts of 25 providers), as if a
    /// provider without a template had sent it, must reach the vendor.
    #[test]
    fn every_fixture_order_from_an_unknown_sender_looks_like_one() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let mut checked = 0;
        let mut missed = Vec::new();
        for provider in std::fs::read_dir(&root).unwrap() {
            for file in std::fs::read_dir(provider.unwrap().path()).unwrap() {
                let path = file.unwrap().path();
                let expected = path.with_extension("expected.json");
                if path.extension().is_none_or(|e| e != "eml") || !expected.exists() {
                    continue;
                }
                let expected: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&expected).unwrap()).unwrap();
                let kind = &expected["outcome"]["order"]["kind"];
                if !matches!(kind.as_str(), Some("sale" | "renewal")) {
                    continue;
                }
                let mut email = crate::email::parse(&std::fs::read(&path).unwrap(), 10 << 20).unwrap();
                email.from = crate::email::parse_address("someone@unknown-provider.example");
                email.signing_domains.clear();
                checked += 1;
                if signs(&email).is_none() {
                    missed.push(path.display().to_string());
                }
            }
        }
        assert!(checked > 40, "only {checked} sale fixtures found");
        assert!(missed.is_empty(), "{} of {checked} sales not seen as orders: {missed:#?}", missed.len());
    }

    #[test]
    fn keypost_own_mail_never_looks_like_an_order() {
        let mut own = mail("[keypost] sold pro (PayPal 8AB1)", "Payment received: $29.95, Order number 1");
        own.message_id = Some("keypost.notice.0123456789ab@acme.example".into());
        assert_eq!(signs(&own), None);
    }
}
