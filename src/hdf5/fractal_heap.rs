//! Fractal heaps: where dense groups keep link messages and dense attribute storage
//! keeps attribute messages. Objects are found from heap IDs: managed objects via
//! the doubling table of direct and indirect blocks, tiny objects inside the ID, and
//! huge objects via a v2 B-tree (type 1) or directly.

use std::collections::HashMap;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::sync::OnceCell;

use super::btree_v2;
use super::checksum;
use super::cursor::{Cursor, le_uint};
use super::file::FileCtx;
use super::place::{At, Place, corrupt, limit, unsupported};
use super::{Hdf5Error, Hdf5ErrorKind};

/// The header fields and derived doubling-table geometry.
#[derive(Debug)]
struct Header {
    addr: u64,
    id_len: usize,
    checksum_dblocks: bool,
    huge_btree: Option<u64>,
    width: u64,
    start_block_size: u64,
    first_row_bits: u32,
    max_direct_rows: u32,
    off_size: usize,
    len_size: usize,
    root: Option<u64>,
    root_rows: u32,
    /// Most rows any indirect block may have.
    max_rows: u32,
}

impl Header {
    fn row_block_size(&self, row: u32) -> u64 {
        if row == 0 {
            self.start_block_size
        } else {
            self.start_block_size << (row - 1)
        }
    }

    fn row_block_offset(&self, row: u32) -> u64 {
        if row == 0 {
            0
        } else {
            (self.start_block_size * self.width)
                .checked_shl(row - 1)
                .unwrap_or(u64::MAX)
        }
    }

    /// Row and column of heap-relative offset `rel` within an indirect block.
    fn locate(&self, rel: u64) -> (u32, u64) {
        if rel < self.start_block_size * self.width {
            (0, rel / self.start_block_size)
        } else {
            let high = rel.ilog2();
            let row = high - self.first_row_bits + 1;
            (row, (rel - (1u64 << high)) / self.row_block_size(row))
        }
    }

    fn dblock_overhead(&self, addr_len: usize) -> u64 {
        (5 + addr_len + self.off_size + if self.checksum_dblocks { 4 } else { 0 }) as u64
    }
}

/// An opened fractal heap.
pub(crate) struct FractalHeap {
    h: Header,
    huge: OnceCell<HashMap<u64, (u64, u64)>>,
}

/// Open the heap whose header is at `addr`.
pub(crate) async fn open(
    f: &FileCtx<'_>,
    addr: u64,
    place: &Place,
) -> Result<FractalHeap, Hdf5Error> {
    let field = || format!("fractal heap header at {addr:#x}");
    let (a, l) = (f.fmt.addr_len(), f.fmt.size_len());
    let len = 22 + 12 * l + 3 * a + 4;
    let block = f.io.read(addr, len as u64).await.at(place, field)?;
    let h = parse_header(f, addr, &block).at(place, field)?;
    Ok(FractalHeap {
        h,
        huge: OnceCell::new(),
    })
}

fn parse_header(f: &FileCtx<'_>, addr: u64, block: &[u8]) -> Result<Header, Hdf5ErrorKind> {
    let fmt = f.fmt;
    let mut c = Cursor::new(block);
    c.signature(b"FRHP")?;
    let version = c.u8()?;
    if version != 0 {
        return Err(Hdf5ErrorKind::UnsupportedVersion {
            what: "fractal heap header",
            version,
        });
    }
    let id_len = usize::from(c.u16()?);
    let filter_len = c.u16()?;
    let flags = c.u8()?;
    let max_man_size = c.u32()?;
    fmt.length(&mut c)?; // next huge object id
    let huge_btree = fmt.addr(&mut c)?;
    fmt.length(&mut c)?; // free space in managed blocks
    fmt.addr(&mut c)?; // free space manager
    for _ in 0..8 {
        fmt.length(&mut c)?; // managed/huge/tiny statistics
    }
    let width = u64::from(c.u16()?);
    let start_block_size = fmt.length(&mut c)?;
    let max_direct_size = fmt.length(&mut c)?;
    let max_heap_bits = u32::from(c.u16()?);
    c.skip(2)?; // starting rows in root indirect block
    let root = fmt.addr(&mut c)?;
    let root_rows = u32::from(c.u16()?);
    if filter_len > 0 {
        return Err(unsupported("fractal heap with I/O filters"));
    }
    c.skip(4)?;
    checksum::verify(&block[..c.pos()])?;
    let pow2 = |v: u64| v != 0 && v.is_power_of_two();
    if !pow2(width)
        || !pow2(start_block_size)
        || !pow2(max_direct_size)
        || max_direct_size < start_block_size
    {
        return Err(corrupt(format!(
            "doubling table width {width}, start block {start_block_size}, max direct block {max_direct_size}"
        )));
    }
    if !(1..=64).contains(&max_heap_bits) || !(2..=4096).contains(&id_len) {
        return Err(corrupt(format!(
            "heap offset bits {max_heap_bits}, ID length {id_len}"
        )));
    }
    if max_direct_size > f.io.size().max(1 << 20) {
        return Err(limit(format!("direct blocks of {max_direct_size} bytes")));
    }
    let start_bits = start_block_size.ilog2();
    let first_row_bits = start_bits + width.ilog2();
    let max_direct_bits = max_direct_size.ilog2();
    if first_row_bits > max_heap_bits {
        return Err(corrupt("heap address space smaller than its first row"));
    }
    let limit_enc = |n: u64| (n.max(1).ilog2() / 8 + 1) as usize;
    Ok(Header {
        addr,
        id_len,
        checksum_dblocks: flags & 0x02 != 0,
        huge_btree,
        width,
        start_block_size,
        first_row_bits,
        max_direct_rows: max_direct_bits - start_bits + 2,
        off_size: max_heap_bits.div_ceil(8) as usize,
        len_size: (max_direct_bits.div_ceil(8) as usize).min(limit_enc(u64::from(max_man_size))),
        root,
        root_rows,
        max_rows: max_heap_bits - first_row_bits + 1,
    })
}

/// Where a managed block is: its address, heap offset and size.
#[derive(Clone, Copy)]
struct BlockRef {
    addr: u64,
    offset: u64,
    size: u64,
}

impl FractalHeap {
    /// The bytes of the object with heap ID `id`.
    pub(crate) async fn object(
        &self,
        f: &FileCtx<'_>,
        id: &[u8],
        place: &Place,
    ) -> Result<Bytes, Hdf5Error> {
        let h = &self.h;
        let field = || format!("fractal heap at {:#x}", h.addr);
        if id.len() != h.id_len {
            return Err(place.err(
                field(),
                corrupt(format!(
                    "heap ID of {} bytes, expected {}",
                    id.len(),
                    h.id_len
                )),
            ));
        }
        let b0 = id[0];
        if b0 >> 6 != 0 {
            return Err(place.err(field(), corrupt(format!("heap ID version {}", b0 >> 6))));
        }
        match (b0 >> 4) & 0x03 {
            0 => {
                let mut c = Cursor::new(&id[1..]);
                let (off, len) =
                    (|| Ok::<_, Hdf5ErrorKind>((c.uint(h.off_size)?, c.uint(h.len_size)?)))()
                        .at(place, field)?;
                self.managed(f, off, len, place).await
            }
            1 => self.huge_object(f, &id[1..], place).await,
            2 => {
                let (len, start) = if h.id_len - 1 <= 16 {
                    (usize::from(b0 & 0x0F) + 1, 1)
                } else {
                    let b1 = *id.get(1).unwrap_or(&0);
                    ((usize::from(b0 & 0x0F) << 8 | usize::from(b1)) + 1, 2)
                };
                id.get(start..start + len)
                    .map(Bytes::copy_from_slice)
                    .ok_or_else(|| {
                        place.err(field(), corrupt(format!("tiny object of {len} bytes")))
                    })
            }
            t => Err(place.err(field(), corrupt(format!("heap ID type {t}")))),
        }
    }

    async fn managed(
        &self,
        f: &FileCtx<'_>,
        off: u64,
        len: u64,
        place: &Place,
    ) -> Result<Bytes, Hdf5Error> {
        let h = &self.h;
        let field = || {
            format!(
                "fractal heap at {:#x}, object at heap offset {off:#x}",
                h.addr
            )
        };
        let root = h.root.ok_or_else(|| {
            place.err(field(), corrupt("managed object in a heap with no blocks"))
        })?;
        let block = if h.root_rows == 0 {
            BlockRef {
                addr: root,
                offset: 0,
                size: h.start_block_size,
            }
        } else {
            self.find_dblock(f, root, h.root_rows, 0, off, 0)
                .await
                .at(place, field)?
        };
        let data = self.read_dblock(f, block).await.at(place, field)?;
        let start = off - block.offset;
        let end = start.checked_add(len).filter(|&e| e <= block.size);
        match end {
            Some(end) if start >= h.dblock_overhead(f.fmt.addr_len()) => {
                Ok(data.slice(start as usize..end as usize))
            }
            _ => Err(place.err(
                field(),
                corrupt(format!("object of {len} bytes outside its direct block")),
            )),
        }
    }

    /// Walk indirect blocks down to the direct block holding heap offset `off`.
    fn find_dblock<'a>(
        &'a self,
        f: &'a FileCtx<'_>,
        addr: u64,
        nrows: u32,
        block_off: u64,
        off: u64,
        depth: u32,
    ) -> BoxFuture<'a, Result<BlockRef, Hdf5ErrorKind>> {
        Box::pin(async move {
            let h = &self.h;
            if depth > 64 || nrows > h.max_rows {
                return Err(corrupt(format!(
                    "indirect block at {addr:#x} with {nrows} rows"
                )));
            }
            let a = f.fmt.addr_len();
            let direct_rows = nrows.min(h.max_direct_rows);
            let indirect_rows = nrows - direct_rows;
            let entries = (u64::from(direct_rows) + u64::from(indirect_rows)) * h.width;
            let len = 5 + a as u64 + h.off_size as u64 + entries * a as u64 + 4;
            let block = f.io.read(addr, len).await?;
            checksum::verify(&block)?;
            let mut c = Cursor::new(&block);
            c.signature(b"FHIB")?;
            c.skip(1 + a)?;
            let stored_off = c.uint(h.off_size)?;
            if stored_off != block_off {
                return Err(corrupt(format!(
                    "indirect block at {addr:#x} claims heap offset {stored_off:#x}, expected {block_off:#x}"
                )));
            }
            let rel = off
                .checked_sub(block_off)
                .ok_or_else(|| corrupt("heap offset before its indirect block"))?;
            let (row, col) = h.locate(rel);
            if row >= nrows || col >= h.width {
                return Err(corrupt(format!(
                    "heap offset {off:#x} beyond indirect block at {addr:#x}"
                )));
            }
            c.skip(((u64::from(row) * h.width + col) as usize) * a)?;
            let child = f.fmt.addr(&mut c)?.ok_or_else(|| {
                corrupt(format!("heap offset {off:#x} is in an unallocated block"))
            })?;
            let child_off = block_off
                .checked_add(h.row_block_offset(row))
                .and_then(|o| o.checked_add(col.checked_mul(h.row_block_size(row))?))
                .ok_or_else(|| corrupt("heap offset overflows"))?;
            let size = h.row_block_size(row);
            if row < h.max_direct_rows {
                Ok(BlockRef {
                    addr: child,
                    offset: child_off,
                    size,
                })
            } else {
                let child_rows = (size.checked_ilog2().unwrap_or(0) + 1)
                    .checked_sub(h.first_row_bits)
                    .filter(|&r| r > 0 && r < nrows)
                    .ok_or_else(|| {
                        corrupt(format!("indirect block of {size} bytes in row {row}"))
                    })?;
                self.find_dblock(f, child, child_rows, child_off, off, depth + 1)
                    .await
            }
        })
    }

    async fn read_dblock(&self, f: &FileCtx<'_>, b: BlockRef) -> Result<Bytes, Hdf5ErrorKind> {
        let h = &self.h;
        let data = f.io.read(b.addr, b.size).await?;
        let mut c = Cursor::new(&data);
        c.signature(b"FHDB")?;
        let version = c.u8()?;
        if version != 0 {
            return Err(Hdf5ErrorKind::UnsupportedVersion {
                what: "fractal heap direct block",
                version,
            });
        }
        c.skip(f.fmt.addr_len())?;
        let stored_off = c.uint(h.off_size)?;
        if stored_off != b.offset {
            return Err(corrupt(format!(
                "direct block at {:#x} claims heap offset {stored_off:#x}, expected {:#x}",
                b.addr, b.offset
            )));
        }
        if h.checksum_dblocks {
            let at = c.pos();
            let stored = c.u32()?;
            let mut copy = data.to_vec();
            copy[at..at + 4].fill(0);
            if checksum::lookup3(&copy) != stored && !cfg!(fuzzing) {
                return Err(corrupt(format!(
                    "direct block at {:#x}: checksum mismatch",
                    b.addr
                )));
            }
        }
        Ok(data)
    }

    async fn huge_object(
        &self,
        f: &FileCtx<'_>,
        id: &[u8],
        place: &Place,
    ) -> Result<Bytes, Hdf5Error> {
        let h = &self.h;
        let field = || format!("fractal heap at {:#x}, huge object", h.addr);
        let (a, l) = (f.fmt.addr_len(), f.fmt.size_len());
        let (addr, len) = if a + l < h.id_len {
            let mut c = Cursor::new(id);
            (|| {
                let addr = f
                    .fmt
                    .addr(&mut c)?
                    .ok_or_else(|| corrupt("undefined huge object address"))?;
                Ok::<_, Hdf5ErrorKind>((addr, f.fmt.length(&mut c)?))
            })()
            .at(place, field)?
        } else {
            let key = le_uint(&id[..id.len().min(8)]);
            let table = self
                .huge
                .get_or_try_init(|| self.load_huge(f, place))
                .await?;
            *table.get(&key).ok_or_else(|| {
                place.err(field(), corrupt(format!("no huge object with ID {key}")))
            })?
        };
        if len > f.io.size() {
            return Err(place.err(field(), limit(format!("huge object of {len} bytes"))));
        }
        f.io.read(addr, len).await.at(place, field)
    }

    /// Huge object ID → (address, length), from the heap's type-1 v2 B-tree.
    async fn load_huge(
        &self,
        f: &FileCtx<'_>,
        place: &Place,
    ) -> Result<HashMap<u64, (u64, u64)>, Hdf5Error> {
        let field = || format!("fractal heap at {:#x}, huge object index", self.h.addr);
        let Some(bt) = self.h.huge_btree else {
            return Err(place.err(field(), corrupt("huge object ID but no huge object B-tree")));
        };
        let (_, recs) = btree_v2::records(f, bt, 1, place).await?;
        let mut map = HashMap::with_capacity(recs.len());
        for r in recs {
            let mut c = Cursor::new(&r);
            let (addr, len, id) = (|| {
                let addr = f
                    .fmt
                    .addr(&mut c)?
                    .ok_or_else(|| corrupt("undefined huge object address"))?;
                Ok::<_, Hdf5ErrorKind>((addr, f.fmt.length(&mut c)?, f.fmt.length(&mut c)?))
            })()
            .at(place, field)?;
            map.insert(id, (addr, len));
        }
        Ok(map)
    }
}
