//! Native days: a granule variable chunked or encoded unlike the store's array cannot be
//! referenced byte for byte, so it is decoded chunk by chunk, re-chunked onto the
//! store's grid, encoded with the store's codec chain and written to the repository's
//! chunk storage as native chunks. One band of source chunk rows is held at a time (plus
//! the rows of store chunks it has not completed), never the whole variable.
//!
//! The chunks are written outside any change set, as icechunk's distributed writers do:
//! what comes back is each chunk's payload, which the commit step sets on its branch
//! (in the same commit as the day's virtual variables). Until then they are unreferenced
//! objects, which garbage collection removes only once older than its cut-off.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use icechunk::format::manifest::ChunkPayload;
use icechunk::format::{ChunkIndices, Path};
use icechunk::session::Session;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use zarrs::array::{Array, ArraySubset};
use zarrs::storage::byte_range::ByteRangeIterator;
use zarrs::storage::{
    AsyncMaybeBytesIterator, AsyncReadableStorageTraits, AsyncWritableStorageTraits, MaybeBytes,
    OffsetBytesIterator, StorageError, StoreKey, StorePrefix,
};

use super::StoreError;
use super::layout::ArrayMeta;
use super::values::Values;
use crate::codec::{self, DecodeError};
use crate::refs::{ChunkData, Endian, Variable};
use crate::source::RangeRead;

/// Source chunks decoded at once (each a blocking task: inflate is CPU work).
const DECODE_CONCURRENCY: usize = 4;

/// What materializing one variable of one day took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Materialized {
    /// Source chunks read and decoded.
    pub chunks_decoded: u64,
    /// Compressed bytes read from the granule.
    pub bytes_read: u64,
    /// Decoded bytes written through the store's codec chain.
    pub bytes_written: u64,
    /// The most decoded bytes held at once.
    pub peak_buffer_bytes: u64,
}

impl Materialized {
    /// Whether nothing was materialized.
    pub fn is_none(&self) -> bool {
        self.chunks_decoded == 0 && self.bytes_written == 0
    }
}

impl std::ops::AddAssign for Materialized {
    fn add_assign(&mut self, o: Self) {
        self.chunks_decoded += o.chunks_decoded;
        self.bytes_read += o.bytes_read;
        self.bytes_written += o.bytes_written;
        self.peak_buffer_bytes = self.peak_buffer_bytes.max(o.peak_buffer_bytes);
    }
}

/// The (lat, lon) geometry of a `(1, lat, lon)` variable and of the store's chunks.
struct Geometry {
    height: u64,
    width: u64,
    src_rows: u64,
    src_cols: u64,
    store_rows: u64,
    elem: usize,
}

impl Geometry {
    fn of(granule: &str, var: &Variable, meta: &ArrayMeta) -> Result<Self, StoreError> {
        let bad = |m: String| StoreError::schema(granule, var.name.clone(), "shape", m);
        let ([1, height, width], [1, src_rows, src_cols]) =
            (var.shape.as_slice(), var.chunk_shape.as_slice())
        else {
            return Err(bad(format!(
                "{:?} chunked {:?}: only (1, lat, lon) variables are materialized",
                var.shape, var.chunk_shape
            )));
        };
        let store_rows = match meta.chunk_shape() {
            [1, rows, _] => *rows,
            other => return Err(bad(format!("the store chunks it {other:?}"))),
        };
        if [*src_rows, *src_cols, store_rows].contains(&0) {
            return Err(bad("a zero chunk dimension".into()));
        }
        Ok(Self {
            height: *height,
            width: *width,
            src_rows: *src_rows,
            src_cols: *src_cols,
            store_rows,
            elem: var.dtype.size(),
        })
    }

    fn row_bytes(&self) -> usize {
        self.width as usize * self.elem
    }
}

/// One chunk of a materialized variable, in the repository's chunk storage but in no
/// snapshot yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeChunk {
    /// The chunk's index within one time step (`lat`, `lon`); the commit adds the day's.
    pub index: Vec<u32>,
    pub payload: ChunkPayload,
}

/// One variable of one day materialized onto the store's array `target`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NativeVariable {
    /// The store array the chunks were encoded for (one time step, no attributes): they
    /// fit the store only while its grid and codecs are still these.
    pub target: ArrayMeta,
    pub chunks: Vec<NativeChunk>,
    pub materialized: Materialized,
}

/// The metadata a day's native chunks are encoded for: the store array's, for one time
/// step, without attributes (which do not change how a chunk encodes).
pub fn target_of(meta: &ArrayMeta) -> ArrayMeta {
    let mut target = meta.clone();
    if let Some(t) = target.shape.first_mut() {
        *t = 1;
    }
    target.attributes.clear();
    target
}

/// Materialize the granule variable `var` (read through `reader`) onto the store array
/// `name`, whose metadata is `meta`, writing its chunks through `session` (any session
/// of the repository: only its chunk writer is used).
pub async fn materialize(
    session: &Session,
    name: &str,
    meta: &ArrayMeta,
    var: &Variable,
    reader: Arc<dyn RangeRead>,
) -> Result<NativeVariable, StoreError> {
    let granule = reader.url().to_string();
    let g = Geometry::of(&granule, var, meta)?;
    let target = target_of(meta);
    let sink = Arc::new(ChunkSink::new(session, name, &target)?);
    let array = Array::async_open(Arc::clone(&sink), &format!("/{name}"))
        .await
        .map_err(|e| StoreError::zarr(format!("opening array {name} to materialize"), e))?;
    let fill = array.fill_value().as_ne_bytes().to_vec();
    if fill.len() != g.elem {
        return Err(StoreError::metadata(
            name,
            "fill value size differs from the dtype's",
        ));
    }
    let chunks: HashMap<(u64, u64), &ChunkData> = var
        .chunks
        .iter()
        .filter_map(|(i, d)| match i.as_slice() {
            [0, r, c] => Some(((*r, *c), d)),
            _ => None,
        })
        .collect();
    let var = Arc::new(var.clone());
    let mut done = Materialized::default();
    // Decoded rows not yet written: rows `carry_start..` of the variable, full width.
    let mut carry: Vec<u8> = Vec::new();
    let mut carry_start = 0u64;
    for band in 0..g.height.div_ceil(g.src_rows) {
        let r0 = band * g.src_rows;
        let rows = g.src_rows.min(g.height - r0);
        let source = BandSource {
            reader: &reader,
            var: &var,
            chunks: &chunks,
            g: &g,
        };
        let buffer = source.decode(band, rows, &fill, &mut done).await?;
        carry.extend_from_slice(&buffer);
        done.peak_buffer_bytes = done
            .peak_buffer_bytes
            .max((carry.len() + buffer.len()) as u64);
        drop(buffer);
        let band_end = r0 + rows;
        // Write every row of store chunks the decoded rows now complete.
        while carry_start < band_end {
            let end = (carry_start + g.store_rows).min(g.height);
            if end > band_end {
                break;
            }
            let take = (end - carry_start) as usize * g.row_bytes();
            let rest = carry.split_off(take);
            let row = std::mem::replace(&mut carry, rest);
            done.bytes_written += row.len() as u64;
            write_rows(&array, var.dtype, carry_start..end, g.width, row, name).await?;
            carry_start = end;
        }
    }
    let mut chunks = sink.take();
    chunks.sort_by(|a, b| a.index.cmp(&b.index));
    Ok(NativeVariable {
        target,
        chunks,
        materialized: done,
    })
}

/// Where a variable's source bands come from: its chunks in the granule.
struct BandSource<'a> {
    reader: &'a Arc<dyn RangeRead>,
    var: &'a Arc<Variable>,
    chunks: &'a HashMap<(u64, u64), &'a ChunkData>,
    g: &'a Geometry,
}

impl BandSource<'_> {
    /// Source chunk row `band` (`rows` rows) decoded at full width, `fill` where the
    /// granule has no chunk, several chunks in flight; what it took is added to `done`.
    async fn decode(
        &self,
        band: u64,
        rows: u64,
        fill: &[u8],
        done: &mut Materialized,
    ) -> Result<Vec<u8>, StoreError> {
        let g = self.g;
        let mut buffer = fill.repeat(rows as usize * g.width as usize);
        let present: Vec<(u64, ChunkData)> = (0..g.width.div_ceil(g.src_cols))
            .filter_map(|c| self.chunks.get(&(band, c)).map(|d| (c, (*d).clone())))
            .collect();
        let decoded: Vec<(u64, u64, Vec<u8>)> =
            futures::stream::iter(present.into_iter().map(|(c, data)| {
                decode_chunk(Arc::clone(self.reader), Arc::clone(self.var), band, c, data)
            }))
            .buffered(DECODE_CONCURRENCY)
            .try_collect()
            .await?;
        for (c, read, bytes) in decoded {
            place(g, &mut buffer, rows, c, &bytes);
            done.chunks_decoded += 1;
            done.bytes_read += read;
        }
        Ok(buffer)
    }
}

/// Read and decode one source chunk (row `r`, column `c`), off the async threads.
async fn decode_chunk(
    reader: Arc<dyn RangeRead>,
    var: Arc<Variable>,
    r: u64,
    c: u64,
    data: ChunkData,
) -> Result<(u64, u64, Vec<u8>), StoreError> {
    let raw = match &data {
        ChunkData::Inline(b) => b.clone(),
        ChunkData::Ref(x) => reader
            .read_range(x.offset..x.offset + x.length)
            .await
            .map_err(DecodeError::from)?
            .to_vec(),
    };
    let read = raw.len() as u64;
    let url = reader.url().to_string();
    let bytes = tokio::task::spawn_blocking(move || {
        let elem = var.dtype.size();
        let len = var.chunk_shape.iter().product::<u64>() as usize * elem;
        let mut bytes =
            codec::decode(&var.codecs, raw, len).map_err(|source| DecodeError::Corrupt {
                granule: url,
                variable: var.name.clone(),
                chunk: vec![0, r, c],
                source,
            })?;
        if var.endian == Endian::Big {
            for e in bytes.chunks_exact_mut(elem) {
                e.reverse();
            }
        }
        Ok::<_, DecodeError>(bytes)
    })
    .await
    .map_err(|e| StoreError::internal("materialize: decoding a chunk", e))??;
    Ok((c, read, bytes))
}

/// Copy the part of source chunk column `c` inside the variable into the band buffer.
fn place(g: &Geometry, buffer: &mut [u8], rows: u64, c: u64, chunk: &[u8]) {
    let col0 = (c * g.src_cols) as usize * g.elem;
    let cols = (g.src_cols.min(g.width - c * g.src_cols)) as usize * g.elem;
    let chunk_row = g.src_cols as usize * g.elem;
    for r in 0..rows as usize {
        let dst = r * g.row_bytes() + col0;
        let src = r * chunk_row;
        buffer[dst..dst + cols].copy_from_slice(&chunk[src..src + cols]);
    }
}

/// Write rows `rows` (full width) of the one time step: zarrs splits them into the
/// store's chunks and encodes each with the store's codec chain.
async fn write_rows(
    array: &Array<ChunkSink>,
    dtype: crate::refs::DataType,
    rows: std::ops::Range<u64>,
    width: u64,
    bytes: Vec<u8>,
    name: &str,
) -> Result<(), StoreError> {
    let subset = ArraySubset::new_with_ranges(&[0..1, rows, 0..width]);
    Values::from_le_bytes(dtype, bytes)
        .ok_or_else(|| StoreError::metadata(name, "decoded rows are not whole elements"))?
        .write_every_chunk(array, &subset)
        .await
}

/// A write-only zarr store over icechunk's chunk storage for one array: it serves the
/// array's metadata, and each chunk zarrs stores becomes an object in the repository
/// (or an inline payload, if small) whose payload it keeps for the commit.
pub(crate) struct ChunkSink {
    metadata_key: String,
    metadata: Bytes,
    path: Path,
    writer: Session,
    written: Mutex<Vec<NativeChunk>>,
}

impl ChunkSink {
    fn new(session: &Session, name: &str, target: &ArrayMeta) -> Result<Self, StoreError> {
        Ok(Self {
            metadata_key: format!("{name}/zarr.json"),
            metadata: Bytes::from(target.to_bytes()),
            path: super::layout::array_path(name)?,
            writer: session.clone(),
            written: Mutex::new(Vec::new()),
        })
    }

    /// The chunks written so far (a failed write fails the zarrs call that made it).
    fn take(&self) -> Vec<NativeChunk> {
        std::mem::take(&mut *self.written.lock())
    }

    /// `name/c/0/i/j` → `[i, j]` (the time index is always 0: one time step).
    fn chunk_index(&self, key: &StoreKey) -> Result<Vec<u32>, StorageError> {
        let parsed: Option<Vec<u32>> = key
            .as_str()
            .split_once("/c/")
            .and_then(|(_, rest)| rest.split('/').map(|c| c.parse().ok()).collect());
        match parsed.as_deref() {
            Some([0, rest @ ..]) => Ok(rest.to_vec()),
            _ => Err(StorageError::Other(format!(
                "{}: not a chunk key of one time step",
                key.as_str()
            ))),
        }
    }
}

#[async_trait::async_trait]
impl AsyncReadableStorageTraits for ChunkSink {
    async fn get(&self, key: &StoreKey) -> Result<MaybeBytes, StorageError> {
        Ok((key.as_str() == self.metadata_key).then(|| self.metadata.clone()))
    }

    async fn get_partial_many<'a>(
        &'a self,
        _key: &StoreKey,
        _byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<AsyncMaybeBytesIterator<'a>, StorageError> {
        // No chunk is read back: every write covers whole chunks.
        Ok(None)
    }

    async fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, StorageError> {
        Ok((key.as_str() == self.metadata_key).then_some(self.metadata.len() as u64))
    }

    fn supports_get_partial(&self) -> bool {
        false
    }
}

#[async_trait::async_trait]
impl AsyncWritableStorageTraits for ChunkSink {
    async fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), StorageError> {
        let index = self.chunk_index(key)?;
        let coords = ChunkIndices([&[0], index.as_slice()].concat());
        let write = self
            .writer
            .get_chunk_writer(&self.path, &coords)
            .map_err(|e| StorageError::Other(format!("{}: {e}", key.as_str())))?;
        let payload = write(value)
            .await
            .map_err(|e| StorageError::Other(format!("writing chunk {}: {e}", key.as_str())))?;
        self.written.lock().push(NativeChunk { index, payload });
        Ok(())
    }

    async fn set_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        _offset_values: OffsetBytesIterator<'a>,
    ) -> Result<(), StorageError> {
        Err(StorageError::Unsupported(format!(
            "{}: native chunks are written whole",
            key.as_str()
        )))
    }

    async fn erase(&self, key: &StoreKey) -> Result<(), StorageError> {
        Err(StorageError::Unsupported(format!(
            "{}: every chunk of a native day is stored, fill included",
            key.as_str()
        )))
    }

    async fn erase_prefix(&self, _prefix: &StorePrefix) -> Result<(), StorageError> {
        Ok(())
    }

    fn supports_set_partial(&self) -> bool {
        false
    }
}
