//! Many regexes over one text, each reporting its own matches: the search engine under the guardrails' phrase
//! scoring (prompt-injection phrasings), which keeps its patterns, weights and context rules in Python.
//!
//! Why not Python's `re`: the phrasings are alternations of words with bounded lazy gaps
//! (`\b(ignore|disregard|...)\b[^.!?\n]{0,40}?\b(previous|...)`). Python's backtracking engine tries every
//! alternative at every position, ~25 ns per character per pattern, so 17 patterns over a 2,000-token prompt cost
//! ~4 ms (benches/policy/bench_guardrails.py). Here each pattern is a `regex-automata` meta regex: a literal
//! prefilter (Teddy / Aho-Corasick over the leading words) skips to candidate positions and a lazy DFA confirms, so a
//! pattern costs a few µs on clean text and linear time always.
//!
//! Matches are each pattern's leftmost-first, non-overlapping ones (as Python's `finditer`), so two patterns may
//! report overlapping spans. Offsets are converted to characters (Python `str` indices) in one forward walk, only
//! when the text is not ASCII.

use regex_automata::meta::Regex;

use crate::error::CoreError;

/// One match: the pattern's index in the set and the span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatternMatch {
    pub pattern: usize,
    pub start: usize,
    pub end: usize,
}

/// Compiled patterns; `Sync`, searched from any thread (each regex keeps a pool of search caches).
#[derive(Debug, Clone)]
pub struct PatternSet {
    regexes: Vec<Regex>,
}

impl PatternSet {
    /// Compiles every pattern (Rust `regex` syntax: no look-around, no backreferences).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, CoreError> {
        let regexes = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Regex::new(p.as_ref()).map_err(|e| {
                    CoreError::InvalidArgument(format!("pattern #{i} does not compile: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PatternSet { regexes })
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.regexes.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.regexes.is_empty()
    }

    /// Every pattern's matches in byte offsets, at most `limit` per pattern, ordered by pattern then start.
    /// Cost: one prefiltered pass per pattern, O(patterns x text).
    #[must_use]
    pub fn find_all_bytes(&self, text: &str, limit: usize) -> Vec<PatternMatch> {
        let mut out = Vec::new();
        for (pattern, regex) in self.regexes.iter().enumerate() {
            out.extend(regex.find_iter(text).take(limit).map(|m| PatternMatch {
                pattern,
                start: m.start(),
                end: m.end(),
            }));
        }
        out
    }

    /// As [`PatternSet::find_all_bytes`], with character offsets.
    #[must_use]
    pub fn find_all(&self, text: &str, limit: usize) -> Vec<PatternMatch> {
        let mut found = self.find_all_bytes(text, limit);
        to_char_offsets(text, &mut found);
        found
    }

    /// Indices of the patterns with at least one match.
    #[must_use]
    pub fn which(&self, text: &str) -> Vec<usize> {
        self.regexes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_match(text))
            .map(|(i, _)| i)
            .collect()
    }
}

/// Rewrites byte offsets as character offsets in place: the boundaries are sorted once and counted in one forward
/// walk over the text, O(text + matches log matches).
fn to_char_offsets(text: &str, found: &mut [PatternMatch]) {
    if text.is_ascii() || found.is_empty() {
        return;
    }
    let mut bounds: Vec<usize> = found.iter().flat_map(|m| [m.start, m.end]).collect();
    bounds.sort_unstable();
    bounds.dedup();
    let bytes = text.as_bytes();
    let mut chars = Vec::with_capacity(bounds.len());
    let (mut byte_pos, mut char_pos) = (0usize, 0usize);
    for &b in &bounds {
        // A char starts at every byte that is not a UTF-8 continuation byte.
        char_pos += bytes[byte_pos..b]
            .iter()
            .filter(|&&x| (x & 0xC0) != 0x80)
            .count();
        byte_pos = b;
        chars.push(char_pos);
    }
    let char_at = |b: usize| bounds.binary_search(&b).map_or(0, |i| chars[i]);
    for m in found.iter_mut() {
        m.start = char_at(m.start);
        m.end = char_at(m.end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn each_pattern_reports_its_own_matches() {
        let set = PatternSet::new(&[r"\bab\b", r"b+", r"zz"]).unwrap();
        let found = set.find_all("ab abb ab", 10);
        let got: Vec<(usize, usize, usize)> =
            found.iter().map(|m| (m.pattern, m.start, m.end)).collect();
        assert_eq!(
            got,
            vec![(0, 0, 2), (0, 7, 9), (1, 1, 2), (1, 4, 6), (1, 8, 9)]
        );
        assert_eq!(set.which("ab zz"), vec![0, 1, 2]);
        assert_eq!(set.len(), 3);
        assert!(!set.is_empty());
    }

    #[test]
    fn limit_caps_matches_per_pattern() {
        let set = PatternSet::new(&["a", "b"]).unwrap();
        let found = set.find_all("aaaa b", 2);
        assert_eq!(found.iter().filter(|m| m.pattern == 0).count(), 2);
        assert_eq!(found.iter().filter(|m| m.pattern == 1).count(), 1);
    }

    #[test]
    fn offsets_are_characters() {
        let set = PatternSet::new(&["ignore", "é+"]).unwrap();
        let text = "ééé ignore — ignore";
        let found = set.find_all(text, 10);
        let chars: Vec<char> = text.chars().collect();
        for m in &found {
            let s: String = chars[m.start..m.end].iter().collect();
            assert!(s == "ignore" || s == "ééé", "{s}");
        }
        assert_eq!(found.len(), 3);
    }

    #[test]
    fn bad_pattern_names_its_index() {
        let err = PatternSet::new(&["ok", "(unclosed"]).unwrap_err();
        assert!(matches!(err, CoreError::InvalidArgument(ref m) if m.contains("pattern #1")));
        assert!(PatternSet::new(&[r"(?<!a)b"]).is_err());
    }

    proptest! {
        #[test]
        fn char_offsets_slice_the_same_text(text in "[a-zé ü—]{0,60}") {
            let set = PatternSet::new(&["[a-z]+", "[éü]+"]).unwrap();
            let bytes = set.find_all_bytes(&text, 100);
            let chars = set.find_all(&text, 100);
            let as_chars: Vec<char> = text.chars().collect();
            for (b, c) in bytes.iter().zip(&chars) {
                let via_chars: String = as_chars[c.start..c.end].iter().collect();
                prop_assert_eq!(&text[b.start..b.end], via_chars.as_str());
            }
        }
    }
}
