use std::collections::HashMap;
use std::path::PathBuf;

use proptest::prelude::*;

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

fn unit(v: &[f32]) -> Vec<f32> {
    let mut v = v.to_vec();
    let dim = v.len();
    normalise(&mut v, dim).unwrap();
    v
}

fn brute(data: &[(u64, Vec<f32>)], q: &[f32], k: usize) -> Vec<u64> {
    let q = unit(q);
    let mut scored: Vec<(f32, u64)> = data
        .iter()
        .map(|(id, v)| (dot(&q, &unit(v)), *id))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.iter().take(k).map(|s| s.1).collect()
}

fn ids(hits: &[Hit]) -> Vec<u64> {
    hits.iter().map(|h| h.id).collect()
}

/// A fresh directory under the system's temporary one, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        use std::sync::atomic::AtomicUsize;
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "gw-vectors-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The store's invariants: positions agree with ids, graphed rows first, columns the same length.
fn check_rows(rows: &Rows, dim: usize) {
    assert_eq!(rows.ids.len(), rows.gens.len());
    assert_eq!(rows.ids.len(), rows.payloads.len());
    assert_eq!(rows.data.len(), rows.ids.len() * dim);
    assert_eq!(rows.pos.len(), rows.ids.len());
    assert!(rows.graphed <= rows.ids.len());
    for (r, id) in rows.ids.iter().enumerate() {
        assert_eq!(rows.pos[id], r);
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
        index.insert("t", *id, v.clone(), b"").unwrap();
    }
    for q in vectors(20, 32, 3) {
        let got = ids(&index.search("t", q.clone(), 5, -1.0).unwrap());
        assert_eq!(got, brute(&data, &q, 5));
    }
}

#[test]
fn namespaces_threshold_replace_remove() {
    let index = VectorIndex::new(IndexConfig::new(4)).unwrap();
    index
        .insert("a", 1, vec![1.0, 0.0, 0.0, 0.0], b"one")
        .unwrap();
    index.insert("b", 2, vec![1.0, 0.0, 0.0, 0.0], b"").unwrap();
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
    assert_eq!(index.payload("a", 1).as_deref(), Some(&b"one"[..]));
    index
        .insert("a", 1, vec![0.0, 1.0, 0.0, 0.0], b"uno")
        .unwrap();
    assert_eq!(index.count("a"), 1);
    assert_eq!(index.payload("a", 1).as_deref(), Some(&b"uno"[..]));
    assert_eq!(
        index.search("a", vec![0.0, 1.0, 0.0, 0.0], 1, 0.9).unwrap()[0].id,
        1
    );
    index.insert("a", 3, vec![0.0, 0.0, 1.0, 0.0], b"").unwrap();
    assert!(index.remove("a", 1).unwrap());
    assert!(!index.remove("a", 1).unwrap());
    assert_eq!(index.payload("a", 1), None);
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
    assert!(index.insert("a", 1, vec![1.0; 3], b"").is_err());
    assert!(index.insert("a", 1, vec![0.0; 4], b"").is_err());
    assert!(index
        .insert("a", 1, vec![f32::NAN, 1.0, 0.0, 0.0], b"")
        .is_err());
    assert!(index.search("a", vec![1.0; 5], 1, 0.0).is_err());
    assert!(VectorIndex::new(IndexConfig::new(0)).is_err());
}

#[test]
fn pending_rows_are_scanned_exactly_before_and_after_the_graph_takes_them() {
    // Every row pending (graph just made, indexer not yet run), then all in the graph: the same exact top-k for
    // stored entries, since a stored vector's own score (1.0) beats any other.
    let dim = 16;
    let mut config = IndexConfig::new(dim);
    config.hnsw_threshold = 300;
    let ns = Namespace::new(config);
    let data = vectors(1500, dim, 11);
    for (i, v) in data.iter().enumerate() {
        ns.insert(i as u64, &unit(v), b"", i as u64).unwrap();
    }
    assert!(ns.graph.get().is_some());
    assert_eq!(
        ns.pending(),
        1500,
        "nothing migrated: the indexer was never woken here"
    );
    let before: Vec<Vec<Hit>> = data
        .iter()
        .take(100)
        .map(|v| ns.search(&unit(v), 3, -1.0).unwrap())
        .collect();
    for (i, hits) in before.iter().enumerate() {
        assert_eq!(hits[0].id, i as u64);
    }
    ns.migrate_all(2).unwrap();
    assert_eq!(ns.pending(), 0);
    check_rows(&read(&ns.rows), dim);
    // The graph is approximate: a stored vector finds itself nearly always, and its score is the exact one.
    let mut found = 0;
    for (i, v) in data.iter().take(100).enumerate() {
        let after = ns.search(&unit(v), 1, -1.0).unwrap();
        if after[0].id == i as u64 {
            found += 1;
            assert!((after[0].score - before[i][0].score).abs() < 1e-6);
        }
    }
    assert!(found >= 97, "{found}/100 found themselves");
    // Replacing a graphed row sends it back to pending; removing one keeps the layout.
    ns.insert(7, &unit(&data[8]), b"", 2000).unwrap();
    ns.remove(9).unwrap();
    check_rows(&read(&ns.rows), dim);
    assert_eq!(ns.pending(), 1);
    let hits = ns.search(&unit(&data[8]), 2, -1.0).unwrap();
    assert_eq!(ids(&hits).len(), 2);
    assert!(ids(&hits).contains(&7) && ids(&hits).contains(&8));
    assert!(ns.search(&unit(&data[9]), 1, 0.999).unwrap().is_empty());
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u8),
    Remove(u8),
    Mark(u8),
    Unmark(u8),
}

proptest! {
    /// Whatever the sequence of inserts, removals and graph moves, the store keeps its invariants and holds
    /// exactly the model's entries, each with its own vector.
    #[test]
    fn rows_keep_their_layout(ops in prop::collection::vec(
        prop_oneof![
            any::<u8>().prop_map(Op::Insert),
            any::<u8>().prop_map(Op::Remove),
            any::<u8>().prop_map(Op::Mark),
            any::<u8>().prop_map(Op::Unmark),
        ],
        1..200,
    )) {
        let dim = 3;
        let mut rows = Rows::default();
        let mut model: HashMap<u64, f32> = HashMap::new();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Insert(id) => {
                    let id = u64::from(id % 32);
                    #[allow(clippy::cast_precision_loss)]
                    let x = step as f32;
                    if let Some(&r) = rows.pos.get(&id) {
                        rows.data[r * dim..(r + 1) * dim].copy_from_slice(&[x; 3]);
                    } else {
                        rows.push(id, step as u64, Box::new([]), &[x; 3]);
                    }
                    model.insert(id, x);
                }
                Op::Remove(id) => {
                    let id = u64::from(id % 32);
                    if let Some(&r) = rows.pos.get(&id) {
                        rows.remove_row(r, dim);
                        model.remove(&id);
                    }
                }
                Op::Mark(n) => {
                    if rows.len() > rows.graphed {
                        let r = rows.graphed + usize::from(n) % (rows.len() - rows.graphed);
                        rows.mark(r, dim);
                    }
                }
                Op::Unmark(n) => {
                    if rows.graphed > 0 {
                        rows.unmark(usize::from(n) % rows.graphed, dim);
                    }
                }
            }
            check_rows(&rows, dim);
            prop_assert_eq!(rows.len(), model.len());
            for (id, x) in &model {
                prop_assert_eq!(rows.row(rows.pos[id], dim), &[*x; 3][..]);
            }
        }
    }
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
        index
            .insert("t", *id, v.clone(), &id.to_le_bytes())
            .unwrap();
    }
    index.build(2).unwrap();
    assert_eq!(index.pending("t"), 0);
    let queries = vectors(100, dim, 5);
    let recall = |search: &dyn Fn(Vec<f32>) -> Vec<Hit>| {
        queries
            .iter()
            .filter(|q| search((*q).clone())[0].id == brute(&data, q, 1)[0])
            .count()
    };
    let found = recall(&|q| index.search("t", q, 1, -1.0).unwrap());
    assert!(found >= 95, "recall@1 {found}/100");
    // Removing from the graph hides the entry.
    let top = index.search("t", data[10].1.clone(), 1, -1.0).unwrap()[0];
    assert_eq!(top.id, data[10].0);
    index.remove("t", data[10].0).unwrap();
    assert_ne!(
        index.search("t", data[10].1.clone(), 1, -1.0).unwrap()[0].id,
        data[10].0
    );
    index
        .insert("t", data[10].0, data[10].1.clone(), b"back")
        .unwrap(); // back, pending
    let dir = TempDir::new("persist");
    let path = dir.path("index.gwv");
    index.insert("small", 1, vec![1.0; dim], b"").unwrap();
    index.save(&path, b"position 42").unwrap();

    let mapped = Snapshot::open(&path).unwrap();
    assert_eq!(mapped.label(), b"position 42");
    assert_eq!(mapped.len(), index.len());
    assert_eq!(
        mapped.namespaces(),
        vec!["small".to_owned(), "t".to_owned()]
    );
    assert_eq!(mapped.pending("t"), 1);
    assert_eq!(mapped.payload("t", data[10].0), Some(&b"back"[..]));
    assert_eq!(
        mapped.payload("t", data[11].0),
        Some(&data[11].0.to_le_bytes()[..])
    );
    assert_eq!(mapped.payload("t", 5), None);
    assert!(
        recall(&|q| mapped.search("t", q, 1, -1.0).unwrap()) >= 95,
        "recall@1 mapped"
    );
    assert_eq!(
        mapped.search("t", data[10].1.clone(), 1, -1.0).unwrap()[0].id,
        data[10].0
    );

    let loaded = VectorIndex::load(&path).unwrap();
    assert_eq!(loaded.len(), index.len());
    assert_eq!(
        loaded.namespaces(),
        vec!["small".to_owned(), "t".to_owned()]
    );
    assert!(
        recall(&|q| loaded.search("t", q, 1, -1.0).unwrap()) >= 95,
        "recall@1 after load"
    );
    assert_eq!(
        loaded.search("t", data[10].1.clone(), 1, -1.0).unwrap()[0].id,
        data[10].0
    );
    assert_eq!(
        loaded.payload("t", data[10].0).as_deref(),
        Some(&b"back"[..])
    );
    std::fs::write(&path, b"nonsense").unwrap();
    assert!(VectorIndex::load(&path).is_err());
    assert!(Snapshot::open(&path).is_err());
}

#[test]
fn background_indexer_catches_up() {
    let dim = 16;
    let mut config = IndexConfig::new(dim);
    config.hnsw_threshold = 300;
    let index = VectorIndex::new(config).unwrap();
    let data = vectors(2000, dim, 6);
    for (i, v) in data.iter().enumerate() {
        index.insert("t", i as u64, v.clone(), b"").unwrap();
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

/// An index that never builds graphs on its own (threshold above anything inserted), for merges to grow them.
fn quiet(dim: usize, threshold: usize) -> VectorIndex {
    let mut config = IndexConfig::new(dim);
    config.hnsw_threshold = threshold;
    VectorIndex::new(config).unwrap()
}

#[test]
fn a_snapshot_answers_as_the_index_that_wrote_it() {
    let dim = 24;
    let mut config = IndexConfig::new(dim);
    config.hnsw_threshold = 500;
    let index = VectorIndex::new(config).unwrap();
    let data = vectors(2000, dim, 21);
    for (i, v) in data.iter().enumerate() {
        index
            .insert("big", i as u64, v.clone(), format!("entry {i}").as_bytes())
            .unwrap();
    }
    index.build(2).unwrap();
    // Fewer pending rows than wake the indexer: the index stays as saved while the two are compared.
    for (i, v) in data.iter().enumerate().take(MIGRATE_MIN - 1) {
        index
            .insert(
                "big",
                10_000 + i as u64,
                v.iter().map(|x| -x).collect(),
                b"",
            )
            .unwrap(); // pending
        index.insert("small", i as u64, v.clone(), b"s").unwrap();
    }
    let dir = TempDir::new("same");
    let path = dir.path("s.gwv");
    index.save(&path, b"").unwrap();
    let mapped = Snapshot::open(&path).unwrap();
    assert_eq!(mapped.pending("big"), index.pending("big"));
    for q in vectors(200, dim, 22)
        .into_iter()
        .chain(data.iter().take(50).cloned())
    {
        for ns in ["big", "small", "none"] {
            assert_eq!(
                mapped.search(ns, q.clone(), 5, -1.0).unwrap(),
                index.search(ns, q.clone(), 5, -1.0).unwrap(),
                "namespace {ns}"
            );
        }
    }
    assert_eq!(mapped.payload("big", 17), Some(&b"entry 17"[..]));
}

#[test]
fn a_merge_drops_removed_and_shadowed_entries_and_keeps_the_newest() {
    let dim = 8;
    let dir = TempDir::new("merge");
    let data = vectors(400, dim, 31);
    let first = quiet(dim, 100_000);
    for (i, v) in data.iter().enumerate().take(200) {
        first
            .insert(
                if i % 2 == 0 { "even" } else { "odd" },
                i as u64,
                v.clone(),
                b"old",
            )
            .unwrap();
    }
    first.save(&dir.path("1.gwv"), b"1").unwrap();
    let base = Snapshot::open(&dir.path("1.gwv")).unwrap();

    let delta = quiet(dim, 100_000);
    for (i, v) in data.iter().enumerate().skip(200) {
        delta.insert("even", i as u64, v.clone(), b"new").unwrap();
    }
    delta
        .insert("even", 0, data[0].clone(), b"replaced")
        .unwrap(); // shadows the base's 0
    let removed = vec![
        ("odd".to_owned(), 1u64),
        ("odd".to_owned(), 3),
        ("even".to_owned(), 999),
    ];
    let options = MergeOptions {
        label: b"2".to_vec(),
        threads: 1,
        ..MergeOptions::default()
    };
    let report = delta
        .save_merged(&dir.path("2.gwv"), Some(&base), &removed, &options)
        .unwrap();
    assert_eq!(report.entries, 200 + 200 - 2);
    let merged = Snapshot::open(&dir.path("2.gwv")).unwrap();
    assert_eq!(merged.label(), b"2");
    assert_eq!(merged.count("even"), 300);
    assert_eq!(merged.count("odd"), 98);
    assert!(!merged.contains("odd", 1) && !merged.contains("odd", 3) && merged.contains("odd", 5));
    assert_eq!(merged.payload("even", 0), Some(&b"replaced"[..]));
    assert_eq!(merged.payload("even", 2), Some(&b"old"[..]));
    assert_eq!(merged.payload("even", 250), Some(&b"new"[..]));
    // Exact namespaces: the same answers as brute force over what the merge kept.
    let kept: Vec<(u64, Vec<f32>)> = (0..400u64)
        .filter(|i| *i >= 200 || i % 2 == 0)
        .map(|i| (i, data[usize::try_from(i).unwrap()].clone()))
        .collect();
    for q in vectors(30, dim, 32) {
        assert_eq!(
            ids(&merged.search("even", q.clone(), 4, -1.0).unwrap()),
            brute(&kept, &q, 4)
        );
    }

    // Bounded: the oldest go first (the base's, in insertion order), the newest stay.
    let bounded = MergeOptions {
        max_entries: Some(250),
        ..options
    };
    delta
        .save_merged(&dir.path("3.gwv"), Some(&base), &removed, &bounded)
        .unwrap();
    let small = Snapshot::open(&dir.path("3.gwv")).unwrap();
    assert_eq!(small.len(), 250);
    assert!(small.contains("even", 0), "re-inserted last: the newest");
    assert!(small.contains("even", 399) && small.contains("even", 200));
    assert!(
        !small.contains("even", 2) && !small.contains("odd", 5),
        "the base's oldest went"
    );
}

#[test]
fn merges_grow_the_graph_a_budget_at_a_time_and_answers_stay_exact_for_stored_entries() {
    let dim = 16;
    let dir = TempDir::new("budget");
    let data = vectors(1200, dim, 41);
    // A writer whose first snapshot has no graph: everything pending.
    let local = quiet(dim, 100_000);
    for (i, v) in data.iter().enumerate() {
        local.insert("t", i as u64, v.clone(), b"").unwrap();
    }
    let mut config = IndexConfig::new(dim);
    config.hnsw_threshold = 256;
    let writer = VectorIndex::new(config).unwrap();
    let options = MergeOptions {
        max_graph_adds: Some(500),
        threads: 2,
        ..MergeOptions::default()
    };
    // Rows copied across through a snapshot of a differently configured index are refused.
    local.save(&dir.path("0.gwv"), b"").unwrap();
    let other = Snapshot::open(&dir.path("0.gwv")).unwrap();
    assert!(writer
        .save_merged(&dir.path("x.gwv"), Some(&other), &[], &options)
        .is_err());

    for (i, v) in data.iter().enumerate().take(600) {
        writer.insert("t", i as u64, v.clone(), b"").unwrap();
    }
    let r1 = writer.save_merged(&dir.path("1.gwv"), None, &[], &options);
    let r1 = r1.unwrap();
    let s1 = Snapshot::open(&dir.path("1.gwv")).unwrap();
    assert_eq!(r1.entries, 600);
    assert_eq!(s1.count("t"), 600);
    let delta = VectorIndex::new(config).unwrap();
    for (i, v) in data.iter().enumerate().skip(600) {
        delta.insert("t", i as u64, v.clone(), b"").unwrap();
    }
    let r2 = delta
        .save_merged(&dir.path("2.gwv"), Some(&s1), &[], &options)
        .unwrap();
    let s2 = Snapshot::open(&dir.path("2.gwv")).unwrap();
    assert_eq!(r2.entries, 1200);
    assert!(r2.added_to_graph <= 500);
    assert_eq!(s2.pending("t"), r2.pending);
    let empty = VectorIndex::new(config).unwrap();
    let r3 = empty
        .save_merged(&dir.path("3.gwv"), Some(&s2), &[], &options)
        .unwrap();
    let s3 = Snapshot::open(&dir.path("3.gwv")).unwrap();
    assert_eq!(r3.pending, r2.pending.saturating_sub(500));
    // Every stored entry is its own top hit, from the exact scan or the graph; the graph is approximate (a graph
    // built by two threads missed about one exact duplicate in 7,500 searches), so a miss in a hundred is allowed.
    let (mut searches, mut misses) = (0, 0);
    for s in [&s1, &s2, &s3] {
        for (i, v) in data.iter().enumerate().take(s.count("t")).step_by(7) {
            searches += 1;
            misses += usize::from(s.search("t", v.clone(), 1, -1.0).unwrap()[0].id != i as u64);
        }
    }
    assert!(misses <= searches / 100, "{misses} of {searches} missed");
    // A writer that drops what the snapshot holds identically keeps only what differs.
    delta.insert("t", 601, data[0].clone(), b"changed").unwrap();
    let gone = delta.remove_shared(&s3).unwrap();
    assert_eq!(gone.len(), 599);
    assert_eq!(delta.len(), 1);
    assert_eq!(delta.payload("t", 601).as_deref(), Some(&b"changed"[..]));
}

#[test]
fn readers_keep_their_snapshot_while_the_next_one_replaces_the_file() {
    let dim = 16;
    let dir = TempDir::new("readers");
    let path = dir.path("index.gwv");
    let data = vectors(3000, dim, 51);
    let mut config = IndexConfig::new(dim);
    config.hnsw_threshold = 500;
    let index = VectorIndex::new(config).unwrap();
    for (i, v) in data.iter().enumerate().take(1000) {
        index.insert("t", i as u64, v.clone(), b"").unwrap();
    }
    index.build(1).unwrap();
    index.save(&path, b"1000").unwrap();
    let first = Arc::new(Snapshot::open(&path).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let (snap, stop, data) = (Arc::clone(&first), Arc::clone(&stop), data.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) || n < 50 {
                    let i = (n * 7 + t) % 1000;
                    assert_eq!(
                        snap.search("t", data[i].clone(), 1, -1.0).unwrap()[0].id,
                        i as u64
                    );
                    n += 1;
                }
                n
            })
        })
        .collect();
    for round in 1..4 {
        for (i, v) in data
            .iter()
            .enumerate()
            .skip(1000 * round)
            .take(1000.min(3000 - 1000 * round))
        {
            index.insert("t", i as u64, v.clone(), b"").unwrap();
        }
        index
            .save(&path, format!("{}", 1000 * (round + 1)).as_bytes())
            .unwrap();
        let now = Snapshot::open(&path).unwrap();
        assert_eq!(now.count("t"), index.count("t"));
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() >= 50);
    }
    assert_eq!(
        first.count("t"),
        1000,
        "the first map still reads the first file"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left behind");
}

#[test]
fn damaged_snapshots_are_refused_never_a_panic() {
    let dim = 8;
    let dir = TempDir::new("damaged");
    let path = dir.path("ok.gwv");
    let mut config = IndexConfig::new(dim);
    config.hnsw_threshold = 64;
    let index = VectorIndex::new(config).unwrap();
    for (i, v) in vectors(200, dim, 61).into_iter().enumerate() {
        index.insert("t", i as u64, v, b"payload").unwrap();
    }
    index.build(1).unwrap();
    index.save(&path, b"").unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let bad = dir.path("bad.gwv");
    // Every truncation, and a byte flipped in the header, directory and footer, open as an error or as a
    // snapshot whose searches answer; none panics.
    let cuts = (0..bytes.len()).step_by(bytes.len() / 97 + 1);
    let dir_at = bytes.len() - 24;
    let flips = [
        9usize,
        17,
        60,
        dir_at - 9,
        dir_at - 30,
        dir_at - 100,
        bytes.len() - 20,
        bytes.len() - 12,
    ];
    for (cut, flip) in cuts
        .map(|c| (c, None))
        .chain(flips.iter().map(|&f| (bytes.len(), Some(f))))
    {
        let mut b = bytes[..cut].to_vec();
        if let Some(f) = flip {
            b[f] ^= 0x5a;
        }
        std::fs::write(&bad, &b).unwrap();
        if let Ok(s) = Snapshot::open(&bad) {
            let _ = s.search("t", vec![1.0; dim], 3, -1.0);
            let _ = s.payload("t", 3);
        }
    }
    assert!(matches!(
        Snapshot::open(&dir.path("missing")),
        Err(CoreError::Io(_))
    ));
}
