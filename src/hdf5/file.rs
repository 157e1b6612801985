//! State shared by every parser while one file is read: the read layer, the sizes
//! of addresses and lengths, and caches of shared structures.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::Hdf5ErrorKind;
use super::cursor::Cursor;
use super::global_heap::GlobalHeapCollection;
use super::place::Place;
use super::reader::MetaReader;
use super::superblock::Superblock;

/// Field widths and the base address that turn stored addresses into file offsets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Format {
    pub sizeof_addr: u8,
    pub sizeof_size: u8,
    /// Absolute offset that stored (relative) addresses are added to.
    pub base: u64,
}

impl Format {
    /// A stored address as an absolute offset; `None` for the undefined address.
    pub(crate) fn addr(&self, c: &mut Cursor<'_>) -> Result<Option<u64>, Hdf5ErrorKind> {
        let n = usize::from(self.sizeof_addr);
        let raw = c.uint(n)?;
        if raw == undefined(n) {
            return Ok(None);
        }
        raw.checked_add(self.base)
            .map(Some)
            .ok_or_else(|| Hdf5ErrorKind::Corrupt(format!("address {raw:#x} overflows")))
    }

    /// A stored length ("size of lengths" bytes).
    pub(crate) fn length(&self, c: &mut Cursor<'_>) -> Result<u64, Hdf5ErrorKind> {
        c.uint(usize::from(self.sizeof_size))
    }

    /// A stored length where all-ones means "unlimited"/"undefined", mapped to `u64::MAX`.
    pub(crate) fn length_or_max(&self, c: &mut Cursor<'_>) -> Result<u64, Hdf5ErrorKind> {
        let n = usize::from(self.sizeof_size);
        let raw = c.uint(n)?;
        Ok(if raw == undefined(n) { u64::MAX } else { raw })
    }

    pub(crate) fn addr_len(&self) -> usize {
        usize::from(self.sizeof_addr)
    }

    pub(crate) fn size_len(&self) -> usize {
        usize::from(self.sizeof_size)
    }
}

/// The all-ones value of an `n`-byte field.
pub(crate) fn undefined(n: usize) -> u64 {
    if n >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * n)) - 1
    }
}

/// Everything the parsers of one file share.
pub(crate) struct FileCtx<'r> {
    pub io: MetaReader<'r>,
    pub fmt: Format,
    pub superblock: Superblock,
    pub place: Place,
    global_heaps: Mutex<HashMap<u64, Arc<GlobalHeapCollection>>>,
    /// Object headers visited so far: hard links can make a small file name the same
    /// objects exponentially often, so the walk has a budget.
    objects_visited: AtomicUsize,
}

impl<'r> FileCtx<'r> {
    pub(crate) fn new(io: MetaReader<'r>, superblock: Superblock, place: Place) -> Self {
        Self {
            io,
            fmt: superblock.format,
            superblock,
            place,
            global_heaps: Mutex::default(),
            objects_visited: AtomicUsize::new(0),
        }
    }

    /// Count one more object; `false` once more than `limit` have been visited.
    pub(crate) fn visit_object(&self, limit: usize) -> bool {
        self.objects_visited.fetch_add(1, Ordering::Relaxed) < limit
    }

    pub(crate) fn cached_global_heap(&self, addr: u64) -> Option<Arc<GlobalHeapCollection>> {
        self.global_heaps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&addr)
            .cloned()
    }

    pub(crate) fn cache_global_heap(&self, addr: u64, heap: Arc<GlobalHeapCollection>) {
        self.global_heaps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(addr, heap);
    }
}
