//! The compiled patterns (built once per process): the per-kind regexes, the Aho-Corasick triggers of pass 1, and
//! the context words that raise or lower a candidate's score.

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex_automata::meta::Regex;
use regex_automata::util::syntax;

use super::PiiKind;

const MONTH: &str = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]{0,6}\.?";

/// What an Aho-Corasick trigger hit means.
#[derive(Clone, Copy)]
pub(super) enum Trigger {
    Token,
    Pem,
    Ipv6,
    AwsContext,
}

pub(super) const TRIGGERS: &[(&str, Trigger)] = &[
    ("AKIA", Trigger::Token),
    ("ASIA", Trigger::Token),
    ("AGPA", Trigger::Token),
    ("AIDA", Trigger::Token),
    ("AROA", Trigger::Token),
    ("ANPA", Trigger::Token),
    ("eyJ", Trigger::Token),
    ("sk-", Trigger::Token),
    ("sk_live_", Trigger::Token),
    ("sk_test_", Trigger::Token),
    ("rk_live_", Trigger::Token),
    ("rk_test_", Trigger::Token),
    ("ghp_", Trigger::Token),
    ("gho_", Trigger::Token),
    ("ghu_", Trigger::Token),
    ("ghs_", Trigger::Token),
    ("ghr_", Trigger::Token),
    ("github_pat_", Trigger::Token),
    ("xoxb-", Trigger::Token),
    ("xoxp-", Trigger::Token),
    ("xoxa-", Trigger::Token),
    ("xoxr-", Trigger::Token),
    ("xoxs-", Trigger::Token),
    ("AIza", Trigger::Token),
    ("glpat-", Trigger::Token),
    ("-----BEGIN ", Trigger::Pem),
    ("::", Trigger::Ipv6),
    ("secret", Trigger::AwsContext),
    ("Secret", Trigger::AwsContext),
    ("SECRET", Trigger::AwsContext),
];

pub(super) struct Compiled {
    pub(super) triggers: AhoCorasick,
    pub(super) email: Regex,
    pub(super) phone: Regex,
    pub(super) card: Regex,
    pub(super) ssn: Regex,
    pub(super) iban: Regex,
    pub(super) ipv4: Regex,
    pub(super) ipv6: Regex,
    pub(super) date: Regex,
    pub(super) token: Regex,
    pub(super) aws_secret: Regex,
    pub(super) pem_begin: Regex,
    pub(super) pem_end: Regex,
}

fn build(pattern: &str) -> Regex {
    // ASCII-only classes over bytes: no Unicode tables in the DFA, and every match starts and ends on a char
    // boundary because each pattern byte is ASCII.
    Regex::builder()
        .syntax(syntax::Config::new().unicode(false).utf8(false))
        .build(pattern)
        .expect("built-in PII pattern compiles")
}

pub(super) fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let triggers = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostFirst)
            .build(TRIGGERS.iter().map(|t| t.0))
            .expect("trigger automaton builds");
        let label = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?";
        Compiled {
            triggers,
            email: build(&format!(
                r"[A-Za-z0-9._%+\-]{{1,64}}@{label}(?:\.{label})*\.[A-Za-z]{{2,24}}"
            )),
            // Bounded parts: a run of digits or parentheses cannot make one huge candidate.
            phone: build(r"\+?\(?[0-9]{1,15}\)?(?:[ .\-]?\(?[0-9]{1,15}\)?){0,11}"),
            card: build(concat!(
                r"[0-9]{4}[ \-][0-9]{4}[ \-][0-9]{4}[ \-][0-9]{1,7}",
                r"|[0-9]{4}[ \-][0-9]{6}[ \-][0-9]{4,5}",
                r"|[0-9]{13,19}"
            )),
            ssn: build(r"[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{3} [0-9]{2} [0-9]{4}|[0-9]{9}"),
            iban: build(r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?"),
            ipv4: build(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}"),
            ipv6: build(r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,8}(?:\.[0-9]{1,3}){0,3}"),
            date: build(&format!(
                concat!(
                    r"[0-9]{{4}}[\-/.][0-9]{{1,2}}[\-/.][0-9]{{1,2}}",
                    r"|[0-9]{{1,2}}[\-/.][0-9]{{1,2}}[\-/.][0-9]{{2,4}}",
                    r"|(?i:{m}) [0-9]{{1,2}}(?i:st|nd|rd|th)?,? [0-9]{{4}}",
                    r"|[0-9]{{1,2}}(?i:st|nd|rd|th)? (?i:of )?(?i:{m}),? [0-9]{{4}}"
                ),
                m = MONTH
            )),
            token: build(concat!(
                r"(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16}",
                r"|eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{8,}",
                r"|sk-[A-Za-z0-9_\-]{20,}",
                r"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}",
                r"|gh[pousr]_[A-Za-z0-9]{36,255}",
                r"|github_pat_[A-Za-z0-9_]{22,255}",
                r"|xox[bpars]-[A-Za-z0-9\-]{10,}",
                r"|AIza[A-Za-z0-9_\-]{35}",
                r"|glpat-[A-Za-z0-9_\-]{20,}"
            )),
            aws_secret: build(r"[A-Za-z0-9/+]{40}"),
            pem_begin: build(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"),
            pem_end: build(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"),
        }
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Context words.

pub(super) const CTX_BEFORE: usize = 48;
pub(super) const CTX_AFTER: usize = 24;

pub(super) fn context_words(kind: PiiKind) -> &'static [&'static str] {
    match kind {
        PiiKind::EmailAddress => &["email", "e-mail", "mail", "contact", "reach"],
        PiiKind::PhoneNumber => &[
            "phone",
            "tel",
            "telephone",
            "call",
            "mobile",
            "cell",
            "fax",
            "whatsapp",
            "text me",
            "sms",
            "dial",
            "contact",
            "reach",
        ],
        PiiKind::CreditCard => &[
            "card",
            "credit",
            "debit",
            "visa",
            "mastercard",
            "amex",
            "discover",
            "cc",
            "payment",
            "pay",
            "cvv",
        ],
        PiiKind::UsSsn => &[
            "ssn",
            "social security",
            "social-security",
            "ss#",
            "ssa",
            "taxpayer",
            "tin",
        ],
        PiiKind::IbanCode => &[
            "iban", "bank", "account", "transfer", "wire", "sepa", "payee",
        ],
        PiiKind::IpAddress => &[
            "ip", "ipv4", "ipv6", "address", "server", "host", "ping", "connect", "firewall",
        ],
        PiiKind::DateOfBirth => &[
            "born",
            "dob",
            "d.o.b",
            "date of birth",
            "birth",
            "birthday",
            "birthdate",
        ],
        PiiKind::Secret => &[
            "key",
            "token",
            "secret",
            "password",
            "api",
            "credential",
            "bearer",
            "auth",
        ],
    }
}

/// Words that make a digit sequence read as an identifier rather than a phone number, card or address.
pub(super) const NEGATIVE_WORDS: &[&str] = &[
    "order",
    "invoice",
    "tracking",
    "ticket",
    "ref",
    "reference",
    "sku",
    "isbn",
    "serial",
    "build",
    "version",
    "release",
    "id",
    "item",
    "case",
    "confirmation",
    "po",
];

/// Words that make a dotted quad read as a version or a section number rather than an IPv4 address.
pub(super) const VERSION_WORDS: &[&str] = &[
    "version",
    "ver",
    "release",
    "build",
    "firmware",
    "upgrade",
    "upgraded",
    "update",
    "updated",
    "patch",
    "sdk",
    "package",
    "library",
    "kernel",
    "v",
    "chapter",
    "section",
    "clause",
    "paragraph",
    "article",
    "step",
    "figure",
    "table",
    "appendix",
];

pub(super) fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Whether `word` occurs in `hay` (already lower-cased ASCII) on word boundaries.
fn has_word(hay: &[u8], word: &str) -> bool {
    let w = word.as_bytes();
    let mut from = 0;
    while let Some(pos) = memchr::memmem::find(&hay[from..], w) {
        let s = from + pos;
        let e = s + w.len();
        let left = s == 0 || !hay[s - 1].is_ascii_alphanumeric();
        let right = e == hay.len() || !hay[e].is_ascii_alphanumeric();
        if left && right {
            return true;
        }
        from = s + 1;
    }
    false
}

pub(super) fn lower_window(text: &[u8], start: usize, end: usize) -> Vec<u8> {
    text[start..end]
        .iter()
        .map(u8::to_ascii_lowercase)
        .collect()
}

pub(super) fn any_word(hay: &[u8], words: &[&str]) -> bool {
    words.iter().any(|w| has_word(hay, w))
}
