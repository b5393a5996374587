//! Redaction and restoration: each mode's replacement, the [`Vault`] of placeholders handed out, and
//! [`restore`]/[`Restorer`], which put the originals back.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::BuildHasher;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use sha2::{Digest, Sha256};

use super::scan::Scanner;
use super::{ByteMatch, PiiKind, RedactMode, RedactPolicy};

/// Placeholders handed out so far: placeholder -> original, and the reverse, with a counter per kind. Passing the
/// same vault to several calls keeps numbering consistent across the messages of one request.
#[derive(Debug, Clone, Default)]
pub struct Vault {
    pub(super) mapping: HashMap<String, String>,
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
pub(super) fn apply(
    text: &str,
    matches: &[ByteMatch],
    policy: RedactPolicy,
    vault: &mut Vault,
) -> String {
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::test_support::sample_text;
    use super::*;

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

    }
}
