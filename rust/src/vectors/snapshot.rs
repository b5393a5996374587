//! Snapshot files: an index laid out to be memory-mapped, and [`Snapshot`], a read-only index over one.
//!
//! Every section an index searches sits in the file as it sits in memory (little-endian, 8-byte aligned): ids,
//! generations, payloads, the f32 rows (graphed rows first, pending rows after), an id lookup sorted by id, and
//! the usearch graph as usearch serialises it, which usearch then reads in place (`view_from_buffer`). Opening one
//! costs a header parse, an O(n) check of the lookup, and usearch's key table; the rows and graph stay in the page
//! cache, shared by every process that maps the file, instead of in each process's heap.
//!
//! Files are written once, under a temporary name, then renamed into place: a process that maps a snapshot keeps
//! reading the file it opened while the next one replaces it, and never sees a partial write.
//!
//! ```text
//! header  "GWVECS03", dim, hnsw_threshold, connectivity, expansion_add, expansion_search, quantization, next_gen,
//!         label length, label bytes
//! per namespace (each section 8-byte aligned, the graph 4096): ids [u64; n], gens [u64; n], payload ends
//!         [u64; n], payload bytes, rows [f32; n * dim], lookup [(id, row); n] sorted by id, graph bytes
//! directory  count, then per namespace: name length, name, n, graphed, the sections' offsets and lengths
//! footer  directory offset, directory length, "GWVECS03"
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{Mmap, MmapOptions};
use usearch::Index;

use super::{search_query, search_store, Hit, IndexConfig, Quantization, GRAPH_THREADS};
use crate::error::CoreError;

const MAGIC: &[u8; 8] = b"GWVECS03";
/// Sections need 8-byte alignment (u64 and f32 read in place); more would pad each of many small namespaces.
const ALIGN: u64 = 8;
/// usearch reads its graph in place: a page boundary leaves no doubt about its alignment.
const GRAPH_ALIGN: u64 = 4096;
const NONE: u64 = u64::MAX;
/// Directory fields after a namespace's name.
const DIR_FIELDS: usize = 11;

/// One namespace as a merge or a save writes it: rows in file order (graphed first).
#[derive(Default)]
pub(super) struct NsImage {
    pub ids: Vec<u64>,
    pub gens: Vec<u64>,
    pub ends: Vec<u64>,
    pub blob: Vec<u8>,
    pub data: Vec<f32>,
    pub graphed: usize,
    pub graph: Option<Vec<u8>>,
}

impl NsImage {
    pub fn push(&mut self, id: u64, gen: u64, payload: &[u8], v: &[f32]) {
        self.ids.push(id);
        self.gens.push(gen);
        self.blob.extend_from_slice(payload);
        self.ends.push(self.blob.len() as u64);
        self.data.extend_from_slice(v);
    }
}

/// Writes a snapshot under a temporary name beside `path`; `finish` renames it into place, a drop before that
/// deletes it.
pub(super) struct SnapshotWriter {
    out: BufWriter<File>,
    at: u64,
    tmp: PathBuf,
    path: PathBuf,
    dir: Vec<u8>,
    count: u64,
    done: bool,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> CoreError + '_ {
    move |e| CoreError::Io(format!("cannot write {}: {e}", path.display()))
}

impl SnapshotWriter {
    pub fn create(
        path: &Path,
        config: &IndexConfig,
        next_gen: u64,
        label: &[u8],
    ) -> Result<Self, CoreError> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let name = path
            .file_name()
            .map_or_else(|| "snapshot".into(), |n| n.to_string_lossy().into_owned());
        let tmp = path.with_file_name(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        let mut w = SnapshotWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            at: 0,
            tmp,
            path: path.to_owned(),
            dir: Vec::new(),
            count: 0,
            done: false,
        };
        w.bytes(MAGIC)?;
        for x in [
            config.dim,
            config.hnsw_threshold,
            config.connectivity,
            config.expansion_add,
            config.expansion_search,
            config.quantization.code(),
        ] {
            w.u64s(&[x as u64])?;
        }
        w.u64s(&[next_gen, label.len() as u64])?;
        w.bytes(label)?;
        Ok(w)
    }

    fn bytes(&mut self, b: &[u8]) -> Result<(), CoreError> {
        self.out.write_all(b).map_err(io_err(&self.tmp))?;
        self.at += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self, align: u64) -> Result<u64, CoreError> {
        let gap = (align - self.at % align) % align;
        let zeros = [0u8; 4096];
        debug_assert_eq!(GRAPH_ALIGN, 4096);
        #[allow(clippy::cast_possible_truncation)] // gap < GRAPH_ALIGN
        self.bytes(&zeros[..gap as usize])?;
        Ok(self.at)
    }

    fn u64s(&mut self, xs: &[u64]) -> Result<(), CoreError> {
        let mut buf = Vec::with_capacity(8 * xs.len().min(8192));
        for chunk in xs.chunks(8192) {
            buf.clear();
            buf.extend(chunk.iter().flat_map(|x| x.to_le_bytes()));
            self.bytes(&buf)?;
        }
        Ok(())
    }

    fn f32s(&mut self, xs: &[f32]) -> Result<(), CoreError> {
        let mut buf = Vec::with_capacity(4 * xs.len().min(16384));
        for chunk in xs.chunks(16384) {
            buf.clear();
            buf.extend(chunk.iter().flat_map(|x| x.to_le_bytes()));
            self.bytes(&buf)?;
        }
        Ok(())
    }

    pub fn namespace(&mut self, name: &str, img: &NsImage) -> Result<(), CoreError> {
        let n = img.ids.len() as u64;
        let ids = self.pad(ALIGN)?;
        self.u64s(&img.ids)?;
        let gens = self.pad(ALIGN)?;
        self.u64s(&img.gens)?;
        let ends = self.pad(ALIGN)?;
        self.u64s(&img.ends)?;
        let blob = self.pad(ALIGN)?;
        self.bytes(&img.blob)?;
        let data = self.pad(ALIGN)?;
        self.f32s(&img.data)?;
        let lookup = self.pad(ALIGN)?;
        let mut pairs: Vec<(u64, u64)> =
            img.ids.iter().zip(0u64..).map(|(&id, r)| (id, r)).collect();
        pairs.sort_unstable();
        let flat: Vec<u64> = pairs.into_iter().flat_map(|(id, r)| [id, r]).collect();
        self.u64s(&flat)?;
        let (graph, graph_len) = match &img.graph {
            Some(bytes) => {
                let at = self.pad(GRAPH_ALIGN)?;
                self.bytes(bytes)?;
                (at, bytes.len() as u64)
            }
            None => (NONE, NONE),
        };
        self.dir.extend((name.len() as u64).to_le_bytes());
        self.dir.extend(name.as_bytes());
        for x in [
            n,
            img.graphed as u64,
            ids,
            gens,
            ends,
            blob,
            img.blob.len() as u64,
            data,
            lookup,
            graph,
            graph_len,
        ] {
            self.dir.extend(x.to_le_bytes());
        }
        self.count += 1;
        Ok(())
    }

    /// Directory, footer, fsync, then the rename that publishes the file.
    pub fn finish(mut self) -> Result<(), CoreError> {
        let dir_off = self.pad(8)?;
        let dir = std::mem::take(&mut self.dir);
        self.u64s(&[self.count])?;
        self.bytes(&dir)?;
        let dir_len = self.at - dir_off;
        self.u64s(&[dir_off, dir_len])?;
        self.bytes(MAGIC)?;
        self.out.flush().map_err(io_err(&self.tmp))?;
        self.out.get_ref().sync_all().map_err(io_err(&self.tmp))?;
        std::fs::rename(&self.tmp, &self.path).map_err(io_err(&self.path))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

// --- reading ------------------------------------------------------------------------------------------------------

/// One namespace's sections, as byte ranges of the map.
struct MappedNamespace {
    n: usize,
    graphed: usize,
    ids: Range<usize>,
    gens: Range<usize>,
    ends: Range<usize>,
    blob: Range<usize>,
    data: Range<usize>,
    lookup: Range<usize>,
    graph_bytes: Option<Range<usize>>,
    /// usearch's view of `graph_bytes`: its nodes and vectors stay in the map.
    graph: Option<Index>,
}

/// A read-only index over a memory-mapped snapshot file; safe to search from many threads.
pub struct Snapshot {
    config: IndexConfig,
    next_gen: u64,
    label: Vec<u8>,
    names: Vec<String>,
    /// Declared before `map`: fields drop in order, and the graph views point into the map.
    namespaces: std::collections::HashMap<String, MappedNamespace>,
    map: Mmap,
}

/// A namespace of a snapshot, borrowed.
#[derive(Clone, Copy)]
pub(super) struct NsView<'a> {
    map: &'a [u8],
    ns: &'a MappedNamespace,
    dim: usize,
}

fn u64s(b: &[u8]) -> &[u64] {
    // SAFETY: every bit pattern is a valid u64; `open` checked that each section starts 8-aligned in a page-aligned
    // map and spans whole u64s, so there is no prefix or suffix, and that the platform is little-endian.
    let (_, mid, _) = unsafe { b.align_to::<u64>() };
    mid
}

fn f32s(b: &[u8]) -> &[f32] {
    // SAFETY: as for u64s: every bit pattern is a valid f32, the section is aligned and whole.
    let (_, mid, _) = unsafe { b.align_to::<f32>() };
    mid
}

impl<'a> NsView<'a> {
    pub fn ids(&self) -> &'a [u64] {
        u64s(&self.map[self.ns.ids.clone()])
    }

    pub fn gens(&self) -> &'a [u64] {
        u64s(&self.map[self.ns.gens.clone()])
    }

    pub fn data(&self) -> &'a [f32] {
        f32s(&self.map[self.ns.data.clone()])
    }

    pub fn graphed(&self) -> usize {
        self.ns.graphed
    }

    pub fn graph(&self) -> Option<&'a Index> {
        self.ns.graph.as_ref()
    }

    pub fn graph_bytes(&self) -> Option<&'a [u8]> {
        self.ns.graph_bytes.clone().map(|r| &self.map[r])
    }

    /// Binary search in the sorted lookup: O(log n), no per-process table.
    pub fn row_of(&self, id: u64) -> Option<usize> {
        let lookup = u64s(&self.map[self.ns.lookup.clone()]);
        let (mut lo, mut hi) = (0, self.ns.n);
        while lo < hi {
            let mid = usize::midpoint(lo, hi);
            match lookup[2 * mid].cmp(&id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return usize::try_from(lookup[2 * mid + 1]).ok(),
            }
        }
        None
    }

    pub fn payload_at(&self, row: usize) -> Option<&'a [u8]> {
        let ends = u64s(&self.map[self.ns.ends.clone()]);
        let end = usize::try_from(*ends.get(row)?).ok()?;
        let start = if row == 0 {
            0
        } else {
            usize::try_from(ends[row - 1]).ok()?
        };
        self.map[self.ns.blob.clone()].get(start..end)
    }

    pub fn payload(&self, id: u64) -> Option<&'a [u8]> {
        self.payload_at(self.row_of(id)?)
    }

    pub fn vector(&self, id: u64) -> Option<&'a [f32]> {
        let r = self.row_of(id)?;
        self.data().get(r * self.dim..(r + 1) * self.dim)
    }
}

/// Reads little-endian u64s from a byte slice, refusing to run past its end.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn u64(&mut self) -> Option<u64> {
        let end = self.at.checked_add(8)?;
        let x = u64::from_le_bytes(self.b.get(self.at..end)?.try_into().ok()?);
        self.at = end;
        Some(x)
    }

    fn usize(&mut self) -> Option<usize> {
        usize::try_from(self.u64()?).ok()
    }

    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let b = self.b.get(self.at..end)?;
        self.at = end;
        Some(b)
    }
}

impl Snapshot {
    /// Maps `path` read-only. InvalidArgument when it is not a snapshot (or a damaged one), Io when unreadable.
    pub fn open(path: &Path) -> Result<Self, CoreError> {
        let bad = |what: &str| {
            CoreError::InvalidArgument(format!(
                "{}: not a saved VectorIndex snapshot ({what})",
                path.display()
            ))
        };
        if cfg!(target_endian = "big") {
            return Err(bad("snapshots are little-endian; this platform is not"));
        }
        let file = File::open(path)
            .map_err(|e| CoreError::Io(format!("cannot read {}: {e}", path.display())))?;
        // SAFETY: the map is read-only. Snapshot files are written once under a temporary name and renamed into
        // place, never modified afterwards, so their bytes do not change under the map; a replacement is a new
        // file, and this map keeps the old one.
        // Populated: the pages are read in and entered in this process's page tables before `open` returns (~0.1 s
        // for 300 MB already in the page cache). Mapped lazily, the first searches of a worker that just started
        // each took hundreds of page faults, and ran at ~250 ms for two seconds instead of its steady ~1 ms.
        let map = unsafe { MmapOptions::new().populate().map(&file) }
            .map_err(|e| CoreError::Io(format!("cannot map {}: {e}", path.display())))?;

        let mut head = Cursor { b: &map, at: 0 };
        if head.bytes(8) != Some(MAGIC) {
            return Err(bad("bad magic"));
        }
        let mut next = || head.usize().ok_or_else(|| bad("truncated header"));
        let config = IndexConfig {
            dim: next()?,
            hnsw_threshold: next()?,
            connectivity: next()?,
            expansion_add: next()?,
            expansion_search: next()?,
            quantization: Quantization::from_code(next()?).ok_or_else(|| bad("quantization"))?,
        };
        config.validate().map_err(|_| bad("bad header"))?;
        let next_gen = head.u64().ok_or_else(|| bad("truncated header"))?;
        let label_len = head.usize().ok_or_else(|| bad("truncated header"))?;
        let label = head.bytes(label_len).ok_or_else(|| bad("label"))?.to_vec();

        let len = map.len();
        if len < 24 || map[len - 8..] != MAGIC[..] {
            return Err(bad("truncated: no footer"));
        }
        let mut foot = Cursor {
            b: &map,
            at: len - 24,
        };
        let dir_off = foot.usize().ok_or_else(|| bad("footer"))?;
        let dir_len = foot.usize().ok_or_else(|| bad("footer"))?;
        if dir_off.checked_add(dir_len) != Some(len - 24) || dir_off < head.at {
            return Err(bad("directory out of bounds"));
        }
        let mut dir = Cursor {
            b: &map[..dir_off + dir_len],
            at: dir_off,
        };
        let count = dir.usize().ok_or_else(|| bad("directory"))?;
        let mut namespaces = std::collections::HashMap::new();
        let mut names = Vec::new();
        for _ in 0..count {
            let name_len = dir.usize().ok_or_else(|| bad("directory"))?;
            let name = dir.bytes(name_len).ok_or_else(|| bad("directory"))?;
            let name =
                String::from_utf8(name.to_vec()).map_err(|_| bad("namespace name is not UTF-8"))?;
            let mut f = [0usize; DIR_FIELDS];
            for x in &mut f {
                // NONE (u64::MAX) marks a namespace without a graph; it reads as usize::MAX.
                *x = usize::try_from(dir.u64().ok_or_else(|| bad("directory"))?)
                    .unwrap_or(usize::MAX);
            }
            let ns =
                map_namespace(&map, dir_off, &config, f).ok_or_else(|| bad("damaged namespace"))?;
            names.push(name.clone());
            namespaces.insert(name, ns);
        }
        names.sort_unstable();
        Ok(Snapshot {
            config,
            next_gen,
            label,
            names,
            namespaces,
            map,
        })
    }

    #[must_use]
    pub fn config(&self) -> IndexConfig {
        self.config
    }

    /// The insert generation after the newest entry (a merge numbers entries added after it from here).
    #[must_use]
    pub fn next_gen(&self) -> u64 {
        self.next_gen
    }

    /// The bytes the writer stored with the file.
    #[must_use]
    pub fn label(&self) -> &[u8] {
        &self.label
    }

    /// Namespace names, sorted.
    #[must_use]
    pub fn namespaces(&self) -> Vec<String> {
        self.names.clone()
    }

    pub(super) fn namespace(&self, name: &str) -> Option<NsView<'_>> {
        self.namespaces.get(name).map(|ns| NsView {
            map: &self.map,
            ns,
            dim: self.config.dim,
        })
    }

    /// Entries in `namespace`.
    #[must_use]
    pub fn count(&self, namespace: &str) -> usize {
        self.namespaces.get(namespace).map_or(0, |ns| ns.n)
    }

    /// Entries over all namespaces.
    #[must_use]
    pub fn len(&self) -> usize {
        self.namespaces.values().map(|ns| ns.n).sum()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries of `namespace` not in its graph (scanned exactly); 0 without a graph.
    #[must_use]
    pub fn pending(&self, namespace: &str) -> usize {
        self.namespaces
            .get(namespace)
            .filter(|ns| ns.graph.is_some())
            .map_or(0, |ns| ns.n - ns.graphed)
    }

    /// Entries not in a graph, over all namespaces (0 when every graph is complete).
    #[must_use]
    pub fn pending_total(&self) -> usize {
        self.namespaces
            .values()
            .filter(|ns| ns.graph.is_some())
            .map(|ns| ns.n - ns.graphed)
            .sum()
    }

    #[must_use]
    pub fn payload(&self, namespace: &str, id: u64) -> Option<&[u8]> {
        self.namespace(namespace)?.payload(id)
    }

    /// Every payload of `namespace`, in file order.
    #[must_use]
    pub fn payloads(&self, namespace: &str) -> Vec<&[u8]> {
        self.namespace(namespace).map_or_else(Vec::new, |ns| {
            (0..ns.ns.n).filter_map(|r| ns.payload_at(r)).collect()
        })
    }

    #[must_use]
    pub fn contains(&self, namespace: &str, id: u64) -> bool {
        self.namespace(namespace)
            .is_some_and(|ns| ns.row_of(id).is_some())
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
        let Some(ns) = self.namespace(namespace) else {
            return Ok(Vec::new());
        };
        search_store(
            &query,
            k,
            min_score,
            ns.graph(),
            None,
            ns.graphed(),
            ns.ids(),
            ns.data(),
            |id| ns.row_of(id),
        )
    }
}

/// Checks one namespace's directory fields against the file and maps its graph; None when anything is off.
fn map_namespace(
    map: &[u8],
    end: usize,
    config: &IndexConfig,
    f: [usize; DIR_FIELDS],
) -> Option<MappedNamespace> {
    let [n, graphed, ids, gens, ends, blob, blob_len, data, lookup, graph, graph_len] = f;
    let section = |off: usize, len: usize, align: usize| -> Option<Range<usize>> {
        let stop = off.checked_add(len)?;
        (off % align == 0 && stop <= end).then_some(off..stop)
    };
    let words = n.checked_mul(8)?;
    let ns = MappedNamespace {
        n,
        graphed,
        ids: section(ids, words, 8)?,
        gens: section(gens, words, 8)?,
        ends: section(ends, words, 8)?,
        blob: section(blob, blob_len, 1)?,
        data: section(data, n.checked_mul(config.dim)?.checked_mul(4)?, 4)?,
        lookup: section(lookup, words.checked_mul(2)?, 8)?,
        graph_bytes: if graph == usize::MAX {
            None
        } else {
            Some(section(graph, graph_len, 8)?)
        },
        graph: None,
    };
    if graphed > n || (ns.graph_bytes.is_none() && graphed != 0) {
        return None;
    }
    // The lookup must be a sorted permutation of the ids (this also makes ids unique), and the payload ends
    // monotonic within the blob: then no later read can index out of bounds.
    let (row_ids, look, row_ends) = (
        u64s(&map[ns.ids.clone()]),
        u64s(&map[ns.lookup.clone()]),
        u64s(&map[ns.ends.clone()]),
    );
    let mut last = None;
    for pair in look.chunks_exact(2) {
        let row = usize::try_from(pair[1]).ok()?;
        if row_ids.get(row) != Some(&pair[0]) || last.is_some_and(|l| l >= pair[0]) {
            return None;
        }
        last = Some(pair[0]);
    }
    let mut prev = 0u64;
    for &e in row_ends {
        if e < prev || e > blob_len as u64 {
            return None;
        }
        prev = e;
    }
    let mut ns = ns;
    if let Some(r) = ns.graph_bytes.clone() {
        let g = Index::new(&config.graph_options()).ok()?;
        g.reserve_capacity_and_threads(1, GRAPH_THREADS).ok()?;
        // SAFETY: the bytes lie in the map, which the Snapshot owns and drops after this index (field order), so
        // the view never outlives them; the map is read-only and usearch's view only reads.
        unsafe { g.view_from_buffer(&map[r]) }.ok()?;
        ns.graph = Some(g);
    }
    Some(ns)
}
