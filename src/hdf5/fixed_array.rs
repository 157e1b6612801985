//! Fixed arrays (chunk index type 3): a header and one data block of chunk
//! entries, split into checksummed pages when large; pages load concurrently.

use bytes::Bytes;
use futures::future::try_join_all;

use super::checksum;
use super::cursor::Cursor;
use super::file::FileCtx;
use super::place::{At, Place, corrupt, limit};
use super::{Hdf5Error, Hdf5ErrorKind};

/// Largest run of pages fetched with one request.
pub(crate) const MAX_SPAN: u64 = 64 << 20;

/// Raw array elements in index order; `None` for elements of uninitialized pages.
pub(crate) struct ArrayElements {
    pub element_size: usize,
    /// `(first element index, bytes of consecutive elements)`.
    pub runs: Vec<(u64, Bytes)>,
}

/// Read the fixed array whose header is at `addr`.
pub(crate) async fn read(
    f: &FileCtx<'_>,
    addr: u64,
    place: &Place,
) -> Result<ArrayElements, Hdf5Error> {
    let field = || format!("fixed array header at {addr:#x}");
    let (a, l) = (f.fmt.addr_len(), f.fmt.size_len());
    let hlen = 8 + l + a + 4;
    let block = f.io.read(addr, hlen as u64).await.at(place, field)?;
    let (elem, page_bits, nelmts, dblk) = (|| {
        checksum::verify(&block)?;
        let mut c = Cursor::new(&block);
        c.signature(b"FAHD")?;
        let version = c.u8()?;
        if version != 0 {
            return Err(Hdf5ErrorKind::UnsupportedVersion {
                what: "fixed array header",
                version,
            });
        }
        c.skip(1)?; // client id
        let elem = usize::from(c.u8()?);
        let page_bits = u32::from(c.u8()?);
        let nelmts = f.fmt.length(&mut c)?;
        let dblk = f.fmt.addr(&mut c)?;
        if elem == 0 || page_bits == 0 || page_bits > 32 {
            return Err(corrupt(format!(
                "element size {elem}, page bits {page_bits}"
            )));
        }
        if nelmts.saturating_mul(elem as u64) > f.io.size() {
            return Err(limit(format!("{nelmts} elements do not fit in the file")));
        }
        Ok((elem, page_bits, nelmts, dblk))
    })()
    .at(place, field)?;
    let Some(dblk) = dblk else {
        return Ok(ArrayElements {
            element_size: elem,
            runs: Vec::new(),
        });
    };
    let field = || format!("fixed array data block at {dblk:#x}");
    let page_nelmts = 1u64 << page_bits;
    let prefix = 6 + a;
    if nelmts <= page_nelmts {
        let len = prefix as u64 + nelmts * elem as u64 + 4;
        let block = f.io.read(dblk, len).await.at(place, field)?;
        check_block_prefix(&block, b"FADB").at(place, field)?;
        checksum::verify(&block).at(place, field)?;
        let data = block.slice(prefix..block.len() - 4);
        return Ok(ArrayElements {
            element_size: elem,
            runs: vec![(0, data)],
        });
    }
    let npages = nelmts.div_ceil(page_nelmts);
    let bitmap_len = npages.div_ceil(8) as usize;
    let head_len = prefix + bitmap_len + 4;
    let head = f.io.read(dblk, head_len as u64).await.at(place, field)?;
    check_block_prefix(&head, b"FADB").at(place, field)?;
    checksum::verify(&head).at(place, field)?;
    let bitmap = head.slice(prefix..prefix + bitmap_len);
    let page_size = page_nelmts * elem as u64 + 4;
    let first_page = dblk + head_len as u64;
    // Pages are contiguous: fetch the initialized span in one request.
    let span_len = (nelmts * elem as u64 + npages * 4).min(MAX_SPAN);
    f.io.prefetch(first_page, span_len).await.at(place, field)?;
    let pages = (0..npages)
        .filter(|&p| page_initialized(&bitmap, p))
        .map(|p| {
            let n = page_nelmts.min(nelmts - p * page_nelmts);
            let at = first_page + p * page_size;
            async move {
                let pfield = || format!("fixed array data block page {p} at {at:#x}");
                let block = f.io.read(at, n * elem as u64 + 4).await.at(place, pfield)?;
                checksum::verify(&block).at(place, pfield)?;
                Ok::<_, Hdf5Error>((p * page_nelmts, block.slice(..block.len() - 4)))
            }
        });
    Ok(ArrayElements {
        element_size: elem,
        runs: try_join_all(pages).await?,
    })
}

/// Page `p` is initialized if its bit (most significant first) is set.
pub(crate) fn page_initialized(bitmap: &[u8], p: u64) -> bool {
    bitmap
        .get((p / 8) as usize)
        .is_some_and(|b| b & (0x80 >> (p % 8)) != 0)
}

/// Check signature and version of an array block.
pub(crate) fn check_block_prefix(block: &[u8], sig: &[u8; 4]) -> Result<(), Hdf5ErrorKind> {
    let mut c = Cursor::new(block);
    c.signature(sig)?;
    let version = c.u8()?;
    if version != 0 {
        return Err(Hdf5ErrorKind::UnsupportedVersion {
            what: "array block",
            version,
        });
    }
    Ok(())
}
