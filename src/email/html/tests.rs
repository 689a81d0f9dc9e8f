//! HTML as a browser reads it: the shapes real order mail takes.
use proptest::prelude::*;

use super::*;

fn to_text_ok(html: &str) -> String {
    to_text(html).unwrap()
}

#[test]
fn table_rows_are_lines_with_tab_separated_cells_and_paragraphs_stand_apart() {
    let html = "<html><head><style>p{}</style></head><body><p>Hello&nbsp;there</p>\
                <table><tr><td>Order ID:</td><td>AB-1</td></tr><tr><td>Total:</td><td>&euro;4,00</td></tr>\
                </table>Bye<br>now</body></html>";
    assert_eq!(to_text_ok(html), "Hello there\n\nOrder ID:\tAB-1\nTotal:\t€4,00\nBye\nnow");
}

#[test]
fn a_head_that_is_never_closed_does_not_swallow_the_body() {
    let html = "<html><head><meta charset=utf-8><title>PayPal</title>\n<table><tr><td>Transaction ID:</td>\
                <td>1AB23456CD789012E</td></tr></table>";
    assert_eq!(to_text_ok(html), "Transaction ID:\t1AB23456CD789012E");
}

#[test]
fn spacer_cells_without_text_do_not_shift_the_columns() {
    let html = "<table><tr><td width=20>&nbsp;</td><td>Total</td><td></td><td> $5.00 USD </td><td><img src=x></td>\
                </tr></table>";
    assert_eq!(to_text_ok(html), "Total\t$5.00 USD");
}

#[test]
fn a_cell_after_one_broken_by_br_is_still_separated_by_a_tab() {
    // PayPal's 2014 item payment: the buyer block and an item's title and "Item#" are cells broken by <br>.
    let html = "<table><tr><td>Buyer<br>Jane Doe<br><a href=mailto:j@x.example>j@x.example</a></td>\
                <td>Note to seller<br>None.</td></tr><tr><td><a href=#>Widget</a><br>Item# 1</td>\
                <td>$5.00 USD</td><td>1</td></tr></table>";
    assert_eq!(to_text_ok(html), "Buyer\nJane Doe\nj@x.example\tNote to seller\nNone.\nWidget\nItem# 1\t$5.00 USD\t1");
}

#[test]
fn unclosed_cells_rows_and_paragraphs_close_as_in_a_browser() {
    let html = "<table><tr><td>Item<td>Qty<tr><td>Acme Pro<td>2</table><p>one<p>two";
    assert_eq!(to_text_ok(html), "Item\tQty\nAcme Pro\t2\n\none\n\ntwo");
}

#[test]
fn outlook_and_word_markup_and_conditional_comments_read_as_a_browser_shows_them() {
    let html = "<html xmlns:o=\"urn:schemas-microsoft-com:office:office\"><body>\
                <!--[if mso]><table><tr><td>Outlook only</td></tr></table><![endif]-->\
                <!--[if !mso]><!--><div>Everyone</div><!--<![endif]-->\
                <p class=MsoNormal>Name:<o:p></o:p> Jane<o:p>&nbsp;</o:p></p></body></html>";
    assert_eq!(to_text_ok(html), "Everyone\n\nName: Jane");
}

#[test]
fn style_script_and_hidden_preheaders_are_not_text() {
    let html = "<style>td{color:red}</style><script>var x = '<p>';</script>\
                <div style=\"display: none; max-height:0; overflow:hidden\">Preheader: you got paid!</div>\
                <span style=\"mso-hide:all;display:none!important\">hidden</span><p hidden>also hidden</p>Shown<p";
    assert_eq!(to_text_ok(html), "Shown");
}

#[test]
fn pre_keeps_its_line_breaks_and_spaces() {
    assert_eq!(to_text_ok("<pre>a  b\nc</pre>after"), "a  b\nc\n\nafter");
}

#[test]
fn link_targets_are_collected_once_each_in_order_and_hidden_ones_are_not() {
    let html = "<a href=\"https://shop.example/o?id=A-1&amp;x=2\">view</a> <a href=' mailto:x@y.example '>m</a>\
                <a href=\"https://shop.example/o?id=A-1&amp;x=2\">again</a>\
                <div style=display:none><a href=https://hidden.example>h</a></div>";
    let doc = to_document(html).unwrap();
    assert_eq!(doc.links, ["https://shop.example/o?id=A-1&x=2", "mailto:x@y.example"]);
    assert_eq!(doc.text, "view magain");
}

#[test]
fn urls_in_plain_text_are_found_without_trailing_punctuation() {
    assert_eq!(
        urls_in("See https://a.example/x?id=1. Or (http://b.example/y), not ftp://c."),
        ["https://a.example/x?id=1", "http://b.example/y"]
    );
}

#[test]
fn entities_decode_numeric_and_every_named_one_and_keep_the_rest() {
    assert_eq!(
        decode_entities("Ren&eacute;e &#77;&#x75;ller &bogus; & co &lt;x&gt; <b>"),
        "Renée Muller &bogus; & co <x> <b>"
    );
    assert_eq!(decode_entities("&hearts;&Scaron;"), "♥Š");
}

#[test]
fn deep_nesting_up_to_the_element_limit_renders_and_beyond_it_is_refused() {
    let html = "<div>".repeat(MAX_ELEMENTS) + "deep" + &"</div>".repeat(MAX_ELEMENTS);
    assert_eq!(to_text(&html).unwrap(), "deep");
    let html = "<b>".repeat(MAX_ELEMENTS + 1);
    assert_eq!(to_text(&html), Err(TooManyElements));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_html_gives_text_without_panicking(html in "(<[a-z/!]{0,6}[^>]{0,12}>?|&[#a-z0-9]{0,6};?|[^<&]{0,12}){0,40}") {
        let Ok(doc) = to_document(&html) else { return Ok(()) };
        prop_assert!(!doc.text.starts_with('\n') && !doc.text.ends_with('\n'));
        prop_assert!(!doc.text.contains("\n\n\n"));
    }
}
