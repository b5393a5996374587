//! A per-namespace index of L2-normalised float32 embeddings, searched by cosine similarity.
//!
//! Namespaces (one per tenant, or per tenant + model) never mix: each has its own store and graph, and a search
//! reads only its own. Every vector lives in an exact row store (an insert is a copy, O(dim)). Once a namespace
//! holds `hnsw_threshold` vectors it gets a usearch HNSW graph, which a background thread fills in batches. The
//! store keeps the rows in the graph first and the rows still pending after them, contiguous, so a search asks the
//! graph and then scans the pending rows in one SIMD pass (multiversioned dot products: AVX2+FMA when the CPU has
//! them): inserts stay O(dim) on the request path, and a namespace whose graph is still being built is searched at
//! the speed of a BLAS matrix-vector product.
//!
//! `snapshot` writes an index to a file laid out to be memory-mapped: [`Snapshot`] maps it read-only, graph
//! included, so processes that map one file share its pages, and a process starting from it searches at its steady
//! latency at once instead of rebuilding the graph. [`VectorIndex::save_merged`] writes the next snapshot from the
//! last one plus what arrived since, growing the graph by a bounded number of rows each time.

mod rowbuf;
mod scan;
mod snapshot;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::error::CoreError;
use rowbuf::RowBuf;
pub use scan::{dot, normalise, scores};
use scan::{scan, TopK};
pub use snapshot::Snapshot;
use snapshot::{NsImage, NsView, SnapshotWriter};

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

    /// An empty graph with room for `capacity` vectors and `threads` concurrent callers.
    fn new_graph(&self, capacity: usize, threads: usize) -> Result<Index, CoreError> {
        let g = Index::new(&self.graph_options()).map_err(|e| graph_err(&e))?;
        g.reserve_capacity_and_threads(capacity.max(1024), threads.max(1))
            .map_err(|e| graph_err(&e))?;
        Ok(g)
    }
}

/// A search hit: the id and its cosine similarity with the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub id: u64,
    pub score: f32,
}

/// What [`VectorIndex::save_merged`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Entries in the file.
    pub entries: usize,
    /// Of these, entries of namespaces with a graph that are not in it yet (scanned exactly by searches; a small
    /// namespace without a graph is scanned whole, and not counted here).
    pub pending: usize,
    /// Rows added to graphs by this merge.
    pub added_to_graph: usize,
}

/// How [`VectorIndex::save_merged`] bounds its output and its work.
#[derive(Debug, Clone, Default)]
pub struct MergeOptions {
    /// Keeps at most this many entries, the newest (by insertion, the base's before this index's).
    pub max_entries: Option<usize>,
    /// Adds at most this many rows to graphs (about a millisecond each on one core at 100k x 384); the rest are
    /// written pending, for the next merge. None: all.
    pub max_graph_adds: Option<usize>,
    /// Threads adding rows to graphs.
    pub threads: usize,
    /// Bytes stored with the file for its reader (the feed position the snapshot covers, for the semantic cache).
    pub label: Vec<u8>,
}

// --- graph helpers --------------------------------------------------------------------------------------------------

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

fn graph_err(e: &impl std::fmt::Display) -> CoreError {
    CoreError::Io(format!("vector graph: {e}"))
}

/// Adds `ids[i]` with row i of `data` to `g`, on `threads` threads (usearch takes concurrent adds).
fn add_to_graph(
    g: &Index,
    ids: &[u64],
    data: &[f32],
    dim: usize,
    threads: usize,
) -> Result<(), CoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let chunk = ids.len().div_ceil(threads.max(1));
    std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .chunks(chunk)
            .zip(data.chunks(chunk * dim))
            .map(|(ids, rows)| {
                s.spawn(move || {
                    for (&id, v) in ids.iter().zip(rows.chunks_exact(dim)) {
                        g.add(id, v).map_err(|e| graph_err(&e))?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err(CoreError::Io("graph insert panicked".into())))
        })
    })
}

/// Top-k over a store laid out as the index keeps it: rows `[0, graphed)` in `graph`, the rest scanned exactly.
/// Graph candidates are re-scored from the f32 rows; a graph key whose row is missing or pending (stale, or added
/// but not yet marked) is skipped, the scan covering pending rows.
#[allow(clippy::too_many_arguments)]
fn search_store(
    q: &[f32],
    k: usize,
    min_score: f32,
    graph: Option<&Index>,
    graph_gate: Option<&RwLock<()>>,
    graphed: usize,
    ids: &[u64],
    data: &[f32],
    row_of: impl Fn(u64) -> Option<usize>,
) -> Result<Vec<Hit>, CoreError> {
    let dim = q.len();
    let mut top = TopK::new(k, min_score);
    if let Some(g) = graph.filter(|_| graphed > 0 && k > 0) {
        // Ask for a few more than k, so that skipped keys do not shorten the answer and the exact re-scoring can
        // reorder what the graph's narrower type ranked.
        let matches = {
            let _gate = graph_gate.map(read);
            g.search(q, k + 8).map_err(|e| graph_err(&e))?
        };
        for &id in &matches.keys {
            if let Some(row) = row_of(id).filter(|&r| r < graphed) {
                if let Some(v) = data.get(row * dim..(row + 1) * dim) {
                    top.push(id, dot(q, v));
                }
            }
        }
    }
    let start = graphed.min(ids.len());
    scan(
        q,
        &ids[start..],
        data.get(start * dim..).unwrap_or(&[]),
        &mut top,
    );
    Ok(top.into_hits())
}

// --- one namespace --------------------------------------------------------------------------------------------------

/// The exact store of one namespace. Rows `[0, graphed)` are in the graph; rows `[graphed, len)` are pending, kept
/// contiguous at the end so that a search scans them in one pass (and a namespace without a graph is all pending).
#[derive(Default)]
struct Rows {
    ids: Vec<u64>,
    /// Insert generation of each row (index-wide clock): tells a stale graph add from a current one, and the
    /// oldest entries from the newest when a merge bounds its output.
    gens: Vec<u64>,
    /// Opaque bytes stored with each entry (the semantic cache keeps the entry's key and prompt there).
    payloads: Vec<Box<[u8]>>,
    data: RowBuf,
    pos: HashMap<u64, usize>,
    graphed: usize,
}

impl Rows {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn row(&self, r: usize, dim: usize) -> &[f32] {
        &self.data[r * dim..(r + 1) * dim]
    }

    fn swap(&mut self, a: usize, b: usize, dim: usize) {
        if a == b {
            return;
        }
        self.ids.swap(a, b);
        self.gens.swap(a, b);
        self.payloads.swap(a, b);
        let (lo, hi) = (a.min(b), a.max(b));
        let (head, tail) = self.data.split_at_mut(hi * dim);
        head[lo * dim..(lo + 1) * dim].swap_with_slice(&mut tail[..dim]);
        self.pos.insert(self.ids[a], a);
        self.pos.insert(self.ids[b], b);
    }

    fn push(&mut self, id: u64, gen: u64, payload: Box<[u8]>, v: &[f32]) {
        self.pos.insert(id, self.ids.len());
        self.ids.push(id);
        self.gens.push(gen);
        self.payloads.push(payload);
        self.data.extend_from_slice(v);
    }

    /// Takes row `r` out (two row moves at most: graphed rows stay first); returns whether it was in the graph.
    fn remove_row(&mut self, r: usize, dim: usize) -> bool {
        let was_graphed = r < self.graphed;
        let r = if was_graphed { self.unmark(r, dim) } else { r };
        let last = self.len() - 1;
        self.swap(r, last, dim);
        if let Some(id) = self.ids.pop() {
            self.pos.remove(&id);
        }
        self.gens.pop();
        self.payloads.pop();
        self.data.truncate(last * dim);
        was_graphed
    }

    /// A graphed row becomes pending; returns where it now is.
    fn unmark(&mut self, r: usize, dim: usize) -> usize {
        self.graphed -= 1;
        self.swap(r, self.graphed, dim);
        self.graphed
    }

    /// Pending row `r` joins the graphed rows.
    fn mark(&mut self, r: usize, dim: usize) {
        self.swap(r, self.graphed, dim);
        self.graphed += 1;
    }
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

    /// Inserts or replaces `id`; `v` is already normalised. Returns whether the background indexer should run.
    fn insert(&self, id: u64, v: &[f32], payload: &[u8], gen: u64) -> Result<bool, CoreError> {
        let dim = self.config.dim;
        let mut rows = write(&self.rows);
        if let Some(&row) = rows.pos.get(&id) {
            let row = if row < rows.graphed {
                // The graph holds the old vector: it leaves the graph, and the row goes back to pending.
                if let Some(g) = self.graph.get() {
                    let _gate = write(&self.gate);
                    g.remove(id).map_err(|e| graph_err(&e))?;
                }
                rows.unmark(row, dim)
            } else {
                row
            };
            rows.data[row * dim..(row + 1) * dim].copy_from_slice(v);
            rows.gens[row] = gen;
            rows.payloads[row] = payload.into();
        } else {
            rows.push(id, gen, payload.into(), v);
        }
        if self.graph.get().is_none() && rows.len() >= self.config.hnsw_threshold {
            // Large enough for a graph: make an empty one (cheap) and let the indexer fill it.
            let g = self.config.new_graph(rows.len() * 2, GRAPH_THREADS)?;
            let _ = self.graph.set(g);
        }
        Ok(self.graph.get().is_some()
            && rows.len() - rows.graphed >= MIGRATE_MIN
            && !self.migrating.load(Ordering::Acquire))
    }

    fn remove(&self, id: u64) -> Result<bool, CoreError> {
        let mut rows = write(&self.rows);
        let Some(&row) = rows.pos.get(&id) else {
            return Ok(false);
        };
        if rows.remove_row(row, self.config.dim) {
            if let Some(g) = self.graph.get() {
                let _gate = write(&self.gate);
                g.remove(id).map_err(|e| graph_err(&e))?;
            }
        }
        Ok(true)
    }

    fn search(&self, q: &[f32], k: usize, min_score: f32) -> Result<Vec<Hit>, CoreError> {
        let rows = read(&self.rows);
        search_store(
            q,
            k,
            min_score,
            self.graph.get(),
            Some(&self.gate),
            rows.graphed,
            &rows.ids,
            &rows.data,
            |id| rows.pos.get(&id).copied(),
        )
    }

    fn pending(&self) -> usize {
        if self.graph.get().is_none() {
            return 0;
        }
        let rows = read(&self.rows);
        rows.len() - rows.graphed
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
        let (ids, gens, data) = {
            let rows = read(&self.rows);
            let end = rows
                .len()
                .min(rows.graphed + MIGRATE_BATCH * threads.max(1));
            (
                rows.ids[rows.graphed..end].to_vec(),
                rows.gens[rows.graphed..end].to_vec(),
                rows.data[rows.graphed * dim..end * dim].to_vec(),
            )
        };
        if ids.is_empty() {
            return Ok(0);
        }
        {
            let _gate = write(&self.gate);
            for &id in &ids {
                if g.contains(id) {
                    g.remove(id).map_err(|e| graph_err(&e))?; // a stale entry (from a snapshot written mid-batch)
                }
            }
            if g.size() + ids.len() > g.capacity() {
                let want = (g.capacity() * 2).max(g.size() + ids.len());
                g.reserve_capacity_and_threads(want, GRAPH_THREADS)
                    .map_err(|e| graph_err(&e))?;
            }
        }
        {
            let _gate = read(&self.gate);
            add_to_graph(g, &ids, &data, dim, threads)?;
        }
        let mut rows = write(&self.rows);
        for (&id, &gen) in ids.iter().zip(&gens) {
            let current = rows
                .pos
                .get(&id)
                .copied()
                .filter(|&row| rows.gens[row] == gen && row >= rows.graphed);
            if let Some(row) = current {
                rows.mark(row, dim);
            } else {
                // Replaced or removed while we were adding: drop what we added; a newer version is pending.
                let _gate = write(&self.gate);
                g.remove(id).map_err(|e| graph_err(&e))?;
            }
        }
        Ok(ids.len())
    }

    /// Background indexer: runs until nothing is pending. Errors end it (the rows stay pending and searchable).
    fn migrate_all(&self, threads: usize) -> Result<(), CoreError> {
        while self.migrate_batch(threads)? > 0 {}
        Ok(())
    }
}

/// Checks a search's arguments (VectorIndex's and Snapshot's alike) and scales `query` to unit length.
fn search_query(query: &mut [f32], dim: usize, min_score: f32) -> Result<(), CoreError> {
    normalise(query, dim)?;
    if min_score.is_nan() {
        return Err(CoreError::InvalidArgument(
            "min_score must be a number".into(),
        ));
    }
    Ok(())
}

fn spawn_indexer(ns: &Arc<Namespace>) {
    if ns.migrating.swap(true, Ordering::AcqRel) {
        return;
    }
    let ns = Arc::clone(ns);
    std::thread::spawn(move || loop {
        let _ = ns.migrate_all(1);
        ns.migrating.store(false, Ordering::Release);
        // An insert may have seen `migrating` still set just before we cleared it: look once more.
        let again = {
            let rows = read(&ns.rows);
            rows.len() - rows.graphed >= MIGRATE_MIN
        };
        if !again || ns.migrating.swap(true, Ordering::AcqRel) {
            return;
        }
    });
}

// --- the index ----------------------------------------------------------------------------------------------------

/// Namespaced vector index; every method takes `&self` and is safe to call from many threads.
pub struct VectorIndex {
    config: IndexConfig,
    namespaces: RwLock<HashMap<String, Arc<Namespace>>>,
    /// Insert generations, index-wide: orders entries by age across namespaces.
    clock: AtomicU64,
}

impl VectorIndex {
    pub fn new(config: IndexConfig) -> Result<Self, CoreError> {
        config.validate()?;
        Ok(VectorIndex {
            config,
            namespaces: RwLock::new(HashMap::new()),
            clock: AtomicU64::new(0),
        })
    }

    #[must_use]
    pub fn config(&self) -> IndexConfig {
        self.config
    }

    fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        read(&self.namespaces).get(name).cloned()
    }

    fn all(&self) -> Vec<(String, Arc<Namespace>)> {
        let mut all: Vec<(String, Arc<Namespace>)> = read(&self.namespaces)
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Inserts (or replaces) `id` in `namespace` with `payload` stored beside it; the vector is normalised here.
    /// O(dim) plus, at times, waking the background indexer.
    pub fn insert(
        &self,
        namespace: &str,
        id: u64,
        mut vector: Vec<f32>,
        payload: &[u8],
    ) -> Result<(), CoreError> {
        normalise(&mut vector, self.config.dim)?;
        let ns = if let Some(ns) = self.namespace(namespace) {
            ns
        } else {
            let mut map = write(&self.namespaces);
            let entry = map.entry(namespace.to_owned());
            Arc::clone(entry.or_insert_with(|| Arc::new(Namespace::new(self.config))))
        };
        let gen = self.clock.fetch_add(1, Ordering::Relaxed);
        if ns.insert(id, &vector, payload, gen)? {
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
        search_query(&mut query, self.config.dim, min_score)?;
        match self.namespace(namespace) {
            Some(ns) => ns.search(&query, k, min_score),
            None => Ok(Vec::new()),
        }
    }

    /// The payload stored with `id` in `namespace`.
    #[must_use]
    pub fn payload(&self, namespace: &str, id: u64) -> Option<Vec<u8>> {
        let ns = self.namespace(namespace)?;
        let rows = read(&ns.rows);
        rows.pos.get(&id).map(|&r| rows.payloads[r].to_vec())
    }

    /// Entries in `namespace`.
    #[must_use]
    pub fn count(&self, namespace: &str) -> usize {
        self.namespace(namespace)
            .map_or(0, |ns| read(&ns.rows).len())
    }

    /// Entries over all namespaces.
    #[must_use]
    pub fn len(&self) -> usize {
        read(&self.namespaces)
            .values()
            .map(|ns| read(&ns.rows).len())
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
        self.namespace(namespace).map_or(0, |ns| ns.pending())
    }

    /// Moves every pending entry into the graphs now, on `threads` threads (after a bulk load, before a bench), and
    /// returns once no background indexer runs either: one that earlier inserts started may be between two batches,
    /// and would take rows inserted after this returns into the graph. Inserts that go on meanwhile are helped along.
    pub fn build(&self, threads: usize) -> Result<(), CoreError> {
        for (_, ns) in self.all() {
            ns.migrate_all(threads)?;
            while ns.migrating.load(Ordering::Acquire) {
                std::thread::sleep(std::time::Duration::from_millis(1));
                ns.migrate_all(threads)?;
            }
        }
        Ok(())
    }

    /// Removes the entries that `snapshot` holds identically (same vector, same payload): once a process maps a
    /// snapshot, its own copies of what the snapshot covers are redundant. Returns them, by namespace and id.
    pub fn remove_shared(&self, snapshot: &Snapshot) -> Result<Vec<(String, u64)>, CoreError> {
        let dim = self.config.dim;
        let mut removed = Vec::new();
        for (name, ns) in self.all() {
            let Some(theirs) = snapshot.namespace(&name) else {
                continue;
            };
            let mut rows = write(&ns.rows);
            let same: Vec<u64> = (0..rows.len())
                .filter(|&r| {
                    let id = rows.ids[r];
                    theirs.payload(id) == Some(&rows.payloads[r][..])
                        && theirs.vector(id) == Some(rows.row(r, dim))
                })
                .map(|r| rows.ids[r])
                .collect();
            for id in same {
                if let Some(&row) = rows.pos.get(&id) {
                    if rows.remove_row(row, dim) {
                        if let Some(g) = ns.graph.get() {
                            let _gate = write(&ns.gate);
                            g.remove(id).map_err(|e| graph_err(&e))?;
                        }
                    }
                    removed.push((name.clone(), id));
                }
            }
        }
        Ok(removed)
    }

    /// Writes the index to `path` (via a temporary file and a rename), graphs as they are: a snapshot that
    /// [`Snapshot::open`] maps and [`VectorIndex::load`] reads.
    pub fn save(&self, path: &Path, label: &[u8]) -> Result<(), CoreError> {
        let options = MergeOptions {
            max_graph_adds: Some(0),
            threads: 1,
            label: label.to_vec(),
            ..MergeOptions::default()
        };
        self.save_merged(path, None, &[], &options).map(|_| ())
    }

    /// Reads a snapshot into a new, mutable index (rows and graphs copied into this process's memory).
    pub fn load(path: &Path) -> Result<Self, CoreError> {
        Self::from_snapshot(&Snapshot::open(path)?)
    }

    /// A mutable copy of `snapshot`.
    pub fn from_snapshot(snapshot: &Snapshot) -> Result<Self, CoreError> {
        let config = snapshot.config();
        let index = VectorIndex::new(config)?;
        index.clock.store(snapshot.next_gen(), Ordering::Relaxed);
        let dim = config.dim;
        for name in snapshot.namespaces() {
            let Some(theirs) = snapshot.namespace(&name) else {
                continue;
            };
            let ns = Namespace::new(config);
            {
                let mut rows = write(&ns.rows);
                let (ids, gens, data) = (theirs.ids(), theirs.gens(), theirs.data());
                for r in 0..ids.len() {
                    let payload = theirs.payload_at(r).unwrap_or_default();
                    rows.push(
                        ids[r],
                        gens[r],
                        payload.into(),
                        &data[r * dim..(r + 1) * dim],
                    );
                }
                if let Some(bytes) = theirs.graph_bytes() {
                    let g = Index::new(&config.graph_options()).map_err(|e| graph_err(&e))?;
                    g.load_from_buffer(bytes).map_err(|e| graph_err(&e))?;
                    g.reserve_capacity_and_threads(g.size().max(1024) * 2, GRAPH_THREADS)
                        .map_err(|e| graph_err(&e))?;
                    rows.graphed = theirs.graphed();
                    let _ = ns.graph.set(g);
                } else if rows.len() >= config.hnsw_threshold {
                    let _ = ns
                        .graph
                        .set(config.new_graph(rows.len() * 2, GRAPH_THREADS)?);
                }
            }
            let ns = Arc::new(ns);
            if ns.pending() >= MIGRATE_MIN {
                spawn_indexer(&ns);
            }
            write(&index.namespaces).insert(name, ns);
        }
        Ok(index)
    }

    /// Writes to `path` (via a temporary file and a rename) the next snapshot: `base`'s entries but those in
    /// `removed` and those this index holds (its copy is the newer), then this index's entries. Graphs start
    /// from `base`'s (copied, not rebuilt) or, for a namespace `base` has no graph for, from this index's; pending
    /// rows (the base's first) are added to them up to `options.max_graph_adds`. `options.max_entries` keeps the
    /// newest. A namespace whose graph needs no change has its graph bytes copied as they are.
    pub fn save_merged(
        &self,
        path: &Path,
        base: Option<&Snapshot>,
        removed: &[(String, u64)],
        options: &MergeOptions,
    ) -> Result<MergeReport, CoreError> {
        let config = self.config;
        if let Some(b) = base {
            if b.config() != config {
                return Err(CoreError::InvalidArgument(format!(
                    "the base snapshot's settings ({:?}) differ from this index's ({config:?})",
                    b.config()
                )));
            }
        }
        let mut gone: HashMap<&str, HashSet<u64>> = HashMap::new();
        for (name, id) in removed {
            gone.entry(name.as_str()).or_default().insert(*id);
        }
        let base_next = base.map_or(0, Snapshot::next_gen);
        let mut names: Vec<String> = self.namespaces();
        if let Some(b) = base {
            names.extend(b.namespaces());
        }
        names.sort_unstable();
        names.dedup();
        let plan = MergePlan {
            config,
            base_next,
            cutoff: match options.max_entries {
                Some(max) => self.age_cutoff(&names, base, &gone, base_next, max),
                None => 0,
            },
            threads: options.threads.max(1),
        };
        let next_gen = base_next + self.clock.load(Ordering::Relaxed);
        let mut out = SnapshotWriter::create(path, &config, next_gen, &options.label)?;
        let mut report = MergeReport::default();
        let mut budget = options.max_graph_adds.unwrap_or(usize::MAX);
        for name in &names {
            let theirs = base.and_then(|b| b.namespace(name));
            let ours = match self.namespace(name) {
                // Our graph is the start only where the base has none.
                Some(ns) => Some(LocalCopy::take(
                    &ns,
                    theirs.is_none_or(|t| t.graph_bytes().is_none()),
                )?),
                None => None,
            };
            let Some((img, adds)) =
                plan.namespace(theirs, ours.as_ref(), gone.get(name.as_str()), &mut budget)?
            else {
                continue;
            };
            report.entries += img.ids.len();
            if img.graph.is_some() {
                report.pending += img.ids.len() - img.graphed;
            }
            report.added_to_graph += adds;
            out.namespace(name, &img)?;
        }
        out.finish()?;
        Ok(report)
    }

    /// The insert generation below which a merge bounded to `max` entries drops them (0: none dropped).
    fn age_cutoff(
        &self,
        names: &[String],
        base: Option<&Snapshot>,
        gone: &HashMap<&str, HashSet<u64>>,
        base_next: u64,
        max: usize,
    ) -> u64 {
        let mut gens: Vec<u64> = Vec::new();
        for name in names {
            let ours = self.namespace(name);
            let rows = ours.as_ref().map(|ns| read(&ns.rows));
            if let Some(theirs) = base.and_then(|b| b.namespace(name)) {
                let gone = gone.get(name.as_str());
                gens.extend(
                    theirs
                        .ids()
                        .iter()
                        .zip(theirs.gens())
                        .filter(|(id, _)| {
                            !rows.as_ref().is_some_and(|r| r.pos.contains_key(id))
                                && !gone.is_some_and(|g| g.contains(id))
                        })
                        .map(|(_, &g)| g),
                );
            }
            if let Some(rows) = &rows {
                gens.extend(rows.gens.iter().map(|g| base_next + g));
            }
        }
        if gens.len() <= max {
            return 0;
        }
        let nth = gens.len() - max;
        *gens.select_nth_unstable(nth).1
    }
}

/// Where a merged row comes from: the base snapshot's row, or our copy's.
#[derive(Clone, Copy)]
enum Src {
    Base(usize),
    Ours(usize),
}

/// What every namespace of one merge shares.
struct MergePlan {
    config: IndexConfig,
    /// Our generations are numbered after the base's.
    base_next: u64,
    /// Entries older than this are dropped.
    cutoff: u64,
    threads: usize,
}

impl MergePlan {
    /// One namespace of the merge: its rows in file order and its graph, and how many rows joined the graph.
    /// None when nothing of it remains.
    fn namespace(
        &self,
        theirs: Option<NsView<'_>>,
        ours: Option<&LocalCopy>,
        gone: Option<&HashSet<u64>>,
        budget: &mut usize,
    ) -> Result<Option<(NsImage, usize)>, CoreError> {
        let dim = self.config.dim;
        let ours_fresh = |c: &LocalCopy, r: usize| self.base_next + c.gens[r] >= self.cutoff;
        // Rows in the start graph (kept), candidates for it (base's pending first, then ours), and graph members
        // that go.
        let mut in_graph: Vec<Src> = Vec::new();
        let mut pending: Vec<Src> = Vec::new();
        let mut dropped: Vec<u64> = Vec::new();
        if let Some(t) = theirs {
            for (r, (&id, &gen)) in t.ids().iter().zip(t.gens()).enumerate() {
                let keep = gen >= self.cutoff
                    && !ours.is_some_and(|c| c.pos.contains(&id))
                    && !gone.is_some_and(|g| g.contains(&id));
                match (r < t.graphed(), keep) {
                    (true, true) => in_graph.push(Src::Base(r)),
                    (true, false) => dropped.push(id),
                    (false, true) => pending.push(Src::Base(r)),
                    (false, false) => {}
                }
            }
        }
        let start = theirs
            .and_then(|t| t.graph_bytes())
            .or(ours.and_then(|c| c.graph.as_deref()));
        if let Some(c) = ours {
            // Our graphed rows count as in the graph only when the graph is ours (the base has none).
            let ours_is_start =
                c.graph.is_some() && theirs.is_none_or(|t| t.graph_bytes().is_none());
            for r in 0..c.ids.len() {
                match (ours_is_start && r < c.graphed, ours_fresh(c, r)) {
                    (true, true) => in_graph.push(Src::Ours(r)),
                    (true, false) => dropped.push(c.ids[r]),
                    (false, true) => pending.push(Src::Ours(r)),
                    (false, false) => {}
                }
            }
        }
        let total = in_graph.len() + pending.len();
        if total == 0 {
            return Ok(None);
        }
        let row = |s: Src| -> (u64, u64, &[u8], &[f32]) {
            match (s, theirs, ours) {
                (Src::Base(r), Some(t), _) => (
                    t.ids()[r],
                    t.gens()[r],
                    t.payload_at(r).unwrap_or_default(),
                    &t.data()[r * dim..(r + 1) * dim],
                ),
                (Src::Ours(r), _, Some(c)) => (
                    c.ids[r],
                    self.base_next + c.gens[r],
                    &c.payloads[r],
                    &c.data[r * dim..(r + 1) * dim],
                ),
                _ => unreachable!("a row comes from the side it names"),
            }
        };
        let wants_graph = start.is_some() || total >= self.config.hnsw_threshold;
        let adds = if wants_graph {
            pending.len().min(*budget)
        } else {
            0
        };
        *budget -= adds;
        let mut img = NsImage::default();
        img.graph = if !wants_graph {
            None
        } else if dropped.is_empty() && adds == 0 {
            start.map(<[u8]>::to_vec)
        } else {
            let added: Vec<(u64, &[f32])> = pending[..adds]
                .iter()
                .map(|&s| {
                    let (id, _, _, v) = row(s);
                    (id, v)
                })
                .collect();
            Some(self.grow_graph(start, &dropped, &added)?)
        };
        img.graphed = if img.graph.is_some() {
            in_graph.len() + adds
        } else {
            0
        };
        for &s in in_graph.iter().chain(&pending) {
            let (id, gen, payload, v) = row(s);
            img.push(id, gen, payload, v);
        }
        Ok(Some((img, adds)))
    }

    /// A mutable copy of `start` (or a new graph) without `dropped` and with `added`, serialised.
    fn grow_graph(
        &self,
        start: Option<&[u8]>,
        dropped: &[u64],
        added: &[(u64, &[f32])],
    ) -> Result<Vec<u8>, CoreError> {
        let g = Index::new(&self.config.graph_options()).map_err(|e| graph_err(&e))?;
        if let Some(bytes) = start {
            g.load_from_buffer(bytes).map_err(|e| graph_err(&e))?;
        }
        g.reserve_capacity_and_threads((g.size() + added.len()).max(1024), self.threads)
            .map_err(|e| graph_err(&e))?;
        // A key may also be in the graph without being marked graphed (a graph copied mid-batch): out first.
        for &id in dropped.iter().chain(added.iter().map(|(id, _)| id)) {
            if g.contains(id) {
                g.remove(id).map_err(|e| graph_err(&e))?;
            }
        }
        let ids: Vec<u64> = added.iter().map(|&(id, _)| id).collect();
        let data: Vec<f32> = added.iter().flat_map(|&(_, v)| v.iter().copied()).collect();
        add_to_graph(&g, &ids, &data, self.config.dim, self.threads)?;
        let mut buf = vec![0u8; g.serialized_length()];
        g.save_to_buffer(&mut buf).map_err(|e| graph_err(&e))?;
        Ok(buf)
    }
}

/// A namespace's rows copied out under its lock (the lock is not held while a merge builds graphs or writes).
struct LocalCopy {
    ids: Vec<u64>,
    pos: HashSet<u64>,
    gens: Vec<u64>,
    payloads: Vec<Box<[u8]>>,
    data: Vec<f32>,
    graphed: usize,
    /// The graph, serialised with the rows, when the merge starts from it.
    graph: Option<Vec<u8>>,
}

impl LocalCopy {
    fn take(ns: &Namespace, with_graph: bool) -> Result<Self, CoreError> {
        let rows = read(&ns.rows);
        let graph = match ns.graph.get().filter(|_| with_graph) {
            Some(g) => {
                let _gate = write(&ns.gate); // no graph insert runs while the graph is copied
                let mut buf = vec![0u8; g.serialized_length()];
                g.save_to_buffer(&mut buf).map_err(|e| graph_err(&e))?;
                Some(buf)
            }
            None => None,
        };
        Ok(LocalCopy {
            ids: rows.ids.clone(),
            pos: rows.ids.iter().copied().collect(),
            gens: rows.gens.clone(),
            payloads: rows.payloads.clone(),
            data: rows.data.to_vec(),
            graphed: if graph.is_some() { rows.graphed } else { 0 },
            graph,
        })
    }
}

#[cfg(test)]
mod tests;
