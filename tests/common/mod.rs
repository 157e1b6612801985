//! Shared helpers for the HDF5 reader tests: fixture writers (libhdf5 and netCDF-C
//! through their Rust bindings), the libhdf5 oracle, and ways to run our reader.

#![allow(dead_code)]

pub mod decode;
pub mod emf;
pub mod fixtures;
pub mod oracle;
pub mod rehearsal;
pub mod sfn;
pub mod standins;
pub mod store;
pub mod tooling;

#[allow(unused_imports)]
pub use tooling::*;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use mursst::hdf5::{FileMetadata, Hdf5Error, ReadOptions, read_metadata};
use mursst::objects::Object;
use mursst::source::{Counted, ObjectInfo, RangeRead, ReadStats, SourceError};

/// libhdf5 is built without thread safety and netCDF-C shares it: one user at a time.
pub fn libhdf5_lock() -> mursst::oracle::Guard {
    mursst::oracle::lock()
}

/// Run our reader on a local file, counting requests.
pub fn read_file(
    path: &Path,
    options: &ReadOptions,
) -> (Result<FileMetadata, Hdf5Error>, Arc<ReadStats>) {
    let src = Arc::new(Counted::new(Arc::new(Object::local(path).unwrap())));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let res = rt.block_on(read_metadata(src.as_ref(), options));
    (res, src.stats.clone())
}

/// Read a fixture that must parse.
pub fn read_ok(path: &Path) -> FileMetadata {
    match read_file(path, &ReadOptions::default()).0 {
        Ok(m) => m,
        Err(e) => panic!("reading {}: {e}", path.display()),
    }
}

/// A source that answers every request after a fixed delay, so elapsed time counts
/// sequential round trips.
pub struct Latency<R> {
    pub inner: R,
    pub delay: Duration,
}

#[async_trait]
impl<R: RangeRead> RangeRead for Latency<R> {
    fn url(&self) -> &str {
        self.inner.url()
    }
    async fn info(&self) -> Result<ObjectInfo, SourceError> {
        tokio::time::sleep(self.delay).await;
        self.inner.info().await
    }
    async fn read_range(&self, range: std::ops::Range<u64>) -> Result<Bytes, SourceError> {
        tokio::time::sleep(self.delay).await;
        self.inner.read_range(range).await
    }
}

/// Every dataset in the tree, depth first.
pub fn all_datasets(m: &FileMetadata) -> Vec<&mursst::hdf5::Dataset> {
    fn walk<'a>(g: &'a mursst::hdf5::Group, out: &mut Vec<&'a mursst::hdf5::Dataset>) {
        out.extend(g.datasets.iter());
        for c in &g.groups {
            walk(c, out);
        }
    }
    let mut out = Vec::new();
    walk(&m.root, &mut out);
    out
}

/// A source that records every range requested.
pub struct Recording<R> {
    pub inner: R,
    pub ranges: Mutex<Vec<std::ops::Range<u64>>>,
}

#[async_trait]
impl<R: RangeRead> RangeRead for Recording<R> {
    fn url(&self) -> &str {
        self.inner.url()
    }
    async fn info(&self) -> Result<ObjectInfo, SourceError> {
        self.inner.info().await
    }
    async fn read_range(&self, range: std::ops::Range<u64>) -> Result<Bytes, SourceError> {
        self.ranges.lock().unwrap().push(range.clone());
        self.inner.read_range(range).await
    }
}
