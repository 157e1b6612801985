//! Chunk locations of a chunked dataset, from whichever index its layout names:
//! v1 B-tree, single chunk, implicit, fixed array, extensible array or v2 B-tree.

use super::cursor::Cursor;
use super::file::FileCtx;
use super::fixed_array::ArrayElements;
use super::messages::ChunkIndexMsg;
use super::place::{At, Place, corrupt, limit, unsupported};
use super::{
    ChunkLocation, Hdf5Error, Hdf5ErrorKind, btree_v1, btree_v2, extensible_array, fixed_array,
};

/// The chunk grid of one dataset.
pub(crate) struct Grid<'a> {
    pub chunk_dims: &'a [u64],
    pub shape: &'a [u64],
    /// `u64::MAX` marks an unlimited dimension.
    pub max_shape: &'a [u64],
    /// Bytes of one unfiltered chunk.
    pub chunk_bytes: u64,
    pub filtered: bool,
}

impl Grid<'_> {
    /// Chunks along each dimension for the current shape.
    fn chunks(&self) -> Vec<u64> {
        self.shape
            .iter()
            .zip(self.chunk_dims)
            .map(|(&s, &c)| s.div_ceil(c))
            .collect()
    }

    /// Chunks along each dimension for the maximum shape (`u64::MAX` if unlimited).
    fn max_chunks(&self) -> Vec<u64> {
        self.max_shape
            .iter()
            .zip(self.chunk_dims)
            .map(|(&m, &c)| {
                if m == u64::MAX {
                    u64::MAX
                } else {
                    m.div_ceil(c)
                }
            })
            .collect()
    }
}

/// Row-major strides over `extents` (the first extent is never used).
fn strides(extents: &[u64]) -> Vec<u64> {
    let mut out = vec![1u64; extents.len()];
    for i in (0..extents.len().saturating_sub(1)).rev() {
        out[i] = out[i + 1].saturating_mul(extents[i + 1]);
    }
    out
}

/// Split linear index `idx` into coordinates with the given strides.
fn unravel(mut idx: u64, strides: &[u64]) -> Vec<u64> {
    strides
        .iter()
        .map(|&s| {
            let s = s.max(1);
            let q = idx / s;
            idx %= s;
            q
        })
        .collect()
}

/// Every allocated chunk, ordered by grid index, and the index structure's name.
pub(crate) async fn locate(
    f: &FileCtx<'_>,
    index: &ChunkIndexMsg,
    address: Option<u64>,
    grid: &Grid<'_>,
    place: &Place,
) -> Result<(Vec<ChunkLocation>, &'static str), Hdf5Error> {
    let field = || "chunk index".to_string();
    let rank = grid.chunk_dims.len();
    let (mut chunks, kind) = match index {
        ChunkIndexMsg::BtreeV1 => {
            let recs = match address {
                Some(a) => btree_v1::chunk_records(f, a, rank, place).await?,
                None => Vec::new(),
            };
            let chunks = recs
                .into_iter()
                .map(|r| ChunkLocation {
                    index: r
                        .offsets
                        .iter()
                        .zip(grid.chunk_dims)
                        .map(|(&o, &c)| o / c)
                        .collect(),
                    address: r.address,
                    size: u64::from(r.size),
                    filter_mask: r.filter_mask,
                })
                .collect();
            (chunks, "btree-v1")
        }
        ChunkIndexMsg::Single { filtered } => {
            let chunks = address
                .map(|address| {
                    let (size, filter_mask) = filtered.unwrap_or((grid.chunk_bytes, 0));
                    ChunkLocation {
                        index: vec![0; rank],
                        address,
                        size,
                        filter_mask,
                    }
                })
                .into_iter()
                .collect();
            (chunks, "single")
        }
        ChunkIndexMsg::Implicit => (implicit(f, address, grid).at(place, field)?, "implicit"),
        ChunkIndexMsg::FixedArray { .. } => {
            let chunks = match address {
                Some(a) => {
                    let elems = fixed_array::read(f, a, place).await?;
                    let st = strides(&grid.max_chunks());
                    from_elements(f, &elems, grid, |i| Ok(unravel(i, &st))).at(place, field)?
                }
                None => Vec::new(),
            };
            (chunks, "fixed-array")
        }
        ChunkIndexMsg::ExtensibleArray(_) => {
            let chunks = match address {
                Some(a) => {
                    let elems = extensible_array::read(f, a, place).await?;
                    // The unlimited dimension varies slowest ("swizzled" order).
                    let max = grid.max_chunks();
                    let unlim = max.iter().position(|&m| m == u64::MAX).unwrap_or(0);
                    let mut swizzled = max.clone();
                    let u = swizzled.remove(unlim);
                    swizzled.insert(0, u);
                    let st = strides(&swizzled);
                    from_elements(f, &elems, grid, |i| {
                        let mut coords = unravel(i, &st);
                        let u = coords.remove(0);
                        coords.insert(unlim, u);
                        Ok(coords)
                    })
                    .at(place, field)?
                }
                None => Vec::new(),
            };
            (chunks, "extensible-array")
        }
        ChunkIndexMsg::BtreeV2 => {
            let chunks = match address {
                Some(a) => btree_v2_chunks(f, a, grid, place).await?,
                None => Vec::new(),
            };
            (chunks, "btree-v2")
        }
    };
    chunks.sort_by(|a, b| a.index.cmp(&b.index));
    Ok((chunks, kind))
}

/// Implicit index: every chunk of the current grid, at `address + index * chunk_bytes`.
fn implicit(
    f: &FileCtx<'_>,
    address: Option<u64>,
    grid: &Grid<'_>,
) -> Result<Vec<ChunkLocation>, Hdf5ErrorKind> {
    let Some(base) = address else {
        return Ok(Vec::new());
    };
    if grid.filtered {
        return Err(corrupt("implicit chunk index with filters"));
    }
    let chunks = grid.chunks();
    let total = chunks
        .iter()
        .try_fold(1u64, |acc, &n| acc.checked_mul(n))
        .ok_or_else(|| corrupt("chunk count overflows"))?;
    if total == 0 {
        return Ok(Vec::new());
    }
    let st = strides(&grid.max_chunks());
    let last: u64 = chunks
        .iter()
        .zip(&st)
        .map(|(&n, &s)| (n - 1).saturating_mul(s))
        .fold(0u64, u64::saturating_add);
    let end = last
        .saturating_add(1)
        .saturating_mul(grid.chunk_bytes)
        .saturating_add(base);
    if end > f.io.size() {
        return Err(limit(format!(
            "implicitly indexed chunks end at {end:#x}, past the end of the file"
        )));
    }
    let cur = strides(&chunks);
    Ok((0..total)
        .map(|i| {
            let index = unravel(i, &cur);
            let linear = index.iter().zip(&st).map(|(&x, &s)| x * s).sum::<u64>();
            ChunkLocation {
                index,
                address: base + linear * grid.chunk_bytes,
                size: grid.chunk_bytes,
                filter_mask: 0,
            }
        })
        .collect())
}

/// Decode fixed/extensible array elements (address, then size and filter mask
/// when filtered) into chunk locations.
fn from_elements(
    f: &FileCtx<'_>,
    elems: &ArrayElements,
    grid: &Grid<'_>,
    coords: impl Fn(u64) -> Result<Vec<u64>, Hdf5ErrorKind>,
) -> Result<Vec<ChunkLocation>, Hdf5ErrorKind> {
    let a = f.fmt.addr_len();
    let size_len = if grid.filtered {
        elems
            .element_size
            .checked_sub(a + 4)
            .filter(|n| (1..=8).contains(n))
            .ok_or_else(|| {
                corrupt(format!(
                    "filtered chunk entry of {} bytes",
                    elems.element_size
                ))
            })?
    } else if elems.element_size == a {
        0
    } else {
        return Err(corrupt(format!(
            "chunk entry of {} bytes",
            elems.element_size
        )));
    };
    let mut out = Vec::new();
    for (first, bytes) in &elems.runs {
        let mut c = Cursor::new(bytes);
        let mut i = *first;
        while c.remaining() >= elems.element_size {
            let addr = f.fmt.addr(&mut c)?;
            let (size, filter_mask) = if grid.filtered {
                (c.uint(size_len)?, c.u32()?)
            } else {
                (grid.chunk_bytes, 0)
            };
            if let Some(address) = addr {
                out.push(ChunkLocation {
                    index: coords(i)?,
                    address,
                    size,
                    filter_mask,
                });
            }
            i += 1;
        }
    }
    Ok(out)
}

async fn btree_v2_chunks(
    f: &FileCtx<'_>,
    addr: u64,
    grid: &Grid<'_>,
    place: &Place,
) -> Result<Vec<ChunkLocation>, Hdf5Error> {
    let field = || format!("v2 B-tree chunk index at {addr:#x}");
    let tree_type = if grid.filtered { 11 } else { 10 };
    let (record_size, recs) = btree_v2::records(f, addr, tree_type, place).await?;
    let rank = grid.chunk_dims.len();
    let a = f.fmt.addr_len();
    let size_len = if grid.filtered {
        record_size
            .checked_sub(a + 4 + 8 * rank)
            .filter(|n| (1..=8).contains(n))
            .ok_or_else(|| place.err(field(), corrupt(format!("record of {record_size} bytes"))))?
    } else {
        if record_size != a + 8 * rank {
            return Err(place.err(field(), corrupt(format!("record of {record_size} bytes"))));
        }
        0
    };
    let mut out = Vec::with_capacity(recs.len());
    for r in recs {
        let mut c = Cursor::new(&r);
        let loc = (|| {
            let address = f
                .fmt
                .addr(&mut c)?
                .ok_or_else(|| corrupt("undefined chunk address"))?;
            let (size, filter_mask) = if grid.filtered {
                (c.uint(size_len)?, c.u32()?)
            } else {
                (grid.chunk_bytes, 0)
            };
            let index = (0..rank).map(|_| c.u64()).collect::<Result<Vec<_>, _>>()?;
            Ok::<_, Hdf5ErrorKind>(ChunkLocation {
                index,
                address,
                size,
                filter_mask,
            })
        })()
        .at(place, field)?;
        out.push(loc);
    }
    Ok(out)
}

/// Refuse layouts whose chunks cannot be described by one filter pipeline.
pub(crate) fn check_flags(flags: u8, filtered: bool) -> Result<(), Hdf5ErrorKind> {
    if flags & 0x01 != 0 && filtered {
        return Err(unsupported(
            "partial edge chunks stored unfiltered (H5D_CHUNK_DONT_FILTER_PARTIAL_CHUNKS)",
        ));
    }
    Ok(())
}
