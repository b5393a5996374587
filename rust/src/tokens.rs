//! Exact BPE token counting for OpenAI's encodings (cl100k_base, o200k_base), with the same ids as tiktoken.
//!
//! The byte-pair encoder is GitHub's `bpe-openai`, which embeds both vocabularies at build time (nothing is read or
//! downloaded at run time) and counts without materialising token ids, about twice as fast as tiktoken.

use std::str::FromStr;

use bpe_openai::Tokenizer;

use crate::error::CoreError;

/// Below this many texts a batch runs on the calling thread: spawning costs more than it saves.
const PARALLEL_BATCH_MIN_TEXTS: usize = 8;
/// ...and below this many bytes in all.
const PARALLEL_BATCH_MIN_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Cl100kBase,
    O200kBase,
}

impl FromStr for Encoding {
    type Err = CoreError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "cl100k_base" => Ok(Self::Cl100kBase),
            "o200k_base" => Ok(Self::O200kBase),
            other => Err(CoreError::InvalidArgument(format!(
                "unknown encoding {other:?}: use \"cl100k_base\" or \"o200k_base\""
            ))),
        }
    }
}

impl Encoding {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Cl100kBase => "cl100k_base",
            Self::O200kBase => "o200k_base",
        }
    }

    fn tokenizer(self) -> &'static Tokenizer {
        match self {
            Self::Cl100kBase => bpe_openai::cl100k_base(),
            Self::O200kBase => bpe_openai::o200k_base(),
        }
    }

    /// The special tokens and their ids, as tiktoken defines them for this encoding.
    #[must_use]
    pub fn special_tokens(self) -> &'static [(&'static str, u32)] {
        match self {
            Self::Cl100kBase => &[
                ("<|endoftext|>", 100_257),
                ("<|fim_prefix|>", 100_258),
                ("<|fim_middle|>", 100_259),
                ("<|fim_suffix|>", 100_260),
                ("<|endofprompt|>", 100_276),
            ],
            Self::O200kBase => &[("<|endoftext|>", 199_999), ("<|endofprompt|>", 200_018)],
        }
    }

    /// Ids below this are ordinary tokens; special ids sit above it.
    fn ordinary_tokens(self) -> u32 {
        u32::try_from(self.tokenizer().bpe.num_tokens()).unwrap_or(u32::MAX)
    }
}

/// Which special-token texts to encode as their special ids; all others are encoded as plain text (tiktoken's
/// `encode_ordinary`, which is what a chat's user content is).
#[derive(Debug, Clone, Default)]
pub enum AllowedSpecial {
    #[default]
    None,
    All,
    Some(Vec<String>),
}

impl AllowedSpecial {
    fn allows(&self, token: &str) -> bool {
        match self {
            Self::None => false,
            Self::All => true,
            Self::Some(names) => names.iter().any(|n| n == token),
        }
    }
}

#[must_use]
pub fn count(text: &str, encoding: Encoding) -> usize {
    encoding.tokenizer().count(text)
}

#[must_use]
pub fn encode(text: &str, encoding: Encoding, allowed: &AllowedSpecial) -> Vec<u32> {
    let tokenizer = encoding.tokenizer();
    if matches!(allowed, AllowedSpecial::None) {
        return tokenizer.encode(text);
    }
    let mut ids = Vec::new();
    let mut rest = text;
    while let Some((at, token, id)) = next_special(rest, encoding, allowed) {
        ids.extend(tokenizer.encode(&rest[..at]));
        ids.push(id);
        rest = &rest[at + token.len()..];
    }
    ids.extend(tokenizer.encode(rest));
    ids
}

/// The earliest allowed special token in `text`: (byte offset, token text, id).
fn next_special(
    text: &str,
    encoding: Encoding,
    allowed: &AllowedSpecial,
) -> Option<(usize, &'static str, u32)> {
    encoding
        .special_tokens()
        .iter()
        .filter(|(token, _)| allowed.allows(token))
        .filter_map(|&(token, id)| text.find(token).map(|at| (at, token, id)))
        .min_by_key(|&(at, _, _)| at)
}

/// Decodes ids to text; byte sequences that are not valid UTF-8 (a token cut mid-character) become U+FFFD, as in
/// tiktoken's `decode`.
pub fn decode(ids: &[u32], encoding: Encoding) -> Result<String, CoreError> {
    let ordinary = encoding.ordinary_tokens();
    let specials = encoding.special_tokens();
    let mut bytes = Vec::with_capacity(ids.len() * 4);
    let mut run_start = 0;
    for (i, &id) in ids.iter().enumerate() {
        if id < ordinary {
            continue;
        }
        let Some(&(token, _)) = specials.iter().find(|&&(_, special)| special == id) else {
            return Err(CoreError::InvalidArgument(format!(
                "token id {id} is not in {} (ids are below {ordinary}, or one of its special tokens)",
                encoding.name()
            )));
        };
        bytes.extend(encoding.tokenizer().bpe.decode_tokens(&ids[run_start..i]));
        bytes.extend_from_slice(token.as_bytes());
        run_start = i + 1;
    }
    bytes.extend(encoding.tokenizer().bpe.decode_tokens(&ids[run_start..]));
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Counts many texts, spread over the machine's threads when the batch is large enough to pay for it.
#[must_use]
pub fn count_batch(texts: &[String], encoding: Encoding) -> Vec<usize> {
    map_batch(texts, |text| count(text, encoding))
}

#[must_use]
pub fn encode_batch(texts: &[String], encoding: Encoding) -> Vec<Vec<u32>> {
    map_batch(texts, |text| encode(text, encoding, &AllowedSpecial::None))
}

fn map_batch<T: Send>(texts: &[String], f: impl Fn(&str) -> T + Sync) -> Vec<T> {
    let bytes: usize = texts.iter().map(String::len).sum();
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if threads == 1 || texts.len() < PARALLEL_BATCH_MIN_TEXTS || bytes < PARALLEL_BATCH_MIN_BYTES {
        return texts.iter().map(|t| f(t)).collect();
    }
    let chunk = texts.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = texts
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(|t| f(t)).collect::<Vec<T>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// One message of a chat, as counted: its role, optional name, and all of its text.
#[derive(Debug, Clone, Copy)]
pub struct ChatMessage<'a> {
    pub role: &'a str,
    pub name: &'a str,
    pub content: &'a str,
}

/// The per-message framing a model family adds to a chat (OpenAI's cookbook "How to count tokens with tiktoken").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatOverheads {
    pub per_message: i64,
    pub per_name: i64,
    /// Every reply is primed with `<|start|>assistant<|message|>`.
    pub reply: i64,
}

impl ChatOverheads {
    /// gpt-3.5-turbo-0613 and later, gpt-4, gpt-4o, o-series.
    pub const CURRENT: Self = Self {
        per_message: 3,
        per_name: 1,
        reply: 3,
    };
}

/// Tokens a chat costs as a prompt: each message's role, name and content plus the family's framing.
#[must_use]
pub fn count_chat(
    messages: &[ChatMessage<'_>],
    encoding: Encoding,
    overheads: ChatOverheads,
) -> usize {
    let tokenizer = encoding.tokenizer();
    let mut total = overheads.reply;
    for message in messages {
        total += overheads.per_message;
        total += as_i64(tokenizer.count(message.role)) + as_i64(tokenizer.count(message.content));
        if !message.name.is_empty() {
            total += as_i64(tokenizer.count(message.name)) + overheads.per_name;
        }
    }
    usize::try_from(total.max(0)).unwrap_or(0)
}

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_ids() {
        // Reference ids from tiktoken.
        assert_eq!(
            encode("hello world", Encoding::Cl100kBase, &AllowedSpecial::None),
            vec![15339, 1917]
        );
        assert_eq!(
            encode("hello world", Encoding::O200kBase, &AllowedSpecial::None),
            vec![24912, 2375]
        );
        assert_eq!(count("", Encoding::O200kBase), 0);
    }

    #[test]
    fn special_tokens_are_text_unless_allowed() {
        let text = "a<|endoftext|>b";
        let plain = encode(text, Encoding::Cl100kBase, &AllowedSpecial::None);
        assert!(!plain.contains(&100_257));
        let special = encode(text, Encoding::Cl100kBase, &AllowedSpecial::All);
        assert_eq!(special, vec![64, 100_257, 65]);
        assert_eq!(decode(&special, Encoding::Cl100kBase).unwrap(), text);
    }

    #[test]
    fn unknown_names_and_ids_are_errors() {
        assert!("p50k_base".parse::<Encoding>().is_err());
        assert!(decode(&[300_000], Encoding::O200kBase).is_err());
    }

    #[test]
    fn chat_overheads() {
        let messages = [
            ChatMessage {
                role: "system",
                name: "",
                content: "You are helpful.",
            },
            ChatMessage {
                role: "user",
                name: "ann",
                content: "hi",
            },
        ];
        let plain = count("system", Encoding::O200kBase)
            + count("You are helpful.", Encoding::O200kBase)
            + count("user", Encoding::O200kBase)
            + count("hi", Encoding::O200kBase)
            + count("ann", Encoding::O200kBase);
        assert_eq!(
            count_chat(&messages, Encoding::O200kBase, ChatOverheads::CURRENT),
            plain + 3 + 3 + 3 + 1
        );
    }

    #[test]
    fn batch_matches_single() {
        let texts: Vec<String> = (0..40)
            .map(|i| format!("text number {i} ").repeat(300))
            .collect();
        let expected: Vec<usize> = texts
            .iter()
            .map(|t| count(t, Encoding::Cl100kBase))
            .collect();
        assert_eq!(count_batch(&texts, Encoding::Cl100kBase), expected);
    }

    proptest! {
        #[test]
        fn decode_inverts_encode(text in "\\PC{0,200}") {
            for encoding in [Encoding::Cl100kBase, Encoding::O200kBase] {
                let ids = encode(&text, encoding, &AllowedSpecial::None);
                prop_assert_eq!(ids.len(), count(&text, encoding));
                prop_assert_eq!(decode(&ids, encoding).unwrap(), text.clone());
            }
        }
    }
}
