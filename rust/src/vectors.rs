//! A per-namespace index of L2-normalised float32 embeddings, searched by cosine similarity.
//!
//! Namespaces (one per tenant, or per tenant + model) never mix: each has its own store and graph, and a search
//! reads only its own. Every vector lives in an exact row store (an insert is a copy, O(dim)); a small namespace
//! is searched by scanning it (multiversioned dot products: AVX2+FMA when the CPU has them). Once a namespace
//! holds `hnsw_threshold` vectors it gets a usearch HNSW graph, which a background thread fills in batches; a
//! search asks the graph and scans exactly only the rows still pending (at most about a batch), so inserts stay
//! O(dim) on the request path while searches stay sub-millisecond at 100k vectors.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::error::CoreError;

/// Namespace size from which a graph is built. Measured at dim 384 on 2 cores (benches/core/bench_vectors.py,
/// docs/benchmarks/vectors.md): the exact scan (~19 ns a row in cache) ties the bf16 graph at 2.5k vectors (47 vs
/// 52 us p50) and loses from 5k (97 vs 65 us); below the switch a graph would cost background CPU for nothing.
pub const DEFAULT_HNSW_THRESHOLD: usize = 4096;
/// Pending rows that wake the background indexer; below this a search just scans them.
const MIGRATE_MIN: usize = 256;
/// Rows moved into the graph per step (one rows-lock round trip each).
const MIGRATE_BATCH: usize = 1024;
/// Concurrent callers usearch keeps a search context for.
const GRAPH_THREADS: usize = 64;
const MAGIC: &[u8; 8] = b"GWVECS02";

/// How the graph stores its copy of each vector. The f32 row store stays the truth: graph candidates are re-scored
/// exactly from it, so a narrower graph type changes which candidates are found, never the scores returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantization {
    F32,
    /// bfloat16: half the memory traffic of f32 at a loss invisible to ranking. Measured at 30k x 384 through the
    /// usearch Python package on this machine: search p50 221 us against 530 us for f32, build 2.7x faster.
    BF16,
    F16,
    I8,
}

impl Quantization {
    pub fn parse(name: &str) -> Result<Self, CoreError> {
        match name {
            "f32" => Ok(Quantization::F32),
            "bf16" => Ok(Quantization::BF16),
            "f16" => Ok(Quantization::F16),
            "i8" => Ok(Quantization::I8),
            _ => Err(CoreError::InvalidArgument(format!(
                "quantization must be one of f32, bf16, f16, i8; got {name:?}"
            ))),
        }
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Quantization::F32 => "f32",
            Quantization::BF16 => "bf16",
            Quantization::F16 => "f16",
            Quantization::I8 => "i8",
        }
    }

    fn code(self) -> usize {
        match self {
            Quantization::F32 => 0,
            Quantization::BF16 => 1,
            Quantization::F16 => 2,
            Quantization::I8 => 3,
        }
    }

    fn from_code(code: usize) -> Option<Self> {
        [
            Quantization::F32,
            Quantization::BF16,
            Quantization::F16,
            Quantization::I8,
        ]
        .get(code)
        .copied()
    }

    fn scalar(self) -> ScalarKind {
        match self {
            Quantization::F32 => ScalarKind::F32,
            Quantization::BF16 => ScalarKind::BF16,
            Quantization::F16 => ScalarKind::F16,
            Quantization::I8 => ScalarKind::I8,
        }
    }
}

/// Index-wide settings, shared by every namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexConfig {
    pub dim: usize,
    pub hnsw_threshold: usize,
    pub connectivity: usize,
    pub expansion_add: usize,
    pub expansion_search: usize,
    pub quantization: Quantization,
}

impl IndexConfig {
    #[must_use]
    pub fn new(dim: usize) -> Self {
        IndexConfig {
            dim,
            hnsw_threshold: DEFAULT_HNSW_THRESHOLD,
            connectivity: 16,
            expansion_add: 128,
            expansion_search: 64,
            quantization: Quantization::BF16,
        }
    }

    fn validate(&self) -> Result<(), CoreError> {
        if self.dim == 0 || self.dim > 65_536 {
            return Err(CoreError::InvalidArgument(format!(
                "dim must be in 1..=65536, got {}",
                self.dim
            )));
        }
        if self.connectivity < 2 || self.expansion_add == 0 || self.expansion_search == 0 {
            return Err(CoreError::InvalidArgument(
                "connectivity must be >= 2 and expansion_add, expansion_search >= 1".into(),
            ));
        }
        Ok(())
    }

    fn graph_options(&self) -> IndexOptions {
        IndexOptions {
            dimensions: self.dim,
            metric: MetricKind::IP, // vectors are unit length: inner product = cosine, distance = 1 - cosine
            quantization: self.quantization.scalar(),
            connectivity: self.connectivity,
            expansion_add: self.expansion_add,
            expansion_search: self.expansion_search,
            multi: false,
        }
    }
}

/// A search hit: the id and its cosine similarity with the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub id: u64,
    pub score: f32,
}

// --- exact scan ---------------------------------------------------------------------------------------------------

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
struct TopK {
    k: usize,
    min_score: f32,
    hits: Vec<Hit>,
}

impl TopK {
    fn new(k: usize, min_score: f32) -> Self {
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
    fn push(&mut self, id: u64, score: f32) {
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
}

// --- one namespace ------------------------------------------------------------------------------------------------

#[derive(Default)]
struct Rows {
    ids: Vec<u64>,
    /// Insert generation of each row: tells a stale graph entry (replaced or removed since) from a current one.
    gens: Vec<u64>,
    in_graph: Vec<bool>,
    data: Vec<f32>,
    pos: HashMap<u64, usize>,
    /// Ids (with their generation) not yet in the graph; empty while the namespace has no graph.
    pending: HashMap<u64, u64>,
    next_gen: u64,
}

struct Namespace {
    config: IndexConfig,
    rows: RwLock<Rows>,
    graph: OnceLock<Index>,
    /// Read for add and search (usearch allows them concurrently), write for reserve and remove.
    gate: RwLock<()>,
    migrating: AtomicBool,
    /// One batch at a time (the background indexer and `build` may both run): two writers could add one key twice.
    migrate_lock: Mutex<()>,
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

fn graph_err(e: &impl std::fmt::Display) -> CoreError {
    CoreError::Io(format!("vector graph: {e}"))
}

impl Namespace {
    fn new(config: IndexConfig) -> Self {
        Namespace {
            config,
            rows: RwLock::new(Rows::default()),
            graph: OnceLock::new(),
            gate: RwLock::new(()),
            migrating: AtomicBool::new(false),
            migrate_lock: Mutex::new(()),
        }
    }

    fn new_graph(&self, capacity: usize) -> Result<Index, CoreError> {
        let g = Index::new(&self.config.graph_options()).map_err(|e| graph_err(&e))?;
        g.reserve_capacity_and_threads(capacity.max(1024), GRAPH_THREADS)
            .map_err(|e| graph_err(&e))?;
        Ok(g)
    }

    /// Inserts or replaces `id`; `v` is already normalised. Returns whether the background indexer should run.
    fn insert(&self, id: u64, v: &[f32]) -> Result<bool, CoreError> {
        let dim = self.config.dim;
        let mut rows = write(&self.rows);
        let gen = rows.next_gen;
        rows.next_gen += 1;
        if let Some(&row) = rows.pos.get(&id) {
            rows.data[row * dim..(row + 1) * dim].copy_from_slice(v);
            rows.gens[row] = gen;
            if std::mem::take(&mut rows.in_graph[row]) {
                if let Some(g) = self.graph.get() {
                    let _gate = write(&self.gate);
                    g.remove(id).map_err(|e| graph_err(&e))?;
                }
            }
        } else {
            let row = rows.ids.len();
            rows.ids.push(id);
            rows.gens.push(gen);
            rows.in_graph.push(false);
            rows.data.extend_from_slice(v);
            rows.pos.insert(id, row);
        }
        if self.graph.get().is_some() {
            rows.pending.insert(id, gen);
        } else if rows.ids.len() >= self.config.hnsw_threshold {
            // Large enough for a graph: make an empty one (cheap) and let the indexer fill it.
            let g = self.new_graph(rows.ids.len() * 2)?;
            let _ = self.graph.set(g);
            let all: Vec<(u64, u64)> = rows
                .ids
                .iter()
                .copied()
                .zip(rows.gens.iter().copied())
                .collect();
            rows.pending.extend(all);
        }
        Ok(rows.pending.len() >= MIGRATE_MIN && !self.migrating.load(Ordering::Acquire))
    }

    fn remove(&self, id: u64) -> Result<bool, CoreError> {
        let dim = self.config.dim;
        let mut rows = write(&self.rows);
        let Some(row) = rows.pos.remove(&id) else {
            return Ok(false);
        };
        rows.pending.remove(&id);
        let was_in_graph = rows.in_graph.swap_remove(row);
        rows.ids.swap_remove(row);
        rows.gens.swap_remove(row);
        let last = rows.ids.len();
        if row < last {
            let moved = rows.ids[row];
            rows.pos.insert(moved, row);
            rows.data
                .copy_within(last * dim..(last + 1) * dim, row * dim);
        }
        rows.data.truncate(last * dim);
        if was_in_graph {
            if let Some(g) = self.graph.get() {
                let _gate = write(&self.gate);
                g.remove(id).map_err(|e| graph_err(&e))?;
            }
        }
        Ok(true)
    }

    fn search(&self, q: &[f32], k: usize, min_score: f32) -> Result<Vec<Hit>, CoreError> {
        let dim = self.config.dim;
        let rows = read(&self.rows);
        let mut top = TopK::new(k, min_score);
        let graph = self
            .graph
            .get()
            .filter(|_| rows.pending.len() < rows.ids.len());
        if let Some(g) = graph {
            // Graph entries not flagged in_graph are stale or not yet reconciled: skip them (pending rows are
            // scanned below). Ask for a few more than k, so that skipped ones do not shorten the answer and the
            // exact re-scoring can reorder what the graph's narrower type ranked.
            let matches = {
                let _gate = read(&self.gate);
                g.search(q, k + 8).map_err(|e| graph_err(&e))?
            };
            for &id in &matches.keys {
                if let Some(&row) = rows.pos.get(&id) {
                    if rows.in_graph[row] {
                        top.push(id, dot(q, &rows.data[row * dim..(row + 1) * dim]));
                    }
                }
            }
            for &id in rows.pending.keys() {
                if let Some(&row) = rows.pos.get(&id) {
                    top.push(id, dot(q, &rows.data[row * dim..(row + 1) * dim]));
                }
            }
        } else {
            let mut s = Vec::new();
            scores(q, &rows.data, &mut s);
            let floor = top.min_score;
            for (row, &score) in s.iter().enumerate() {
                if score >= floor {
                    top.push(rows.ids[row], score);
                }
            }
        }
        Ok(top.hits)
    }

    /// Moves up to a batch of pending rows into the graph with `threads` threads; returns how many it took.
    fn migrate_batch(&self, threads: usize) -> Result<usize, CoreError> {
        let Some(g) = self.graph.get() else {
            return Ok(0);
        };
        let dim = self.config.dim;
        let _one_at_a_time = self
            .migrate_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let batch: Vec<(u64, u64, Vec<f32>)> = {
            let rows = read(&self.rows);
            rows.pending
                .iter()
                .take(MIGRATE_BATCH * threads.max(1))
                .filter_map(|(&id, &gen)| {
                    rows.pos
                        .get(&id)
                        .map(|&row| (id, gen, rows.data[row * dim..(row + 1) * dim].to_vec()))
                })
                .collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        {
            let _gate = write(&self.gate);
            for (id, _, _) in &batch {
                if g.contains(*id) {
                    g.remove(*id).map_err(|e| graph_err(&e))?; // a stale entry left by a save mid-batch
                }
            }
            if g.size() + batch.len() > g.capacity() {
                let want = (g.capacity() * 2).max(g.size() + batch.len());
                g.reserve_capacity_and_threads(want, GRAPH_THREADS)
                    .map_err(|e| graph_err(&e))?;
            }
        }
        {
            let _gate = read(&self.gate);
            let chunk = batch.len().div_ceil(threads.max(1));
            let results: Vec<Result<(), CoreError>> = std::thread::scope(|s| {
                let handles: Vec<_> = batch
                    .chunks(chunk)
                    .map(|part| {
                        s.spawn(move || {
                            for (id, _, v) in part {
                                g.add(*id, v).map_err(|e| graph_err(&e))?;
                            }
                            Ok(())
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(CoreError::Io("graph insert panicked".into())))
                    })
                    .collect()
            });
            results.into_iter().collect::<Result<(), CoreError>>()?;
        }
        let mut rows = write(&self.rows);
        for (id, gen, _) in &batch {
            let current = rows
                .pos
                .get(id)
                .copied()
                .filter(|&row| rows.gens[row] == *gen);
            if let Some(row) = current {
                rows.in_graph[row] = true;
                rows.pending.remove(id);
            } else {
                // Replaced or removed while we were adding: drop what we added; a newer version is pending.
                let _gate = write(&self.gate);
                g.remove(*id).map_err(|e| graph_err(&e))?;
            }
        }
        Ok(batch.len())
    }

    /// Background indexer: runs until nothing is pending. Errors end it (the rows stay pending and searchable).
    fn migrate_all(&self, threads: usize) -> Result<(), CoreError> {
        loop {
            if self.migrate_batch(threads)? == 0 {
                let mut rows = write(&self.rows);
                if rows
                    .pending
                    .iter()
                    .all(|(id, _)| !rows.pos.contains_key(id))
                {
                    // A drained map keeps its buckets, and iterating them would cost every later search.
                    rows.pending.shrink_to(MIGRATE_MIN);
                    return Ok(());
                }
            }
        }
    }
}

fn spawn_indexer(ns: &Arc<Namespace>) {
    if ns.migrating.swap(true, Ordering::AcqRel) {
        return;
    }
    let ns = Arc::clone(ns);
    std::thread::spawn(move || {
        loop {
            let _ = ns.migrate_all(1);
            ns.migrating.store(false, Ordering::Release);
            // An insert may have seen `migrating` still set just before we cleared it: look once more.
            let again = read(&ns.rows).pending.len() >= MIGRATE_MIN;
            if !again || ns.migrating.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    });
}

// --- the index ----------------------------------------------------------------------------------------------------

/// Namespaced vector index; every method takes `&self` and is safe to call from many threads.
pub struct VectorIndex {
    config: IndexConfig,
    namespaces: RwLock<HashMap<String, Arc<Namespace>>>,
}

impl VectorIndex {
    pub fn new(config: IndexConfig) -> Result<Self, CoreError> {
        config.validate()?;
        Ok(VectorIndex {
            config,
            namespaces: RwLock::new(HashMap::new()),
        })
    }

    #[must_use]
    pub fn config(&self) -> IndexConfig {
        self.config
    }

    fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        read(&self.namespaces).get(name).cloned()
    }

    /// Inserts (or replaces) `id` in `namespace`; the vector is normalised here. O(dim) plus, at times, waking the
    /// background indexer.
    pub fn insert(&self, namespace: &str, id: u64, mut vector: Vec<f32>) -> Result<(), CoreError> {
        normalise(&mut vector, self.config.dim)?;
        let ns = if let Some(ns) = self.namespace(namespace) {
            ns
        } else {
            let mut map = write(&self.namespaces);
            let entry = map.entry(namespace.to_owned());
            Arc::clone(entry.or_insert_with(|| Arc::new(Namespace::new(self.config))))
        };
        if ns.insert(id, &vector)? {
            spawn_indexer(&ns);
        }
        Ok(())
    }

    /// Removes `id` from `namespace`; false when it was not there.
    pub fn remove(&self, namespace: &str, id: u64) -> Result<bool, CoreError> {
        match self.namespace(namespace) {
            Some(ns) => ns.remove(id),
            None => Ok(false),
        }
    }

    /// The `k` entries of `namespace` most similar to `query` with a cosine of at least `min_score`, best first.
    pub fn search(
        &self,
        namespace: &str,
        mut query: Vec<f32>,
        k: usize,
        min_score: f32,
    ) -> Result<Vec<Hit>, CoreError> {
        normalise(&mut query, self.config.dim)?;
        if min_score.is_nan() {
            return Err(CoreError::InvalidArgument(
                "min_score must be a number".into(),
            ));
        }
        match self.namespace(namespace) {
            Some(ns) => ns.search(&query, k, min_score),
            None => Ok(Vec::new()),
        }
    }

    /// Entries in `namespace`.
    #[must_use]
    pub fn count(&self, namespace: &str) -> usize {
        self.namespace(namespace)
            .map_or(0, |ns| read(&ns.rows).ids.len())
    }

    /// Entries over all namespaces.
    #[must_use]
    pub fn len(&self) -> usize {
        read(&self.namespaces)
            .values()
            .map(|ns| read(&ns.rows).ids.len())
            .sum()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[must_use]
    pub fn namespaces(&self) -> Vec<String> {
        let mut names: Vec<String> = read(&self.namespaces).keys().cloned().collect();
        names.sort_unstable();
        names
    }

    /// Entries of `namespace` not yet in its graph (0 without a graph, or once the indexer has caught up).
    #[must_use]
    pub fn pending(&self, namespace: &str) -> usize {
        self.namespace(namespace)
            .map_or(0, |ns| read(&ns.rows).pending.len())
    }

    /// Moves every pending entry into the graphs now, on `threads` threads (after a bulk load, before a bench).
    pub fn build(&self, threads: usize) -> Result<(), CoreError> {
        let all: Vec<Arc<Namespace>> = read(&self.namespaces).values().cloned().collect();
        for ns in all {
            ns.migrate_all(threads)?;
        }
        Ok(())
    }

    /// Writes the index to `path` (via a temporary file and a rename): rows, and each graph as usearch serialises
    /// it, so a load does not rebuild graphs.
    pub fn save(&self, path: &Path) -> Result<(), CoreError> {
        let io = |e: std::io::Error| CoreError::Io(format!("cannot write {}: {e}", path.display()));
        let tmp = path.with_extension("tmp");
        let file = std::fs::File::create(&tmp).map_err(io)?;
        let mut w = BufWriter::new(file);
        let c = self.config;
        w.write_all(MAGIC).map_err(io)?;
        for x in [
            c.dim,
            c.hnsw_threshold,
            c.connectivity,
            c.expansion_add,
            c.expansion_search,
            c.quantization.code(),
        ] {
            write_u64(&mut w, x as u64).map_err(io)?;
        }
        let all: Vec<(String, Arc<Namespace>)> = read(&self.namespaces)
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        write_u64(&mut w, all.len() as u64).map_err(io)?;
        for (name, ns) in all {
            let rows = read(&ns.rows);
            let _gate = write(&ns.gate); // no graph insert runs while the graph is copied
            write_u64(&mut w, name.len() as u64).map_err(io)?;
            w.write_all(name.as_bytes()).map_err(io)?;
            write_u64(&mut w, rows.ids.len() as u64).map_err(io)?;
            for &id in &rows.ids {
                write_u64(&mut w, id).map_err(io)?;
            }
            let flags: Vec<u8> = rows.in_graph.iter().map(|&b| u8::from(b)).collect();
            w.write_all(&flags).map_err(io)?;
            for &x in &rows.data {
                w.write_all(&x.to_le_bytes()).map_err(io)?;
            }
            match ns.graph.get() {
                Some(g) => {
                    let mut buf = vec![0u8; g.serialized_length()];
                    g.save_to_buffer(&mut buf).map_err(|e| graph_err(&e))?;
                    write_u64(&mut w, buf.len() as u64).map_err(io)?;
                    w.write_all(&buf).map_err(io)?;
                }
                None => write_u64(&mut w, u64::MAX).map_err(io)?,
            }
        }
        w.flush().map_err(io)?;
        w.into_inner()
            .map_err(|e| io(e.into_error()))?
            .sync_all()
            .map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Reads an index written by [`VectorIndex::save`].
    pub fn load(path: &Path) -> Result<Self, CoreError> {
        let io = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                CoreError::InvalidArgument(format!(
                    "{}: not a saved VectorIndex (truncated)",
                    path.display()
                ))
            } else {
                CoreError::Io(format!("cannot read {}: {e}", path.display()))
            }
        };
        let bad = |what: &str| {
            CoreError::InvalidArgument(format!(
                "{}: not a saved VectorIndex ({what})",
                path.display()
            ))
        };
        let mut r = BufReader::new(std::fs::File::open(path).map_err(io)?);
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic).map_err(io)?;
        if &magic != MAGIC {
            return Err(bad("bad magic"));
        }
        let mut next = || -> Result<usize, CoreError> {
            usize::try_from(read_u64(&mut r).map_err(io)?).map_err(|_| bad("size overflow"))
        };
        let config = IndexConfig {
            dim: next()?,
            hnsw_threshold: next()?,
            connectivity: next()?,
            expansion_add: next()?,
            expansion_search: next()?,
            quantization: Quantization::from_code(next()?).ok_or_else(|| bad("quantization"))?,
        };
        config.validate().map_err(|_| bad("bad header"))?;
        let index = VectorIndex::new(config)?;
        let n_ns = read_u64(&mut r).map_err(io)?;
        for _ in 0..n_ns {
            let name_len = read_len(&mut r, 1 << 20).map_err(|()| bad("namespace name"))?;
            let mut name = vec![0u8; name_len];
            r.read_exact(&mut name).map_err(io)?;
            let name = String::from_utf8(name).map_err(|_| bad("namespace name is not UTF-8"))?;
            let n = read_len(&mut r, 1 << 34).map_err(|()| bad("row count"))?;
            let ns = Namespace::new(config);
            {
                let mut rows = write(&ns.rows);
                for row in 0..n {
                    let id = read_u64(&mut r).map_err(io)?;
                    rows.ids.push(id);
                    rows.gens.push(row as u64);
                    rows.pos.insert(id, row);
                }
                rows.next_gen = n as u64;
                let mut flags = vec![0u8; n];
                r.read_exact(&mut flags).map_err(io)?;
                rows.in_graph = flags.iter().map(|&f| f == 1).collect();
                let mut bytes = vec![0u8; n * config.dim * 4];
                r.read_exact(&mut bytes).map_err(io)?;
                rows.data = bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                let graph_len = read_u64(&mut r).map_err(io)?;
                if graph_len == u64::MAX {
                    rows.in_graph.iter_mut().for_each(|f| *f = false);
                } else {
                    let len = usize::try_from(graph_len).map_err(|_| bad("graph size"))?;
                    let mut buf = vec![0u8; len];
                    r.read_exact(&mut buf).map_err(io)?;
                    let g = Index::new(&config.graph_options()).map_err(|e| graph_err(&e))?;
                    g.load_from_buffer(&buf).map_err(|e| graph_err(&e))?;
                    g.reserve_capacity_and_threads(g.size().max(1024) * 2, GRAPH_THREADS)
                        .map_err(|e| graph_err(&e))?;
                    let _ = ns.graph.set(g);
                    let pending: Vec<(u64, u64)> = (0..n)
                        .filter(|&i| !rows.in_graph[i])
                        .map(|i| (rows.ids[i], rows.gens[i]))
                        .collect();
                    rows.pending.extend(pending);
                }
            }
            let ns = Arc::new(ns);
            if read(&ns.rows).pending.len() >= MIGRATE_MIN {
                spawn_indexer(&ns);
            }
            write(&index.namespaces).insert(name, ns);
        }
        Ok(index)
    }
}

fn write_u64(w: &mut impl Write, x: u64) -> std::io::Result<()> {
    w.write_all(&x.to_le_bytes())
}

fn read_u64(r: &mut impl Read) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn read_len(r: &mut impl Read, max: u64) -> Result<usize, ()> {
    let n = read_u64(r).map_err(|_| ())?;
    if n > max {
        return Err(());
    }
    usize::try_from(n).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random unit-ish vectors (xorshift), no rand dependency.
    fn vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            #[allow(clippy::cast_precision_loss)]
            let x = (s >> 11) as f32 / (1u64 << 53) as f32;
            x - 0.5
        };
        (0..n).map(|_| (0..dim).map(|_| next()).collect()).collect()
    }

    fn brute(data: &[(u64, Vec<f32>)], q: &[f32], k: usize) -> Vec<u64> {
        let mut q = q.to_vec();
        let dim = q.len();
        normalise(&mut q, dim).unwrap();
        let mut scored: Vec<(f32, u64)> = data
            .iter()
            .map(|(id, v)| {
                let mut v = v.clone();
                normalise(&mut v, dim).unwrap();
                (dot(&q, &v), *id)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.iter().take(k).map(|s| s.1).collect()
    }

    #[test]
    fn dot_matches_naive() {
        for dim in [1, 7, 16, 33, 384] {
            let v = vectors(2, dim, 1);
            let naive: f32 = v[0].iter().zip(&v[1]).map(|(a, b)| a * b).sum();
            assert!((dot(&v[0], &v[1]) - naive).abs() < 1e-4);
            assert!((dot_generic(&v[0], &v[1]) - naive).abs() < 1e-4);
        }
    }

    #[test]
    fn exact_search_agrees_with_brute_force() {
        let index = VectorIndex::new(IndexConfig::new(32)).unwrap();
        let data: Vec<(u64, Vec<f32>)> = vectors(500, 32, 2)
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i as u64, v))
            .collect();
        for (id, v) in &data {
            index.insert("t", *id, v.clone()).unwrap();
        }
        for q in vectors(20, 32, 3) {
            let got: Vec<u64> = index
                .search("t", q.clone(), 5, -1.0)
                .unwrap()
                .iter()
                .map(|h| h.id)
                .collect();
            assert_eq!(got, brute(&data, &q, 5));
        }
    }

    #[test]
    fn namespaces_threshold_replace_remove() {
        let index = VectorIndex::new(IndexConfig::new(4)).unwrap();
        index.insert("a", 1, vec![1.0, 0.0, 0.0, 0.0]).unwrap();
        index.insert("b", 2, vec![1.0, 0.0, 0.0, 0.0]).unwrap();
        let hits = index
            .search("a", vec![2.0, 0.0, 0.0, 0.0], 10, 0.0)
            .unwrap();
        assert_eq!(
            hits,
            vec![Hit { id: 1, score: 1.0 }],
            "b's entry never shows in a"
        );
        assert!(
            index
                .search("a", vec![0.0, 1.0, 0.0, 0.0], 10, 0.5)
                .unwrap()
                .is_empty(),
            "below the threshold"
        );
        assert!(index
            .search("nobody", vec![0.0, 1.0, 0.0, 0.0], 10, 0.0)
            .unwrap()
            .is_empty());
        index.insert("a", 1, vec![0.0, 1.0, 0.0, 0.0]).unwrap();
        assert_eq!(index.count("a"), 1);
        assert_eq!(
            index.search("a", vec![0.0, 1.0, 0.0, 0.0], 1, 0.9).unwrap()[0].id,
            1
        );
        index.insert("a", 3, vec![0.0, 0.0, 1.0, 0.0]).unwrap();
        assert!(index.remove("a", 1).unwrap());
        assert!(!index.remove("a", 1).unwrap());
        assert_eq!(
            index
                .search("a", vec![0.0, 0.0, 1.0, 0.0], 5, -1.0)
                .unwrap()[0]
                .id,
            3
        );
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn bad_vectors() {
        let index = VectorIndex::new(IndexConfig::new(4)).unwrap();
        assert!(index.insert("a", 1, vec![1.0; 3]).is_err());
        assert!(index.insert("a", 1, vec![0.0; 4]).is_err());
        assert!(index.insert("a", 1, vec![f32::NAN, 1.0, 0.0, 0.0]).is_err());
        assert!(index.search("a", vec![1.0; 5], 1, 0.0).is_err());
        assert!(VectorIndex::new(IndexConfig::new(0)).is_err());
    }

    #[test]
    fn graph_recall_and_persistence() {
        let dim = 32;
        let mut config = IndexConfig::new(dim);
        config.hnsw_threshold = 1000;
        let index = VectorIndex::new(config).unwrap();
        let data: Vec<(u64, Vec<f32>)> = vectors(3000, dim, 4)
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i as u64 * 7, v))
            .collect();
        for (id, v) in &data {
            index.insert("t", *id, v.clone()).unwrap();
        }
        index.build(2).unwrap();
        assert_eq!(index.pending("t"), 0);
        let queries = vectors(100, dim, 5);
        let recall = |index: &VectorIndex| {
            queries
                .iter()
                .filter(|q| {
                    index.search("t", (*q).clone(), 1, -1.0).unwrap()[0].id == brute(&data, q, 1)[0]
                })
                .count()
        };
        let found = recall(&index);
        assert!(found >= 95, "recall@1 {found}/100");
        // Removing from the graph hides the entry.
        let top = index.search("t", data[10].1.clone(), 1, -1.0).unwrap()[0];
        assert_eq!(top.id, data[10].0);
        index.remove("t", data[10].0).unwrap();
        assert_ne!(
            index.search("t", data[10].1.clone(), 1, -1.0).unwrap()[0].id,
            data[10].0
        );
        index.insert("t", data[10].0, data[10].1.clone()).unwrap(); // back, pending
        let dir = std::env::temp_dir().join(format!("gw-vectors-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("index.bin");
        index.insert("small", 1, vec![1.0; dim]).unwrap();
        index.save(&path).unwrap();
        let loaded = VectorIndex::load(&path).unwrap();
        assert_eq!(loaded.len(), index.len());
        assert_eq!(
            loaded.namespaces(),
            vec!["small".to_owned(), "t".to_owned()]
        );
        assert!(recall(&loaded) >= 95, "recall@1 after load");
        assert_eq!(
            loaded.search("t", data[10].1.clone(), 1, -1.0).unwrap()[0].id,
            data[10].0
        );
        std::fs::write(&path, b"nonsense").unwrap();
        assert!(VectorIndex::load(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn background_indexer_catches_up() {
        let dim = 16;
        let mut config = IndexConfig::new(dim);
        config.hnsw_threshold = 300;
        let index = VectorIndex::new(config).unwrap();
        let data = vectors(2000, dim, 6);
        for (i, v) in data.iter().enumerate() {
            index.insert("t", i as u64, v.clone()).unwrap();
        }
        let started = std::time::Instant::now();
        while index.pending("t") >= MIGRATE_MIN && started.elapsed().as_secs() < 30 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(index.pending("t") < MIGRATE_MIN);
        for (i, v) in data.iter().enumerate().take(50) {
            assert_eq!(
                index.search("t", v.clone(), 1, 0.0).unwrap()[0].id,
                i as u64
            );
        }
    }
}
