//! Pure-Rust, async reader of HDF5 *metadata*: object tree, attributes and chunk
//! locations, fetched with a few batched ranged reads and never touching chunk data.
//!
//! Conventions of the returned [`FileMetadata`]:
//! - Every address (chunks, contiguous data, object headers, object references in
//!   attributes) is an absolute byte offset in the file: HDF5 stores addresses relative
//!   to the superblock, which differs only when the file has a user block.
//! - Groups and attributes are in creation order when the file tracks it, else in name
//!   order (byte-wise), as libhdf5 iterates them. The root group is named `/`.
//! - An attribute with a null dataspace (netCDF's empty attributes) has shape `[0]`
//!   and no values.
//! - Soft, external and user-defined links and named datatypes are skipped; shared
//!   (SOHM) messages, virtual and external storage, filtered fractal heaps and layout
//!   messages before version 3 are `Unsupported` errors.
//!
//! Layout: `reader` (cached ranged reads) → `superblock` → `object_header` →
//! `messages` → `object` (groups via `group`, datasets via `chunk_index` over
//! `btree_v1`, `btree_v2`, `fixed_array`, `extensible_array`; attributes via
//! `fractal_heap`, `global_heap` and `attribute`).

// `Hdf5Error` (file, object, field, kind) is the public error contract; errors are rare
// and their context is the point, so it is not boxed.
#![allow(clippy::result_large_err)]

mod attribute;
mod btree_v1;
mod btree_v2;
mod checksum;
mod chunk_index;
mod cursor;
mod extensible_array;
mod file;
mod fixed_array;
mod fractal_heap;
mod global_heap;
mod group;
mod messages;
mod model;
mod object;
mod object_header;
mod place;
mod reader;
mod superblock;

pub use model::*;

use crate::source::{ObjectInfo, RangeRead, SourceError};
use file::FileCtx;
use place::Place;
use reader::MetaReader;

/// A problem with one granule, naming the file, the object and the field it was found in.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {object}: {field}: {kind}")]
pub struct Hdf5Error {
    pub file: String,
    /// HDF5 path of the object (e.g. `/analysed_sst`), or a structure such as `superblock`.
    pub object: String,
    /// The message or field being parsed (e.g. `data layout message`, `v1 B-tree node at 0x1a2b`).
    pub field: String,
    pub kind: Hdf5ErrorKind,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Hdf5ErrorKind {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("not an HDF5 file: no superblock signature at offsets 0, 512, 1024, ...")]
    NotHdf5,
    #[error("bad signature: expected {expected:?}, found {found:?}")]
    BadSignature { expected: String, found: String },
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion { what: &'static str, version: u8 },
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("address range {start:#x}..{end:#x} is past the end of the file ({size} bytes)")]
    PastEof { start: u64, end: u64, size: u64 },
    #[error("truncated: needed {needed} bytes, {available} available")]
    Truncated { needed: u64, available: u64 },
    #[error("cycle: address {0:#x} visited twice")]
    Cycle(u64),
    #[error("limit exceeded: {0}")]
    Limit(String),
    #[error("corrupt: {0}")]
    Corrupt(String),
}

/// Knobs for reading; defaults suit MUR granules on S3.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Bytes fetched from the start of the file in the first request.
    pub head_read_ahead: u64,
    /// Smallest read issued for a cache miss.
    pub min_read: u64,
    /// Maximum concurrent range requests.
    pub max_concurrency: usize,
    /// The object's size if the caller already knows it (e.g. from a listing or an
    /// earlier `info()`); saves one request.
    pub file_size: Option<u64>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            head_read_ahead: 256 * 1024,
            min_read: 4096,
            max_concurrency: 32,
            file_size: None,
        }
    }
}

/// Read the metadata tree of the HDF5 file behind `reader`.
///
/// Reads only metadata (object headers, B-trees, heaps, chunk indexes), never chunk
/// data: one read-ahead of the file head, then cached, concurrent reads whose
/// sequential depth follows the depth of the file's trees.
pub async fn read_metadata(
    reader: &dyn RangeRead,
    options: &ReadOptions,
) -> Result<FileMetadata, Hdf5Error> {
    let place = Place::new(reader.url(), "superblock");
    match options.file_size {
        Some(size) => {
            let head = reader
                .read_range(0..options.head_read_ahead.min(size))
                .await
                .map_err(|e| place.err("file head read-ahead", e.into()))?;
            read_with_head(reader, options, size, head).await
        }
        None => Ok(read_metadata_and_info(reader, options).await?.0),
    }
}

/// [`read_metadata`] plus the object's size and version, which the first request
/// (the head read-ahead) returns anyway.
pub async fn read_metadata_and_info(
    reader: &dyn RangeRead,
    options: &ReadOptions,
) -> Result<(FileMetadata, ObjectInfo), Hdf5Error> {
    let place = Place::new(reader.url(), "superblock");
    let (head, info) = reader
        .read_head(options.head_read_ahead)
        .await
        .map_err(|e| place.err("file head read-ahead", e.into()))?;
    let meta = read_with_head(reader, options, info.size, head).await?;
    Ok((meta, info))
}

async fn read_with_head(
    reader: &dyn RangeRead,
    options: &ReadOptions,
    size: u64,
    head: bytes::Bytes,
) -> Result<FileMetadata, Hdf5Error> {
    let io = MetaReader::new(reader, size, options);
    io.seed(0, &head);
    let superblock =
        superblock::read_superblock(&io, &Place::new(reader.url(), "superblock")).await?;
    let mut f = FileCtx::new(io, superblock, Place::new(reader.url(), "/"));
    f.superblock.btree_k = superblock::read_extension(&f).await?;
    let root =
        object::read_group(&f, f.superblock.root, "/".into(), "/".into(), Vec::new()).await?;
    Ok(FileMetadata {
        superblock_version: f.superblock.version,
        root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn read_metadata_future_is_send() {
        let mem = crate::source::InMemory {
            url: "mem://x".into(),
            data: bytes::Bytes::new(),
        };
        let opts = ReadOptions::default();
        let fut = read_metadata(&mem, &opts);
        assert_send(&fut);
    }

    #[tokio::test]
    async fn rejects_non_hdf5_bytes() {
        let mem = crate::source::InMemory {
            url: "mem://junk".into(),
            data: bytes::Bytes::from(vec![7u8; 5000]),
        };
        let err = read_metadata(&mem, &ReadOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err.kind, Hdf5ErrorKind::NotHdf5), "{err}");
        assert_eq!(err.file, "mem://junk");
    }
}
