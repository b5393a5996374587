//! tiktoken's pre-tokenization regex, exact for any text: what the ASCII fast path in `tokens.rs` hands over to.
//!
//! regex-automata has no look-ahead, so tiktoken's `\s+(?!\S)` becomes bpe-openai's rewrite: three patterns tried
//! as one, the middle one `\s+\s` matching one char too many, which the split then gives back (the patterns below are
//! bpe-openai 0.3's, which its tests check against tiktoken).

use regex_automata::meta::Regex;
use regex_automata::{Anchored, Input};

const CL100K_WORDS: &str = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+$";
const O200K_WORDS: &str = concat!(
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|\\p{N}{1,3}",
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*",
    "|\\s*[\\r\\n]+",
    "|\\s+$",
);
/// Whitespace followed by one more whitespace char, which is given back: `\s+(?!\S)` when more text follows.
const SPACES_BEFORE_SPACE: &str = "\\s+\\s";
const SPACES: &str = "\\s+";

/// One encoding's split regex.
pub(super) struct RegexSplit {
    regex: Regex,
}

impl RegexSplit {
    pub(super) fn cl100k() -> Self {
        Self::new(CL100K_WORDS)
    }

    pub(super) fn o200k() -> Self {
        Self::new(O200K_WORDS)
    }

    fn new(words: &str) -> Self {
        let regex = Regex::new_many(&[words, SPACES_BEFORE_SPACE, SPACES])
            .expect("tiktoken's split patterns compile");
        Self { regex }
    }

    /// The length of the piece `rest` starts with (0 only for an empty `rest`).
    pub(super) fn piece_len(&self, rest: &str) -> usize {
        let Some(found) = self.regex.find(Input::new(rest).anchored(Anchored::Yes)) else {
            return 0;
        };
        let end = found.end();
        // Pattern 1 is SPACES_BEFORE_SPACE.
        if found.pattern().as_usize() != 1 {
            return end;
        }
        // `\s+\s` ends on the char the look-ahead only looks at; it always matches two chars or more.
        end - rest[..end].chars().next_back().map_or(0, char::len_utf8)
    }
}
