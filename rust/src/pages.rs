//! Handing back to the kernel the resident pages of this library's read-only data once start-up has read them.
//!
//! The vocabularies are embedded in the library's read-only data in serialized form (o200k_base 12 MB, cl100k_base
//! 6 MB); deserializing one reads every page of its bytes, which then stay in the process's resident set although
//! nothing reads them again. They are clean pages of a private, read-only file mapping, so `MADV_DONTNEED` drops
//! them from the resident set at no risk: whatever reads them later faults them back in from the page cache (the
//! other read-only constants, such as the PII patterns, come back on first use, a few pages each).

/// Lives in the read-only data segment: its address finds the mapping to release.
static ANCHOR: [u8; 8] = *b"rodata\0\0";

/// Drops the resident pages of the mapping that holds this library's read-only data; returns the bytes it released
/// (the mapping's resident size before). An optimisation, so it never fails: it does nothing and returns 0 where
/// /proc/self/smaps cannot be read (not Linux), and for a mapping that is writable, not backed by a file, or holds
/// any anonymous page (a copy a write made, such as relocated data: no file behind it to read it back from).
#[must_use]
pub fn release_read_only_data() -> usize {
    let address = std::hint::black_box(ANCHOR.as_ptr()) as usize;
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let Some(mapping) = find_mapping(&smaps, address) else {
        return 0;
    };
    if !mapping.releasable() {
        return 0;
    }
    // SAFETY: the range is one whole mapping of this process, read-only and file-backed with no anonymous (copied)
    // pages, so discarding its pages loses nothing: the kernel reads them back from the file on the next access.
    let done = unsafe {
        libc::madvise(
            mapping.start as *mut libc::c_void,
            mapping.end - mapping.start,
            libc::MADV_DONTNEED,
        )
    };
    if done == 0 {
        mapping.resident_kb * 1024
    } else {
        0
    }
}

/// One mapping of /proc/self/smaps, with the fields the release needs.
#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    perms: String,
    file_backed: bool,
    resident_kb: usize,
    anonymous_kb: usize,
}

impl Mapping {
    fn releasable(&self) -> bool {
        self.perms == "r--p" && self.file_backed && self.anonymous_kb == 0
    }
}

/// The mapping of `smaps` (the text of /proc/self/smaps) that contains `address`.
fn find_mapping(smaps: &str, address: usize) -> Option<Mapping> {
    let mut found: Option<Mapping> = None;
    for line in smaps.lines() {
        if let Some(header) = parse_header(line) {
            if found.is_some() {
                break;
            }
            if header.start <= address && address < header.end {
                found = Some(header);
            }
            continue;
        }
        let Some(mapping) = found.as_mut() else {
            continue;
        };
        let mut fields = line.split_whitespace();
        let (Some(name), Some(value)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(kb) = value.parse::<usize>() else {
            continue;
        };
        match name {
            "Rss:" => mapping.resident_kb = kb,
            "Anonymous:" => mapping.anonymous_kb = kb,
            _ => {}
        }
    }
    found
}

/// A mapping's first line: `start-end perms offset dev inode [path]`; None for a field line (`Rss: 4 kB`).
fn parse_header(line: &str) -> Option<Mapping> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?.to_owned();
    let inode = fields.nth(2)?;
    Some(Mapping {
        start,
        end,
        perms,
        file_backed: inode != "0",
        resident_kb: 0,
        anonymous_kb: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
7f0000000000-7f0000200000 r--p 00000000 08:01 1234 /lib/_core.so
Rss:                2048 kB
Anonymous:             0 kB
Private_Dirty:         0 kB
7f0000200000-7f0000300000 r--p 00200000 08:01 1234 /lib/_core.so
Rss:                 512 kB
Anonymous:             8 kB
Private_Dirty:         8 kB
7f0000300000-7f0000400000 rw-p 00000000 00:00 0
Rss:                  16 kB
Anonymous:            16 kB
Private_Dirty:        16 kB
";

    #[test]
    fn finds_the_mapping_that_holds_an_address_with_its_fields() {
        let mapping = find_mapping(SMAPS, 0x7f00_0000_1000).unwrap();
        assert_eq!(
            (mapping.start, mapping.end),
            (0x7f00_0000_0000, 0x7f00_0020_0000)
        );
        assert_eq!(mapping.resident_kb, 2048);
        assert!(mapping.releasable());
        assert_eq!(find_mapping(SMAPS, 0x7e00_0000_0000), None);
    }

    #[test]
    fn leaves_alone_what_a_write_touched_or_no_file_backs() {
        // Relocated read-only data (RELRO): its pages are private copies the file cannot give back.
        assert!(!find_mapping(SMAPS, 0x7f00_0020_0000).unwrap().releasable());
        assert!(!find_mapping(SMAPS, 0x7f00_0030_0000).unwrap().releasable());
    }

    #[test]
    fn releases_this_librarys_read_only_data_and_still_reads_it() {
        let released = release_read_only_data();
        // The anchor was read (resident) before; it reads the same after its pages were dropped.
        assert!(released > 0, "nothing released");
        assert_eq!(std::hint::black_box(&ANCHOR), b"rodata\0\0");
    }
}
