//! The f32 row store's memory: a heap vector while small, then anonymous memory advised for transparent huge pages.
//!
//! A search that scans pending rows streams them from memory. On 4 KiB pages a 100k x 384 scan (150 MB) crosses
//! 37,500 pages, and the hardware prefetchers stop at each page boundary; on 2 MiB pages it crosses 75. numpy asks
//! for huge pages on its large arrays too (madvise), which is much of why its `data @ q` beat our scan of the same
//! rows: measured here (2 cores, AVX2, same kernel) 14 ms p50 on huge pages against 19-23 ms on 4 KiB pages.

use std::ops::{Deref, DerefMut};

use memmap2::{Advice, MmapMut};

/// From this many bytes the rows move to huge-page memory: below one huge page there is nothing to gain, and each
/// map is a kernel mapping (thousands of small namespaces must not become thousands of maps).
const HUGE_FROM_BYTES: usize = 2 << 20;
const HUGE_PAGE: usize = 2 << 20;

pub(super) enum RowBuf {
    Heap(Vec<f32>),
    Huge(HugeRows),
}

pub(super) struct HugeRows {
    map: MmapMut,
    /// Floats from the start of the map to the first 2 MiB boundary: huge pages need aligned addresses.
    off: usize,
    cap: usize,
    len: usize,
}

impl HugeRows {
    /// None when the kernel refuses the map (then the rows stay on the heap).
    fn with_capacity(cap: usize) -> Option<Self> {
        let bytes = cap.checked_mul(4)?.checked_add(HUGE_PAGE)?;
        let map = MmapMut::map_anon(bytes).ok()?;
        // Best effort: without THP (or with it off) the memory is ordinary pages, and only the speed-up is lost.
        let _ = map.advise(Advice::HugePage);
        let misalign = map.as_ptr() as usize % HUGE_PAGE;
        let off = ((HUGE_PAGE - misalign) % HUGE_PAGE) / 4;
        Some(HugeRows {
            map,
            off,
            cap,
            len: 0,
        })
    }

    fn floats(&self) -> &[f32] {
        // SAFETY: any bit pattern is a valid f32, and the map is page-aligned, so `align_to` has no prefix and
        // `off` counts from its start.
        let (_, floats, _) = unsafe { self.map.align_to::<f32>() };
        &floats[self.off..self.off + self.cap]
    }

    fn floats_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `floats`.
        let (_, floats, _) = unsafe { self.map.align_to_mut::<f32>() };
        &mut floats[self.off..self.off + self.cap]
    }
}

impl Default for RowBuf {
    fn default() -> Self {
        RowBuf::Heap(Vec::new())
    }
}

impl RowBuf {
    pub fn extend_from_slice(&mut self, v: &[f32]) {
        let len = self.len();
        let want = len + v.len();
        match self {
            RowBuf::Heap(vec) => {
                if want * 4 >= HUGE_FROM_BYTES {
                    if let Some(mut huge) = HugeRows::with_capacity(want.max(2 * len)) {
                        huge.floats_mut()[..len].copy_from_slice(vec);
                        huge.len = len;
                        *self = RowBuf::Huge(huge);
                        return self.extend_from_slice(v);
                    }
                }
                vec.extend_from_slice(v);
            }
            RowBuf::Huge(huge) => {
                if want > huge.cap {
                    let Some(mut bigger) = HugeRows::with_capacity(want.max(2 * huge.cap)) else {
                        let mut vec = Vec::with_capacity(want);
                        vec.extend_from_slice(&huge.floats()[..len]);
                        vec.extend_from_slice(v);
                        *self = RowBuf::Heap(vec);
                        return;
                    };
                    bigger.floats_mut()[..len].copy_from_slice(&huge.floats()[..len]);
                    bigger.len = len;
                    *huge = bigger;
                }
                huge.floats_mut()[len..want].copy_from_slice(v);
                huge.len = want;
            }
        }
    }

    pub fn truncate(&mut self, len: usize) {
        match self {
            RowBuf::Heap(vec) => vec.truncate(len),
            RowBuf::Huge(huge) => huge.len = huge.len.min(len),
        }
    }
}

impl Deref for RowBuf {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match self {
            RowBuf::Heap(vec) => vec,
            RowBuf::Huge(huge) => &huge.floats()[..huge.len],
        }
    }
}

impl DerefMut for RowBuf {
    fn deref_mut(&mut self) -> &mut [f32] {
        match self {
            RowBuf::Heap(vec) => vec,
            RowBuf::Huge(huge) => {
                let len = huge.len;
                &mut huge.floats_mut()[..len]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_from_the_heap_into_huge_pages_and_keeps_every_float() {
        let mut rows = RowBuf::default();
        let mut model = Vec::new();
        for i in 0..5000u16 {
            let row = [f32::from(i); 384];
            rows.extend_from_slice(&row);
            model.extend_from_slice(&row);
        }
        assert!(matches!(rows, RowBuf::Huge(_)));
        assert_eq!(&rows[..], &model[..]);
        rows.truncate(384 * 10);
        rows[0] = -1.0;
        assert_eq!(rows.len(), 3840);
        assert_eq!((rows[0], rows[3839]), (-1.0, 9.0));
        assert_eq!(rows.as_ptr() as usize % 4, 0);
    }
}
