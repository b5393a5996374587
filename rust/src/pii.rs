//! PII and secret detection: one pass of a compiled regex set over the text, then per-kind validators that cut
//! false positives (Luhn, SSN area rules, IBAN mod-97, IP ranges, phone shapes), context words that raise scores,
//! and redaction (mask, typed placeholders restorable within a request, hash), also over streamed text.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::Ipv6Addr;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::{Regex, RegexSet};
use sha2::{Digest, Sha256};

use crate::error::CoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    EmailAddress,
    PhoneNumber,
    CreditCard,
    UsSsn,
    IbanCode,
    IpAddress,
    DateOfBirth,
    Secret,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::EmailAddress,
        Kind::PhoneNumber,
        Kind::CreditCard,
        Kind::UsSsn,
        Kind::IbanCode,
        Kind::IpAddress,
        Kind::DateOfBirth,
        Kind::Secret,
    ];

    /// Presidio's entity names.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::EmailAddress => "EMAIL_ADDRESS",
            Kind::PhoneNumber => "PHONE_NUMBER",
            Kind::CreditCard => "CREDIT_CARD",
            Kind::UsSsn => "US_SSN",
            Kind::IbanCode => "IBAN_CODE",
            Kind::IpAddress => "IP_ADDRESS",
            Kind::DateOfBirth => "DATE_OF_BIRTH",
            Kind::Secret => "SECRET",
        }
    }

    /// The short label of typed placeholders such as `<EMAIL_1>`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Kind::EmailAddress => "EMAIL",
            Kind::PhoneNumber => "PHONE",
            Kind::CreditCard => "CREDIT_CARD",
            Kind::UsSsn => "SSN",
            Kind::IbanCode => "IBAN",
            Kind::IpAddress => "IP",
            Kind::DateOfBirth => "DOB",
            Kind::Secret => "SECRET",
        }
    }
}

impl FromStr for Kind {
    type Err = CoreError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                let valid: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                CoreError::InvalidArgument(format!(
                    "unknown PII kind {name:?}: use one of {}",
                    valid.join(", ")
                ))
            })
    }
}

/// One detected item, in byte offsets of the scanned text.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub start: usize,
    pub end: usize,
    pub kind: Kind,
    pub score: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every character of the item becomes `*`.
    Mask,
    /// A typed placeholder such as `<EMAIL_1>`; the same value gets the same placeholder, and the mapping restores it.
    Placeholder,
    /// `<EMAIL:1a2b3c>`, the first 6 hex digits of the value's SHA-256: equal values stay linkable, not readable.
    Hash,
}

impl FromStr for Mode {
    type Err = CoreError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "mask" => Ok(Mode::Mask),
            "placeholder" => Ok(Mode::Placeholder),
            "hash" => Ok(Mode::Hash),
            other => Err(CoreError::InvalidArgument(format!(
                "unknown redaction mode {other:?}: use \"mask\", \"placeholder\" or \"hash\""
            ))),
        }
    }
}

struct Pattern {
    kind: Kind,
    regex: &'static str,
    /// Score before context; at least `min_score` (0.5 by default) means reported without context.
    base: f64,
}

/// Base scores: shapes that are unambiguous on their own score high; shapes that are also common non-PII numbers
/// (bare 9-digit SSNs, 10-digit phones) need a context word to pass the default threshold of 0.5.
const PATTERNS: &[Pattern] = &[
    Pattern {
        kind: Kind::EmailAddress,
        regex: r"[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}",
        base: 0.95,
    },
    Pattern {
        kind: Kind::PhoneNumber,
        regex: r"\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}",
        base: 0.7,
    },
    Pattern {
        kind: Kind::PhoneNumber,
        regex: r"(?:\(\d{3}\)\s?|\b\d{3}[-. ])\d{3}[-. ]\d{4}\b",
        base: 0.6,
    },
    Pattern {
        kind: Kind::PhoneNumber,
        regex: r"\b\d{10}\b",
        base: 0.3,
    },
    Pattern {
        kind: Kind::CreditCard,
        regex: r"\b(?:\d[ -]?){12,18}\d\b",
        base: 0.8,
    },
    Pattern {
        kind: Kind::UsSsn,
        regex: r"\b\d{3}-\d{2}-\d{4}\b",
        base: 0.75,
    },
    Pattern {
        kind: Kind::UsSsn,
        regex: r"\b\d{3} \d{2} \d{4}\b|\b\d{9}\b",
        base: 0.3,
    },
    Pattern {
        kind: Kind::IbanCode,
        regex: r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b",
        base: 0.9,
    },
    Pattern {
        kind: Kind::IpAddress,
        regex: r"\b(?:\d{1,3}\.){3}\d{1,3}\b",
        base: 0.7,
    },
    Pattern {
        kind: Kind::IpAddress,
        regex: r"(?i)(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}",
        base: 0.7,
    },
    Pattern {
        kind: Kind::DateOfBirth,
        regex: r"(?i)\b(?:\d{1,2}[/.-]\d{1,2}[/.-](?:19|20)\d{2}|(?:19|20)\d{2}-\d{2}-\d{2}|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,2}(?:st|nd|rd|th)?,? (?:19|20)\d{2}|\d{1,2}(?:st|nd|rd|th)? (?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*,? (?:19|20)\d{2})\b",
        base: 0.2,
    },
    Pattern {
        kind: Kind::Secret,
        regex: r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
        base: 0.99,
    },
    Pattern {
        kind: Kind::Secret,
        regex: r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b",
        base: 0.95,
    },
    Pattern {
        kind: Kind::Secret,
        regex: r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}",
        base: 0.95,
    },
    Pattern {
        kind: Kind::Secret,
        regex: r"\b(?:sk-(?:proj-|ant-(?:api\d{2}-)?)?[A-Za-z0-9_-]{20,}|(?:ghp|gho|ghs|ghu|ghr)_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20}|(?:sk|rk)_live_[A-Za-z0-9]{16,})",
        base: 0.95,
    },
    Pattern {
        kind: Kind::Secret,
        regex: r"(?i)aws.{0,20}secret.{0,20}[:=]\s*[A-Za-z0-9/+=]{40}\b",
        base: 0.9,
    },
];

/// Words that, shortly before an item, make it more likely to be what it looks like.
fn context_words(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::PhoneNumber => &[
            "phone", "tel", "call", "mobile", "cell", "fax", "whatsapp", "text me", "reach me",
        ],
        Kind::CreditCard => &[
            "card",
            "visa",
            "mastercard",
            "amex",
            "credit",
            "debit",
            "payment",
            "cc",
        ],
        Kind::UsSsn => &[
            "ssn",
            "social security",
            "social-security",
            "ss#",
            "taxpayer",
        ],
        Kind::IbanCode => &["iban", "account", "bank", "transfer", "wire"],
        Kind::IpAddress => &["ip", "address", "host", "server", "client", "from"],
        Kind::DateOfBirth => &[
            "born",
            "dob",
            "d.o.b",
            "date of birth",
            "birth date",
            "birthdate",
            "birthday",
        ],
        Kind::EmailAddress | Kind::Secret => &[],
    }
}

const CONTEXT_WINDOW: usize = 48;
const CONTEXT_BONUS: f64 = 0.35;

static SET: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new(PATTERNS.iter().map(|p| p.regex)).expect("patterns are valid regexes")
});
static REGEXES: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    PATTERNS
        .iter()
        .map(|p| Regex::new(p.regex).expect("patterns are valid regexes"))
        .collect()
});

/// Scanner settings: which kinds to report and the lowest score that counts.
#[derive(Debug, Clone)]
pub struct Scanner {
    kinds: Vec<Kind>,
    min_score: f64,
}

impl Default for Scanner {
    fn default() -> Self {
        Self {
            kinds: Kind::ALL.to_vec(),
            min_score: 0.5,
        }
    }
}

impl Scanner {
    pub fn new(kinds: Option<Vec<Kind>>, min_score: f64) -> Result<Self, CoreError> {
        if !(0.0..=1.0).contains(&min_score) {
            return Err(CoreError::InvalidArgument(format!(
                "min_score must be between 0 and 1, got {min_score}"
            )));
        }
        Ok(Self {
            kinds: kinds.unwrap_or_else(|| Kind::ALL.to_vec()),
            min_score,
        })
    }

    /// Every item found, sorted by start, without overlaps (a higher score, then a longer match, wins).
    #[must_use]
    pub fn scan(&self, text: &str) -> Vec<Match> {
        // One pass of the regex set says which patterns occur at all; only those are run for their spans.
        let hits = SET.matches(text);
        if !hits.matched_any() {
            return Vec::new();
        }
        let lower = text.to_ascii_lowercase();
        let mut found: Vec<Match> = Vec::new();
        for index in &hits {
            let pattern = &PATTERNS[index];
            if !self.kinds.contains(&pattern.kind) {
                continue;
            }
            for m in REGEXES[index].find_iter(text) {
                let Some(score) = validate(pattern.kind, m.as_str(), text, m.start(), m.end())
                    .map(|factor| factor * score_with_context(pattern, &lower, m.start()))
                else {
                    continue;
                };
                if score >= self.min_score {
                    found.push(Match {
                        start: m.start(),
                        end: m.end(),
                        kind: pattern.kind,
                        score: score.min(1.0),
                    });
                }
            }
        }
        resolve_overlaps(found)
    }
}

fn score_with_context(pattern: &Pattern, lower: &str, start: usize) -> f64 {
    let mut from = start.saturating_sub(CONTEXT_WINDOW);
    while !lower.is_char_boundary(from) {
        from -= 1;
    }
    let before = &lower[from..start];
    if context_words(pattern.kind)
        .iter()
        .any(|word| before.contains(word))
    {
        pattern.base + CONTEXT_BONUS
    } else {
        pattern.base
    }
}

/// A factor for the score (1.0 keeps it), or None when the candidate is not what it looks like.
fn validate(kind: Kind, item: &str, text: &str, start: usize, end: usize) -> Option<f64> {
    let digits: Vec<u32> = item.chars().filter_map(|c| c.to_digit(10)).collect();
    let ok = match kind {
        Kind::EmailAddress => !item.contains("..") && !item.ends_with('.'),
        Kind::PhoneNumber => phone_ok(item, &digits, text, start, end),
        Kind::CreditCard => card_ok(item, &digits),
        Kind::UsSsn => ssn_ok(&digits) && !glued(text, start, end),
        Kind::IbanCode => iban_ok(item),
        Kind::IpAddress => ip_ok(item, text, start, end),
        Kind::DateOfBirth => date_ok(&digits),
        Kind::Secret => true,
    };
    ok.then_some(1.0)
}

/// Digits or dots right against the item mean it is part of something longer (a version, an id).
fn glued(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let near = |c: Option<char>| {
        c.is_some_and(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == '/' || c == ':')
    };
    near(before) || near(after)
}

fn phone_ok(item: &str, digits: &[u32], text: &str, start: usize, end: usize) -> bool {
    if glued(text, start, end) && !item.starts_with('+') {
        return false;
    }
    if item.starts_with('+') {
        return (8..=15).contains(&digits.len())
            && !text[end..].starts_with(|c: char| c.is_ascii_digit());
    }
    // North American numbering: area and exchange codes do not start with 0 or 1.
    digits.len() == 10 && digits[0] >= 2 && digits[3] >= 2
}

fn card_ok(item: &str, digits: &[u32]) -> bool {
    if !(13..=19).contains(&digits.len()) || !luhn(digits) {
        return false;
    }
    // Separators, when present, must be consistent (all spaces or all dashes).
    if item.contains(' ') && item.contains('-') {
        return false;
    }
    let prefix2 = digits[0] * 10 + digits[1];
    let prefix4 = prefix2 * 100 + digits[2] * 10 + digits[3];
    match digits[0] {
        4 => true,                                           // Visa
        5 => (51..=55).contains(&prefix2),                   // Mastercard
        2 => (2221..=2720).contains(&prefix4),               // Mastercard 2-series
        3 => matches!(prefix2, 34 | 37 | 35 | 30 | 36 | 38), // Amex, JCB, Diners
        6 => {
            prefix4 == 6011
                || prefix2 == 65
                || (644..=649).contains(&(prefix4 / 10))
                || prefix2 == 62
        } // Discover, UnionPay
        _ => false,
    }
}

fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 {
                    d * 2 - 9
                } else {
                    d * 2
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

fn ssn_ok(digits: &[u32]) -> bool {
    if digits.len() != 9 {
        return false;
    }
    let area = digits[0] * 100 + digits[1] * 10 + digits[2];
    let group = digits[3] * 10 + digits[4];
    let serial = digits[5] * 1000 + digits[6] * 100 + digits[7] * 10 + digits[8];
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

fn iban_ok(item: &str) -> bool {
    let compact: String = item.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(expected) = iban_length(&compact[..2]) else {
        return false;
    };
    if compact.len() != expected {
        return false;
    }
    // Mod-97 of the rearranged number, letters as 10..35, computed digit by digit.
    let rearranged = compact[4..].chars().chain(compact[..4].chars());
    let mut remainder: u32 = 0;
    for c in rearranged {
        let Some(value) = c.to_digit(36) else {
            return false;
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

fn iban_length(country: &str) -> Option<usize> {
    Some(match country {
        "NO" => 15,
        "BE" => 16,
        "DK" | "FI" | "FO" | "GL" | "NL" => 18,
        "MK" | "SI" => 19,
        "AT" | "BA" | "EE" | "KZ" | "LT" | "LU" | "XK" => 20,
        "CH" | "CR" | "HR" | "LI" | "LV" => 21,
        "BG" | "BH" | "DE" | "GB" | "GE" | "IE" | "ME" | "RS" => 22,
        "AE" | "GI" | "IL" | "TL" => 23,
        "AD" | "CZ" | "ES" | "MD" | "PK" | "RO" | "SA" | "SE" | "SK" | "TN" | "VG" => 24,
        "PT" | "ST" => 25,
        "IS" | "TR" => 26,
        "FR" | "GR" | "IT" | "MC" | "MR" | "SM" => 27,
        "AL" | "AZ" | "CY" | "DO" | "GT" | "HU" | "LB" | "PL" => 28,
        "BR" | "PS" | "QA" | "UA" => 29,
        "JO" | "KW" | "MU" => 30,
        "MT" => 31,
        _ => return None,
    })
}

fn ip_ok(item: &str, text: &str, start: usize, end: usize) -> bool {
    if item.contains('.') {
        let octets_ok = item
            .split('.')
            .all(|o| o.parse::<u16>().is_ok_and(|v| v <= 255) && (o == "0" || !o.starts_with('0')));
        if !octets_ok || glued(text, start, end) {
            return false;
        }
        // "version 1.2.3.4" and "v1.2.3.4" are versions, not addresses.
        let mut from = start.saturating_sub(12);
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        let before = text[from..start].to_ascii_lowercase();
        return !(before.ends_with('v')
            || before.contains("version")
            || before.contains("release"));
    }
    item.matches(':').count() >= 2
        && item.len() >= 3
        && Ipv6Addr::from_str(item).is_ok()
        && item.chars().any(|c| c.is_ascii_hexdigit())
        && !glued_hex(text, start, end)
}

fn glued_hex(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let near = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    near(before) || near(after)
}

fn date_ok(digits: &[u32]) -> bool {
    // The pattern guarantees a 19xx/20xx year; a date of birth is not in the future.
    let year: Vec<u32> = digits
        .windows(4)
        .map(|w| w[0] * 1000 + w[1] * 100 + w[2] * 10 + w[3])
        .filter(|y| (1900..=2026).contains(y))
        .collect();
    !year.is_empty()
}

fn resolve_overlaps(mut found: Vec<Match>) -> Vec<Match> {
    found.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    let mut kept: Vec<Match> = Vec::with_capacity(found.len());
    for candidate in found {
        if kept
            .iter()
            .all(|k| candidate.end <= k.start || candidate.start >= k.end)
        {
            kept.push(candidate);
        }
    }
    kept.sort_by_key(|m| m.start);
    kept
}

/// Redacts with one placeholder numbering, kept across calls (a whole request, or every chunk of a stream).
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// placeholder -> original value
    pub mapping: HashMap<String, String>,
    by_value: HashMap<(Kind, String), String>,
    counters: HashMap<Kind, usize>,
}

impl Redactor {
    /// `text` with every match replaced (matches must be sorted and disjoint, as `scan` returns them).
    pub fn apply(&mut self, text: &str, matches: &[Match], mode: Mode) -> String {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for m in matches {
            out.push_str(&text[last..m.start]);
            let value = &text[m.start..m.end];
            match mode {
                Mode::Mask => out.extend(value.chars().map(|_| '*')),
                Mode::Hash => {
                    let digest = Sha256::digest(value.as_bytes());
                    let _ = write!(
                        out,
                        "<{}:{:02x}{:02x}{:02x}>",
                        m.kind.label(),
                        digest[0],
                        digest[1],
                        digest[2]
                    );
                }
                Mode::Placeholder => out.push_str(&self.placeholder(m.kind, value)),
            }
            last = m.end;
        }
        out.push_str(&text[last..]);
        out
    }

    fn placeholder(&mut self, kind: Kind, value: &str) -> String {
        if let Some(existing) = self.by_value.get(&(kind, value.to_owned())) {
            return existing.clone();
        }
        let counter = self.counters.entry(kind).or_insert(0);
        *counter += 1;
        let placeholder = format!("<{}_{}>", kind.label(), counter);
        self.by_value
            .insert((kind, value.to_owned()), placeholder.clone());
        self.mapping.insert(placeholder.clone(), value.to_owned());
        placeholder
    }
}

/// Puts original values back where their placeholders appear.
#[must_use]
pub fn restore<S: std::hash::BuildHasher>(
    text: &str,
    mapping: &HashMap<String, String, S>,
) -> String {
    static PLACEHOLDER: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"<[A-Z_]+_\d+>").expect("valid regex"));
    PLACEHOLDER
        .replace_all(text, |caps: &regex::Captures<'_>| {
            mapping
                .get(&caps[0])
                .cloned()
                .unwrap_or_else(|| caps[0].to_owned())
        })
        .into_owned()
}

/// Redacts streamed text chunk by chunk. It releases text as soon as it is safe and holds back at most a window of
/// `HOLD_CHARS` characters, extended to the start of a word still running at the end (secrets have no spaces), so
/// an item split across chunks is still found. A PEM private-key block is held from its BEGIN line until its END
/// line, up to `MAX_HOLD_BYTES`.
#[derive(Debug)]
pub struct StreamRedactor {
    scanner: Scanner,
    mode: Mode,
    pub redactor: Redactor,
    pending: String,
}

pub const HOLD_CHARS: usize = 96;
pub const MAX_HOLD_BYTES: usize = 8192;

impl StreamRedactor {
    #[must_use]
    pub fn new(scanner: Scanner, mode: Mode) -> Self {
        Self {
            scanner,
            mode,
            redactor: Redactor::default(),
            pending: String::new(),
        }
    }

    /// Takes a chunk; returns the text now safe to release (possibly empty).
    pub fn feed(&mut self, chunk: &str) -> String {
        self.pending.push_str(chunk);
        let matches = self.scanner.scan(&self.pending);
        let cut = self.safe_cut(&matches);
        self.release(cut, &matches)
    }

    /// Releases everything held.
    pub fn finish(&mut self) -> String {
        let matches = self.scanner.scan(&self.pending);
        let len = self.pending.len();
        self.release(len, &matches)
    }

    fn safe_cut(&self, matches: &[Match]) -> usize {
        let text = &self.pending;
        let chars = text.chars().count();
        if chars <= HOLD_CHARS {
            return 0;
        }
        let mut cut = text
            .char_indices()
            .nth(chars - HOLD_CHARS)
            .map_or(0, |(i, _)| i);
        // Never cut inside a run of non-space characters (a key, a token, an email).
        if let Some(space) = text[..cut].rfind(char::is_whitespace) {
            if text.len() - space <= MAX_HOLD_BYTES {
                cut = space + 1;
            }
        } else if text.len() <= MAX_HOLD_BYTES {
            cut = 0;
        }
        // Never release the start of an open private-key block.
        if let Some(begin) = text.rfind("-----BEGIN") {
            let closed = text[begin..].contains("-----END")
                && matches.iter().any(|m| m.start <= begin && m.end > begin);
            if !closed && text.len() - begin <= MAX_HOLD_BYTES {
                cut = cut.min(begin);
            }
        }
        // Never cut through a match.
        for m in matches {
            if m.start < cut && m.end >= cut {
                cut = m.start;
            }
        }
        cut
    }

    fn release(&mut self, cut: usize, matches: &[Match]) -> String {
        let inside: Vec<Match> = matches.iter().filter(|m| m.end <= cut).cloned().collect();
        let out = self
            .redactor
            .apply(&self.pending[..cut], &inside, self.mode);
        self.pending.drain(..cut);
        out
    }
}

/// Byte offsets -> character offsets (Python str indices), for sorted matches; free for ASCII text.
#[must_use]
pub fn char_offsets(text: &str, matches: &[Match]) -> Vec<(usize, usize)> {
    if text.is_ascii() {
        return matches.iter().map(|m| (m.start, m.end)).collect();
    }
    let mut result = Vec::with_capacity(matches.len());
    let mut byte = 0;
    let mut chars = 0;
    let mut advance = |to: usize| {
        chars += text[byte..to].chars().count();
        byte = to;
        chars
    };
    for m in matches {
        let start = advance(m.start);
        let end = advance(m.end);
        result.push((start, end));
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kinds(text: &str) -> Vec<(Kind, String)> {
        Scanner::default()
            .scan(text)
            .into_iter()
            .map(|m| (m.kind, text[m.start..m.end].to_owned()))
            .collect()
    }

    #[test]
    fn finds_each_kind() {
        assert_eq!(
            kinds("mail jane.doe@example.com now"),
            vec![(Kind::EmailAddress, "jane.doe@example.com".into())]
        );
        assert_eq!(
            kinds("card 4111 1111 1111 1111 ok"),
            vec![(Kind::CreditCard, "4111 1111 1111 1111".into())]
        );
        assert_eq!(
            kinds("ssn 123-45-6789"),
            vec![(Kind::UsSsn, "123-45-6789".into())]
        );
        assert_eq!(
            kinds("iban DE89 3704 0044 0532 0130 00 x"),
            vec![(Kind::IbanCode, "DE89 3704 0044 0532 0130 00".into())]
        );
        assert_eq!(
            kinds("from 192.168.1.20 today"),
            vec![(Kind::IpAddress, "192.168.1.20".into())]
        );
        assert_eq!(
            kinds("host 2001:db8::8a2e:370:7334 up"),
            vec![(Kind::IpAddress, "2001:db8::8a2e:370:7334".into())]
        );
        assert_eq!(
            kinds("call (415) 555-2671 please"),
            vec![(Kind::PhoneNumber, "(415) 555-2671".into())]
        );
        assert_eq!(
            kinds("born on 03/14/1985 in"),
            vec![(Kind::DateOfBirth, "03/14/1985".into())]
        );
        assert_eq!(
            kinds("key AKIAIOSFODNN7EXAMPLE"),
            vec![(Kind::Secret, "AKIAIOSFODNN7EXAMPLE".into())]
        );
    }

    #[test]
    fn rejects_look_alikes() {
        assert!(
            kinds("order 4111 1111 1111 1112 shipped").is_empty(),
            "fails Luhn"
        );
        assert!(kinds("ssn 666-45-6789 or 000-12-3456").is_empty());
        assert!(kinds("version 1.2.3.4 released").is_empty());
        assert!(kinds("at 12:30:45 today").is_empty());
        assert!(
            kinds("meeting on 03/14/2025").is_empty(),
            "a date without birth context"
        );
    }

    #[test]
    fn placeholders_round_trip() {
        let text = "write to a@b.io and a@b.io, or c@d.io";
        let matches = Scanner::default().scan(text);
        let mut redactor = Redactor::default();
        let redacted = redactor.apply(text, &matches, Mode::Placeholder);
        assert_eq!(redacted, "write to <EMAIL_1> and <EMAIL_1>, or <EMAIL_2>");
        assert_eq!(restore(&redacted, &redactor.mapping), text);
    }

    #[test]
    fn stream_catches_split_items() {
        let text = "please email john.smith@example.org or call +44 20 7946 0958 today, thanks a lot for everything";
        for split in 0..text.len() {
            if !text.is_char_boundary(split) {
                continue;
            }
            let mut stream = StreamRedactor::new(Scanner::default(), Mode::Placeholder);
            let mut out = stream.feed(&text[..split]);
            out += &stream.feed(&text[split..]);
            out += &stream.finish();
            assert!(!out.contains("john.smith"), "split at {split}: {out}");
            assert!(!out.contains("7946"), "split at {split}: {out}");
        }
    }

    proptest! {
        #[test]
        fn redaction_leaves_no_detected_text(prefix in "[a-z ]{0,30}", n in 0u32..1000) {
            let email = format!("user{n}@example.com");
            let text = format!("{prefix} {email} {prefix}");
            let matches = Scanner::default().scan(&text);
            let mut redactor = Redactor::default();
            for mode in [Mode::Mask, Mode::Placeholder, Mode::Hash] {
                let out = redactor.apply(&text, &matches, mode);
                prop_assert!(!out.contains(&email));
            }
            let mut fresh = Redactor::default();
            let placeholder = fresh.apply(&text, &matches, Mode::Placeholder);
            prop_assert_eq!(restore(&placeholder, &fresh.mapping), text.clone());
        }
    }
}
