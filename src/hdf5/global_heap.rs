//! Global heap collections: where variable-length attribute data (strings,
//! sequences such as `DIMENSION_LIST`) is stored.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use super::Hdf5Error;
use super::cursor::Cursor;
use super::file::FileCtx;
use super::place::{At, Place, corrupt};

/// The objects of one collection, by index.
#[derive(Debug, Default)]
pub(crate) struct GlobalHeapCollection {
    objects: HashMap<u16, Bytes>,
}

/// A reference to a heap object as stored in a variable-length element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct HeapId {
    pub collection: u64,
    pub index: u32,
}

/// The bytes of one global heap object.
pub(crate) async fn object(f: &FileCtx<'_>, id: HeapId, place: &Place) -> Result<Bytes, Hdf5Error> {
    let heap = collection(f, id.collection, place).await?;
    u16::try_from(id.index)
        .ok()
        .and_then(|i| heap.objects.get(&i))
        .cloned()
        .ok_or_else(|| {
            place.err(
                format!("global heap collection at {:#x}", id.collection),
                corrupt(format!("no object with index {}", id.index)),
            )
        })
}

async fn collection(
    f: &FileCtx<'_>,
    addr: u64,
    place: &Place,
) -> Result<Arc<GlobalHeapCollection>, Hdf5Error> {
    if let Some(heap) = f.cached_global_heap(addr) {
        return Ok(heap);
    }
    let field = || format!("global heap collection at {addr:#x}");
    let head_len = 8 + f.fmt.size_len() as u64;
    let head = f.io.read(addr, head_len).await.at(place, field)?;
    let mut c = Cursor::new(&head);
    let size = (|| {
        c.signature(b"GCOL")?;
        let version = c.u8()?;
        if version != 1 {
            return Err(super::Hdf5ErrorKind::UnsupportedVersion {
                what: "global heap collection",
                version,
            });
        }
        c.skip(3)?;
        let size = f.fmt.length(&mut c)?;
        if size < head_len {
            return Err(corrupt(format!("collection size {size}")));
        }
        Ok(size)
    })()
    .at(place, field)?;
    let block = f.io.read(addr, size).await.at(place, field)?;
    let heap = Arc::new(parse(&block, f.fmt.size_len()).at(place, field)?);
    f.cache_global_heap(addr, heap.clone());
    Ok(heap)
}

fn parse(block: &Bytes, size_len: usize) -> Result<GlobalHeapCollection, super::Hdf5ErrorKind> {
    let mut c = Cursor::new(block);
    c.skip(8 + size_len)?;
    let mut objects = HashMap::new();
    while c.remaining() >= 8 + size_len {
        let index = c.u16()?;
        c.skip(6)?; // reference count, reserved
        let size = c.uint(size_len)?;
        if index == 0 {
            break; // free space runs to the end of the collection
        }
        let size = usize::try_from(size).map_err(|_| corrupt("object size"))?;
        let start = c.pos();
        c.skip(size)?;
        objects.insert(index, block.slice(start..start + size));
        c.align(8).or_else(|_| c.seek(block.len()))?;
    }
    Ok(GlobalHeapCollection { objects })
}
