//! Streaming redaction: each push scans the held text plus some released context and releases what can no longer
//! be part of an unseen item (see the module documentation of `pii` for the cut rules).

use std::collections::HashMap;

use regex_automata::Input;

use super::patterns::compiled;
use super::redact::{apply, Restorer, Vault};
use super::scan::Scanner;
use super::{ByteMatch, PiiKind, RedactMode, RedactPolicy};

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
    use proptest::prelude::*;

    use super::super::test_support::sample_text;
    use super::*;

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

    proptest! {
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
