//! PII and secret scanning: find, score, redact and restore personal data in text, whole or streamed.
//!
//! How a scan works, and what it costs:
//! 1. One pass over the bytes finds digit clusters (digits at most 16 bytes apart) and `@`, and one Aho-Corasick
//!    pass (SIMD Teddy) finds secret prefixes (`AKIA`, `eyJ`, `sk-`, `ghp_`, `-----BEGIN `...) and `::` (IPv6).
//!    Chat text is mostly letters, so on clean text this pass is nearly all the cost (~500 MB/s).
//! 2. Each cluster with at least 4 digits opens a window of ±32 bytes, each `@` one of -64/+256 bytes; overlapping
//!    windows merge. Only the windows are searched with the compiled per-kind regexes (lazy DFA, ASCII classes),
//!    with the whole text as look-around context. Secret formats are matched anchored at their prefix hit.
//! 3. Every regex hit is a *candidate*: a validator then checks structure (Luhn, SSN area/group/serial, IBAN
//!    mod-97 with per-country length, phone number shapes, octet ranges, calendar dates, token entropy) and the
//!    boundaries, gives it a base score, and context words in the 48 bytes before / 24 after raise it.
//! 4. Candidates under `min_score` are dropped; overlapping ones are resolved (longest wins, then highest score).
//!
//! Offsets reported by [`Scanner::scan`] are character offsets (Python `str` indices); the byte-to-char
//! conversion runs only when the text is not ASCII, in one forward walk over the sorted offsets.
//!
//! Decisions worth knowing (tests pin each one):
//! - `DATE_OF_BIRTH` needs context: a valid date with a plausible birth year scores 0.35 alone (below the default
//!   `min_score` of 0.5) and 0.95 next to "born", "DOB", "date of birth", "birthday"... Dates that are part of a
//!   timestamp (`2024-01-15T10:30`, `2024-01-15 10:30`) are never dates of birth.
//! - An IPv4-looking string is an `IP_ADDRESS` unless it reads as a version: prefixed by `v`, or with a version
//!   word ("version", "release", "build", "firmware", "upgrade", "patch"...) shortly before it.
//! - Phone numbers: `+` international (8-15 digits), North-American 3-3-4 with consistent separators or `(area)`,
//!   national numbers with a trunk `0` (10-11 digits in 2-4 groups). Bare 10-digit runs and 7-digit local
//!   numbers score low and need a context word; "order", "invoice", "tracking", "version"... nearby lower scores.
//! - `mask` keeps the length (one `*` per character) and keeps the last four digits of a card (as PCI DSS allows).
//! - `placeholder` numbers per kind in order of appearance (`<EMAIL_1>`, `<EMAIL_2>`); the same value keeps its
//!   placeholder, also across calls that pass the earlier mapping back (a [`Vault`]). [`restore`] replaces every
//!   key of the mapping found in a text, so a user text that already contains a literal `<EMAIL_1>` comes back
//!   with the value: placeholders are not escaped.
//! - `hash` is `<EMAIL_ADDRESS:` + 12 hex digits of SHA-256 + `>`: stable across calls and processes, unsalted.
//!
//! Streaming ([`StreamRedactor`]): each push scans the held text plus 64 bytes of already released text (for
//! context words and boundaries) and releases everything up to a cut point [`STREAM_WINDOW_CHARS`] characters
//! before the end, moved so that it never falls inside a detected item or a word. Items with inner spaces are
//! all shorter than the window, so an item split across chunks is always seen whole before any of it is released.
//! Two things are held longer: a word still arriving (a JWT or an API key has no spaces) from its start, up to
//! [`STREAM_TOKEN_HOLD`] bytes; and an open `-----BEGIN ... PRIVATE KEY-----` block until its END line, up to
//! [`STREAM_PEM_HOLD`] bytes, after which the held part is released redacted and the rest of the block is
//! swallowed as it arrives (masked in `mask` mode, appended to the placeholder's original otherwise).
//! A fuzz run (600k random texts and chunkings) finds stream output identical to whole-text redaction.

// Scanning code reads best with the conventional t (text bytes), s/e (span), c (compiled) names.
#![allow(clippy::many_single_char_names)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::BuildHasher;
use std::str::FromStr;
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex_automata::meta::Regex;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input};
use sha2::{Digest, Sha256};

use crate::error::CoreError;

/// The entity types, named as Presidio names them (plus `SECRET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiKind {
    EmailAddress,
    PhoneNumber,
    CreditCard,
    UsSsn,
    IbanCode,
    IpAddress,
    DateOfBirth,
    Secret,
}

impl PiiKind {
    pub const ALL: [PiiKind; 8] = [
        PiiKind::EmailAddress,
        PiiKind::PhoneNumber,
        PiiKind::CreditCard,
        PiiKind::UsSsn,
        PiiKind::IbanCode,
        PiiKind::IpAddress,
        PiiKind::DateOfBirth,
        PiiKind::Secret,
    ];

    /// The Presidio entity name, e.g. `EMAIL_ADDRESS`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            PiiKind::EmailAddress => "EMAIL_ADDRESS",
            PiiKind::PhoneNumber => "PHONE_NUMBER",
            PiiKind::CreditCard => "CREDIT_CARD",
            PiiKind::UsSsn => "US_SSN",
            PiiKind::IbanCode => "IBAN_CODE",
            PiiKind::IpAddress => "IP_ADDRESS",
            PiiKind::DateOfBirth => "DATE_OF_BIRTH",
            PiiKind::Secret => "SECRET",
        }
    }

    /// The short name used in placeholders, e.g. `EMAIL` in `<EMAIL_1>`.
    #[must_use]
    pub fn short(self) -> &'static str {
        match self {
            PiiKind::EmailAddress => "EMAIL",
            PiiKind::PhoneNumber => "PHONE",
            PiiKind::CreditCard => "CREDIT_CARD",
            PiiKind::UsSsn => "SSN",
            PiiKind::IbanCode => "IBAN",
            PiiKind::IpAddress => "IP",
            PiiKind::DateOfBirth => "DOB",
            PiiKind::Secret => "SECRET",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn from_short(s: &str) -> Option<PiiKind> {
        PiiKind::ALL.into_iter().find(|k| k.short() == s)
    }
}

impl FromStr for PiiKind {
    type Err = CoreError;

    /// Accepts the Presidio name or the short placeholder name, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let up = s.trim().to_ascii_uppercase();
        PiiKind::ALL
            .into_iter()
            .find(|k| k.name() == up || k.short() == up)
            .ok_or_else(|| {
                let names: Vec<&str> = PiiKind::ALL.iter().map(|k| k.name()).collect();
                CoreError::InvalidArgument(format!(
                    "unknown PII kind {s:?}; valid kinds: {}",
                    names.join(", ")
                ))
            })
    }
}

/// How a detected span is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedactMode {
    /// One `*` per character; cards keep their last four digits.
    Mask,
    /// Typed, numbered placeholders (`<EMAIL_1>`); the same value gets the same placeholder; reversible.
    Placeholder,
    /// `<EMAIL_ADDRESS:` + first 12 hex digits of SHA-256(value) + `>`: stable across calls. Unsalted, so a
    /// low-entropy value (a phone number) can be brute-forced back from it: use it for correlation, not secrecy.
    Hash,
}

impl RedactMode {
    pub const NAMES: [&'static str; 3] = ["mask", "placeholder", "hash"];
}

impl FromStr for RedactMode {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mask" => Ok(RedactMode::Mask),
            "placeholder" => Ok(RedactMode::Placeholder),
            "hash" => Ok(RedactMode::Hash),
            _ => Err(CoreError::InvalidArgument(format!(
                "unknown redaction mode {s:?}; valid modes: {}",
                RedactMode::NAMES.join(", ")
            ))),
        }
    }
}

/// Which kinds to redact and how; kinds without a mode are left as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedactPolicy {
    modes: [Option<RedactMode>; 8],
}

impl RedactPolicy {
    /// The same mode for `kinds` (all kinds when `None`).
    #[must_use]
    pub fn uniform(mode: RedactMode, kinds: Option<&[PiiKind]>) -> Self {
        let mut modes = [None; 8];
        match kinds {
            None => modes = [Some(mode); 8],
            Some(ks) => {
                for k in ks {
                    modes[k.index()] = Some(mode);
                }
            }
        }
        RedactPolicy { modes }
    }

    /// One mode per kind.
    #[must_use]
    pub fn per_kind(pairs: &[(PiiKind, RedactMode)]) -> Self {
        let mut modes = [None; 8];
        for (k, m) in pairs {
            modes[k.index()] = Some(*m);
        }
        RedactPolicy { modes }
    }

    #[must_use]
    pub fn mode(&self, kind: PiiKind) -> Option<RedactMode> {
        self.modes[kind.index()]
    }
}

/// A match with character offsets, as Python sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PiiMatch {
    pub start: usize,
    pub end: usize,
    pub kind: PiiKind,
    pub score: f32,
}

/// A match with byte offsets, as the core works with it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ByteMatch {
    pub start: usize,
    pub end: usize,
    pub kind: PiiKind,
    pub score: f32,
}

// ---------------------------------------------------------------------------------------------------------------
// Compiled patterns (built once per process).

const MONTH: &str = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]{0,6}\.?";

/// What an Aho-Corasick trigger hit means.
#[derive(Clone, Copy)]
enum Trigger {
    Token,
    Pem,
    Ipv6,
    AwsContext,
}

const TRIGGERS: &[(&str, Trigger)] = &[
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

struct Compiled {
    triggers: AhoCorasick,
    email: Regex,
    phone: Regex,
    card: Regex,
    ssn: Regex,
    iban: Regex,
    ipv4: Regex,
    ipv6: Regex,
    date: Regex,
    token: Regex,
    aws_secret: Regex,
    pem_begin: Regex,
    pem_end: Regex,
}

fn build(pattern: &str) -> Regex {
    // ASCII-only classes over bytes: no Unicode tables in the DFA, and every match starts and ends on a char
    // boundary because each pattern byte is ASCII.
    Regex::builder()
        .syntax(syntax::Config::new().unicode(false).utf8(false))
        .build(pattern)
        .expect("built-in PII pattern compiles")
}

fn compiled() -> &'static Compiled {
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

const CTX_BEFORE: usize = 48;
const CTX_AFTER: usize = 24;

fn context_words(kind: PiiKind) -> &'static [&'static str] {
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
const NEGATIVE_WORDS: &[&str] = &[
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
const VERSION_WORDS: &[&str] = &[
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

fn is_word_byte(b: u8) -> bool {
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

fn lower_window(text: &[u8], start: usize, end: usize) -> Vec<u8> {
    text[start..end]
        .iter()
        .map(u8::to_ascii_lowercase)
        .collect()
}

fn any_word(hay: &[u8], words: &[&str]) -> bool {
    words.iter().any(|w| has_word(hay, w))
}

// ---------------------------------------------------------------------------------------------------------------
// Validators.

fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

fn num(digits: &[u8]) -> u32 {
    digits.iter().fold(0u32, |acc, d| {
        acc.saturating_mul(10).saturating_add(u32::from(d - b'0'))
    })
}

/// Issuer prefixes of the card networks in use (Visa, Mastercard, Amex, Discover, JCB, Diners, `UnionPay`, Maestro).
fn card_prefix_ok(d: &[u8]) -> bool {
    let p2 = num(&d[..2]);
    let p4 = num(&d[..4]);
    let len = d.len();
    match d[0] {
        b'4' => matches!(len, 13 | 16 | 19),
        b'5' => ((51..=55).contains(&p2) && len == 16) || (p2 == 50 || (56..=58).contains(&p2)),
        b'2' => (2221..=2720).contains(&p4) && len == 16,
        b'3' => {
            ((p2 == 34 || p2 == 37) && len == 15)
                || ((3528..=3589).contains(&p4) && len >= 16)
                || ((300..=305).contains(&num(&d[..3])) || p2 == 36 || p2 == 38 || p2 == 39)
                    && len >= 14
        }
        b'6' => true, // Discover 6011/64x/65, UnionPay 62, Maestro 6x: the 6 range is almost all cards.
        _ => false,
    }
}

fn ssn_ok(d: &[u8]) -> bool {
    let area = num(&d[..3]);
    let group = num(&d[3..5]);
    let serial = num(&d[5..9]);
    if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
        return false;
    }
    // Numbers the SSA voided after they were published (Woolworth's wallet card and others).
    !matches!(&d[..9], b"078051120" | b"219099999" | b"123456789")
}

/// IBAN lengths per country (the SWIFT registry).
fn iban_length(cc: &[u8]) -> Option<usize> {
    const TABLE: &[(&[u8; 2], usize)] = &[
        (b"AD", 24),
        (b"AE", 23),
        (b"AL", 28),
        (b"AT", 20),
        (b"AZ", 28),
        (b"BA", 20),
        (b"BE", 16),
        (b"BG", 22),
        (b"BH", 22),
        (b"BR", 29),
        (b"BY", 28),
        (b"CH", 21),
        (b"CR", 22),
        (b"CY", 28),
        (b"CZ", 24),
        (b"DE", 22),
        (b"DK", 18),
        (b"DO", 28),
        (b"EE", 20),
        (b"EG", 29),
        (b"ES", 24),
        (b"FI", 18),
        (b"FO", 18),
        (b"FR", 27),
        (b"GB", 22),
        (b"GE", 22),
        (b"GI", 23),
        (b"GL", 18),
        (b"GR", 27),
        (b"GT", 28),
        (b"HR", 21),
        (b"HU", 28),
        (b"IE", 22),
        (b"IL", 23),
        (b"IQ", 23),
        (b"IS", 26),
        (b"IT", 27),
        (b"JO", 30),
        (b"KW", 30),
        (b"KZ", 20),
        (b"LB", 28),
        (b"LC", 32),
        (b"LI", 21),
        (b"LT", 20),
        (b"LU", 20),
        (b"LV", 21),
        (b"MC", 27),
        (b"MD", 24),
        (b"ME", 22),
        (b"MK", 19),
        (b"MR", 27),
        (b"MT", 31),
        (b"MU", 30),
        (b"NL", 18),
        (b"NO", 15),
        (b"PK", 24),
        (b"PL", 28),
        (b"PS", 29),
        (b"PT", 25),
        (b"QA", 29),
        (b"RO", 24),
        (b"RS", 22),
        (b"SA", 24),
        (b"SC", 31),
        (b"SE", 24),
        (b"SI", 19),
        (b"SK", 24),
        (b"SM", 27),
        (b"ST", 25),
        (b"SV", 28),
        (b"TL", 23),
        (b"TN", 24),
        (b"TR", 26),
        (b"UA", 29),
        (b"VA", 22),
        (b"VG", 24),
        (b"XK", 20),
    ];
    TABLE
        .iter()
        .find(|(c, _)| c.as_slice() == cc)
        .map(|(_, n)| *n)
}

fn iban_mod97(compact: &[u8]) -> bool {
    let mut rem = 0u32;
    let rotated = compact[4..].iter().chain(compact[..4].iter());
    for &c in rotated {
        if c.is_ascii_digit() {
            rem = (rem * 10 + u32::from(c - b'0')) % 97;
        } else {
            let v = u32::from(c - b'A') + 10;
            rem = (rem * 100 + v) % 97;
        }
    }
    rem == 1
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

fn date_ok(y: u32, m: u32, d: u32) -> bool {
    (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m)
}

fn current_year() -> u32 {
    static YEAR: OnceLock<u32> = OnceLock::new();
    *YEAR.get_or_init(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Good to the day at worst; a birth year is plausible up to this year.
        u32::try_from(1970 + secs / 31_556_952).unwrap_or(2100)
    })
}

fn month_number(word: &[u8]) -> Option<u32> {
    const NAMES: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let w: Vec<u8> = word
        .iter()
        .filter(|b| b.is_ascii_alphabetic())
        .map(u8::to_ascii_lowercase)
        .collect();
    for (i, name) in NAMES.iter().enumerate() {
        let n = name.as_bytes();
        let ok =
            w.as_slice() == n || w.as_slice() == &n[..3] || (i == 8 && w.as_slice() == b"sept");
        if ok {
            return u32::try_from(i + 1).ok();
        }
    }
    None
}

/// Parses the date forms the date pattern finds; returns (year, month, day) when one reading is a real date.
fn parse_date(s: &[u8]) -> Option<(u32, u32, u32)> {
    let mut nums: Vec<(u32, usize)> = Vec::new(); // value, digit count
    let mut month_word: Option<u32> = None;
    let mut seps: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c.is_ascii_digit() {
            let st = i;
            while i < s.len() && s[i].is_ascii_digit() {
                i += 1;
            }
            nums.push((num(&s[st..i]), i - st));
            // Ordinal suffixes.
            while i < s.len() && s[i].is_ascii_alphabetic() {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() {
            let st = i;
            while i < s.len() && (s[i].is_ascii_alphabetic() || s[i] == b'.') {
                i += 1;
            }
            let word = &s[st..i];
            if word.eq_ignore_ascii_case(b"of") {
                continue;
            }
            month_word = Some(month_number(word)?);
        } else {
            if matches!(c, b'-' | b'/' | b'.') {
                seps.push(c);
            }
            i += 1;
        }
    }
    if let Some(m) = month_word {
        let (&(d, _), &(y, ylen)) = (nums.first()?, nums.get(1)?);
        return (ylen == 4 && date_ok(y, m, d)).then_some((y, m, d));
    }
    if nums.len() != 3 || seps.len() != 2 || seps[0] != seps[1] {
        return None;
    }
    let (a, b, c) = (nums[0], nums[1], nums[2]);
    if a.1 == 4 {
        return date_ok(a.0, b.0, c.0).then_some((a.0, b.0, c.0));
    }
    let year = match c.1 {
        4 => c.0,
        2 if seps[0] == b'/' => {
            if c.0 + 2000 <= current_year() {
                c.0 + 2000
            } else {
                c.0 + 1900
            }
        }
        _ => return None,
    };
    if date_ok(year, a.0, b.0) {
        Some((year, a.0, b.0))
    } else if date_ok(year, b.0, a.0) {
        Some((year, b.0, a.0))
    } else {
        None
    }
}

/// A token (secret candidate) looks random: long enough, with digits and mixed case.
fn looks_random(tok: &[u8]) -> bool {
    let digits = tok.iter().any(u8::is_ascii_digit);
    let upper = tok.iter().any(u8::is_ascii_uppercase);
    let lower = tok.iter().any(u8::is_ascii_lowercase);
    digits && upper && lower
}

// ---------------------------------------------------------------------------------------------------------------
// Phone numbers.

struct Group {
    start: usize,
    end: usize,
    paren: bool,
    sep_before: u8,
}

/// Splits a phone candidate into digit groups. `None` when parentheses are unbalanced or nested oddly.
fn phone_groups(s: &[u8]) -> Option<(bool, Vec<Group>)> {
    let mut i = 0;
    let plus = s.first() == Some(&b'+');
    if plus {
        i = 1;
    }
    let mut groups = Vec::new();
    let mut sep = 0u8;
    let mut open = false;
    while i < s.len() {
        match s[i] {
            b'(' => {
                if open {
                    return None;
                }
                open = true;
                i += 1;
            }
            b')' => {
                if !open {
                    return None;
                }
                open = false;
                if let Some(g) = groups.last_mut() {
                    let g: &mut Group = g;
                    g.paren = true;
                }
                i += 1;
            }
            b' ' | b'.' | b'-' => {
                sep = s[i];
                i += 1;
            }
            _ => {
                let st = i;
                while i < s.len() && s[i].is_ascii_digit() {
                    i += 1;
                }
                if st == i {
                    return None;
                }
                groups.push(Group {
                    start: st,
                    end: i,
                    paren: false,
                    sep_before: sep,
                });
                sep = 0;
            }
        }
    }
    if open {
        return None;
    }
    Some((plus, groups))
}

/// Scores a run of groups as a phone number; 0 when it has no phone shape.
fn phone_shape(s: &[u8], plus: bool, groups: &[Group]) -> f32 {
    let lens: Vec<usize> = groups.iter().map(|g| g.end - g.start).collect();
    let mut digits: Vec<u8> = Vec::with_capacity(16);
    for g in groups {
        digits.extend_from_slice(&s[g.start..g.end]);
    }
    let n = digits.len();
    let seps: Vec<u8> = groups.iter().skip(1).map(|g| g.sep_before).collect();
    let paren_at = groups.iter().position(|g| g.paren);
    if groups.iter().filter(|g| g.paren).count() > 1 {
        return 0.0;
    }
    if plus {
        if !(8..=15).contains(&n) || digits[0] == b'0' || paren_at == Some(0) {
            return 0.0;
        }
        if groups.len() > 1 && (lens[0] > 4 || lens[1..].iter().any(|&l| l > 8)) {
            return 0.0;
        }
        return if groups.len() == 1 { 0.6 } else { 0.75 };
    }
    // North American Numbering Plan: (area) exchange-line, with an optional leading 1.
    let nanp = |off: usize| -> f32 {
        let l = &lens[off..];
        let area = &s[groups[off].start..groups[off].end];
        if l == [3, 3, 4] && (b'2'..=b'9').contains(&area[0]) {
            let (s1, s2) = (groups[off + 1].sep_before, groups[off + 2].sep_before);
            if groups[off].paren && paren_at == Some(off) {
                return if matches!(s1, 0 | b' ') && matches!(s2, b'-' | b' ' | b'.') {
                    0.8
                } else {
                    0.0
                };
            }
            if paren_at.is_some() || s1 != s2 {
                return 0.0;
            }
            return match s1 {
                b'-' | b'.' => 0.7,
                b' ' => 0.55,
                _ => 0.0,
            };
        }
        if l == [10] && (b'2'..=b'9').contains(&area[0]) && paren_at.is_none() {
            return 0.3;
        }
        0.0
    };
    let north_american = match lens.as_slice() {
        [3, 3, 4] | [10] => nanp(0),
        [1, 3, 3, 4] if digits[0] == b'1' => nanp(1),
        _ => 0.0,
    };
    if north_american > 0.0 {
        return north_american;
    }
    // National numbers with a trunk 0 (UK, EU): 10-11 digits in 2-4 groups.
    if digits[0] == b'0' && (10..=11).contains(&n) && digits[1] != b'0' {
        if groups.len() == 1 {
            return 0.3;
        }
        let french = lens == [2, 2, 2, 2, 2];
        let group_ok = french
            || (2..=4).contains(&groups.len())
                && lens.iter().all(|&l| (2..=6).contains(&l))
                && lens[0] <= 5;
        let sep_ok = seps.iter().all(|&c| c == seps[0]) && matches!(seps[0], b' ' | b'-');
        if group_ok && sep_ok && paren_at.is_none() {
            return 0.6;
        }
        if group_ok && paren_at == Some(0) {
            return 0.6;
        }
        return 0.0;
    }
    // Seven-digit local number: needs a context word.
    if lens == [3, 4] && seps == [b'-'] && digits[0] != b'0' && digits[0] != b'1' {
        return 0.3;
    }
    0.0
}

// ---------------------------------------------------------------------------------------------------------------
// The scanner.

/// A configured scanner: which kinds to report and the score under which matches are dropped.
#[derive(Debug, Clone)]
pub struct Scanner {
    min_score: f32,
    enabled: [bool; 8],
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            min_score: 0.5,
            enabled: [true; 8],
        }
    }
}

/// Where hot windows for one trigger class extend, in bytes.
const DIGIT_PAD: usize = 32;
/// Digits closer than this belong to one cluster ("3rd of September, 1985" has a 15-byte gap).
const DIGIT_GAP: usize = 16;
/// The fewest digits any digit-based item has (an IPv4 address, a date like 1/2/85).
const MIN_DIGITS: usize = 4;
const AT_BEFORE: usize = 64;
const AT_AFTER: usize = 256;

fn push_window(windows: &mut Vec<(usize, usize)>, start: usize, end: usize) {
    if let Some(last) = windows.last_mut() {
        if start <= last.1 {
            last.1 = last.1.max(end);
            return;
        }
    }
    windows.push((start, end));
}

fn left_ok(t: &[u8], start: usize, cont: &[u8]) -> bool {
    if start == 0 {
        return true;
    }
    let p = t[start - 1];
    if is_word_byte(p) {
        return false;
    }
    if cont.contains(&p) && start >= 2 && t[start - 2].is_ascii_alphanumeric() {
        return false;
    }
    true
}

fn right_ok(t: &[u8], end: usize, cont: &[u8]) -> bool {
    if end >= t.len() {
        return true;
    }
    let n = t[end];
    if is_word_byte(n) {
        return false;
    }
    if cont.contains(&n) && end + 1 < t.len() && t[end + 1].is_ascii_alphanumeric() {
        return false;
    }
    true
}

impl Scanner {
    /// `min_score` in [0, 1]; `kinds` restricts what is reported (all kinds when `None`).
    pub fn new(min_score: f32, kinds: Option<&[PiiKind]>) -> Result<Self, CoreError> {
        if !(0.0..=1.0).contains(&min_score) {
            return Err(CoreError::InvalidArgument(format!(
                "min_score must be within [0, 1], got {min_score}"
            )));
        }
        let mut enabled = [kinds.is_none(); 8];
        for k in kinds.unwrap_or(&[]) {
            enabled[k.index()] = true;
        }
        // Compile the patterns now rather than on the first request.
        let _ = compiled();
        Ok(Scanner { min_score, enabled })
    }

    #[must_use]
    pub fn min_score(&self) -> f32 {
        self.min_score
    }

    #[must_use]
    pub fn kinds(&self) -> Vec<PiiKind> {
        PiiKind::ALL
            .into_iter()
            .filter(|k| self.enabled[k.index()])
            .collect()
    }

    /// Matches with character offsets, sorted by start.
    #[must_use]
    pub fn scan(&self, text: &str) -> Vec<PiiMatch> {
        let found = self.scan_bytes(text);
        to_char_offsets(text, &found)
    }

    /// Matches with byte offsets, sorted by start, non-overlapping.
    #[must_use]
    pub fn scan_bytes(&self, text: &str) -> Vec<ByteMatch> {
        let c = compiled();
        let t = text.as_bytes();
        let mut cands: Vec<ByteMatch> = Vec::new();

        // Pass 1: hot bytes and trigger hits -> windows.
        let mut digit_windows: Vec<(usize, usize)> = Vec::new();
        let mut at_windows: Vec<(usize, usize)> = Vec::new();
        let want_digits =
            self.enabled.iter().enumerate().any(|(i, &e)| {
                e && i != PiiKind::EmailAddress.index() && i != PiiKind::Secret.index()
            });
        let secrets = self.enabled[PiiKind::Secret.index()];
        let want_email = self.enabled[PiiKind::EmailAddress.index()];
        let n = t.len();
        // Digits come in clusters (each digit within DIGIT_GAP bytes of the previous one). Every digit-based item
        // has at least MIN_DIGITS digits in one cluster, so clusters with fewer ("12 services", "Q3", "v2.4") open
        // no window: chat text has many such small numbers and this keeps the regexes off them.
        let mut cluster: Option<(usize, usize, usize)> = None; // (first digit, last digit, digit count)
        let flush = |c: Option<(usize, usize, usize)>, windows: &mut Vec<(usize, usize)>| {
            if let Some((first, last, count)) = c {
                if count >= MIN_DIGITS {
                    push_window(
                        windows,
                        first.saturating_sub(DIGIT_PAD),
                        (last + 1 + DIGIT_PAD).min(n),
                    );
                }
            }
        };
        for (i, &b) in t.iter().enumerate() {
            if b.is_ascii_digit() {
                cluster = match cluster {
                    Some((first, last, count)) if i - last <= DIGIT_GAP => {
                        Some((first, i, count + 1))
                    }
                    other => {
                        flush(other, &mut digit_windows);
                        Some((i, i, 1))
                    }
                };
            } else if b == b'@' && want_email {
                push_window(
                    &mut at_windows,
                    i.saturating_sub(AT_BEFORE),
                    (i + 1 + AT_AFTER).min(n),
                );
            }
        }
        if want_digits {
            flush(cluster, &mut digit_windows);
        } else {
            digit_windows.clear();
        }
        let mut ipv6_windows: Vec<(usize, usize)> = Vec::new();
        // Triggers inside a secret already found are skipped: a key block or token is matched once, and a run of
        // repeated prefixes ("eyJeyJ...", nested BEGIN lines) costs linear time, not quadratic.
        let mut skip_until = 0usize;
        for m in c.triggers.find_iter(t) {
            let inside = m.start() < skip_until;
            match TRIGGERS[m.pattern().as_usize()].1 {
                Trigger::Token if secrets && !inside => {
                    if let Some(end) = secret_token(t, m.start(), &mut cands) {
                        skip_until = end;
                    }
                }
                Trigger::Pem if secrets && !inside => {
                    if let Some(end) = secret_pem(t, m.start(), &mut cands) {
                        skip_until = end;
                    }
                }
                Trigger::AwsContext if secrets => secret_aws(t, m.end(), &mut cands),
                Trigger::Ipv6 if self.enabled[PiiKind::IpAddress.index()] => {
                    push_window(
                        &mut ipv6_windows,
                        m.start().saturating_sub(48),
                        (m.end() + 48).min(n),
                    );
                }
                _ => {}
            }
        }

        // Pass 2: per-kind regexes inside the windows.
        for &(ws, we) in &at_windows {
            for m in c.email.find_iter(Input::new(t).range(ws..we)) {
                if let Some(mm) = validate_email(t, m.start(), m.end()) {
                    cands.push(mm);
                }
            }
        }
        for &(ws, we) in &ipv6_windows {
            for m in c.ipv6.find_iter(Input::new(t).range(ws..we)) {
                if let Some(mm) = validate_ipv6(t, m.start(), m.end()) {
                    cands.push(mm);
                }
            }
        }
        for &(ws, we) in &digit_windows {
            self.scan_digit_window(t, ws, we, &mut cands);
        }

        self.finish(t, cands)
    }

    fn scan_digit_window(&self, t: &[u8], ws: usize, we: usize, cands: &mut Vec<ByteMatch>) {
        let c = compiled();
        let input = || Input::new(t).range(ws..we);
        let on = |k: PiiKind| self.enabled[k.index()];
        if on(PiiKind::CreditCard) {
            for m in c.card.find_iter(input()) {
                cands.extend(validate_card(t, m.start(), m.end()));
            }
        }
        if on(PiiKind::UsSsn) {
            for m in c.ssn.find_iter(input()) {
                cands.extend(validate_ssn(t, m.start(), m.end()));
            }
        }
        if on(PiiKind::IbanCode) {
            // IBANs start with two letters, which may sit just before the window's first digit.
            let iban_in = Input::new(t).range(ws..we);
            for m in c.iban.find_iter(iban_in) {
                cands.extend(validate_iban(t, m.start(), m.end()));
            }
        }
        if on(PiiKind::IpAddress) {
            for m in c.ipv4.find_iter(input()) {
                cands.extend(validate_ipv4(t, m.start(), m.end()));
            }
            for m in c.ipv6.find_iter(input()) {
                cands.extend(validate_ipv6(t, m.start(), m.end()));
            }
        }
        if on(PiiKind::DateOfBirth) {
            for m in c.date.find_iter(input()) {
                cands.extend(validate_date(t, m.start(), m.end()));
            }
        }
        if on(PiiKind::PhoneNumber) {
            for m in c.phone.find_iter(input()) {
                validate_phone(t, m.start(), m.end(), cands);
            }
        }
    }

    /// Context boosts, the score floor, and overlap resolution.
    fn finish(&self, t: &[u8], mut cands: Vec<ByteMatch>) -> Vec<ByteMatch> {
        cands.retain(|m| self.enabled[m.kind.index()]);
        for m in &mut cands {
            m.score = adjust_score(t, m);
        }
        cands.retain(|m| m.score >= self.min_score && m.score > 0.0);
        resolve_overlaps(cands)
    }
}

// Secrets, matched anchored at their trigger; each returns the end of what it found.

fn secret_token(t: &[u8], at: usize, cands: &mut Vec<ByteMatch>) -> Option<usize> {
    // A token starts a word: "xsk-..." or "foo-sk-..." are not keys (and a run of prefixes is searched once).
    if at > 0 && (is_word_byte(t[at - 1]) || t[at - 1] == b'-') {
        return None;
    }
    let c = compiled();
    let input = Input::new(t).range(at..).anchored(Anchored::Yes);
    let m = c.token.find(input)?;
    let s = m.start();
    // Dashes are token characters, but a run of five starts a PEM armour line glued to the token.
    let e = memchr::memmem::find(&t[s..m.end()], b"-----").map_or(m.end(), |p| s + p);
    if e - s < 16 {
        return None;
    }
    if e < t.len() && (t[e].is_ascii_alphanumeric()) {
        return None; // part of a longer token of another shape (e.g. an AKIA... with 17+ characters)
    }
    let tok = &t[s..e];
    let random = match tok {
        [b's', b'k', b'-', rest @ ..] => looks_random(rest),
        _ => true,
    };
    if !random {
        return None;
    }
    cands.push(ByteMatch {
        start: s,
        end: e,
        kind: PiiKind::Secret,
        score: 0.95,
    });
    Some(e)
}

fn secret_pem(t: &[u8], at: usize, cands: &mut Vec<ByteMatch>) -> Option<usize> {
    let c = compiled();
    let begin = c
        .pem_begin
        .find(Input::new(t).range(at..).anchored(Anchored::Yes))?;
    let mut from = begin.end();
    let mut end = t.len(); // an open block runs to the end of the text (streaming holds it back)
    while let Some(p) = memchr::memmem::find(&t[from..], b"-----END ") {
        let s = from + p;
        if let Some(m) = c
            .pem_end
            .find(Input::new(t).range(s..).anchored(Anchored::Yes))
        {
            end = m.end();
            break;
        }
        from = s + 1;
    }
    cands.push(ByteMatch {
        start: at,
        end,
        kind: PiiKind::Secret,
        score: 1.0,
    });
    Some(end)
}

fn secret_aws(t: &[u8], after: usize, cands: &mut Vec<ByteMatch>) {
    let c = compiled();
    let end = (after + 80).min(t.len());
    for m in c.aws_secret.find_iter(Input::new(t).range(after..end)) {
        let (s, e) = (m.start(), m.end());
        let b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'/' || b == b'+' || b == b'=';
        let left = s == 0 || !b64(t[s - 1]);
        let right = e == t.len() || !b64(t[e]);
        if left && right && looks_random(&t[s..e]) {
            cands.push(ByteMatch {
                start: s,
                end: e,
                kind: PiiKind::Secret,
                score: 0.85,
            });
        }
    }
}

fn adjust_score(t: &[u8], m: &ByteMatch) -> f32 {
    if m.kind == PiiKind::Secret && m.score >= 0.95 {
        return m.score;
    }
    let before = lower_window(t, m.start.saturating_sub(CTX_BEFORE), m.start);
    let after = lower_window(t, m.end, (m.end + CTX_AFTER).min(t.len()));
    let positive =
        any_word(&before, context_words(m.kind)) || any_word(&after, context_words(m.kind));
    let mut score = m.score;
    match m.kind {
        PiiKind::PhoneNumber | PiiKind::CreditCard | PiiKind::UsSsn => {
            let negative = any_word(&before, NEGATIVE_WORDS)
                || before.ends_with(b"#")
                || before.ends_with(b"# ");
            if negative && !positive {
                score *= 0.3;
            }
        }
        PiiKind::IpAddress => {
            // The 24 bytes before an IPv4 decide whether it reads as a version ("upgrade to 1.2.3.4").
            let near = lower_window(t, m.start.saturating_sub(24), m.start);
            let dotted = t[m.start..m.end].contains(&b'.') && !t[m.start..m.end].contains(&b':');
            if dotted && any_word(&near, VERSION_WORDS) && !positive {
                return 0.0;
            }
        }
        _ => {}
    }
    if positive {
        score = (score + 0.35).min(1.0);
    }
    if m.kind == PiiKind::DateOfBirth && positive {
        score = score.max(0.95);
    }
    score
}

fn resolve_overlaps(mut cands: Vec<ByteMatch>) -> Vec<ByteMatch> {
    cands.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut out: Vec<ByteMatch> = Vec::with_capacity(cands.len());
    let mut i = 0;
    while i < cands.len() {
        // A cluster: candidates chained by overlap.
        let mut j = i + 1;
        let mut cluster_end = cands[i].end;
        while j < cands.len() && cands[j].start < cluster_end {
            cluster_end = cluster_end.max(cands[j].end);
            j += 1;
        }
        if j == i + 1 {
            out.push(cands[i]);
        } else {
            let mut cluster: Vec<ByteMatch> = cands[i..j].to_vec();
            cluster.sort_by(|a, b| {
                (b.end - b.start)
                    .cmp(&(a.end - a.start))
                    .then(b.score.total_cmp(&a.score))
                    .then(a.start.cmp(&b.start))
            });
            let mut kept: Vec<ByteMatch> = Vec::new();
            for m in cluster {
                if kept.iter().all(|k| m.end <= k.start || m.start >= k.end) {
                    kept.push(m);
                }
            }
            kept.sort_by_key(|m| m.start);
            out.extend(kept);
        }
        i = j;
    }
    out
}

// Validators per kind: each returns the (possibly trimmed) match with its base score, or None.

fn validate_email(t: &[u8], mut s: usize, e: usize) -> Option<ByteMatch> {
    // Internationalised local parts (RFC 6531): the ASCII pattern stops at a non-ASCII letter; extend over them.
    while s > 0
        && (t[s - 1] >= 0x80 || t[s - 1].is_ascii_alphanumeric() || matches!(t[s - 1], b'.' | b'_'))
    {
        s -= 1;
    }
    while s < e && matches!(t[s], b'.' | b'-' | b'+' | b'%') {
        s += 1;
    }
    let at = s + memchr::memchr(b'@', &t[s..e])?;
    let local = &t[s..at];
    if local.is_empty() || local.ends_with(b".") || memchr::memmem::find(local, b"..").is_some() {
        return None;
    }
    if e < t.len() && (t[e].is_ascii_alphanumeric() || t[e] == b'@') {
        return None;
    }
    Some(ByteMatch {
        start: s,
        end: e,
        kind: PiiKind::EmailAddress,
        score: 0.9,
    })
}

fn validate_card(t: &[u8], s: usize, e: usize) -> Option<ByteMatch> {
    if !left_ok(t, s, b".-/") || !right_ok(t, e, b".-/") || (s > 0 && t[s - 1] == b'#') {
        return None;
    }
    let raw = &t[s..e];
    let digits: Vec<u8> = raw.iter().copied().filter(u8::is_ascii_digit).collect();
    if !(13..=19).contains(&digits.len()) {
        return None;
    }
    let seps: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_digit())
        .collect();
    if seps.iter().any(|&c| c != seps[0]) {
        return None;
    }
    if !luhn(&digits) || !card_prefix_ok(&digits) || digits.iter().all(|&d| d == digits[0]) {
        return None;
    }
    let score = if seps.is_empty() { 0.6 } else { 0.8 };
    Some(ByteMatch {
        start: s,
        end: e,
        kind: PiiKind::CreditCard,
        score,
    })
}

fn validate_ssn(t: &[u8], s: usize, e: usize) -> Option<ByteMatch> {
    if !left_ok(t, s, b".-/") || !right_ok(t, e, b".-/") {
        return None;
    }
    let raw = &t[s..e];
    let digits: Vec<u8> = raw.iter().copied().filter(u8::is_ascii_digit).collect();
    if digits.len() != 9 || !ssn_ok(&digits) {
        return None;
    }
    let score = match raw.get(3) {
        Some(b'-') => 0.6,
        Some(b' ') => 0.4,
        _ => 0.3,
    };
    Some(ByteMatch {
        start: s,
        end: e,
        kind: PiiKind::UsSsn,
        score,
    })
}

fn validate_iban(t: &[u8], s: usize, e: usize) -> Option<ByteMatch> {
    if !left_ok(t, s, b"") {
        return None;
    }
    let want = iban_length(&t[s..s + 2])?;
    // Walk forward until `want` alphanumerics are consumed; a trailing group may belong to the next word.
    let mut count = 0;
    let mut end = s;
    let mut compact = Vec::with_capacity(want);
    for (i, &b) in t[s..e].iter().enumerate() {
        if b == b' ' {
            continue;
        }
        compact.push(b);
        count += 1;
        if count == want {
            end = s + i + 1;
            break;
        }
    }
    if count != want || !right_ok(t, end, b"") || !iban_mod97(&compact) {
        return None;
    }
    Some(ByteMatch {
        start: s,
        end,
        kind: PiiKind::IbanCode,
        score: 0.9,
    })
}

fn validate_ipv4(t: &[u8], s: usize, e: usize) -> Option<ByteMatch> {
    if !left_ok(t, s, b".-") || !right_ok(t, e, b".-") {
        return None;
    }
    if e < t.len() && t[e] == b'.' && e + 1 < t.len() && t[e + 1].is_ascii_digit() {
        return None;
    }
    for part in t[s..e].split(|&b| b == b'.') {
        if part.len() > 1 && part[0] == b'0' {
            return None;
        }
        if num(part) > 255 {
            return None;
        }
    }
    Some(ByteMatch {
        start: s,
        end: e,
        kind: PiiKind::IpAddress,
        score: 0.6,
    })
}

fn validate_ipv6(t: &[u8], s: usize, mut e: usize) -> Option<ByteMatch> {
    if s > 0 && (is_word_byte(t[s - 1]) || t[s - 1] == b':') {
        return None;
    }
    while e > s && matches!(t[e - 1], b'.') {
        e -= 1;
    }
    let colons = memchr::memchr_iter(b':', &t[s..e]).count();
    if colons < 2 || e < t.len() && is_word_byte(t[e]) {
        return None;
    }
    let text = std::str::from_utf8(&t[s..e]).ok()?;
    let parsed = text.parse::<std::net::Ipv6Addr>().is_ok()
        || (text.ends_with(':')
            && !text.ends_with("::")
            && text[..text.len() - 1].parse::<std::net::Ipv6Addr>().is_ok());
    if !parsed {
        return None;
    }
    let e = if text.ends_with(':') && !text.ends_with("::") {
        e - 1
    } else {
        e
    };
    let has_hex = t[s..e].iter().any(u8::is_ascii_hexdigit);
    let compressed_or_full = memchr::memmem::find(&t[s..e], b"::").is_some() || colons >= 7;
    if !has_hex || !compressed_or_full || e - s < 3 {
        return None;
    }
    Some(ByteMatch {
        start: s,
        end: e,
        kind: PiiKind::IpAddress,
        score: 0.7,
    })
}

fn validate_date(t: &[u8], s: usize, e: usize) -> Option<ByteMatch> {
    if !left_ok(t, s, b".-/:") || !right_ok(t, e, b".-/:") {
        return None;
    }
    let (y, _, _) = parse_date(&t[s..e])?;
    if y < 1900 || y > current_year() {
        return None;
    }
    // Part of a timestamp: "2024-01-15T10:30" or "2024-01-15 10:30".
    let rest = &t[e..t.len().min(e + 7)];
    let clock = |r: &[u8]| {
        r.len() >= 4
            && r[0].is_ascii_digit()
            && (r[1] == b':' || (r[1].is_ascii_digit() && r[2] == b':'))
    };
    if rest.first() == Some(&b'T') && clock(&rest[1..]) {
        return None;
    }
    if rest.first() == Some(&b' ') && clock(&rest[1..]) {
        return None;
    }
    Some(ByteMatch {
        start: s,
        end: e,
        kind: PiiKind::DateOfBirth,
        score: 0.35,
    })
}

fn validate_phone(t: &[u8], s: usize, e: usize, out: &mut Vec<ByteMatch>) {
    // Trailing separators and a dangling '(' are not part of the number.
    let mut e = e;
    while e > s && matches!(t[e - 1], b'.' | b'-' | b' ' | b'(') {
        e -= 1;
    }
    let raw = &t[s..e];
    let Some((plus, groups)) = phone_groups(raw) else {
        return;
    };
    // A run glued to a word on either side ("DE89 3704 ...", "...1234abc") is part of an identifier: no phone
    // number hides inside it.
    if groups.is_empty() || groups.len() > 12 || !left_ok(t, s, b"") || !right_ok(t, e, b"") {
        return;
    }
    // The run may hold several numbers separated by spaces, or a number next to other figures ("on 2024-01-15
    // 555-123-4567"): take the best group range, then look again left and right of it.
    let mut todo = vec![(0, groups.len())];
    while let Some((lo, hi)) = todo.pop() {
        if let Some((i, j, m)) = best_phone(t, s, raw, plus, &groups, lo, hi) {
            out.push(m);
            todo.push((lo, i));
            todo.push((j, hi));
        }
    }
}

/// The phone number with the most digits among group ranges within [lo, hi), as (i, j, match).
fn best_phone(
    t: &[u8],
    s: usize,
    raw: &[u8],
    plus: bool,
    groups: &[Group],
    lo: usize,
    hi: usize,
) -> Option<(usize, usize, ByteMatch)> {
    let ng = groups.len();
    let mut best: Option<(usize, usize, f32, usize, usize, usize)> = None; // (abs s, abs e, score, digits, i, j)
    for i in lo..hi {
        for j in (i + 1..=hi).rev() {
            let sub = &groups[i..j];
            let use_plus = plus && i == 0;
            let score = phone_shape(raw, use_plus, sub);
            if score <= 0.0 {
                continue;
            }
            // Sub-range edges: what surrounds the chosen groups must not continue the number.
            let st = if use_plus {
                0
            } else {
                sub[0].start - usize::from(sub[0].paren)
            };
            let en = sub[sub.len() - 1].end + usize::from(sub[sub.len() - 1].paren);
            let (abs_s, abs_e) = (s + st, s + en);
            let left = if i == 0 {
                left_ok(t, abs_s, b".-/")
                    && !(abs_s > 0 && matches!(t[abs_s - 1], b'#' | b'$' | b'@' | b'+'))
            } else {
                sub[0].sep_before == b' ' && !raw[..st].ends_with(b"- ")
            };
            let right = if j == ng {
                right_ok(t, abs_e, b".-/:") && !(abs_e < t.len() && matches!(t[abs_e], b'@' | b'%'))
            } else {
                groups[j].sep_before == b' '
            };
            if !left || !right {
                continue;
            }
            let dc: usize = sub.iter().map(|g| g.end - g.start).sum();
            if best.is_none_or(|b| dc > b.3 || (dc == b.3 && score > b.2)) {
                best = Some((abs_s, abs_e, score, dc, i, j));
            }
        }
    }
    let (bs, be, score, _, i, j) = best?;
    Some((
        i,
        j,
        ByteMatch {
            start: bs,
            end: be,
            kind: PiiKind::PhoneNumber,
            score,
        },
    ))
}

// ---------------------------------------------------------------------------------------------------------------
// Offsets.

/// Converts sorted byte matches to char offsets; a no-op copy for ASCII text.
#[must_use]
pub fn to_char_offsets(text: &str, found: &[ByteMatch]) -> Vec<PiiMatch> {
    let conv = |m: &ByteMatch, s: usize, e: usize| PiiMatch {
        start: s,
        end: e,
        kind: m.kind,
        score: m.score,
    };
    if text.is_ascii() {
        return found.iter().map(|m| conv(m, m.start, m.end)).collect();
    }
    let t = text.as_bytes();
    // Count chars as non-continuation bytes, walking forward once over the sorted offsets.
    let mut byte_pos = 0usize;
    let mut char_pos = 0usize;
    let mut advance = |to: usize| -> usize {
        char_pos += t[byte_pos..to]
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count();
        byte_pos = to;
        char_pos
    };
    let mut out = Vec::with_capacity(found.len());
    for m in found {
        let s = advance(m.start);
        let e = advance(m.end);
        out.push(conv(m, s, e));
    }
    out
}

// ---------------------------------------------------------------------------------------------------------------
// Redaction and restoration.

/// Placeholders handed out so far: placeholder -> original, and the reverse, with a counter per kind. Passing the
/// same vault to several calls keeps numbering consistent across the messages of one request.
#[derive(Debug, Clone, Default)]
pub struct Vault {
    mapping: HashMap<String, String>,
    reverse: HashMap<(PiiKind, String), String>,
    counters: [usize; 8],
}

impl Vault {
    /// Rebuilds a vault from a mapping returned earlier (placeholders are parsed to continue the numbering).
    #[must_use]
    pub fn from_mapping(mapping: HashMap<String, String>) -> Self {
        let mut v = Vault::default();
        for (ph, orig) in mapping {
            if let Some(inner) = ph.strip_prefix('<').and_then(|p| p.strip_suffix('>')) {
                if let Some((name, n)) = inner.rsplit_once('_') {
                    if let (Some(kind), Ok(n)) = (PiiKind::from_short(name), n.parse::<usize>()) {
                        v.counters[kind.index()] = v.counters[kind.index()].max(n);
                        v.reverse.insert((kind, orig.clone()), ph.clone());
                    }
                }
            }
            v.mapping.insert(ph, orig);
        }
        v
    }

    #[must_use]
    pub fn mapping(&self) -> &HashMap<String, String> {
        &self.mapping
    }

    #[must_use]
    pub fn into_mapping(self) -> HashMap<String, String> {
        self.mapping
    }

    fn placeholder(&mut self, kind: PiiKind, original: &str) -> String {
        if let Some(p) = self.reverse.get(&(kind, original.to_owned())) {
            return p.clone();
        }
        self.counters[kind.index()] += 1;
        let p = format!("<{}_{}>", kind.short(), self.counters[kind.index()]);
        self.reverse.insert((kind, original.to_owned()), p.clone());
        self.mapping.insert(p.clone(), original.to_owned());
        p
    }

    fn hashed(&mut self, kind: PiiKind, original: &str) -> String {
        let digest = Sha256::digest(original.as_bytes());
        let mut p = format!("<{}:", kind.name());
        for b in &digest[..6] {
            let _ = write!(p, "{b:02x}");
        }
        p.push('>');
        self.mapping.insert(p.clone(), original.to_owned());
        p
    }
}

fn replacement(
    kind: PiiKind,
    mode: RedactMode,
    original: &str,
    vault: &mut Vault,
    out: &mut String,
) {
    match mode {
        RedactMode::Placeholder => out.push_str(&vault.placeholder(kind, original)),
        RedactMode::Hash => out.push_str(&vault.hashed(kind, original)),
        RedactMode::Mask => {
            let keep_from = if kind == PiiKind::CreditCard {
                // Keep the last four digits (and what follows them); mask the rest.
                let mut seen = 0;
                let mut cut = original.len();
                for (i, b) in original.bytes().enumerate().rev() {
                    if b.is_ascii_digit() {
                        seen += 1;
                        if seen == 4 {
                            cut = i;
                            break;
                        }
                    }
                }
                cut
            } else {
                original.len()
            };
            for (i, ch) in original.char_indices() {
                if i >= keep_from || (kind == PiiKind::CreditCard && !ch.is_ascii_digit()) {
                    out.push(ch);
                } else {
                    out.push('*');
                }
            }
        }
    }
}

/// Replaces the byte-offset `matches` (sorted, non-overlapping) in `text` as `policy` says.
fn apply(text: &str, matches: &[ByteMatch], policy: RedactPolicy, vault: &mut Vault) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for m in matches {
        let Some(mode) = policy.mode(m.kind) else {
            continue;
        };
        out.push_str(&text[last..m.start]);
        replacement(m.kind, mode, &text[m.start..m.end], vault, &mut out);
        last = m.end;
    }
    out.push_str(&text[last..]);
    out
}

impl Scanner {
    /// Scans and redacts `text`; placeholders go into `vault`.
    #[must_use]
    pub fn redact(&self, text: &str, policy: &RedactPolicy, vault: &mut Vault) -> String {
        let matches = self.scan_bytes(text);
        apply(text, &matches, *policy, vault)
    }
}

/// Puts the originals back for every placeholder of `mapping` found in `text` (the longest key wins).
#[must_use]
pub fn restore<S: BuildHasher>(text: &str, mapping: &HashMap<String, String, S>) -> String {
    Restorer::new(mapping.iter().map(|(k, v)| (k.clone(), v.clone()))).apply(text)
}

/// A compiled mapping placeholder -> original, for restoring many texts (every chunk of a stream).
#[derive(Debug, Clone)]
pub struct Restorer {
    originals: Vec<String>,
    automaton: Option<AhoCorasick>,
}

impl Restorer {
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let (keys, originals): (Vec<String>, Vec<String>) =
            pairs.into_iter().filter(|(k, _)| !k.is_empty()).unzip();
        let automaton = if keys.is_empty() {
            None
        } else {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&keys)
                .ok()
        };
        Restorer {
            originals,
            automaton,
        }
    }

    #[must_use]
    pub fn apply(&self, text: &str) -> String {
        let Some(ac) = &self.automaton else {
            return text.to_owned();
        };
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for m in ac.find_iter(text) {
            out.push_str(&text[last..m.start()]);
            out.push_str(&self.originals[m.pattern().as_usize()]);
            last = m.end();
        }
        out.push_str(&text[last..]);
        out
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Streaming.

/// Characters held back at the end of the stream so an item split across chunks is seen whole. The longest item
/// with inner spaces (a grouped 34-character IBAN, a spelled-out date) is under 50 characters.
pub const STREAM_WINDOW_CHARS: usize = 128;
/// A non-whitespace token still arriving at the end (a JWT, an API key) is held back whole up to this many bytes.
pub const STREAM_TOKEN_HOLD: usize = 4096;
/// An open `-----BEGIN ... PRIVATE KEY-----` block is held back until its END line, up to this many bytes; past
/// that the held part is released redacted and the rest of the block is redacted as it arrives, up to its END.
pub const STREAM_PEM_HOLD: usize = 16 * 1024;
/// Room left after a word released whole: longer than any item with inner spaces that could start in it.
const STREAM_SPACED_ITEM: usize = 64;
/// Already released original text kept as left context (context words, boundaries).
const STREAM_CONTEXT: usize = 64;

/// Redacts a stream chunk by chunk, releasing only text that can no longer be part of an unseen item.
#[derive(Debug, Clone)]
pub struct StreamRedactor {
    scanner: Scanner,
    policy: RedactPolicy,
    vault: Vault,
    context: String,
    pending: String,
    in_pem: bool,
    found: Vec<(PiiKind, usize)>,
    restore: Option<Restorer>,
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl StreamRedactor {
    #[must_use]
    pub fn new(scanner: Scanner, policy: RedactPolicy, vault: Vault) -> Self {
        StreamRedactor {
            scanner,
            policy,
            vault,
            context: String::new(),
            pending: String::new(),
            in_pem: false,
            found: Vec::new(),
            restore: None,
        }
    }

    /// Also puts back the originals of `mapping`'s placeholders in what is released (the input side's mapping, so
    /// an answer that quotes `<EMAIL_1>` reaches the caller with the address). Released text is cut only between
    /// words, so a placeholder split across chunks is restored whole. Output items found by the scan are redacted
    /// first; restored values are never re-scanned.
    #[must_use]
    pub fn with_restore(mut self, mapping: HashMap<String, String>) -> Self {
        self.restore = Some(Restorer::new(mapping));
        self
    }

    #[must_use]
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Counts of what was found so far, per kind (for audit records: types and counts, never values).
    #[must_use]
    pub fn found(&self) -> Vec<(PiiKind, usize)> {
        self.found.clone()
    }

    /// Bytes currently held back.
    #[must_use]
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    /// Feeds a chunk; returns the text that is safe to release now (possibly empty).
    pub fn push(&mut self, chunk: &str) -> String {
        self.pending.push_str(chunk);
        self.release(false)
    }

    /// Releases everything still held.
    pub fn finish(&mut self) -> String {
        self.release(true)
    }

    fn count(&mut self, kind: PiiKind) {
        if let Some(e) = self.found.iter_mut().find(|e| e.0 == kind) {
            e.1 += 1;
        } else {
            self.found.push((kind, 1));
        }
    }

    fn release(&mut self, last: bool) -> String {
        let mut out = String::new();
        if self.in_pem {
            // Inside a key block released early: swallow up to and including its END line.
            let c = compiled();
            let t = self.pending.as_bytes();
            let end = c.pem_end.find(Input::new(t)).map(|m| m.end());
            let upto = match end {
                Some(e) => e,
                None if last => t.len(),
                // Keep a tail that may hold the start of a split END line.
                None => floor_char(&self.pending, t.len().saturating_sub(64)),
            };
            let swallowed: String = self.pending.drain(..upto).collect();
            self.mask_continuation(&swallowed, &mut out);
            if end.is_none() && !last {
                return out;
            }
            self.in_pem = false;
        }

        let ctx_len = self.context.len();
        let buf = format!("{}{}", self.context, self.pending);
        let matches = self.scanner.scan_bytes(&buf);
        let mut cut = if last {
            buf.len()
        } else {
            buf.char_indices()
                .rev()
                .nth(STREAM_WINDOW_CHARS - 1)
                .map_or(ctx_len, |(i, _)| i)
                .max(ctx_len)
        };
        if !last {
            // Never cut through a word. A word that ends well inside the buffer is released whole (the cut moves
            // forward, so the hold stays within the window); a word still arriving (JWTs and keys have no spaces)
            // is held from its start, up to STREAM_TOKEN_HOLD bytes.
            let b = buf.as_bytes();
            if cut > ctx_len
                && cut < b.len()
                && !b[cut].is_ascii_whitespace()
                && !b[cut - 1].is_ascii_whitespace()
            {
                let te = cut
                    + b[cut..]
                        .iter()
                        .position(u8::is_ascii_whitespace)
                        .unwrap_or(b.len() - cut);
                let mut ts = cut;
                while ts > ctx_len && !b[ts - 1].is_ascii_whitespace() {
                    ts -= 1;
                }
                if b.len() - te >= STREAM_SPACED_ITEM {
                    cut = te;
                } else if b.len() - ts <= STREAM_TOKEN_HOLD {
                    cut = ts;
                }
            }
            for m in matches.iter().rev() {
                let open_pem = m.kind == PiiKind::Secret
                    && m.end == buf.len()
                    && buf[m.start..].starts_with("-----BEGIN ")
                    && !buf[m.start..].contains("-----END ");
                if open_pem {
                    if buf.len() - m.start <= STREAM_PEM_HOLD {
                        cut = cut.min(m.start);
                    } else if self.policy.mode(PiiKind::Secret).is_some() {
                        cut = buf.len();
                        self.in_pem = true;
                    }
                } else if m.start < cut && cut < m.end {
                    cut = m.start;
                }
            }
            cut = cut.max(ctx_len);
        }
        let released: Vec<ByteMatch> = matches
            .iter()
            .filter(|m| m.end > ctx_len && m.end <= cut)
            .map(|m| ByteMatch {
                start: m.start.max(ctx_len) - ctx_len,
                end: m.end - ctx_len,
                ..*m
            })
            .collect();
        for m in &released {
            self.count(m.kind);
        }
        let region = &buf[ctx_len..cut];
        out.push_str(&apply(region, &released, self.policy, &mut self.vault));
        if let Some(restorer) = &self.restore {
            out = restorer.apply(&out);
        }
        // Keep the released original text as context for the next scan.
        let keep_from = floor_char(&buf, cut.saturating_sub(STREAM_CONTEXT));
        buf[keep_from..cut].clone_into(&mut self.context);
        buf[cut..].clone_into(&mut self.pending);
        out
    }

    fn mask_continuation(&mut self, swallowed: &str, out: &mut String) {
        match self.policy.mode(PiiKind::Secret) {
            Some(RedactMode::Mask) => {
                out.extend(swallowed.chars().map(|c| if c == '\n' { c } else { '*' }));
            }
            // The placeholder already released stands for the whole block: extend its original.
            Some(RedactMode::Placeholder | RedactMode::Hash) => {
                if let Some(orig) = self
                    .vault
                    .mapping
                    .values_mut()
                    .find(|v| v.starts_with("-----BEGIN ") && !v.contains("-----END "))
                {
                    orig.push_str(swallowed);
                }
            }
            None => out.push_str(swallowed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kinds(text: &str) -> Vec<(String, &'static str)> {
        let s = Scanner::default();
        s.scan_bytes(text)
            .iter()
            .map(|m| (text[m.start..m.end].to_owned(), m.kind.name()))
            .collect()
    }

    fn one(text: &str, item: &str, kind: PiiKind) {
        let got = kinds(text);
        assert_eq!(got, vec![(item.to_owned(), kind.name())], "in {text:?}");
    }

    fn none(text: &str) {
        assert_eq!(kinds(text), vec![], "in {text:?}");
    }

    #[test]
    fn email() {
        one(
            "write to jane.doe+x@example.co.uk.",
            "jane.doe+x@example.co.uk",
            PiiKind::EmailAddress,
        );
        none("the @ sign and user@localhost");
    }

    #[test]
    fn phones() {
        one(
            "call me at (555) 123-4567 tonight",
            "(555) 123-4567",
            PiiKind::PhoneNumber,
        );
        one(
            "London office: +44 20 7946 0958.",
            "+44 20 7946 0958",
            PiiKind::PhoneNumber,
        );
        one("mobile 555-867-5309", "555-867-5309", PiiKind::PhoneNumber);
        one(
            "ring 020 7946 0958 please",
            "020 7946 0958",
            PiiKind::PhoneNumber,
        );
        one(
            "on 2024-01-15 555-123-4567 called",
            "555-123-4567",
            PiiKind::PhoneNumber,
        );
        none("release 1.2.3.4 shipped");
        none("order #5551234567 shipped");
        none("order number 555-123-4567 shipped");
        none("at 2024-01-15 10:30:00 UTC");
        none("scores 10 20 30 40 50");
    }

    #[test]
    fn cards() {
        one(
            "my visa 4111 1111 1111 1111 exp 12/29",
            "4111 1111 1111 1111",
            PiiKind::CreditCard,
        );
        one(
            "card 378282246310005",
            "378282246310005",
            PiiKind::CreditCard,
        );
        none("card 4111 1111 1111 1112");
    }

    #[test]
    fn ssn() {
        one("SSN: 536-22-1234", "536-22-1234", PiiKind::UsSsn);
        none("ssn 666-22-1234, 000-12-3456, 912-34-5678, 536-00-1234, 536-22-0000");
    }

    #[test]
    fn iban() {
        one(
            "pay to DE89 3704 0044 0532 0130 00 and thanks",
            "DE89 3704 0044 0532 0130 00",
            PiiKind::IbanCode,
        );
        one(
            "iban GB82WEST12345698765432",
            "GB82WEST12345698765432",
            PiiKind::IbanCode,
        );
        none("DE89 3704 0044 0532 0130 01");
    }

    #[test]
    fn ip() {
        one(
            "server at 192.168.1.20 is down",
            "192.168.1.20",
            PiiKind::IpAddress,
        );
        one(
            "ping fe80::1ff:fe23:4567:890a now",
            "fe80::1ff:fe23:4567:890a",
            PiiKind::IpAddress,
        );
        one("loopback ::1 only", "::1", PiiKind::IpAddress);
        none("upgrade to version 1.2.3.4 today");
        none("see chapter 3.2.1.4 of the manual");
        one("send it to 10.0.0.5 now", "10.0.0.5", PiiKind::IpAddress);
        none("bad 256.1.1.1 and 1.2.3.4.5");
        none("at 10:30:45 sharp");
    }

    #[test]
    fn dob() {
        one(
            "I was born on 12/05/1990 in Ohio",
            "12/05/1990",
            PiiKind::DateOfBirth,
        );
        one("DOB: March 3, 1985", "March 3, 1985", PiiKind::DateOfBirth);
        one(
            "date of birth 1979-02-28.",
            "1979-02-28",
            PiiKind::DateOfBirth,
        );
        none("meeting on 2021-03-04");
        none("born 1990-02-30");
    }

    #[test]
    fn secrets() {
        one(
            "key AKIAIOSFODNN7EXAMPLE ok",
            "AKIAIOSFODNN7EXAMPLE",
            PiiKind::Secret,
        );
        one(
            "use sk-proj-Abc123def456GHI789jkl0 now",
            "sk-proj-Abc123def456GHI789jkl0",
            PiiKind::Secret,
        );
        none("a task-management-system-for-teams thing");
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----";
        one(&format!("here {pem} done"), pem, PiiKind::Secret);
        one(
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            PiiKind::Secret,
        );
    }

    #[test]
    fn char_offsets() {
        let s = Scanner::default();
        let text = "héllo → a@b.com";
        let m = s.scan(text);
        assert_eq!(m.len(), 1);
        let chars: Vec<char> = text.chars().collect();
        assert_eq!(
            chars[m[0].start..m[0].end].iter().collect::<String>(),
            "a@b.com"
        );
    }

    #[test]
    fn redact_modes() {
        let s = Scanner::default();
        let text = "mail a@b.com or a@b.com, card 4111 1111 1111 1111";
        let mut v = Vault::default();
        let out = s.redact(
            text,
            &RedactPolicy::uniform(RedactMode::Placeholder, None),
            &mut v,
        );
        assert_eq!(out, "mail <EMAIL_1> or <EMAIL_1>, card <CREDIT_CARD_1>");
        assert_eq!(restore(&out, v.mapping()), text);
        let out = s.redact(
            text,
            &RedactPolicy::uniform(RedactMode::Mask, None),
            &mut Vault::default(),
        );
        assert_eq!(out, "mail ******* or *******, card **** **** **** 1111");
        let out = s.redact(
            text,
            &RedactPolicy::uniform(RedactMode::Hash, Some(&[PiiKind::CreditCard])),
            &mut v,
        );
        assert!(
            out.starts_with("mail a@b.com or a@b.com, card <CREDIT_CARD:"),
            "{out}"
        );
    }

    #[test]
    fn vault_continues_numbering() {
        let s = Scanner::default();
        let mut v = Vault::default();
        let p = RedactPolicy::uniform(RedactMode::Placeholder, None);
        let _ = s.redact("a@b.com", &p, &mut v);
        let mut v2 = Vault::from_mapping(v.into_mapping());
        assert_eq!(
            s.redact("c@d.com a@b.com", &p, &mut v2),
            "<EMAIL_2> <EMAIL_1>"
        );
    }

    #[test]
    fn stream_split_everywhere() {
        let text = "hi, my card is 4111 1111 1111 1111 and mail jane@example.com, thanks";
        for cut in 0..=text.len() {
            let mut r = StreamRedactor::new(
                Scanner::default(),
                RedactPolicy::uniform(RedactMode::Placeholder, None),
                Vault::default(),
            );
            let mut out = r.push(&text[..cut]);
            out.push_str(&r.push(&text[cut..]));
            out.push_str(&r.finish());
            assert_eq!(
                out, "hi, my card is <CREDIT_CARD_1> and mail <EMAIL_1>, thanks",
                "cut {cut}"
            );
        }
    }

    #[test]
    fn stream_holds_open_pem() {
        let mut r = StreamRedactor::new(
            Scanner::default(),
            RedactPolicy::uniform(RedactMode::Placeholder, None),
            Vault::default(),
        );
        let mut out = r.push("key: -----BEGIN PRIVATE KEY-----\n");
        for _ in 0..20 {
            out.push_str(&r.push("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n"));
        }
        out.push_str(&r.push("-----END PRIVATE KEY----- bye"));
        out.push_str(&r.finish());
        assert_eq!(out, "key: <SECRET_1> bye");
    }

    #[test]
    fn stream_restores_input_placeholders() {
        let s = Scanner::default();
        let mut input = Vault::default();
        let p = RedactPolicy::uniform(RedactMode::Placeholder, None);
        assert_eq!(
            s.redact("I am ann@example.com", &p, &mut input),
            "I am <EMAIL_1>"
        );
        let answer = "Dear <EMAIL_1>, your key AKIAIOSFODNN7EXAMPLE leaked; mail bob@example.org";
        for cut in 0..=answer.len() {
            let mut r =
                StreamRedactor::new(s.clone(), p, Vault::from_mapping(input.mapping().clone()))
                    .with_restore(input.mapping().clone());
            let mut out = r.push(&answer[..cut]);
            out.push_str(&r.push(&answer[cut..]));
            out.push_str(&r.finish());
            assert_eq!(
                out, "Dear ann@example.com, your key <SECRET_1> leaked; mail <EMAIL_2>",
                "cut {cut}"
            );
        }
    }

    #[test]
    fn stream_releases_an_oversized_key_block_redacted() {
        let line = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2\n";
        let body = line.repeat(400); // 26 kB, over STREAM_PEM_HOLD
        let block = format!("-----BEGIN PRIVATE KEY-----\n{body}-----END PRIVATE KEY-----");
        let text = format!("key: {block} bye");
        for mode in [RedactMode::Placeholder, RedactMode::Mask] {
            let mut r = StreamRedactor::new(
                Scanner::default(),
                RedactPolicy::uniform(mode, None),
                Vault::default(),
            );
            let mut out = String::new();
            let mut max_held = 0;
            for chunk in text.as_bytes().chunks(1000) {
                out.push_str(&r.push(std::str::from_utf8(chunk).expect("ascii")));
                max_held = max_held.max(r.held());
            }
            out.push_str(&r.finish());
            assert!(max_held <= STREAM_PEM_HOLD + 1000, "{max_held}");
            assert!(!out.contains("QUJD"), "{mode:?}");
            assert!(
                out.starts_with("key: ") && out.ends_with(" bye"),
                "{mode:?}"
            );
            if mode == RedactMode::Placeholder {
                assert_eq!(out, "key: <SECRET_1> bye");
                assert_eq!(r.vault().mapping()["<SECRET_1>"], block);
            } else {
                assert_eq!(out.chars().count(), text.chars().count());
            }
        }
    }

    #[test]
    fn bad_arguments() {
        assert!("bogus".parse::<RedactMode>().is_err());
        assert!("bogus".parse::<PiiKind>().is_err());
        assert_eq!("email".parse::<PiiKind>(), Ok(PiiKind::EmailAddress));
        assert!(Scanner::new(1.5, None).is_err());
    }

    fn sample_text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("a@b.com".to_owned()),
                Just("555-123-4567".to_owned()),
                Just("4111 1111 1111 1111".to_owned()),
                Just("SSN 536-22-1234".to_owned()),
                Just("10.0.0.1".to_owned()),
                Just("é→".to_owned()),
                "[a-z0-9 .@:<>_-]{0,12}",
            ],
            0..12,
        )
        .prop_map(|w| w.join(" "))
    }

    proptest! {
        /// Mask keeps positions, so every detected span must come out as stars (cards keep their last four).
        #[test]
        fn mask_leaves_no_detected_span(text in sample_text()) {
            let s = Scanner::default();
            let masked = s.redact(&text, &RedactPolicy::uniform(RedactMode::Mask, None), &mut Vault::default());
            let orig: Vec<char> = text.chars().collect();
            let out: Vec<char> = masked.chars().collect();
            prop_assert_eq!(orig.len(), out.len());
            for m in s.scan(&text) {
                let keep = if m.kind == PiiKind::CreditCard { 4 } else { 0 };
                let digits_kept = out[m.start..m.end].iter().filter(|c| c.is_ascii_digit()).count();
                prop_assert!(digits_kept <= keep);
                prop_assert!(out[m.start..m.end].iter().all(|c| *c == '*' || (keep > 0 && !c.is_alphabetic())));
            }
        }

        /// Placeholder redaction is reversible and leaves no detected value behind.
        #[test]
        fn placeholder_round_trip(text in sample_text()) {
            let s = Scanner::default();
            let mut v = Vault::default();
            let red = s.redact(&text, &RedactPolicy::uniform(RedactMode::Placeholder, None), &mut v);
            prop_assert!(s.scan_bytes(&red).iter().all(|m| m.kind == PiiKind::IpAddress || !red[m.start..m.end].contains('@')));
            for m in s.scan_bytes(&text) {
                prop_assert!(v.mapping().values().any(|o| o == &text[m.start..m.end]));
            }
            prop_assert_eq!(restore(&red, v.mapping()), text);
        }

        /// Streaming with any chunking finds what a whole-text scan finds.
        #[test]
        fn stream_equals_whole(text in sample_text(), cuts in proptest::collection::vec(0usize..64, 0..6)) {
            let s = Scanner::default();
            let p = RedactPolicy::uniform(RedactMode::Placeholder, None);
            let whole = s.redact(&text, &p, &mut Vault::default());
            let mut r = StreamRedactor::new(s, p, Vault::default());
            let mut out = String::new();
            let mut rest = text.as_str();
            for c in cuts {
                let at = floor_char(rest, c.min(rest.len()));
                out.push_str(&r.push(&rest[..at]));
                rest = &rest[at..];
            }
            out.push_str(&r.push(rest));
            out.push_str(&r.finish());
            prop_assert_eq!(out, whole);
        }
    }
}
