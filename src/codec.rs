//! Decoding of granule chunks (shuffle, deflate) for the values the pipeline reads
//! itself: the time value and the lat/lon coordinates of each new granule, and every
//! chunk of a variable that is materialized onto the store's grid.

use std::io::Read;

use crate::refs::{ChunkData, Codec, Endian, Variable};
use crate::source::{RangeRead, SourceError};

/// A chunk that would not decode, naming where it came from.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{granule}: variable {variable}: chunk {chunk:?}: {source}")]
    Corrupt {
        granule: String,
        variable: String,
        chunk: Vec<u64>,
        #[source]
        source: CodecError,
    },
    #[error("{granule}: variable {variable}: {message}")]
    Layout {
        granule: String,
        variable: String,
        message: &'static str,
    },
}

impl DecodeError {
    /// The source's failure decides; bytes that do not decode fail the same way again.
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            DecodeError::Source(e) => e.kind(),
            DecodeError::Corrupt { .. } | DecodeError::Layout { .. } => {
                crate::error::ErrorKind::Failed
            }
        }
    }
}

/// Why one chunk's bytes do not decode.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("deflate: {0}")]
    Deflate(#[source] std::io::Error),
    #[error("decoded to {got} bytes, expected {expected}")]
    Length { got: usize, expected: usize },
}

/// Undo the codec chain (applied in reverse of encode order).
pub fn decode(
    codecs: &[Codec],
    mut data: Vec<u8>,
    expected_len: usize,
) -> Result<Vec<u8>, CodecError> {
    for codec in codecs.iter().rev() {
        data = match codec {
            Codec::Zlib { .. } => {
                let mut out = Vec::with_capacity(expected_len);
                flate2::read::ZlibDecoder::new(data.as_slice())
                    .take(expected_len as u64 + 1)
                    .read_to_end(&mut out)
                    .map_err(CodecError::Deflate)?;
                out
            }
            Codec::Shuffle { element_size } => unshuffle(&data, *element_size as usize),
        };
    }
    if data.len() != expected_len {
        return Err(CodecError::Length {
            got: data.len(),
            expected: expected_len,
        });
    }
    Ok(data)
}

/// Reverse the HDF5/numcodecs byte shuffle. As HDF5 does, the bytes after the last
/// whole element were not shuffled and stay where they are.
pub fn unshuffle(data: &[u8], element_size: usize) -> Vec<u8> {
    let n = data.len() / element_size.max(1);
    if element_size <= 1 || n == 0 {
        return data.to_vec();
    }
    let whole = n * element_size;
    let mut out = vec![0u8; data.len()];
    for (byte, plane) in data[..whole].chunks_exact(n).enumerate() {
        for (i, b) in plane.iter().enumerate() {
            out[i * element_size + byte] = *b;
        }
    }
    out[whole..].copy_from_slice(&data[whole..]);
    out
}

/// One whole chunk of `var` (edge chunks included: HDF5 stores them full size), read
/// and decoded to little-endian elements.
pub(crate) async fn read_chunk(
    reader: &dyn RangeRead,
    var: &Variable,
    index: &[u64],
    data: &ChunkData,
) -> Result<Vec<u8>, DecodeError> {
    let elem = var.dtype.size();
    let chunk_len: u64 = var.chunk_shape.iter().product();
    let raw = match data {
        ChunkData::Inline(b) => b.clone(),
        ChunkData::Ref(r) => reader
            .read_range(r.offset..r.offset + r.length)
            .await?
            .to_vec(),
    };
    let mut bytes = decode(&var.codecs, raw, chunk_len as usize * elem).map_err(|source| {
        DecodeError::Corrupt {
            granule: reader.url().to_string(),
            variable: var.name.clone(),
            chunk: index.to_vec(),
            source,
        }
    })?;
    if var.endian == Endian::Big {
        for e in bytes.chunks_exact_mut(elem) {
            e.reverse();
        }
    }
    Ok(bytes)
}

/// Read and decode the whole of a one-dimensional variable, as little-endian bytes.
pub(crate) async fn read_1d(
    reader: &dyn RangeRead,
    var: &Variable,
) -> Result<Vec<u8>, DecodeError> {
    let layout = |message| DecodeError::Layout {
        granule: reader.url().to_string(),
        variable: var.name.clone(),
        message,
    };
    let elem = var.dtype.size();
    let (len, chunk_len) = match (var.shape.as_slice(), var.chunk_shape.as_slice()) {
        ([n], [c]) => (*n as usize, *c as usize),
        _ => return Err(layout("not one-dimensional")),
    };
    let mut out = Vec::with_capacity(len * elem);
    let mut chunks: Vec<_> = var.chunks.iter().collect();
    chunks.sort_by_key(|(i, _)| i.clone());
    for (index, data) in chunks {
        let bytes = read_chunk(reader, var, index, data).await?;
        let start = index.first().copied().unwrap_or(0) as usize * chunk_len;
        if start != out.len() / elem {
            return Err(layout("chunks do not cover the variable"));
        }
        let take = chunk_len.min(len - start);
        out.extend_from_slice(&bytes[..take * elem]);
    }
    if out.len() != len * elem {
        return Err(layout("chunks do not cover the variable"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn shuffle_round_trip() {
        let data: Vec<u8> = (0..24).collect();
        // shuffle by hand: byte planes of 4-byte elements
        let n = data.len() / 4;
        let mut shuffled = vec![0; data.len()];
        for i in 0..n {
            for b in 0..4 {
                shuffled[b * n + i] = data[i * 4 + b];
            }
        }
        assert_eq!(unshuffle(&shuffled, 4), data);
    }

    #[test]
    fn decodes_shuffle_then_zlib() {
        let data: Vec<u8> = (0..64u16).flat_map(|v| v.to_le_bytes()).collect();
        let n = data.len() / 2;
        let mut shuffled = vec![0; data.len()];
        for i in 0..n {
            for b in 0..2 {
                shuffled[b * n + i] = data[i * 2 + b];
            }
        }
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(7));
        enc.write_all(&shuffled).unwrap();
        let compressed = enc.finish().unwrap();
        let codecs = [Codec::Shuffle { element_size: 2 }, Codec::Zlib { level: 7 }];
        assert_eq!(
            decode(&codecs, compressed.clone(), data.len()).unwrap(),
            data
        );
        assert!(decode(&codecs, compressed, data.len() + 2).is_err());
        assert!(decode(&codecs, vec![1, 2, 3], data.len()).is_err());
    }

    /// 2021-12-24..2022-01-26 list their filters as deflate, then shuffle: the bytes
    /// were deflated first and the deflate stream shuffled, so decoding undoes the
    /// shuffle first. Such a day is materialized; this is what its decode must do.
    #[test]
    fn decodes_the_reversed_filter_order() {
        let data: Vec<u8> = (0..64u16).flat_map(|v| (v * 7).to_le_bytes()).collect();
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
        enc.write_all(&data).unwrap();
        let mut deflated = enc.finish().unwrap();
        if deflated.len() % 2 == 0 {
            // An odd length: HDF5 leaves the last byte unshuffled, and so must we.
            deflated.push(0);
        }
        let n = deflated.len() / 2;
        let mut shuffled = deflated.clone();
        for i in 0..n {
            for b in 0..2 {
                shuffled[b * n + i] = deflated[i * 2 + b];
            }
        }
        let reversed = [Codec::Zlib { level: 6 }, Codec::Shuffle { element_size: 2 }];
        assert_eq!(
            decode(&reversed, shuffled.clone(), data.len()).unwrap(),
            data
        );
        let usual = [Codec::Shuffle { element_size: 2 }, Codec::Zlib { level: 6 }];
        assert!(decode(&usual, shuffled, data.len()).is_err());
    }
}
