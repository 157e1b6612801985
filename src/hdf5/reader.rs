//! The read layer between the parsers and [`RangeRead`]: one read-ahead of the file
//! head, a cache of fetched ranges, misses rounded up to `min_read`, concurrent reads
//! of the same bytes shared, and a cap on requests in flight.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use tokio::sync::{OnceCell, Semaphore};

use super::{Hdf5ErrorKind, ReadOptions};
use crate::source::RangeRead;

/// A fetch in progress; later readers of bytes it covers wait for it.
struct Inflight {
    range: Range<u64>,
    cell: Arc<OnceCell<Bytes>>,
}

/// Disjoint cached blocks keyed by start offset.
#[derive(Default)]
struct Cache {
    blocks: BTreeMap<u64, Bytes>,
}

enum Lookup {
    Hit(Bytes),
    /// The first and last (exclusive) byte not yet cached.
    Miss(Range<u64>),
}

impl Cache {
    /// The cached block covering `pos`, as (start, bytes).
    fn block_at(&self, pos: u64) -> Option<(u64, &Bytes)> {
        let (&start, bytes) = self.blocks.range(..=pos).next_back()?;
        (start + bytes.len() as u64 > pos).then_some((start, bytes))
    }

    fn lookup(&self, range: Range<u64>) -> Lookup {
        if range.is_empty() {
            return Lookup::Hit(Bytes::new());
        }
        // Fast path: one block holds it all.
        if let Some((start, bytes)) = self.block_at(range.start)
            && start + bytes.len() as u64 >= range.end
        {
            let from = (range.start - start) as usize;
            let to = (range.end - start) as usize;
            return Lookup::Hit(bytes.slice(from..to));
        }
        // Walk adjacent blocks; find the first gap and the last missing byte.
        let mut pos = range.start;
        let mut pieces = Vec::new();
        while pos < range.end {
            match self.block_at(pos) {
                Some((start, bytes)) => {
                    let from = (pos - start) as usize;
                    let to = ((range.end - start) as usize).min(bytes.len());
                    pieces.push(bytes.slice(from..to));
                    pos = start + to as u64;
                }
                None => {
                    let mut last = range.end;
                    // Trim cached bytes at the tail so the fetch covers only the gap.
                    while last > pos {
                        match self.block_at(last - 1) {
                            Some((start, _)) => last = start.max(pos),
                            None => break,
                        }
                    }
                    return Lookup::Miss(pos..last);
                }
            }
        }
        let mut out = BytesMut::with_capacity((range.end - range.start) as usize);
        for p in pieces {
            out.extend_from_slice(&p);
        }
        Lookup::Hit(out.freeze())
    }

    /// Insert the parts of `bytes` (starting at `start`) that are not cached yet.
    fn insert(&mut self, start: u64, bytes: &Bytes) {
        let end = start + bytes.len() as u64;
        let mut pos = start;
        while pos < end {
            if let Some((s, b)) = self.block_at(pos) {
                pos = s + b.len() as u64;
                continue;
            }
            let next = self.blocks.range(pos..end).next().map_or(end, |(&s, _)| s);
            let piece = bytes.slice((pos - start) as usize..(next - start) as usize);
            self.blocks.insert(pos, piece);
            pos = next;
        }
    }
}

/// Cached, deduplicated, bounds-checked ranged reads of one file.
pub(crate) struct MetaReader<'r> {
    source: &'r dyn RangeRead,
    size: u64,
    min_read: u64,
    cache: Mutex<Cache>,
    inflight: Mutex<Vec<Inflight>>,
    permits: Semaphore,
}

impl<'r> MetaReader<'r> {
    pub(crate) fn new(source: &'r dyn RangeRead, size: u64, options: &ReadOptions) -> Self {
        Self {
            source,
            size,
            min_read: options.min_read.max(1),
            cache: Mutex::default(),
            inflight: Mutex::default(),
            permits: Semaphore::new(options.max_concurrency.max(1)),
        }
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Put bytes already fetched (the head read-ahead) into the cache.
    pub(crate) fn seed(&self, start: u64, bytes: &Bytes) {
        let end = (start + bytes.len() as u64).min(self.size);
        if start < end {
            lock(&self.cache).insert(start, &bytes.slice(..(end - start) as usize));
        }
    }

    /// Fetch `[start, start+len)` (clamped to the file) into the cache with one request.
    pub(crate) async fn prefetch(&self, start: u64, len: u64) -> Result<(), Hdf5ErrorKind> {
        let end = start.saturating_add(len).min(self.size);
        if start < end {
            self.read(start, end - start).await?;
        }
        Ok(())
    }

    /// Exactly `len` bytes at `start`; an error if they are not all inside the file.
    pub(crate) async fn read(&self, start: u64, len: u64) -> Result<Bytes, Hdf5ErrorKind> {
        let end =
            start
                .checked_add(len)
                .filter(|&e| e <= self.size)
                .ok_or(Hdf5ErrorKind::PastEof {
                    start,
                    end: start.saturating_add(len),
                    size: self.size,
                })?;
        loop {
            let miss = match lock(&self.cache).lookup(start..end) {
                Lookup::Hit(bytes) => return Ok(bytes),
                Lookup::Miss(miss) => miss,
            };
            let (range, cell) = {
                let mut inflight = lock(&self.inflight);
                match inflight
                    .iter()
                    .find(|f| f.range.start <= miss.start && f.range.end >= miss.end)
                {
                    Some(f) => (f.range.clone(), f.cell.clone()),
                    None => {
                        let fetch_end = miss
                            .end
                            .max(miss.start.saturating_add(self.min_read))
                            .min(self.size);
                        let range = miss.start..fetch_end;
                        let cell = Arc::new(OnceCell::new());
                        inflight.push(Inflight {
                            range: range.clone(),
                            cell: cell.clone(),
                        });
                        (range, cell)
                    }
                }
            };
            let result = cell.get_or_try_init(|| self.fetch(range.clone())).await;
            let done = |inflight: &mut Vec<Inflight>| {
                inflight.retain(|f| !Arc::ptr_eq(&f.cell, &cell));
            };
            match result {
                Ok(bytes) => {
                    lock(&self.cache).insert(range.start, bytes);
                    done(&mut lock(&self.inflight));
                }
                Err(e) => {
                    done(&mut lock(&self.inflight));
                    return Err(e);
                }
            }
        }
    }

    async fn fetch(&self, range: Range<u64>) -> Result<Bytes, Hdf5ErrorKind> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Hdf5ErrorKind::Corrupt("reader closed".into()))?;
        let want = range.end - range.start;
        let bytes = self.source.read_range(range.clone()).await?;
        if bytes.len() as u64 != want {
            return Err(Hdf5ErrorKind::Truncated {
                needed: want,
                available: bytes.len() as u64,
            });
        }
        Ok(bytes)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{Counted, InMemory};

    fn source(n: usize) -> Arc<Counted<InMemory>> {
        let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        Arc::new(Counted::new(Arc::new(InMemory {
            url: "mem://t".into(),
            data: Bytes::from(data),
        })))
    }

    #[tokio::test]
    async fn caches_and_rounds_up() {
        let src = source(10_000);
        let opts = ReadOptions {
            min_read: 1000,
            ..Default::default()
        };
        let r = MetaReader::new(src.as_ref(), 10_000, &opts);
        let a = r.read(100, 10).await.unwrap();
        assert_eq!(a[0], 100);
        assert_eq!(src.stats.requests(), 1);
        r.read(500, 100).await.unwrap();
        assert_eq!(src.stats.requests(), 1);
        // Spans the cached block and a gap: one request for the gap only.
        let b = r.read(1000, 200).await.unwrap();
        assert_eq!(b.len(), 200);
        assert_eq!(b[0], (1000 % 251) as u8);
        assert_eq!(src.stats.requests(), 2);
        assert_eq!(src.stats.bytes(), 2000);
        // Clamped to EOF, and out-of-bounds reads fail without a request.
        r.read(9_990, 10).await.unwrap();
        assert!(r.read(9_995, 10).await.is_err());
        assert!(r.read(u64::MAX - 1, 10).await.is_err());
        assert_eq!(src.stats.requests(), 3);
    }

    #[tokio::test]
    async fn concurrent_reads_share_one_request() {
        let src = source(10_000);
        let r = MetaReader::new(src.as_ref(), 10_000, &ReadOptions::default());
        let (a, b) = tokio::join!(r.read(0, 8), r.read(16, 8));
        assert_eq!(a.unwrap()[1], 1);
        assert_eq!(b.unwrap()[0], 16);
        assert_eq!(src.stats.requests(), 1);
    }
}
