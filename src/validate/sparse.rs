//! A sparse local copy of a remote granule, so libhdf5 can check a day without the whole
//! file crossing the network. The copy has the granule's size; the metadata (every byte
//! our HDF5 reader fetched to index it) and, before each comparison, every source chunk
//! that libhdf5's own chunk index maps to the compared windows are filled in, in the
//! source's chunking (for a materialized variable that is not the store's). libhdf5 reads
//! the copy through [`super::vfd`], so a byte it needs that was not filled in is fetched
//! then, never read as a hole of zeros: nothing here can make a wrong reference pass
//! (our side reads through the reference, libhdf5 where the granule says) or a right one
//! fail.

use std::collections::BTreeMap;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::vfd::{self, Backing};
use crate::error::BoxError;
use crate::source::{ObjectInfo, RangeRead, SourceError};

/// Chunk reads in flight while filling a copy.
const FILL_CONCURRENCY: usize = 8;

/// The metadata read's first request: smaller than indexing's, since here bytes count
/// more than a round trip (the rest of the metadata follows in cached ranged reads).
const HEAD_READ_AHEAD: u64 = 64 * 1024;

/// A byte libhdf5 asks for that is not in the copy is fetched with its neighbours, this
/// many bytes aligned, so metadata scattered over a block costs one request.
const ON_DEMAND_BLOCK: u64 = 64 * 1024;

/// A window of the granule in its own element coordinates: start and shape per dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Window {
    pub start: Vec<u64>,
    pub shape: Vec<u64>,
}

/// A granule's local stand-in for libhdf5, open through the ranged-read driver.
pub(super) struct SparseCopy {
    copy: Arc<CopyFile>,
    file: libhdf5::File,
}

/// What libhdf5 and the prefetch share: the local file and which of its bytes are real.
struct CopyFile {
    source: Arc<dyn RangeRead>,
    local: std::fs::File,
    size: u64,
    filled: Mutex<Filled>,
    runtime: tokio::runtime::Handle,
    bytes_read: AtomicU64,
    on_demand: AtomicU64,
    /// The first fetch that failed inside a libhdf5 call (libhdf5 only says "read failed").
    failure: Mutex<Option<SourceError>>,
}

impl SparseCopy {
    /// The granule's metadata at its own offsets in a file of the granule's size, opened
    /// by libhdf5.
    pub(super) async fn open(source: Arc<dyn RangeRead>, dir: &Path) -> Result<Self, OpenError> {
        let recording = Recording {
            inner: source.as_ref(),
            pieces: Mutex::default(),
        };
        let options = crate::hdf5::ReadOptions {
            head_read_ahead: HEAD_READ_AHEAD,
            ..Default::default()
        };
        let (_, info) = crate::hdf5::read_metadata_and_info(&recording, &options)
            .await
            .map_err(|e| match e.kind {
                crate::hdf5::Hdf5ErrorKind::Source(s) => OpenError::Fetch(s),
                _ => OpenError::Oracle(Box::new(e)),
            })?;
        let pieces = recording
            .pieces
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        let path = dir.join(source.url().rsplit('/').next().unwrap_or("granule.nc"));
        let local = std::fs::File::create_new(&path).map_err(|e| OpenError::Oracle(e.into()))?;
        local
            .set_len(info.size)
            .map_err(|e| OpenError::Oracle(e.into()))?;
        let copy = Arc::new(CopyFile {
            source,
            local,
            size: info.size,
            filled: Mutex::default(),
            runtime: tokio::runtime::Handle::current(),
            bytes_read: AtomicU64::new(0),
            on_demand: AtomicU64::new(0),
            failure: Mutex::default(),
        });
        copy.write(pieces)
            .await
            .map_err(|e| OpenError::Oracle(e.into()))?;
        let label = copy.source.url().to_string();
        let backing: Arc<dyn Backing> = copy.clone();
        let file = tokio::task::spawn_blocking(move || {
            let _libhdf5 = crate::oracle::lock();
            vfd::open(&label, backing)
        })
        .await
        .map_err(|e| OpenError::Oracle(e.into()))?
        .map_err(|e| copy.explain(e))?;
        Ok(Self { copy, file })
    }

    /// The granule as libhdf5 opened it.
    pub(super) fn file(&self) -> &libhdf5::File {
        &self.file
    }

    /// Bytes read from the source so far.
    pub(super) fn bytes_read(&self) -> u64 {
        self.copy.bytes_read.load(Ordering::Relaxed)
    }

    /// Requests libhdf5's reads made because a byte was not in the copy yet.
    pub(super) fn fetched_on_demand(&self) -> u64 {
        self.copy.on_demand.load(Ordering::Relaxed)
    }

    /// Why a libhdf5 call failed: a fetch of the source inside it, or libhdf5 itself.
    pub(super) fn explain(&self, e: impl Into<BoxError>) -> OpenError {
        self.copy.explain(e)
    }

    /// Fill in every chunk of `dataset` that meets one of `windows`, wherever the
    /// granule's chunk index puts it (holes stay only where no chunk is allocated: libhdf5
    /// reads the fill value there without touching the file).
    pub(super) async fn fill_windows(
        &self,
        dataset: &libhdf5::Dataset,
        windows: &[Window],
    ) -> Result<(), OpenError> {
        let chunks = chunk_index(dataset.clone())
            .await
            .map_err(|e| self.explain(e))?;
        let mut ranges: Vec<Range<u64>> = chunks
            .into_iter()
            .filter(|chunk| windows.iter().any(|w| chunk.meets(w)))
            .map(|chunk| chunk.bytes)
            .collect();
        {
            let filled = self.copy.filled.lock().unwrap_or_else(|e| e.into_inner());
            ranges.retain(|r| !filled.covers(r));
        }
        let source = self.copy.source.clone();
        let pieces: Vec<(u64, Bytes)> = futures::stream::iter(ranges.into_iter().map(|range| {
            let source = source.clone();
            async move {
                let bytes = source.read_range(range.clone()).await?;
                Ok::<_, SourceError>((range.start, bytes))
            }
        }))
        .buffer_unordered(FILL_CONCURRENCY)
        .try_collect()
        .await
        .map_err(OpenError::Fetch)?;
        self.copy
            .write(pieces)
            .await
            .map_err(|e| OpenError::Oracle(e.into()))
    }
}

/// Why the copy could not serve libhdf5.
#[derive(Debug)]
pub(super) enum OpenError {
    /// Reading the source failed (the source error says whether trying again may help).
    Fetch(SourceError),
    /// libhdf5 could not open or decode it, or the local copy could not be written.
    Oracle(BoxError),
}

impl CopyFile {
    fn explain(&self, e: impl Into<BoxError>) -> OpenError {
        match self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            Some(fetch) => OpenError::Fetch(fetch),
            None => OpenError::Oracle(e.into()),
        }
    }

    /// Write `pieces` at their offsets and note them as filled.
    async fn write(self: &Arc<Self>, pieces: Vec<(u64, Bytes)>) -> std::io::Result<()> {
        let copy = self.clone();
        tokio::task::spawn_blocking(move || {
            for (at, bytes) in pieces {
                copy.put(at, &bytes)?;
            }
            Ok(())
        })
        .await?
    }

    fn put(&self, at: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.local.write_all_at(bytes, at)?;
        self.bytes_read
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.filled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .mark(at..at + bytes.len() as u64);
        Ok(())
    }

    /// Fetch `gap` (widened to whole blocks) into the copy, from inside a libhdf5 call.
    fn fetch_now(&self, gap: Range<u64>) -> Result<(), BoxError> {
        let start = gap.start / ON_DEMAND_BLOCK * ON_DEMAND_BLOCK;
        let end = gap.end.div_ceil(ON_DEMAND_BLOCK) * ON_DEMAND_BLOCK;
        let range = start..end.min(self.size);
        tracing::debug!(
            granule = self.source.url(),
            ?range,
            "libhdf5 needs bytes not in the copy: fetching them"
        );
        match self.runtime.block_on(self.source.read_range(range.clone())) {
            Ok(bytes) => {
                self.on_demand.fetch_add(1, Ordering::Relaxed);
                self.put(range.start, &bytes)?;
                Ok(())
            }
            Err(e) => {
                let message = e.to_string();
                self.failure
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert(e);
                Err(message.into())
            }
        }
    }
}

impl Backing for CopyFile {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, addr: u64, buf: &mut [u8]) -> Result<(), BoxError> {
        let want = addr..addr + buf.len() as u64;
        let gaps = self
            .filled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .gaps(&want);
        for gap in gaps {
            self.fetch_now(gap)?;
        }
        self.local.read_exact_at(buf, addr)?;
        Ok(())
    }
}

/// One allocated chunk: where it starts in the dataset, its extent, its bytes in the file.
struct IndexedChunk {
    offset: Vec<u64>,
    dims: Vec<u64>,
    bytes: Range<u64>,
}

impl IndexedChunk {
    /// Whether the chunk holds any element of `window`.
    fn meets(&self, window: &Window) -> bool {
        self.offset
            .iter()
            .zip(&self.dims)
            .zip(window.start.iter().zip(&window.shape))
            .all(|((&o, &c), (&s, &n))| o < s + n && s < o + c)
    }
}

/// Every allocated chunk of `dataset`, from libhdf5's own index (one walk of it).
async fn chunk_index(dataset: libhdf5::Dataset) -> Result<Vec<IndexedChunk>, BoxError> {
    tokio::task::spawn_blocking(move || -> Result<Vec<IndexedChunk>, BoxError> {
        let _libhdf5 = crate::oracle::lock();
        let Some(dims) = dataset.chunk() else {
            // Contiguous: nothing to plan, the driver fetches what libhdf5 reads.
            return Ok(Vec::new());
        };
        let dims: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
        let mut chunks = Vec::new();
        dataset.chunks_visit(|chunk| {
            chunks.push(IndexedChunk {
                offset: chunk.offset.to_vec(),
                dims: dims.clone(),
                bytes: chunk.addr..chunk.addr + chunk.size,
            });
            0
        })?;
        Ok(chunks)
    })
    .await?
}

/// The byte ranges filled in: start → end, disjoint and not touching.
#[derive(Debug, Default)]
struct Filled(BTreeMap<u64, u64>);

impl Filled {
    /// Whether all of `range` is filled in already (the metadata read-ahead often
    /// holds the first chunks).
    fn covers(&self, range: &Range<u64>) -> bool {
        self.gaps(range).is_empty()
    }

    /// The parts of `range` not filled in, in order.
    fn gaps(&self, range: &Range<u64>) -> Vec<Range<u64>> {
        let mut gaps = Vec::new();
        let mut at = range.start;
        if let Some((_, &end)) = self.0.range(..=range.start).next_back() {
            at = at.max(end);
        }
        for (&start, &end) in self.0.range(range.start..range.end) {
            if start > at {
                gaps.push(at..start);
            }
            at = at.max(end);
        }
        if at < range.end {
            gaps.push(at..range.end);
        }
        gaps
    }

    /// Note `range` as filled, merging it with its neighbours.
    fn mark(&mut self, range: Range<u64>) {
        let (mut start, mut end) = (range.start, range.end);
        if let Some((&s, &e)) = self.0.range(..=start).next_back()
            && e >= start
        {
            start = s;
            end = end.max(e);
        }
        let touching: Vec<u64> = self.0.range(start..=end).map(|(&s, _)| s).collect();
        for s in touching {
            if let Some(e) = self.0.remove(&s) {
                end = end.max(e);
            }
        }
        self.0.insert(start, end);
    }
}

/// A reader that keeps every range it returns, to replay them into the copy.
struct Recording<'a> {
    inner: &'a dyn RangeRead,
    pieces: Mutex<Vec<(u64, Bytes)>>,
}

impl Recording<'_> {
    fn keep(&self, at: u64, bytes: &Bytes) {
        self.pieces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((at, bytes.clone()));
    }
}

#[async_trait]
impl RangeRead for Recording<'_> {
    fn url(&self) -> &str {
        self.inner.url()
    }

    async fn info(&self) -> Result<ObjectInfo, SourceError> {
        self.inner.info().await
    }

    async fn read_range(&self, range: Range<u64>) -> Result<Bytes, SourceError> {
        let bytes = self.inner.read_range(range.clone()).await?;
        self.keep(range.start, &bytes);
        Ok(bytes)
    }

    async fn read_head(&self, len: u64) -> Result<(Bytes, ObjectInfo), SourceError> {
        let (bytes, info) = self.inner.read_head(len).await?;
        self.keep(0, &bytes);
        Ok((bytes, info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A granule whose data chunks lie beyond the metadata the copy starts with.
    fn granule(dir: &Path) -> std::path::PathBuf {
        let date = chrono::NaiveDate::from_ymd_opt(2015, 6, 1).unwrap();
        let mut spec = crate::synthetic::GranuleSpec::small(date, 2000, 4000);
        spec.chunks = crate::synthetic::ChunkLayout::uniform([400, 800])
            .with(crate::synthetic::DataVar::Mask, [600, 1160]);
        crate::synthetic::write_granule(dir, &spec).unwrap()
    }

    /// `variable` read whole by libhdf5 from `file`.
    async fn read_all(file: libhdf5::File, variable: &'static str) -> Vec<i8> {
        tokio::task::spawn_blocking(move || {
            let _libhdf5 = crate::oracle::lock();
            file.dataset(variable).unwrap().read_raw::<i8>().unwrap()
        })
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn libhdf5_gets_every_byte_it_reads_fetched_never_a_hole() {
        let dir = tempfile::tempdir().unwrap();
        let path = granule(dir.path());
        let size = std::fs::metadata(&path).unwrap().len();
        let local = {
            let _libhdf5 = crate::oracle::lock();
            libhdf5::FileBuilder::new()
                .with_fapl(|p| p.file_locking(false))
                .open(&path)
                .unwrap()
        };
        let want = read_all(local, "mask").await;

        // Nothing planned: every chunk libhdf5 reads is fetched when it asks.
        let copies = tempfile::tempdir().unwrap();
        let source = Arc::new(crate::objects::Object::local(&path).unwrap());
        let copy = SparseCopy::open(source.clone(), copies.path())
            .await
            .unwrap();
        let metadata = copy.bytes_read();
        assert!(
            metadata < size / 2,
            "the copy starts with the metadata only: {metadata} of {size}"
        );
        assert_eq!(read_all(copy.file().clone(), "mask").await, want);
        assert!(copy.fetched_on_demand() > 0);

        // Planned: the windows' chunks (in the source's own chunking, here unlike the
        // windows') are filled first, and libhdf5 needs nothing more.
        let copies = tempfile::tempdir().unwrap();
        let copy = SparseCopy::open(source, copies.path()).await.unwrap();
        let dataset = {
            let file = copy.file().clone();
            tokio::task::spawn_blocking(move || {
                let _libhdf5 = crate::oracle::lock();
                file.dataset("mask").unwrap()
            })
            .await
            .unwrap()
        };
        // Store-grid window (400 x 800) meeting four (600 x 1160) source chunks.
        let window = Window {
            start: vec![0, 400, 800],
            shape: vec![1, 400, 800],
        };
        copy.fill_windows(&dataset, std::slice::from_ref(&window))
            .await
            .unwrap();
        let region = tokio::task::spawn_blocking(move || {
            let _libhdf5 = crate::oracle::lock();
            dataset
                .read_slice::<i8, _, ndarray::Ix3>(ndarray::s![0..1, 400..800, 800..1600])
                .unwrap()
        })
        .await
        .unwrap();
        assert_eq!(
            copy.fetched_on_demand(),
            0,
            "the planned chunks were enough"
        );
        let want: Vec<i8> = (400..800)
            .flat_map(|r| want[r * 4000 + 800..r * 4000 + 1600].to_vec())
            .collect();
        assert_eq!(region.iter().copied().collect::<Vec<_>>(), want);
    }

    #[test]
    fn filled_ranges_merge_and_cover() {
        let mut f = Filled::default();
        f.mark(10..20);
        f.mark(30..40);
        assert!(f.covers(&(12..20)) && f.covers(&(30..31)));
        assert!(!f.covers(&(15..25)) && !f.covers(&(5..12)) && !f.covers(&(20..30)));
        f.mark(20..30);
        assert_eq!(f.0, BTreeMap::from([(10, 40)]));
        f.mark(0..5);
        f.mark(4..11);
        assert_eq!(f.0, BTreeMap::from([(0, 40)]));
        assert!(f.covers(&(0..40)) && !f.covers(&(0..41)));
    }

    #[test]
    fn gaps_are_what_is_missing() {
        let mut f = Filled::default();
        f.mark(10..20);
        f.mark(30..40);
        assert_eq!(f.gaps(&(0..50)), vec![0..10, 20..30, 40..50]);
        assert_eq!(f.gaps(&(12..18)), Vec::<Range<u64>>::new());
        assert_eq!(f.gaps(&(15..35)), vec![20..30]);
        assert_eq!(f.gaps(&(20..30)), vec![20..30]);
        assert_eq!(f.gaps(&(5..10)), vec![5..10]);
        assert_eq!(Filled::default().gaps(&(3..4)), vec![3..4]);
    }

    #[test]
    fn a_chunk_meets_the_windows_it_overlaps() {
        // A (1, 1447, 2895) source chunk against (1, 1023, 2047) store windows.
        let chunk = IndexedChunk {
            offset: vec![0, 1447, 2895],
            dims: vec![1, 1447, 2895],
            bytes: 0..1,
        };
        let window = |r: u64, c: u64| Window {
            start: vec![0, r * 1023, c * 2047],
            shape: vec![1, 1023, 2047],
        };
        assert!(chunk.meets(&window(1, 1)));
        assert!(chunk.meets(&window(2, 2)));
        assert!(chunk.meets(&window(1, 2)));
        assert!(!chunk.meets(&window(0, 1)));
        assert!(!chunk.meets(&window(1, 0)));
        assert!(!chunk.meets(&window(3, 1)));
    }
}
