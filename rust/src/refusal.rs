//! What the refusal scorer (gateway.observe.refusal) reads of an answer, kept as the answer streams: its first and
//! last characters, its length and spaces, and whether a refusal's wording appears where the scorer looks.
//!
//! Almost no answer is a refusal, and every refusal pattern needs one of a few trigger words: so the trigger test
//! runs here, once per call, and the Python scorer's regexes run only for the rare answer it finds (their
//! look-aheads are not in Rust's `regex` syntax). Lengths count characters (Unicode scalar values), as Python's
//! `len` does.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;

/// About two sentences: where a refusal states itself.
pub const HEAD_CHARS: usize = 320;
/// The last sentence or so: where a short refusal that first explains itself ends.
pub const TAIL_CHARS: usize = 200;
/// An answer this short (in spaces) whose last sentence declines is a refusal even if its start explains.
pub const SHORT_WORDS: usize = 120;

/// The head's text was triggered (`Edges::triggered`).
pub const IN_HEAD: u8 = 1;
/// The tail's text was triggered, and the answer is long and short enough for its tail to count.
pub const IN_TAIL: u8 = 2;

/// Every refusal pattern of the scorer needs one of these in the (lower-cased) text it searches.
const TRIGGERS: &[&str] = &[
    "can't",
    "can\u{2019}t",
    "cannot",
    "can not",
    "won't",
    "won\u{2019}t",
    "will not",
    "shouldn't",
    "shouldn\u{2019}t",
    "should not",
    "unable",
    "not able",
    "not going",
    "not permitted",
    "not allowed",
    "not in a position",
    "declin",
    "refus",
    "rather not",
    "comfortable",
    "something i",
    "as an ai",
    "pass",
    "sit this one out",
    "polic",
    "guideline",
    "terms",
    "rules",
    "principles",
];

static TRIGGER_WORDS: LazyLock<AhoCorasick> =
    LazyLock::new(|| AhoCorasick::new(TRIGGERS).expect("the trigger words are plain literals"));

/// Whether `text` holds a trigger word anywhere.
#[must_use]
pub fn has_trigger(text: &str) -> bool {
    TRIGGER_WORDS.is_match(text)
}

/// The answer's first `2 x HEAD_CHARS` and last `2 x TAIL_CHARS` characters (twice what is scored: a quotation
/// dropped from the scored part pulls in the text after it), its length and its spaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Edges {
    head: String,
    head_chars: usize,
    tail: String,
    tail_chars: usize,
    length: usize,
    spaces: usize,
}

impl Edges {
    /// The next piece of the answer. Only the edges are copied, so a long chunk costs one scan (ASCII: a
    /// vectorised check and a count of spaces), not a copy of its middle.
    pub fn feed(&mut self, chunk: &str) {
        let ascii = chunk.is_ascii();
        let chars = if ascii {
            chunk.len()
        } else {
            chunk.chars().count()
        };
        let at = |n: usize| if ascii { n } else { byte_at(chunk, n) };
        if self.head_chars < 2 * HEAD_CHARS {
            let take = chars.min(2 * HEAD_CHARS - self.head_chars);
            self.head.push_str(&chunk[..at(take)]);
            self.head_chars += take;
        }
        if chars >= 2 * TAIL_CHARS {
            self.tail.clear();
            self.tail.push_str(&chunk[at(chars - 2 * TAIL_CHARS)..]);
            self.tail_chars = 2 * TAIL_CHARS;
        } else {
            self.tail.push_str(chunk);
            self.tail_chars += chars;
            if self.tail_chars > 2 * TAIL_CHARS {
                let drop = self.tail_chars - 2 * TAIL_CHARS;
                self.tail.drain(..byte_at(&self.tail, drop));
                self.tail_chars = 2 * TAIL_CHARS;
            }
        }
        self.length += chars;
        self.spaces += chunk.bytes().filter(|&b| b == b' ').count();
    }

    #[must_use]
    pub fn head(&self) -> &str {
        &self.head
    }

    #[must_use]
    pub fn tail(&self) -> &str {
        &self.tail
    }

    #[must_use]
    pub fn length(&self) -> usize {
        self.length
    }

    #[must_use]
    pub fn spaces(&self) -> usize {
        self.spaces
    }

    /// Where the scorer may find a refusal: `IN_HEAD` when the first HEAD_CHARS characters, lower-cased, hold a
    /// trigger word; `IN_TAIL` when the last TAIL_CHARS do and the answer is longer than HEAD_CHARS but shorter
    /// than SHORT_WORDS spaces. 0: the answer is not a refusal, without a regex.
    #[must_use]
    pub fn triggered(&self) -> u8 {
        if self.length == 0 {
            return 0;
        }
        let mut found = 0;
        let head = &self.head[..byte_at(&self.head, HEAD_CHARS)];
        if has_trigger(&head.to_lowercase()) {
            found |= IN_HEAD;
        }
        if self.length > HEAD_CHARS && self.spaces < SHORT_WORDS {
            // Lower-cased first, then cut, as the scorer does: lower-casing can change a text's length.
            let end = self.tail.to_lowercase();
            let cut = end.chars().count().saturating_sub(TAIL_CHARS);
            if has_trigger(&end[byte_at(&end, cut)..]) {
                found |= IN_TAIL;
            }
        }
        found
    }
}

/// The byte offset of `text`'s `chars`-th character (its length when it has fewer).
fn byte_at(text: &str, chars: usize) -> usize {
    text.char_indices()
        .nth(chars)
        .map_or(text.len(), |(at, _)| at)
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    fn fed(parts: &[&str]) -> Edges {
        let mut edges = Edges::default();
        for part in parts {
            edges.feed(part);
        }
        edges
    }

    #[test]
    fn the_edges_of_a_stream_are_those_of_the_whole_text() {
        for word in ["word", "wörd"] {
            let mut text = String::new();
            for i in 0..300 {
                write!(text, "{word}{i} ").expect("a String takes any text");
            }
            let whole = fed(&[&text]);
            let pieces: Vec<String> = text
                .chars()
                .collect::<Vec<_>>()
                .chunks(7)
                .map(|c| c.iter().collect())
                .collect();
            let streamed = fed(&pieces.iter().map(String::as_str).collect::<Vec<_>>());
            assert_eq!(whole, streamed);
            assert_eq!(whole.length(), text.chars().count());
            assert_eq!(whole.spaces(), 300);
            assert_eq!(whole.head().chars().count(), 2 * HEAD_CHARS);
            assert!(text.starts_with(whole.head()));
            assert_eq!(whole.tail().chars().count(), 2 * TAIL_CHARS);
            assert!(text.ends_with(whole.tail()));
        }
    }

    #[test]
    fn a_plain_answer_triggers_nothing() {
        assert_eq!(fed(&["Hello! How can I help you today?"]).triggered(), 0);
        assert_eq!(fed(&[]).triggered(), 0);
    }

    #[test]
    fn a_decline_at_the_start_triggers_the_head() {
        assert_eq!(
            fed(&["I ", "CAN\u{2019}T help with that."]).triggered(),
            IN_HEAD
        );
    }

    #[test]
    fn the_tail_counts_only_for_an_answer_longer_than_the_head_and_short_in_words() {
        let explained = format!("{}. I will not do it.", "x".repeat(400));
        assert_eq!(fed(&[&explained]).triggered(), IN_TAIL);
        let short = "Sure, here it is. I will not do it.";
        assert_eq!(fed(&[short]).triggered(), IN_HEAD);
        let wordy = format!("{}I will not do it.", "a ".repeat(SHORT_WORDS + HEAD_CHARS));
        assert_eq!(fed(&[&wordy]).triggered(), 0);
    }
}
