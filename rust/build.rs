//! Writes the two vocabularies in the form the gateway's encoder loads (`src/tokens/bpe.rs`): only the tables the
//! backtracking encoder reads, as little-endian arrays.
//!
//! bpe-openai embeds each vocabulary as its whole `BytePairEncoding`, and deserializing it builds everything any of
//! bpe's encoders may read: three Aho-Corasick automata, two hash maps. The backtracking encoder, the only one the
//! gateway runs, reads one automaton and neither map (the whole-token table is the gateway's own, the pair map is
//! rebuilt from the split table), so o200k_base cost 36 MB of a process's memory where 17 MB does. Here, at build
//! time, bpe-openai's encoding is read back through its serde form into the fields the encoder needs; the others are
//! skipped unread. The field list mirrors bpe 0.2's struct, so bpe is pinned (`=0.2.3`); a reordered struct fails
//! this build or, field types agreeing, the exact-count tests against tiktoken.

use std::env;
use std::fs;
use std::path::PathBuf;

use serde::de::{Deserializer, IgnoredAny, Visitor};
use serde::Deserialize;

/// bpe 0.2.3's `BytePairEncoding`, field for field in its order (rmp-serde writes a struct as an array).
#[derive(Deserialize)]
struct BytePairEncodingFields {
    all_tokens: Vec<u8>,
    token_starts: Vec<u32>,
    _bytes_hash_to_token: IgnoredAny,
    split_table: Vec<(u32, u32)>,
    _pair_lookup: IgnoredAny,
    #[serde(deserialize_with = "bytes")]
    longest_searcher: Vec<u8>,
    _overlapping_searcher: IgnoredAny,
    _overlapping_searcher_rev: IgnoredAny,
    next_prefix_match: Vec<u32>,
    _hash_factor: IgnoredAny,
}

/// A serialized automaton: a msgpack bin.
fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    struct Bytes;
    impl Visitor<'_> for Bytes {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a serialized automaton's bytes")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
    }
    d.deserialize_bytes(Bytes)
}

fn push_u32s(out: &mut Vec<u8>, values: impl ExactSizeIterator<Item = u32>) {
    out.extend_from_slice(
        &u32::try_from(values.len())
            .expect("a table under 4G entries")
            .to_le_bytes(),
    );
    for value in values {
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// The layout `src/tokens/bpe.rs` reads: three length-prefixed u32 arrays (where each token's bytes start, the split
/// table as (left, right) pairs in a row, each token's next shorter prefix token), a length-prefixed byte array (every
/// token's bytes in a row), then the longest-match automaton in daachorse's own serialization.
fn write(name: &str, bpe: &bpe_openai::byte_pair_encoding::BytePairEncoding) {
    let serialized = rmp_serde::to_vec(bpe).expect("bpe serializes");
    let fields: BytePairEncodingFields = rmp_serde::from_slice(&serialized)
        .expect("bpe 0.2.3's field layout (see BytePairEncodingFields)");
    let mut out = Vec::new();
    push_u32s(&mut out, fields.token_starts.iter().copied());
    let pairs: Vec<u32> = fields
        .split_table
        .iter()
        .flat_map(|&(left, right)| [left, right])
        .collect();
    push_u32s(&mut out, pairs.into_iter());
    push_u32s(&mut out, fields.next_prefix_match.iter().copied());
    out.extend_from_slice(
        &u32::try_from(fields.all_tokens.len())
            .expect("under 4 GB")
            .to_le_bytes(),
    );
    out.extend_from_slice(&fields.all_tokens);
    out.extend_from_slice(&fields.longest_searcher);
    let mut path = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    path.push(format!("{name}.bpe"));
    fs::write(path, out).expect("OUT_DIR is writable");
}

fn main() {
    write("cl100k_base", &bpe_openai::cl100k_base().bpe);
    write("o200k_base", &bpe_openai::o200k_base().bpe);
    println!("cargo::rerun-if-changed=build.rs");
}
