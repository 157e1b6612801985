//! A sparse local copy of a remote granule, so libhdf5 can check a day without the whole
//! file crossing the network: the file has the granule's size, but only the metadata
//! (every byte our HDF5 reader fetched to index it) and the chunks being compared (at
//! the addresses libhdf5's own chunk index gives) are filled in. Holes read as zeros, so
//! nothing here can make a wrong reference pass: our side reads through the reference,
//! libhdf5 reads the bytes its own index points at.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::source::{BoxError, ObjectInfo, RangeRead, SourceError};

/// Chunk reads in flight while filling a copy.
const FILL_CONCURRENCY: usize = 8;

/// The metadata read's first request: smaller than indexing's, since here bytes count
/// more than a round trip (the rest of the metadata follows in cached ranged reads).
const HEAD_READ_AHEAD: u64 = 64 * 1024;

/// A granule's local stand-in for libhdf5, and what filling it cost.
pub(super) struct SparseCopy {
    path: PathBuf,
    source: Arc<dyn RangeRead>,
    file: Arc<std::fs::File>,
    filled: Filled,
    bytes_read: u64,
}

impl SparseCopy {
    /// The granule's metadata at its own offsets in a file of the granule's size.
    pub(super) async fn metadata(source: Arc<dyn RangeRead>, dir: &Path) -> Result<Self, BoxError> {
        let recording = Recording {
            inner: source.as_ref(),
            pieces: Mutex::default(),
        };
        let options = crate::hdf5::ReadOptions {
            head_read_ahead: HEAD_READ_AHEAD,
            ..Default::default()
        };
        let (_, info) = crate::hdf5::read_metadata_and_info(&recording, &options).await?;
        let pieces = recording
            .pieces
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        let path = dir.join(source.url().rsplit('/').next().unwrap_or("granule.nc"));
        let file = Arc::new(std::fs::File::create(&path)?);
        file.set_len(info.size)?;
        let mut copy = Self {
            path,
            source,
            file,
            filled: Filled::default(),
            bytes_read: 0,
        };
        copy.bytes_read = copy.write(pieces).await?;
        Ok(copy)
    }

    /// The path libhdf5 opens.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The granule itself.
    pub(super) fn source(&self) -> &dyn RangeRead {
        self.source.as_ref()
    }

    /// Bytes read from the source so far.
    pub(super) fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Fill in the chunks of `dataset` that start at `starts` (element coordinates in
    /// the granule), wherever the granule's chunk index puts them. A start with no
    /// allocated chunk is left a hole: libhdf5 reads the fill value there.
    pub(super) async fn fill_chunks(
        &mut self,
        dataset: &libhdf5::Dataset,
        starts: &[Vec<u64>],
    ) -> Result<(), BoxError> {
        let mut ranges = chunk_ranges(dataset.clone(), starts.to_vec()).await?;
        ranges.retain(|r| !self.filled.covers(r));
        let source = self.source.clone();
        let pieces: Vec<(u64, Bytes)> = futures::stream::iter(ranges.into_iter().map(|range| {
            let source = source.clone();
            async move {
                let bytes = source.read_range(range.clone()).await?;
                Ok::<_, SourceError>((range.start, bytes))
            }
        }))
        .buffer_unordered(FILL_CONCURRENCY)
        .try_collect()
        .await?;
        self.bytes_read += self.write(pieces).await?;
        Ok(())
    }

    /// Write `pieces` at their offsets; returns their total length.
    async fn write(&mut self, pieces: Vec<(u64, Bytes)>) -> Result<u64, BoxError> {
        for (at, bytes) in &pieces {
            self.filled.mark(*at..*at + bytes.len() as u64);
        }
        let file = self.file.clone();
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            let mut total = 0;
            for (at, bytes) in pieces {
                file.write_all_at(&bytes, at)?;
                total += bytes.len() as u64;
            }
            Ok(total)
        })
        .await??;
        Ok(written)
    }
}

/// The byte ranges filled in: start → end, disjoint and not touching.
#[derive(Debug, Default)]
struct Filled(BTreeMap<u64, u64>);

impl Filled {
    /// Whether all of `range` is filled in already (the metadata read-ahead often
    /// holds the first chunks).
    fn covers(&self, range: &Range<u64>) -> bool {
        self.0
            .range(..=range.start)
            .next_back()
            .is_some_and(|(_, &end)| end >= range.end)
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

/// The byte ranges of the chunks of `dataset` starting at `starts`, from libhdf5's
/// own chunk index (one walk of it under the libhdf5 lock).
async fn chunk_ranges(
    dataset: libhdf5::Dataset,
    starts: Vec<Vec<u64>>,
) -> Result<Vec<Range<u64>>, BoxError> {
    tokio::task::spawn_blocking(move || -> Result<Vec<Range<u64>>, BoxError> {
        let _libhdf5 = crate::oracle::lock();
        let mut index: HashMap<Vec<u64>, Range<u64>> = HashMap::new();
        dataset.chunks_visit(|chunk| {
            index.insert(chunk.offset.to_vec(), chunk.addr..chunk.addr + chunk.size);
            0
        })?;
        Ok(starts
            .iter()
            .filter_map(|start| index.get(start).cloned())
            .collect())
    })
    .await?
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
}
