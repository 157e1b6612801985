//! The superblock (versions 0–3) and the superblock extension: field widths, the
//! root group's address and the v1 B-tree fan-outs.

use super::checksum;
use super::cursor::Cursor;
use super::file::{FileCtx, Format};
use super::object_header::{kind, read_object_header};
use super::place::{At, Place, corrupt};
use super::reader::MetaReader;
use super::{Hdf5Error, Hdf5ErrorKind};

const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// The "K" parameters that size version-1 B-tree nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BtreeK {
    /// Symbol table nodes hold up to 2K entries.
    pub group_leaf: u16,
    /// Group B-tree nodes hold up to 2K children.
    pub group_internal: u16,
    /// Chunk B-tree nodes hold up to 2K children.
    pub chunk: u16,
}

impl Default for BtreeK {
    fn default() -> Self {
        Self {
            group_leaf: 4,
            group_internal: 16,
            chunk: 32,
        }
    }
}

/// What the reader needs from the superblock.
#[derive(Debug, Clone)]
pub(crate) struct Superblock {
    pub version: u8,
    pub format: Format,
    /// Absolute address of the root group's object header.
    pub root: u64,
    pub extension: Option<u64>,
    pub btree_k: BtreeK,
}

/// Find and parse the superblock (signature at 0, 512, 1024, 2048, ...).
pub(crate) async fn read_superblock(
    io: &MetaReader<'_>,
    place: &Place,
) -> Result<Superblock, Hdf5Error> {
    let mut at = 0u64;
    let found = loop {
        if at.saturating_add(8) > io.size() {
            return Err(place.err("signature", Hdf5ErrorKind::NotHdf5));
        }
        let sig = io.read(at, 8).await.at(place, || "signature")?;
        if sig.as_ref() == SIGNATURE {
            break at;
        }
        at = if at == 0 { 512 } else { at * 2 };
    };
    let field = || format!("superblock at {found:#x}");
    let head = io
        .read(found, 16.min(io.size() - found))
        .await
        .at(place, field)?;
    let version = *head.get(8).ok_or_else(|| {
        place.err(
            field(),
            Hdf5ErrorKind::Truncated {
                needed: 9,
                available: head.len() as u64,
            },
        )
    })?;
    match version {
        0 | 1 => read_v0_v1(io, found, version, place).await,
        2 | 3 => read_v2_v3(io, found, version, place).await,
        v => Err(place.err(
            field(),
            Hdf5ErrorKind::UnsupportedVersion {
                what: "superblock",
                version: v,
            },
        )),
    }
}

fn check_sizes(sizeof_addr: u8, sizeof_size: u8) -> Result<(), Hdf5ErrorKind> {
    for (what, n) in [("offsets", sizeof_addr), ("lengths", sizeof_size)] {
        if !matches!(n, 2 | 4 | 8) {
            return Err(corrupt(format!(
                "size of {what} is {n}, expected 2, 4 or 8"
            )));
        }
    }
    Ok(())
}

async fn read_v0_v1(
    io: &MetaReader<'_>,
    at: u64,
    version: u8,
    place: &Place,
) -> Result<Superblock, Hdf5Error> {
    let field = || format!("superblock v{version} at {at:#x}");
    let fixed = if version == 0 { 24 } else { 28 };
    let head = io.read(at, fixed).await.at(place, field)?;
    let mut c = Cursor::new(&head);
    let (sizeof_addr, sizeof_size, leaf_k, internal_k, chunk_k) = (|| {
        c.skip(13)?;
        let sizeof_addr = c.u8()?;
        let sizeof_size = c.u8()?;
        c.skip(1)?;
        let leaf_k = c.u16()?;
        let internal_k = c.u16()?;
        c.skip(4)?;
        let chunk_k = if version == 1 { c.u16()? } else { 32 };
        check_sizes(sizeof_addr, sizeof_size)?;
        Ok::<_, Hdf5ErrorKind>((sizeof_addr, sizeof_size, leaf_k, internal_k, chunk_k))
    })()
    .at(place, field)?;
    // Four addresses, then the root symbol table entry (two offsets, 8 bytes, 16 of scratch).
    let a = u64::from(sizeof_addr);
    let total = fixed + 4 * a + 2 * a + 24;
    let block = io.read(at, total).await.at(place, field)?;
    let format = Format {
        sizeof_addr,
        sizeof_size,
        base: at,
    };
    let mut c = Cursor::new(&block);
    let root = (|| {
        c.seek(fixed as usize)?;
        for _ in 0..4 {
            format.addr(&mut c)?;
        }
        format.addr(&mut c)?; // link name offset
        format
            .addr(&mut c)?
            .ok_or_else(|| corrupt("root group object header address is undefined"))
    })()
    .at(place, field)?;
    for (what, k) in [
        ("group leaf node K", leaf_k),
        ("group internal node K", internal_k),
        ("indexed storage K", chunk_k),
    ] {
        if k == 0 {
            return Err(place.err(field(), corrupt(format!("{what} is 0"))));
        }
    }
    Ok(Superblock {
        version,
        format,
        root,
        extension: None,
        btree_k: BtreeK {
            group_leaf: leaf_k,
            group_internal: internal_k,
            chunk: chunk_k,
        },
    })
}

async fn read_v2_v3(
    io: &MetaReader<'_>,
    at: u64,
    version: u8,
    place: &Place,
) -> Result<Superblock, Hdf5Error> {
    let field = || format!("superblock v{version} at {at:#x}");
    let head = io.read(at, 12).await.at(place, field)?;
    let (sizeof_addr, sizeof_size) = (head[9], head[10]);
    check_sizes(sizeof_addr, sizeof_size).at(place, field)?;
    let total = 12 + 4 * u64::from(sizeof_addr) + 4;
    let block = io.read(at, total).await.at(place, field)?;
    checksum::verify(&block).at(place, field)?;
    let format = Format {
        sizeof_addr,
        sizeof_size,
        base: at,
    };
    let mut c = Cursor::new(&block);
    let (extension, root) = (|| {
        c.seek(12)?;
        format.addr(&mut c)?; // base address: HDF5 uses where the signature is
        let ext = format.addr(&mut c)?;
        format.addr(&mut c)?; // end of file address
        let root = format
            .addr(&mut c)?
            .ok_or_else(|| corrupt("root group object header address is undefined"))?;
        Ok::<_, Hdf5ErrorKind>((ext, root))
    })()
    .at(place, field)?;
    Ok(Superblock {
        version,
        format,
        root,
        extension,
        btree_k: BtreeK::default(),
    })
}

/// Read the superblock extension for non-default B-tree K values; refuse shared messages.
pub(crate) async fn read_extension(f: &FileCtx<'_>) -> Result<BtreeK, Hdf5Error> {
    let mut k = f.superblock.btree_k;
    let Some(addr) = f.superblock.extension else {
        return Ok(k);
    };
    let place = f.place.with_object("superblock extension");
    let oh = read_object_header(f, addr, &place).await?;
    if oh.find(kind::SHARED_MESSAGE_TABLE).is_some() {
        return Err(place.err(
            "shared message table",
            Hdf5ErrorKind::Unsupported("shared object header messages (SOHM)".into()),
        ));
    }
    if let Some(m) = oh.find(kind::BTREE_K) {
        let mut c = Cursor::new(&m.data);
        k = (|| {
            let version = c.u8()?;
            if version != 0 {
                return Err(Hdf5ErrorKind::UnsupportedVersion {
                    what: "B-tree K message",
                    version,
                });
            }
            let chunk = c.u16()?;
            let group_internal = c.u16()?;
            let group_leaf = c.u16()?;
            if chunk == 0 || group_internal == 0 || group_leaf == 0 {
                return Err(corrupt("B-tree K of 0"));
            }
            Ok(BtreeK {
                group_leaf,
                group_internal,
                chunk,
            })
        })()
        .at(&place, || "B-tree K values message")?;
    }
    Ok(k)
}
