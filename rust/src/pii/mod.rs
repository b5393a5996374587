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
//!
//! Layout, one file per concern: `patterns` (the compiled regexes, triggers and context words), `validators`
//! (structure checks per kind and word boundaries), `phone` (phone number shapes), `scan` (the [`Scanner`]:
//! windows, secrets, scores, overlaps, char offsets), `redact` (each mode's replacement, the [`Vault`],
//! [`restore`]) and `stream` (the [`StreamRedactor`]). Tests sit at the foot of the file whose code they pin.

// Scanning code reads best with the conventional t (text bytes), s/e (span), c (compiled) names.
#![allow(clippy::many_single_char_names)]

mod patterns;
mod phone;
mod redact;
mod scan;
mod stream;
mod validators;

use std::str::FromStr;

use crate::error::CoreError;

pub use redact::{restore, Restorer, Vault};
pub use scan::{to_char_offsets, Scanner};
pub use stream::{StreamRedactor, STREAM_PEM_HOLD, STREAM_TOKEN_HOLD, STREAM_WINDOW_CHARS};

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

/// Helpers the submodules' tests share: what a default scan finds, and texts mixing items with noise.
#[cfg(test)]
mod test_support {
    use proptest::prelude::*;

    use super::{PiiKind, Scanner};

    pub(super) fn kinds(text: &str) -> Vec<(String, &'static str)> {
        let s = Scanner::default();
        s.scan_bytes(text)
            .iter()
            .map(|m| (text[m.start..m.end].to_owned(), m.kind.name()))
            .collect()
    }

    pub(super) fn one(text: &str, item: &str, kind: PiiKind) {
        let got = kinds(text);
        assert_eq!(got, vec![(item.to_owned(), kind.name())], "in {text:?}");
    }

    pub(super) fn none(text: &str) {
        assert_eq!(kinds(text), vec![], "in {text:?}");
    }

    pub(super) fn sample_text() -> impl Strategy<Value = String> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_arguments() {
        assert!("bogus".parse::<RedactMode>().is_err());
        assert!("bogus".parse::<PiiKind>().is_err());
        assert_eq!("email".parse::<PiiKind>(), Ok(PiiKind::EmailAddress));
        assert!(Scanner::new(1.5, None).is_err());
    }
}
