//! Exact BPE token counting for OpenAI's `cl100k_base` and `o200k_base`, with the same ids as tiktoken.
//!
//! The vocabularies are bpe-openai's, embedded in the binary at build time (nothing is read or downloaded at run
//! time) in the form `build.rs` writes, and the encoder is bpe's backtracking algorithm (`bpe.rs`), which yields
//! tiktoken's ids (checked against tiktoken on a varied corpus by `tests/core/test_tokens.py`) while counting about
//! twice as fast. On top of it this module adds what the gateway needs: special tokens (plain text unless allowed,
//! as tiktoken's `disallowed_special=()`), lossy decoding, batches spread over threads and chat counting with
//! OpenAI's per-message overheads.

mod bpe;
mod regex_split;

use std::num::NonZeroUsize;
use std::sync::OnceLock;
use std::thread;

use crate::error::CoreError;
use crate::pages;
use bpe::Bpe;
use regex_split::RegexSplit;

/// Below this many bytes a batch is counted on the calling thread. Starting and joining a scoped thread costs tens
/// of microseconds on a busy 2-core machine, while 64 KiB of varied text takes ~0.5 ms to count (~130 MB/s), so the
/// split pays from here on (`benches/core/bench_tokens.py::test_count_batch`, docs/benchmarks/tokens.md).
pub const PARALLEL_MIN_BYTES: usize = 64 * 1024;

/// The encodings this module knows, as tiktoken names them.
pub const ENCODING_NAMES: [&str; 2] = ["cl100k_base", "o200k_base"];

const CL100K_SPECIAL: [(&str, u32); 5] = [
    ("<|endoftext|>", 100_257),
    ("<|fim_prefix|>", 100_258),
    ("<|fim_middle|>", 100_259),
    ("<|fim_suffix|>", 100_260),
    ("<|endofprompt|>", 100_276),
];
const O200K_SPECIAL: [(&str, u32); 2] = [("<|endoftext|>", 199_999), ("<|endofprompt|>", 200_018)];

/// One of the BPE encodings tiktoken ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Cl100kBase,
    O200kBase,
}

impl Encoding {
    /// The encoding called `name` (`"cl100k_base"` or `"o200k_base"`).
    pub fn from_name(name: &str) -> Result<Self, CoreError> {
        match name {
            "cl100k_base" => Ok(Self::Cl100kBase),
            "o200k_base" => Ok(Self::O200kBase),
            other => Err(CoreError::InvalidArgument(format!(
                "unknown encoding {other:?}; expected one of {}",
                ENCODING_NAMES.join(", ")
            ))),
        }
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Cl100kBase => "cl100k_base",
            Self::O200kBase => "o200k_base",
        }
    }

    /// The special tokens of this encoding and their ids, as in `tiktoken_ext.openai_public`.
    #[must_use]
    pub fn special_tokens(self) -> &'static [(&'static str, u32)] {
        match self {
            Self::Cl100kBase => &CL100K_SPECIAL,
            Self::O200kBase => &O200K_SPECIAL,
        }
    }

    /// The largest token id plus one (special tokens included), as tiktoken's `n_vocab`.
    #[must_use]
    pub fn n_vocab(self) -> u32 {
        self.special_tokens()
            .iter()
            .map(|&(_, id)| id + 1)
            .max()
            .unwrap_or(0)
    }

    fn cell(self) -> &'static OnceLock<Vocab> {
        match self {
            Self::Cl100kBase => &CL100K,
            Self::O200kBase => &O200K,
        }
    }

    /// The vocabulary, loaded by the first call that needs it (o200k_base ~35 ms, cl100k_base ~12 ms); a thread that
    /// asks while another loads it waits for that load. Once built from the embedded tables, their serialized bytes
    /// leave the resident set (o200k_base 12 MB, cl100k_base 6 MB): nothing reads them again.
    fn vocab(self) -> &'static Vocab {
        let mut built = false;
        let vocab = self.cell().get_or_init(|| {
            built = true;
            match self {
                Self::Cl100kBase => Vocab {
                    bpe: Bpe::load(include_bytes!(concat!(env!("OUT_DIR"), "/cl100k_base.bpe"))),
                    pattern: Pattern::Cl100k,
                    regex: RegexSplit::cl100k(),
                },
                Self::O200kBase => Vocab {
                    bpe: Bpe::load(include_bytes!(concat!(env!("OUT_DIR"), "/o200k_base.bpe"))),
                    pattern: Pattern::O200k,
                    regex: RegexSplit::o200k(),
                },
            }
        });
        if built {
            let _released = pages::release_read_only_data();
        }
        vocab
    }

    /// Whether the vocabulary is loaded: a binding that holds an interpreter lock releases it around a first load.
    #[must_use]
    pub fn is_loaded(self) -> bool {
        self.cell().get().is_some()
    }

    /// Load the vocabulary now rather than on the first call that needs it.
    pub fn load(self) {
        let _ = self.vocab();
    }

    /// The special tokens named in `allowed`, resolved to their ids.
    pub fn resolve_special(
        self,
        allowed: &AllowedSpecial<'_>,
    ) -> Result<Vec<(&'static str, u32)>, CoreError> {
        match allowed {
            AllowedSpecial::None => Ok(Vec::new()),
            AllowedSpecial::All => Ok(self.special_tokens().to_vec()),
            AllowedSpecial::Only(names) => names
                .iter()
                .map(|name| {
                    self.special_tokens()
                        .iter()
                        .copied()
                        .find(|(text, _)| text == name)
                        .ok_or_else(|| {
                            let valid: Vec<&str> = self
                                .special_tokens()
                                .iter()
                                .map(|&(text, _)| text)
                                .collect();
                            CoreError::InvalidArgument(format!(
                                "{name:?} is not a special token of {}; expected some of {}",
                                self.name(),
                                valid.join(", ")
                            ))
                        })
                })
                .collect(),
        }
    }
}

/// What counting needs of one encoding: its byte-pair encoder, which of tiktoken's two split patterns it uses, and
/// that pattern's regex for what the ASCII fast path leaves, built from the embedded tables by [`Encoding::vocab`].
struct Vocab {
    bpe: Bpe,
    pattern: Pattern,
    regex: RegexSplit,
}

static CL100K: OnceLock<Vocab> = OnceLock::new();
static O200K: OnceLock<Vocab> = OnceLock::new();

impl Vocab {
    /// The pre-tokenization pieces of `text`, as tiktoken's split regex cuts them.
    fn split<'t>(&'t self, text: &'t str) -> Pieces<'t> {
        Pieces {
            vocab: self,
            text,
            pos: 0,
        }
    }

    /// The piece at the start of `rest`, by the regex (exact for any text, ~120 MB/s).
    fn regex_piece(&self, rest: &str) -> usize {
        match self.regex.piece_len(rest) {
            // Every char matches one of the patterns; should that ever fail, a one-char piece keeps the text whole.
            0 => rest.chars().next().map_or(rest.len(), char::len_utf8),
            len => len,
        }
    }
}

/// tiktoken's two pre-tokenization patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pattern {
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    Cl100k,
    /// As cl100k, but letters split at case changes with contractions attached, and `/` joins the punctuation's
    /// trailing newlines: `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|…)?|…`
    O200k,
}

/// Pre-tokenization with an ASCII fast path. The regex costs about a third of the count; for ASCII this hand-written
/// matcher gives the regex's exact answer several times faster. It answers only when every byte the regex could
/// look at is ASCII: the piece, the three bytes after it (a contraction looks ahead that far; non-ASCII letters and
/// case folds such as `ſ` for `s` live beyond ASCII), and for whitespace the whole run and the byte after it
/// (`\s*[\r\n]+` and `\s+(?!\S)` backtrack over the run). Anywhere else the piece comes from the regex.
struct Pieces<'t> {
    vocab: &'t Vocab,
    text: &'t str,
    pos: usize,
}

impl<'t> Iterator for Pieces<'t> {
    type Item = &'t str;

    fn next(&mut self) -> Option<&'t str> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        if start >= bytes.len() {
            return None;
        }
        let end = match ascii_piece(self.vocab.pattern, bytes, start) {
            Some(end) if bytes[end..bytes.len().min(end + 3)].is_ascii() => end,
            _ => start + self.vocab.regex_piece(&self.text[start..]),
        };
        // An empty piece would make every caller loop forever on the same position.
        debug_assert!(end > start, "a piece at {start} ends at {end}");
        self.pos = end;
        Some(&self.text[start..end])
    }
}

fn is_ws(b: u8) -> bool {
    // Unicode White_Space within ASCII (regex `\s`): \t \n \v \f \r and space.
    matches!(b, b'\t'..=b'\r' | b' ')
}

fn is_newline(b: u8) -> bool {
    b == b'\r' || b == b'\n'
}

/// `[^\s\p{L}\p{N}]` within ASCII.
fn is_punct(b: u8) -> bool {
    b.is_ascii() && !is_ws(b) && !b.is_ascii_alphanumeric()
}

/// `[^\r\n\p{L}\p{N}]` within ASCII: the optional char before a word.
fn is_word_prefix(b: u8) -> bool {
    b.is_ascii() && !is_newline(b) && !b.is_ascii_alphanumeric()
}

/// The end of the ASCII run of `bytes` from `i` whose bytes satisfy `f`.
fn run_end(bytes: &[u8], mut i: usize, f: impl Fn(u8) -> bool) -> usize {
    while i < bytes.len() && f(bytes[i]) {
        i += 1;
    }
    i
}

/// The length of the contraction (`(?i:'s|'t|'re|'ve|'m|'ll|'d)`) at `i`, or 0.
fn contraction(bytes: &[u8], i: usize) -> usize {
    if bytes.get(i) != Some(&b'\'') {
        return 0;
    }
    let lower = |k: usize| bytes.get(i + k).map(u8::to_ascii_lowercase);
    match (lower(1), lower(2)) {
        (Some(b's' | b't' | b'm' | b'd'), _) => 2,
        (Some(b'r' | b'v'), Some(b'e')) | (Some(b'l'), Some(b'l')) => 3,
        _ => 0,
    }
}

/// The end of the piece at `start` if the bytes that decide it are ASCII; `None` hands the piece to the regex.
fn ascii_piece(pattern: Pattern, bytes: &[u8], start: usize) -> Option<usize> {
    let first = bytes[start];
    if !first.is_ascii() {
        return None;
    }
    let next = bytes.get(start + 1).copied();
    // Letters, with the optional non-letter, non-digit, non-newline char before them.
    let letters_at = if first.is_ascii_alphabetic() {
        Some(start)
    } else if is_word_prefix(first) && next.is_some_and(|b| b.is_ascii_alphabetic()) {
        Some(start + 1)
    } else {
        None
    };
    match pattern {
        Pattern::Cl100k => {
            let n = contraction(bytes, start);
            if n > 0 {
                return Some(start + n);
            }
            if let Some(at) = letters_at {
                return Some(run_end(bytes, at, |b| b.is_ascii_alphabetic()));
            }
        }
        Pattern::O200k => {
            if let Some(at) = letters_at {
                // Upper* Lower+ or else Upper+ Lower*: in ASCII either way uppercase then lowercase.
                let end = run_end(bytes, run_end(bytes, at, |b| b.is_ascii_uppercase()), |b| {
                    b.is_ascii_lowercase()
                });
                return Some(end + contraction(bytes, end));
            }
        }
    }
    if first.is_ascii_digit() {
        let end = run_end(bytes, start, |b| b.is_ascii_digit());
        return Some(end.min(start + 3));
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*` (o200k: `[\r\n/]*`).
    let punct_at = if is_punct(first) {
        Some(start)
    } else if first == b' ' && next.is_some_and(is_punct) {
        Some(start + 1)
    } else {
        None
    };
    if let Some(at) = punct_at {
        let end = run_end(bytes, at, is_punct);
        return Some(match pattern {
            Pattern::Cl100k => run_end(bytes, end, is_newline),
            Pattern::O200k => run_end(bytes, end, |b| is_newline(b) || b == b'/'),
        });
    }
    // Whitespace: `\s*[\r\n]+`, then `\s+(?!\S)` (`\s+$` at the end), then `\s+`.
    let run = run_end(bytes, start, is_ws);
    if run < bytes.len() && !bytes[run].is_ascii() {
        return None;
    }
    if let Some(last_newline) = bytes[start..run].iter().rposition(|&b| is_newline(b)) {
        return Some(start + last_newline + 1);
    }
    if run == bytes.len() || run - start == 1 {
        return Some(run);
    }
    Some(run - 1)
}

/// Which special-token texts encode to their special ids; all others are plain text.
#[derive(Debug, Clone, Copy, Default)]
pub enum AllowedSpecial<'a> {
    /// Every special-token text is plain text (tiktoken's `encode_ordinary`).
    #[default]
    None,
    /// Every special token of the encoding (tiktoken's `allowed_special="all"`).
    All,
    /// Only these (each must be a special token of the encoding).
    Only(&'a [&'a str]),
}

/// The token ids of `text`, every special-token text treated as plain text.
#[must_use]
pub fn encode_ordinary(encoding: Encoding, text: &str) -> Vec<u32> {
    let mut ids = Vec::with_capacity(text.len() / 3);
    encode_into(encoding, text, &mut ids);
    ids
}

fn encode_into(encoding: Encoding, text: &str, ids: &mut Vec<u32>) {
    let vocab = encoding.vocab();
    for piece in vocab.split(text) {
        vocab.bpe.encode_into(piece.as_bytes(), ids);
    }
}

/// The token ids of `text`; texts of the `allowed` special tokens become their special ids.
pub fn encode(
    encoding: Encoding,
    text: &str,
    allowed: &AllowedSpecial<'_>,
) -> Result<Vec<u32>, CoreError> {
    let specials = encoding.resolve_special(allowed)?;
    Ok(encode_with_specials(encoding, text, &specials))
}

/// Encode with already resolved special tokens: ordinary runs go through the BPE, special texts become their id.
fn encode_with_specials(
    encoding: Encoding,
    text: &str,
    specials: &[(&'static str, u32)],
) -> Vec<u32> {
    if specials.is_empty() {
        return encode_ordinary(encoding, text);
    }
    let mut ids = Vec::with_capacity(text.len() / 3);
    let mut start = 0;
    let mut search = 0;
    // Every special token starts with "<|", so the scan is a substring search for it plus a few prefix checks.
    while let Some(offset) = text[search..].find("<|") {
        let at = search + offset;
        if let Some(&(special, id)) = specials
            .iter()
            .find(|(special, _)| text[at..].starts_with(special))
        {
            encode_into(encoding, &text[start..at], &mut ids);
            ids.push(id);
            start = at + special.len();
            search = start;
        } else {
            search = at + 2;
        }
    }
    encode_into(encoding, &text[start..], &mut ids);
    ids
}

/// The number of tokens of `text`, every special-token text treated as plain text.
#[must_use]
pub fn count(encoding: Encoding, text: &str) -> usize {
    let vocab = encoding.vocab();
    vocab
        .split(text)
        .map(|piece| vocab.bpe.count(piece.as_bytes()))
        .sum()
}

/// The bytes of `ids`; an id that is neither a token nor a special token of the encoding is an error.
pub fn decode_bytes(encoding: Encoding, ids: &[u32]) -> Result<Vec<u8>, CoreError> {
    let bpe = &encoding.vocab().bpe;
    let n_ordinary = bpe.num_tokens();
    let mut bytes = Vec::with_capacity(ids.len() * 4);
    for &id in ids {
        if (id as usize) < n_ordinary {
            bytes.extend_from_slice(bpe.token_bytes(id));
        } else if let Some(&(special, _)) = encoding
            .special_tokens()
            .iter()
            .find(|&&(_, sid)| sid == id)
        {
            bytes.extend_from_slice(special.as_bytes());
        } else {
            return Err(CoreError::InvalidArgument(format!(
                "token id {id} is not in {} (ids are below {n_ordinary}, or one of its special tokens)",
                encoding.name()
            )));
        }
    }
    Ok(bytes)
}

/// The text of `ids`; byte sequences that are not valid UTF-8 (a token list cut inside a character) become U+FFFD,
/// as tiktoken's `decode(errors="replace")`.
pub fn decode(encoding: Encoding, ids: &[u32]) -> Result<String, CoreError> {
    let bytes = decode_bytes(encoding, ids)?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    })
}

/// Where a batch of texts of `lens` bytes is cut for `threads` threads: `[0, cuts.., lens.len()]`, a cut after the
/// text where the running byte count reaches each further share, so the chunks are contiguous and each one is at
/// most one text over an equal share.
fn chunk_bounds(lens: &[usize], threads: usize) -> Vec<usize> {
    let share = lens.iter().sum::<usize>().div_ceil(threads);
    let mut bounds = vec![0];
    let mut acc = 0;
    for (i, len) in lens.iter().enumerate() {
        acc += len;
        if acc >= share * bounds.len() && i + 1 < lens.len() {
            bounds.push(i + 1);
        }
    }
    bounds.push(lens.len());
    bounds
}

/// The cores this process may use, asked once: `available_parallelism` reads the cgroup's CPU quota from /proc and
/// /sys on every call (~20 µs here), which a chat of two short messages paid on every count.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| thread::available_parallelism().map_or(1, NonZeroUsize::get))
}

/// Apply `f` to every text, spread over the machine's cores when the batch holds enough bytes to pay for threads.
/// Chunks are contiguous and balanced by bytes, so the output keeps the input order.
fn map_batch<T, R, F>(texts: &[T], f: F) -> Vec<R>
where
    T: AsRef<str> + Sync,
    R: Send,
    F: Fn(&str) -> R + Sync,
{
    let total: usize = texts.iter().map(|text| text.as_ref().len()).sum();
    if total < PARALLEL_MIN_BYTES {
        return texts.iter().map(|text| f(text.as_ref())).collect();
    }
    let threads = cores().min(texts.len());
    if threads < 2 {
        return texts.iter().map(|text| f(text.as_ref())).collect();
    }
    let lens: Vec<usize> = texts.iter().map(|text| text.as_ref().len()).collect();
    let bounds = chunk_bounds(&lens, threads);
    let f = &f;
    thread::scope(|scope| {
        let handles: Vec<_> = bounds
            .windows(2)
            .map(|w| {
                let chunk = &texts[w[0]..w[1]];
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|text| f(text.as_ref()))
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        // A panic in a worker is a bug in the encoder; re-raise it on this thread rather than hide it.
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|payload| std::panic::resume_unwind(payload))
            })
            .collect()
    })
}

/// The token count of every text, in order.
#[must_use]
pub fn count_batch<T: AsRef<str> + Sync>(encoding: Encoding, texts: &[T]) -> Vec<usize> {
    map_batch(texts, |text| count(encoding, text))
}

/// The token ids of every text, in order.
pub fn encode_batch<T: AsRef<str> + Sync>(
    encoding: Encoding,
    texts: &[T],
    allowed: &AllowedSpecial<'_>,
) -> Result<Vec<Vec<u32>>, CoreError> {
    let specials = encoding.resolve_special(allowed)?;
    Ok(map_batch(texts, |text| {
        encode_with_specials(encoding, text, &specials)
    }))
}

/// One chat message as the chat format counts it: its role, optional author name and text.
#[derive(Debug, Clone, Copy)]
pub struct ChatMessage<'a> {
    pub role: &'a str,
    pub name: &'a str,
    pub text: &'a str,
}

impl AsRef<str> for ChatMessage<'_> {
    fn as_ref(&self) -> &str {
        self.text
    }
}

/// The fixed tokens a chat format adds (the cookbook's "How to count tokens with tiktoken").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatOverhead {
    /// Tokens wrapping every message (`<|start|>{role}\n ... <|end|>\n`): 3, or 4 for gpt-3.5-turbo-0301.
    pub per_message: i64,
    /// Tokens added when a message has a name: 1, or -1 for gpt-3.5-turbo-0301 (the name replaces the role).
    pub per_name: i64,
    /// Tokens priming the reply (`<|start|>assistant<|message|>`): 3.
    pub reply_priming: i64,
}

impl Default for ChatOverhead {
    fn default() -> Self {
        Self {
            per_message: 3,
            per_name: 1,
            reply_priming: 3,
        }
    }
}

/// The prompt tokens of a chat: every role, name and text counted, plus the format's fixed overheads. Large chats
/// are counted over several threads.
#[must_use]
pub fn count_chat(
    encoding: Encoding,
    messages: &[ChatMessage<'_>],
    overhead: ChatOverhead,
) -> usize {
    let mut fixed = overhead.reply_priming;
    let mut short: usize = 0;
    for message in messages {
        fixed += overhead.per_message;
        short += count(encoding, message.role);
        if !message.name.is_empty() {
            fixed += overhead.per_name;
            short += count(encoding, message.name);
        }
    }
    let texts: usize = count_batch(encoding, messages).into_iter().sum();
    let total = i64::try_from(short + texts)
        .unwrap_or(i64::MAX)
        .saturating_add(fixed);
    usize::try_from(total).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const BOTH: [Encoding; 2] = [Encoding::Cl100kBase, Encoding::O200kBase];

    /// `text` cut by the regex alone, the reference for the ASCII fast path.
    fn regex_split<'t>(vocab: &Vocab, text: &'t str) -> Vec<&'t str> {
        let mut pieces = Vec::new();
        let mut pos = 0;
        while pos < text.len() {
            let end = pos + vocab.regex_piece(&text[pos..]);
            pieces.push(&text[pos..end]);
            pos = end;
        }
        pieces
    }

    #[test]
    fn known_ids_match_tiktoken() {
        // Reference ids from tiktoken 0.12 (`enc.encode_ordinary`).
        assert_eq!(
            encode_ordinary(Encoding::Cl100kBase, "hello world"),
            vec![15339, 1917]
        );
        assert_eq!(
            encode_ordinary(Encoding::O200kBase, "hello world"),
            vec![24912, 2375]
        );
        assert_eq!(count(Encoding::Cl100kBase, ""), 0);
    }

    #[test]
    fn special_text_is_plain_unless_allowed() {
        let text = "a<|endoftext|>b";
        for enc in BOTH {
            let plain = encode(enc, text, &AllowedSpecial::None).unwrap();
            assert!(
                !plain.iter().any(|&id| id >= enc.n_vocab() - 300),
                "{plain:?}"
            );
            assert_eq!(plain.len(), count(enc, text));
            let special = encode(enc, text, &AllowedSpecial::All).unwrap();
            let eot = enc.special_tokens()[0].1;
            assert_eq!(
                special,
                [
                    encode_ordinary(enc, "a"),
                    vec![eot],
                    encode_ordinary(enc, "b")
                ]
                .concat()
            );
            assert_eq!(decode(enc, &special).unwrap(), text);
        }
        let only = encode(
            Encoding::Cl100kBase,
            "<|fim_prefix|><|endoftext|>",
            &AllowedSpecial::Only(&["<|fim_prefix|>"]),
        )
        .unwrap();
        assert_eq!(only[0], 100_258);
        assert_eq!(
            &only[1..],
            encode_ordinary(Encoding::Cl100kBase, "<|endoftext|>").as_slice()
        );
        assert_eq!(
            encode(Encoding::O200kBase, "<|endofprompt|>", &AllowedSpecial::All).unwrap(),
            vec![200_018]
        );
    }

    #[test]
    fn names_and_vocabulary_sizes_are_tiktoken_s() {
        for enc in BOTH {
            assert_eq!(Encoding::from_name(enc.name()).unwrap(), enc);
        }
        assert_eq!(ENCODING_NAMES, BOTH.map(Encoding::name));
        // tiktoken's `n_vocab`: the largest special id plus one.
        assert_eq!(Encoding::Cl100kBase.n_vocab(), 100_277);
        assert_eq!(Encoding::O200kBase.n_vocab(), 200_019);
    }

    #[test]
    fn errors_name_the_fix() {
        let err = Encoding::from_name("p50k_base").unwrap_err();
        assert!(err.to_string().contains("cl100k_base, o200k_base"), "{err}");
        let err = encode(
            Encoding::O200kBase,
            "x",
            &AllowedSpecial::Only(&["<|fim_prefix|>"]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("<|endoftext|>"), "{err}");
        assert!(decode(Encoding::Cl100kBase, &[100_256]).is_err());
        assert!(decode(Encoding::Cl100kBase, &[u32::MAX]).is_err());
        assert_eq!(
            decode(Encoding::Cl100kBase, &[100_276]).unwrap(),
            "<|endofprompt|>"
        );
    }

    #[test]
    fn decode_of_a_cut_character_is_lossy() {
        let ids = encode_ordinary(Encoding::Cl100kBase, "é");
        let bytes = decode_bytes(Encoding::Cl100kBase, &ids).unwrap();
        assert_eq!(bytes, "é".as_bytes());
        // "🦀" is several byte tokens in cl100k; dropping the last leaves an incomplete character.
        let crab = encode_ordinary(Encoding::Cl100kBase, "🦀");
        assert!(crab.len() > 1);
        let text = decode(Encoding::Cl100kBase, &crab[..crab.len() - 1]).unwrap();
        assert!(text.contains('\u{FFFD}'), "{text:?}");
    }

    #[test]
    fn batches_keep_order_and_agree_with_single_calls() {
        // Enough bytes to take the threaded path, with uneven sizes so the chunk cuts fall mid-batch.
        let texts: Vec<String> = (0..300)
            .map(|i| format!("{i} {} ünïcødé 漢字 🦀\n", "word ".repeat(i % 97 * 7)))
            .collect();
        assert!(texts.iter().map(String::len).sum::<usize>() > PARALLEL_MIN_BYTES);
        for enc in BOTH {
            let counts = count_batch(enc, &texts);
            let ids = encode_batch(enc, &texts, &AllowedSpecial::None).unwrap();
            assert_eq!((counts.len(), ids.len()), (texts.len(), texts.len()));
            for ((text, n), ids) in texts.iter().zip(&counts).zip(&ids) {
                assert_eq!(*n, count(enc, text));
                assert_eq!(*ids, encode_ordinary(enc, text));
            }
        }
        assert!(count_batch::<&str>(Encoding::O200kBase, &[]).is_empty());
    }

    #[test]
    fn ascii_fast_path_splits_the_hard_cases_as_the_regex() {
        // Contractions (and letters right after one), whitespace runs before a word, at the end and before a
        // newline, digit runs longer than three, punctuation runs with newlines and slashes, case changes.
        let texts = [
            "you're they've we'll I'm it's he'd 'REa 'llama 'vex 'x",
            "a  b \t c   d\t\te",
            "end   ",
            "x \n\n  y\r\n z",
            "1234567 12 x1234",
            "hi!!\n\n/path//x ?!/\n",
            "camelCaseWORDSAnd MixedUP",
            // A whitespace run that goes on in non-ASCII whitespace: `\s*[\r\n]+` reaches the newline beyond it.
            "a\n    \u{3000}\nb",
            "a\n    \u{a0}x",
        ];
        for enc in BOTH {
            let vocab = enc.vocab();
            for text in texts {
                let ours: Vec<&str> = vocab.split(text).collect();
                let regex = regex_split(vocab, text);
                assert_eq!(ours, regex, "{enc:?} {text:?}");
            }
        }
    }

    #[test]
    fn batches_are_cut_into_contiguous_chunks_of_about_equal_bytes() {
        assert_eq!(chunk_bounds(&[10, 10, 10, 10], 2), [0, 2, 4]);
        assert_eq!(chunk_bounds(&[10, 10, 10, 10], 4), [0, 1, 2, 3, 4]);
        assert_eq!(
            chunk_bounds(&[5, 5, 5], 3),
            [0, 1, 2, 3],
            "a share reached exactly cuts there"
        );
        assert_eq!(chunk_bounds(&[40, 1, 1, 1, 1], 2), [0, 1, 5]);
        assert_eq!(
            chunk_bounds(&[1, 1, 1, 1, 40], 2),
            [0, 5],
            "no empty chunk after the last text"
        );
        assert_eq!(chunk_bounds(&[3, 3, 3, 3, 3, 3], 2), [0, 3, 6]);
        assert_eq!(chunk_bounds(&[7], 2), [0, 1]);
    }

    #[test]
    fn chat_overheads_follow_the_cookbook() {
        let messages = [
            ChatMessage {
                role: "system",
                name: "",
                text: "You are terse.",
            },
            ChatMessage {
                role: "user",
                name: "bob",
                text: "Hi",
            },
        ];
        let enc = Encoding::O200kBase;
        let content: usize = ["system", "You are terse.", "user", "bob", "Hi"]
            .iter()
            .map(|text| count(enc, text))
            .sum();
        assert_eq!(
            count_chat(enc, &messages, ChatOverhead::default()),
            content + 3 + 3 + 1 + 3
        );
        let old = ChatOverhead {
            per_message: 4,
            per_name: -1,
            reply_priming: 3,
        };
        assert_eq!(count_chat(enc, &messages, old), content + 4 + 4 - 1 + 3);
        assert_eq!(count_chat(enc, &[], ChatOverhead::default()), 3);
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(text in any::<String>()) {
            for enc in BOTH {
                let ids = encode_ordinary(enc, &text);
                prop_assert_eq!(ids.len(), count(enc, &text));
                prop_assert_eq!(decode(enc, &ids).unwrap(), text.clone());
            }
        }

        #[test]
        fn ascii_fast_path_splits_as_the_regex(
            text in "([ \t\n\r\x0b\x0c]|[a-zA-Z]{1,4}|[0-9]{1,5}|'[sStTmMdDrRvVlLeE]{0,2}|[.,/!?()\\-]|é|ſ|\u{a0}|\u{3000}|漢|٣|\u{301}|🦀){0,40}"
        ) {
            for enc in BOTH {
                let vocab = enc.vocab();
                let ours: Vec<&str> = vocab.split(&text).collect();
                let regex = regex_split(vocab, &text);
                prop_assert_eq!(ours, regex);
            }
        }

        #[test]
        fn whitespace_and_specials_round_trip(text in "[ \t\n\r\u{a0}\u{3000}a1<|>endoftxé漢🦀]{0,64}") {
            for enc in BOTH {
                let ids = encode(enc, &text, &AllowedSpecial::All).unwrap();
                prop_assert_eq!(decode(enc, &ids).unwrap(), text.clone());
            }
        }
    }
}
