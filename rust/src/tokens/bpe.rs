//! The byte-pair encoder: tiktoken's ids for one pre-tokenized piece, by the backtracking algorithm of GitHub's `bpe`
//! crate (MIT licence; `backtrack_encoder.rs` and `is_valid_token_pair` ported here), over only the tables that
//! algorithm reads. `build.rs` writes those tables from bpe-openai's vocabularies; loading them takes ~17 MB for
//! o200k_base, where bpe-openai's whole `BytePairEncoding` (three automata and two hash maps, for encoders the
//! gateway never runs) took 36 MB.

use std::hash::BuildHasher;

use aneubeck_daachorse::DoubleArrayAhoCorasick;
use rustc_hash::FxBuildHasher;

/// One vocabulary's tables.
pub(super) struct Bpe {
    /// Every token's bytes in a row; token `id` is `all_tokens[token_starts[id]..token_starts[id + 1]]`.
    all_tokens: Box<[u8]>,
    token_starts: Box<[u32]>,
    /// The two tokens BPE merged into each token; `[id, id]` for a token no merge made.
    split: Box<[[u32; 2]]>,
    /// Each token's longest proper prefix that is a token, or `NO_TOKEN`.
    next_prefix: Box<[u32]>,
    /// Finds the longest token a text starts with.
    longest: DoubleArrayAhoCorasick<u32>,
    /// Whole token bytes to id: most pieces are one token (tiktoken takes the same shortcut), and this answers them
    /// without the backtracking encoder's two allocations.
    whole: IdTable,
    /// A pair of tokens to the token BPE merges them into, if any.
    merges: IdTable,
}

const NO_TOKEN: u32 = u32::MAX;

impl Bpe {
    /// The tables as `build.rs` wrote them. Runs once per vocabulary, from bytes embedded at build time: a layout
    /// error is a build defect, so it panics.
    pub(super) fn load(bytes: &[u8]) -> Self {
        let mut rest = bytes;
        let token_starts = take_u32s(&mut rest);
        let split: Box<[[u32; 2]]> = take_u32s(&mut rest)
            .chunks_exact(2)
            .map(|pair| [pair[0], pair[1]])
            .collect();
        let next_prefix = take_u32s(&mut rest);
        let len = take_len(&mut rest);
        let all_tokens: Box<[u8]> = rest[..len].into();
        // SAFETY: build.rs wrote these bytes with `DoubleArrayAhoCorasick::serialize` of the same daachorse version
        // (pinned in Cargo.toml), and they are embedded unchanged; deserializing them trusts that layout.
        let (longest, tail) =
            unsafe { DoubleArrayAhoCorasick::<u32>::deserialize_unchecked(&rest[len..]) };
        assert!(tail.is_empty(), "trailing bytes after the automaton");
        let ids = 0..u32::try_from(token_starts.len() - 1).expect("under 4G tokens");
        let whole = IdTable::new(
            ids.len(),
            ids.clone()
                .map(|id| (id, hash(token_bytes(&all_tokens, &token_starts, id)))),
        );
        let made_by_merges: Vec<u32> = ids.filter(|&id| split[id as usize] != [id, id]).collect();
        let merges = IdTable::new(
            made_by_merges.len(),
            made_by_merges
                .iter()
                .map(|&id| (id, hash(split[id as usize]))),
        );
        Self {
            all_tokens,
            token_starts,
            split,
            next_prefix,
            longest,
            whole,
            merges,
        }
    }

    pub(super) fn num_tokens(&self) -> usize {
        self.token_starts.len() - 1
    }

    /// The bytes of token `id`; panics past `num_tokens`.
    pub(super) fn token_bytes(&self, id: u32) -> &[u8] {
        token_bytes(&self.all_tokens, &self.token_starts, id)
    }

    fn token_len(&self, id: u32) -> usize {
        let id = id as usize;
        (self.token_starts[id + 1] - self.token_starts[id]) as usize
    }

    /// The id of the token whose bytes are exactly `piece`, if there is one.
    pub(super) fn whole_token(&self, piece: &[u8]) -> Option<u32> {
        self.whole
            .find(hash(piece), |id| self.token_bytes(id) == piece)
    }

    /// The number of tokens of one pre-tokenized piece.
    pub(super) fn count(&self, piece: &[u8]) -> usize {
        if self.whole_token(piece).is_some() {
            1
        } else {
            self.backtrack(piece).len()
        }
    }

    /// The ids of one pre-tokenized piece, appended to `ids`.
    pub(super) fn encode_into(&self, piece: &[u8], ids: &mut Vec<u32>) {
        match self.whole_token(piece) {
            Some(id) => ids.push(id),
            None => ids.extend(self.backtrack(piece)),
        }
    }

    /// BPE's ids for `text`: take the longest token at the current position unless BPE would have merged it
    /// differently with the token before; then try its shorter prefixes; with none left, step back one token and mark
    /// the position unreachable. Linear in practice: each position is left at most once.
    fn backtrack(&self, text: &[u8]) -> Vec<u32> {
        let mut tokens: Vec<u32> = Vec::with_capacity(text.len() / 3);
        let mut reachable = BitField::new(text.len() + 1);
        let mut pos = 0;
        let mut next = self.longest_prefix(text);
        while let Some(mut token) = next {
            let last = tokens.last().copied();
            loop {
                let end = pos + self.token_len(token);
                if reachable.is_set(end) && last.is_none_or(|last| self.is_valid_pair(last, token))
                {
                    tokens.push(token);
                    pos = end;
                    next = self.longest_prefix(&text[end..]);
                    break;
                }
                let shorter = self.next_prefix[token as usize];
                if shorter != NO_TOKEN {
                    token = shorter;
                    continue;
                }
                reachable.clear(pos);
                tokens.pop();
                pos -= last.map_or(0, |last| self.token_len(last));
                next = last;
                break;
            }
        }
        tokens
    }

    /// The longest token `text` starts with (every single byte is a token, so the leftmost match starts at 0).
    fn longest_prefix(&self, text: &[u8]) -> Option<u32> {
        self.longest
            .leftmost_find_iter(text)
            .map(|m| m.value())
            .next()
    }

    fn merged(&self, left: u32, right: u32) -> Option<u32> {
        self.merges.find(hash([left, right]), |id| {
            self.split[id as usize] == [left, right]
        })
    }

    /// Whether BPE, given the bytes of `token1` then `token2`, would keep these two tokens: it would not if some merge
    /// across their boundary ranks before the merges that made them. Undoes the later merge of the two, step by step,
    /// checking at each step the pair that now meets at the boundary.
    fn is_valid_pair(&self, mut token1: u32, mut token2: u32) -> bool {
        // The largest token that may still be chosen across the boundary.
        let mut limit = u32::MAX;
        loop {
            if self
                .merged(token1, token2)
                .is_some_and(|combined| combined < limit)
            {
                return false;
            }
            if token1 > token2 {
                limit = token1;
                token1 = self.split[token1 as usize][1];
                if token1 == limit {
                    limit = token2 + 1;
                    token2 = self.split[token2 as usize][0];
                    if token2 + 1 == limit {
                        return true;
                    }
                }
            } else {
                limit = token2 + 1;
                token2 = self.split[token2 as usize][0];
                if token2 + 1 == limit {
                    limit = token1;
                    token1 = self.split[token1 as usize][1];
                    if token1 == limit {
                        return true;
                    }
                }
            }
        }
    }
}

fn token_bytes<'a>(all_tokens: &'a [u8], token_starts: &[u32], id: u32) -> &'a [u8] {
    let id = id as usize;
    &all_tokens[token_starts[id] as usize..token_starts[id + 1] as usize]
}

fn hash(key: impl std::hash::Hash) -> usize {
    #[allow(clippy::cast_possible_truncation)] // a hash: its low bits pick the slot
    let hash = FxBuildHasher.hash_one(key) as usize;
    hash
}

fn take_len(rest: &mut &[u8]) -> usize {
    let (len, tail) = rest.split_at(4);
    *rest = tail;
    u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize
}

fn take_u32s(rest: &mut &[u8]) -> Box<[u32]> {
    let len = take_len(rest);
    let (values, tail) = rest.split_at(len * 4);
    *rest = tail;
    values
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect()
}

/// Ids in an open-addressing table keyed by what each id stands for: a slot holds the id alone and a lookup
/// compares against the id's own key (its bytes, its pair), so a slot costs 4 bytes where a map of (key, id) pairs
/// costs the key again plus the map's own overhead (o200k_base's whole tokens: 2 MB against 6.5 MB). Half full at
/// most, so probes stay short; keys are short and trusted, so rustc's Fx hash, not SipHash.
struct IdTable {
    slots: Box<[u32]>,
}

impl IdTable {
    const EMPTY: u32 = u32::MAX;

    fn new(len: usize, entries: impl Iterator<Item = (u32, usize)>) -> Self {
        let mut slots = vec![Self::EMPTY; (len * 2).next_power_of_two()].into_boxed_slice();
        let mask = slots.len() - 1;
        for (id, hash) in entries {
            let mut slot = hash & mask;
            while slots[slot] != Self::EMPTY {
                slot = (slot + 1) & mask;
            }
            slots[slot] = id;
        }
        Self { slots }
    }

    fn find(&self, hash: usize, is_key_of: impl Fn(u32) -> bool) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut slot = hash & mask;
        loop {
            let id = self.slots[slot];
            if id == Self::EMPTY {
                return None;
            }
            if is_key_of(id) {
                return Some(id);
            }
            slot = (slot + 1) & mask;
        }
    }
}

/// One bit per position of a text, all set at first: a cleared bit marks a position no valid encoding reaches.
struct BitField {
    words: Vec<u64>,
}

impl BitField {
    fn new(bits: usize) -> Self {
        Self {
            words: vec![u64::MAX; bits.div_ceil(64)],
        }
    }

    fn is_set(&self, bit: usize) -> bool {
        self.words[bit / 64] & (1 << (bit % 64)) != 0
    }

    fn clear(&mut self, bit: usize) {
        self.words[bit / 64] &= !(1 << (bit % 64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o200k() -> Bpe {
        Bpe::load(include_bytes!(concat!(env!("OUT_DIR"), "/o200k_base.bpe")))
    }

    #[test]
    fn every_token_encodes_to_itself_without_the_whole_token_shortcut() {
        // The invariant bpe checks when it builds a vocabulary: it holds only if the tables were read back intact
        // (a shifted or swapped array breaks it for most tokens).
        let bpe = o200k();
        for id in (0..u32::try_from(bpe.num_tokens()).unwrap()).step_by(7) {
            assert_eq!(bpe.backtrack(bpe.token_bytes(id)), [id], "token {id}");
        }
    }

    #[test]
    fn whole_tokens_and_merges_are_found_and_others_are_not() {
        let bpe = o200k();
        let hello = bpe.whole_token(b"hello").expect("a token");
        assert_eq!(bpe.token_bytes(hello), b"hello");
        assert_eq!(bpe.whole_token(b"hello world, this is not one token"), None);
        let [left, right] = bpe.split[hello as usize];
        assert_eq!(bpe.merged(left, right), Some(hello));
        assert_eq!(
            [bpe.token_bytes(left), bpe.token_bytes(right)].concat(),
            b"hello"
        );
        assert_eq!(bpe.whole_token(b"hellohello"), None);
        assert_eq!(bpe.merged(hello, hello), None, "no token, so no merge");
        assert_eq!(
            bpe.count(b"hellohellohello"),
            bpe.backtrack(b"hellohellohello").len()
        );
    }
}
