//! Extensible arrays (chunk index type 4): a header, an index block holding the
//! first elements and the first data blocks, then super blocks of data blocks whose
//! sizes double; large data blocks are split into pages. Blocks load concurrently.

use bytes::Bytes;
use futures::future::try_join_all;

use super::checksum;
use super::cursor::Cursor;
use super::file::FileCtx;
use super::fixed_array::{ArrayElements, MAX_SPAN, check_block_prefix, page_initialized};
use super::place::{At, Place, corrupt, limit};
use super::{Hdf5Error, Hdf5ErrorKind};

/// Creation parameters and derived super block geometry.
struct Geometry {
    elem: usize,
    idx_blk_elmts: u64,
    data_blk_min_elmts: u64,
    sup_blk_min_data_ptrs: u64,
    page_nelmts: u64,
    arr_off_size: usize,
    /// Elements with index at or past this were never set.
    max_idx_set: u64,
    nsblks: u32,
}

impl Geometry {
    fn sblk_ndblks(&self, s: u32) -> u64 {
        1u64.checked_shl(s / 2).unwrap_or(u64::MAX)
    }
    fn sblk_dblk_nelmts(&self, s: u32) -> u64 {
        1u64.checked_shl(s.div_ceil(2))
            .unwrap_or(u64::MAX)
            .saturating_mul(self.data_blk_min_elmts)
    }
    /// First element index (after the index block's elements) of super block `s`.
    fn sblk_start_idx(&self, s: u32) -> u64 {
        (0..s).fold(0u64, |acc, u| {
            acc.saturating_add(self.sblk_ndblks(u).saturating_mul(self.sblk_dblk_nelmts(u)))
        })
    }
    /// Super blocks whose data blocks the index block points to directly.
    fn iblock_nsblks(&self) -> u32 {
        2 * self.sup_blk_min_data_ptrs.ilog2()
    }
}

/// A data block to read: address, first element index, element count, and for a
/// paged block its super block's page-init bitmap with the bit of its first page.
struct DataBlock {
    addr: u64,
    first: u64,
    nelmts: u64,
    pages: Option<(Bytes, u64)>,
}

/// Read the extensible array whose header is at `addr`.
pub(crate) async fn read(
    f: &FileCtx<'_>,
    addr: u64,
    place: &Place,
) -> Result<ArrayElements, Hdf5Error> {
    let field = || format!("extensible array header at {addr:#x}");
    let (a, l) = (f.fmt.addr_len(), f.fmt.size_len());
    let hlen = 12 + 6 * l + a + 4;
    let block = f.io.read(addr, hlen as u64).await.at(place, field)?;
    let (g, iblock) = parse_header(f, &block).at(place, field)?;
    let Some(iblock) = iblock else {
        return Ok(ArrayElements {
            element_size: g.elem,
            runs: Vec::new(),
        });
    };

    // Index block: elements, data block addresses, super block addresses.
    let field = || format!("extensible array index block at {iblock:#x}");
    let ndblk_addrs = 2 * (g.sup_blk_min_data_ptrs - 1);
    let iblock_nsblks = g.iblock_nsblks();
    let nsblk_addrs = u64::from(g.nsblks.saturating_sub(iblock_nsblks));
    let ilen =
        6 + a as u64 + g.idx_blk_elmts * g.elem as u64 + (ndblk_addrs + nsblk_addrs) * a as u64 + 4;
    let block = f.io.read(iblock, ilen).await.at(place, field)?;
    let (elements, dblocks, sblocks) = (|| {
        check_block_prefix(&block, b"EAIB")?;
        checksum::verify(&block)?;
        let mut c = Cursor::new(&block);
        c.skip(6 + a)?;
        let start = c.pos();
        c.skip(g.idx_blk_elmts as usize * g.elem)?;
        let elements = block.slice(start..c.pos());
        let mut dblocks = Vec::new();
        // Data blocks of the first super blocks, in order.
        let (mut s, mut in_s) = (0u32, 0u64);
        for _ in 0..ndblk_addrs {
            while s < iblock_nsblks && in_s >= g.sblk_ndblks(s) {
                s += 1;
                in_s = 0;
            }
            let nelmts = g.sblk_dblk_nelmts(s);
            let first = g
                .idx_blk_elmts
                .saturating_add(g.sblk_start_idx(s))
                .saturating_add(in_s.saturating_mul(nelmts));
            if let Some(addr) = f.fmt.addr(&mut c)? {
                if nelmts > g.page_nelmts {
                    return Err(corrupt("paged data block referenced by the index block"));
                }
                dblocks.push(DataBlock {
                    addr,
                    first,
                    nelmts,
                    pages: None,
                });
            }
            in_s += 1;
        }
        let mut sblocks = Vec::new();
        for k in 0..nsblk_addrs {
            if let Some(addr) = f.fmt.addr(&mut c)? {
                sblocks.push((addr, iblock_nsblks + k as u32));
            }
        }
        Ok::<_, Hdf5ErrorKind>((elements, dblocks, sblocks))
    })()
    .at(place, field)?;

    // Super blocks: more data block addresses and their page bitmaps.
    let more = try_join_all(
        sblocks
            .into_iter()
            .map(|(addr, s)| read_super_block(f, &g, addr, s, place)),
    )
    .await?;
    let dblocks = dblocks
        .into_iter()
        .chain(more.into_iter().flatten())
        .filter(|d| d.first < g.max_idx_set);

    let mut runs = vec![(0u64, elements)];
    let loaded = try_join_all(dblocks.map(|d| read_data_block(f, &g, d, place))).await?;
    runs.extend(loaded.into_iter().flatten());
    Ok(ArrayElements {
        element_size: g.elem,
        runs,
    })
}

fn parse_header(f: &FileCtx<'_>, block: &[u8]) -> Result<(Geometry, Option<u64>), Hdf5ErrorKind> {
    checksum::verify(block)?;
    let mut c = Cursor::new(block);
    c.signature(b"EAHD")?;
    let version = c.u8()?;
    if version != 0 {
        return Err(Hdf5ErrorKind::UnsupportedVersion {
            what: "extensible array header",
            version,
        });
    }
    c.skip(1)?; // client id
    let elem = usize::from(c.u8()?);
    let max_nelmts_bits = u32::from(c.u8()?);
    let idx_blk_elmts = u64::from(c.u8()?);
    let data_blk_min_elmts = u64::from(c.u8()?);
    let sup_blk_min_data_ptrs = u64::from(c.u8()?);
    let page_bits = u32::from(c.u8()?);
    for _ in 0..4 {
        f.fmt.length(&mut c)?; // super/data block statistics
    }
    let max_idx_set = f.fmt.length(&mut c)?;
    f.fmt.length(&mut c)?; // elements realized
    let iblock = f.fmt.addr(&mut c)?;
    let pow2 = |v: u64| v != 0 && v.is_power_of_two();
    if elem == 0
        || !(1..=64).contains(&max_nelmts_bits)
        || !pow2(data_blk_min_elmts)
        || !pow2(sup_blk_min_data_ptrs)
        || sup_blk_min_data_ptrs < 2
        || page_bits == 0
        || page_bits > 32
        || data_blk_min_elmts.ilog2() > max_nelmts_bits
    {
        return Err(corrupt("invalid extensible array creation parameters"));
    }
    let nsblks = 1 + max_nelmts_bits - data_blk_min_elmts.ilog2();
    Ok((
        Geometry {
            elem,
            idx_blk_elmts,
            data_blk_min_elmts,
            sup_blk_min_data_ptrs,
            page_nelmts: 1u64 << page_bits,
            arr_off_size: max_nelmts_bits.div_ceil(8) as usize,
            max_idx_set,
            nsblks,
        },
        iblock,
    ))
}

async fn read_super_block(
    f: &FileCtx<'_>,
    g: &Geometry,
    addr: u64,
    s: u32,
    place: &Place,
) -> Result<Vec<DataBlock>, Hdf5Error> {
    let field = || format!("extensible array super block {s} at {addr:#x}");
    let a = f.fmt.addr_len();
    if s >= 64 {
        return Err(place.err(field(), corrupt("super block index out of range")));
    }
    let ndblks = g.sblk_ndblks(s);
    let nelmts = g.sblk_dblk_nelmts(s);
    let paged = nelmts > g.page_nelmts;
    let bitmap_len = if paged {
        (nelmts / g.page_nelmts).div_ceil(8)
    } else {
        0
    };
    let len = ndblks
        .saturating_mul(bitmap_len.saturating_add(a as u64))
        .saturating_add(6 + (a + g.arr_off_size) as u64 + 4);
    if len > f.io.size() {
        return Err(place.err(field(), limit("super block larger than the file")));
    }
    let block = f.io.read(addr, len).await.at(place, field)?;
    (|| {
        check_block_prefix(&block, b"EASB")?;
        checksum::verify(&block)?;
        let mut c = Cursor::new(&block);
        c.skip(6 + a + g.arr_off_size)?;
        // One bit per page of every data block, packed across data blocks.
        let bitmaps_at = c.pos();
        c.skip((ndblks * bitmap_len) as usize)?;
        let bitmap = block.slice(bitmaps_at..c.pos());
        let npages = nelmts / g.page_nelmts;
        let first = g.idx_blk_elmts.saturating_add(g.sblk_start_idx(s));
        let mut out = Vec::new();
        for j in 0..ndblks {
            if let Some(addr) = f.fmt.addr(&mut c)? {
                out.push(DataBlock {
                    addr,
                    first: first.saturating_add(j.saturating_mul(nelmts)),
                    nelmts,
                    pages: paged.then(|| (bitmap.clone(), j * npages)),
                });
            }
        }
        Ok(out)
    })()
    .at(place, field)
}

async fn read_data_block(
    f: &FileCtx<'_>,
    g: &Geometry,
    d: DataBlock,
    place: &Place,
) -> Result<Vec<(u64, Bytes)>, Hdf5Error> {
    let field = || format!("extensible array data block at {:#x}", d.addr);
    let a = f.fmt.addr_len();
    let prefix = 6 + a + g.arr_off_size;
    let elem = g.elem as u64;
    let Some((bitmap, first_bit)) = d.pages else {
        let len = d
            .nelmts
            .saturating_mul(elem)
            .saturating_add(prefix as u64 + 4);
        if len > f.io.size() {
            return Err(place.err(field(), limit("data block larger than the file")));
        }
        let block = f.io.read(d.addr, len).await.at(place, field)?;
        check_block_prefix(&block, b"EADB").at(place, field)?;
        checksum::verify(&block).at(place, field)?;
        return Ok(vec![(d.first, block.slice(prefix..block.len() - 4))]);
    };
    let head =
        f.io.read(d.addr, prefix as u64 + 4)
            .await
            .at(place, field)?;
    check_block_prefix(&head, b"EADB").at(place, field)?;
    checksum::verify(&head).at(place, field)?;
    let npages = d.nelmts / g.page_nelmts;
    let page_size = g.page_nelmts * elem + 4;
    let first_page = d.addr + prefix as u64 + 4;
    // Pages are contiguous: fetch them in one request.
    let span_len = npages.saturating_mul(page_size).min(MAX_SPAN);
    f.io.prefetch(first_page, span_len).await.at(place, field)?;
    let pages = (0..npages)
        .filter(|&p| page_initialized(&bitmap, first_bit + p))
        .map(|p| {
            let at = first_page.saturating_add(p.saturating_mul(page_size));
            async move {
                let pfield = || format!("extensible array data block page at {at:#x}");
                let block = f.io.read(at, page_size).await.at(place, pfield)?;
                checksum::verify(&block).at(place, pfield)?;
                let first = d.first.saturating_add(p.saturating_mul(g.page_nelmts));
                Ok::<_, Hdf5Error>((first, block.slice(..block.len() - 4)))
            }
        });
    try_join_all(pages).await
}
