//! Exact scoring: dot products over contiguous rows (multiversioned: AVX2+FMA when the CPU has them) and the
//! top-k they feed.

use std::sync::OnceLock;

use super::Hit;
use crate::error::CoreError;

/// Rows scored per `scores` call in a scan: 256 rows x 384 floats (384 KiB) stream from memory while their 1 KiB of
/// scores stays in L1 for the threshold pass, and the floor rises between chunks.
const SCAN_CHUNK: usize = 256;

/// 16 independent accumulators: the loop the compiler turns into two 8-lane AVX chains (or four SSE ones). Plain
/// `+=` and `*`, not `mul_add`: outside an FMA-enabled function `mul_add` is a libm call per element (measured 20x
/// slower). Always inlined, so that the body is compiled with the AVX2 caller's target features.
#[allow(clippy::inline_always)]
#[inline(always)]
fn dot_generic(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[allow(clippy::inline_always)] // see dot_generic
#[inline(always)]
fn scores_generic(query: &[f32], data: &[f32], out: &mut Vec<f32>) {
    for row in data.chunks_exact(query.len()) {
        out.push(dot_generic(query, row));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn scores_avx2(query: &[f32], data: &[f32], out: &mut Vec<f32>) {
    scores_generic(query, data, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_generic(a, b)
}

fn has_avx2() -> bool {
    static AVX2: OnceLock<bool> = OnceLock::new();
    *AVX2.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// Appends the dot product of `query` with every row of `data` (rows of `query.len()` floats) to `out`.
pub fn scores(query: &[f32], data: &[f32], out: &mut Vec<f32>) {
    out.reserve(data.len() / query.len().max(1));
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA, checked at run time just above.
        unsafe { scores_avx2(query, data, out) };
        return;
    }
    scores_generic(query, data, out);
}

/// The dot product of two equal-length vectors.
#[must_use]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA, checked at run time just above.
        return unsafe { dot_avx2(a, b) };
    }
    dot_generic(a, b)
}

/// Scales `v` to unit length in place; refuses wrong lengths, non-finite values and the zero vector.
pub fn normalise(v: &mut [f32], dim: usize) -> Result<(), CoreError> {
    if v.len() != dim {
        return Err(CoreError::InvalidArgument(format!(
            "vector has {} dimensions; this index holds {dim}",
            v.len()
        )));
    }
    let norm_sq = dot(v, v);
    if !norm_sq.is_finite() || v.iter().any(|x| !x.is_finite()) {
        return Err(CoreError::InvalidArgument(
            "vector holds NaN or infinite values".into(),
        ));
    }
    if norm_sq <= f32::MIN_POSITIVE {
        return Err(CoreError::InvalidArgument(
            "a vector must be not all zeros (the zero vector has no direction)".into(),
        ));
    }
    let inv = 1.0 / norm_sq.sqrt();
    for x in v.iter_mut() {
        *x *= inv;
    }
    Ok(())
}

/// Keeps the best `k` hits at or above `min_score`, best first.
pub(super) struct TopK {
    k: usize,
    min_score: f32,
    hits: Vec<Hit>,
}

impl TopK {
    pub(super) fn new(k: usize, min_score: f32) -> Self {
        TopK {
            k,
            min_score,
            hits: Vec::with_capacity(k + 1),
        }
    }

    #[inline]
    fn floor(&self) -> f32 {
        if self.hits.len() < self.k {
            self.min_score
        } else {
            self.hits[self.k - 1].score
        }
    }

    #[inline]
    pub(super) fn push(&mut self, id: u64, score: f32) {
        if self.k == 0
            || score < self.min_score
            || (self.hits.len() == self.k && score <= self.floor())
        {
            return;
        }
        let at = self.hits.partition_point(|h| h.score >= score);
        self.hits.insert(at, Hit { id, score });
        self.hits.truncate(self.k);
    }

    pub(super) fn into_hits(self) -> Vec<Hit> {
        self.hits
    }
}

/// Rows x dim from which a scan splits across cores: 4M floats (16 MB, ~10k rows of 384) take ~1.5 ms on one core,
/// against ~30 us to start a scoped thread. Large scans are bound by memory bandwidth, which one core does not
/// saturate: OpenBLAS splits `data @ q` across cores the same way.
const PARALLEL_FLOATS: usize = 1 << 22;
/// At most this many threads per scan: past that the memory bus, not the cores, is the limit.
const MAX_SCAN_THREADS: usize = 4;

fn scan_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(MAX_SCAN_THREADS)
    })
}

/// Scores every row of `data` (row i is `ids[i]`) into `top`: contiguous memory, SIMD dot products, O(rows x dim)
/// and bound by memory bandwidth once the rows outgrow the cache; split across cores when large.
pub(super) fn scan(query: &[f32], ids: &[u64], data: &[f32], top: &mut TopK) {
    if top.k == 0 || ids.is_empty() {
        return;
    }
    let threads = scan_threads().min(data.len() / PARALLEL_FLOATS);
    if threads < 2 {
        scan_part(query, ids, data, top);
        return;
    }
    let rows = ids.len().div_ceil(threads);
    let parts: Vec<Vec<Hit>> = std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .chunks(rows)
            .zip(data.chunks(rows * query.len()))
            .map(|(ids, data)| {
                let (k, min_score) = (top.k, top.min_score);
                s.spawn(move || {
                    let mut part = TopK::new(k, min_score);
                    scan_part(query, ids, data, &mut part);
                    part.hits
                })
            })
            .collect();
        // A scoped thread that panicked would re-raise at the end of the scope; scan_part has no panicking path.
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    for hit in parts.into_iter().flatten() {
        top.push(hit.id, hit.score);
    }
}

fn scan_part(query: &[f32], ids: &[u64], data: &[f32], top: &mut TopK) {
    let dim = query.len();
    let mut s = Vec::with_capacity(SCAN_CHUNK);
    for (ids, rows) in ids.chunks(SCAN_CHUNK).zip(data.chunks(SCAN_CHUNK * dim)) {
        s.clear();
        scores(query, rows, &mut s);
        let floor = top.floor();
        for (&id, &score) in ids.iter().zip(&s) {
            if score >= floor {
                top.push(id, score);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive() {
        for dim in [1u16, 7, 16, 33, 384] {
            let a: Vec<f32> = (0..dim).map(|i| f32::from((i * 7) % 13) - 6.0).collect();
            let b: Vec<f32> = (0..dim).map(|i| f32::from((i * 5) % 11) - 5.0).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - naive).abs() < 1e-3);
            assert!((dot_generic(&a, &b) - naive).abs() < 1e-3);
        }
    }

    #[test]
    fn scan_keeps_the_best_k_above_the_floor() {
        let ids: Vec<u64> = (0..1000).collect();
        let data: Vec<f32> = (0..1000)
            .flat_map(|i| {
                let a = f32::from(u16::try_from(i).unwrap()) / 1000.0;
                [a.cos(), a.sin()]
            })
            .collect();
        let mut top = TopK::new(3, 0.5);
        scan(&[1.0, 0.0], &ids, &data, &mut top);
        let got: Vec<u64> = top.into_hits().iter().map(|h| h.id).collect();
        assert_eq!(got, vec![0, 1, 2]);
        // Large enough to split across threads: the same answer as one pass.
        let big_ids: Vec<u64> = (0..20_000).collect();
        let big: Vec<f32> = (0..20_000u32 * 512)
            .map(|i| {
                f32::from(u16::try_from(i.wrapping_mul(2_654_435_761) >> 16).unwrap()) / 65536.0
                    - 0.5
            })
            .collect();
        let q: Vec<f32> = big[..512].to_vec();
        let (mut split, mut serial) = (TopK::new(5, -1.0), TopK::new(5, -1.0));
        scan(&q, &big_ids, &big, &mut split);
        scan_part(&q, &big_ids, &big, &mut serial);
        assert_eq!(split.into_hits(), serial.into_hits());
        let mut none = TopK::new(3, 1.5);
        scan(&[1.0, 0.0], &ids, &data, &mut none);
        assert!(none.into_hits().is_empty());
    }
}
