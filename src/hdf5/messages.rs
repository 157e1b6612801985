//! Decoders for the object header messages the reader understands. Each takes the
//! message body and returns a small typed value; none of them performs I/O.

use bytes::Bytes;

use super::cursor::Cursor;
use super::file::Format;
use super::place::{corrupt, unsupported};
use super::{ByteOrder, Datatype, Filter, Hdf5ErrorKind};

type R<T> = Result<T, Hdf5ErrorKind>;

/// HDF5's maximum rank.
const MAX_RANK: usize = 32;

fn version_error(what: &'static str, version: u8) -> Hdf5ErrorKind {
    Hdf5ErrorKind::UnsupportedVersion { what, version }
}

// ---------------------------------------------------------------- dataspace

/// Dataspace message (0x01).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dataspace {
    /// Empty for scalar and null dataspaces.
    pub shape: Vec<u64>,
    pub max_shape: Option<Vec<u64>>,
    /// A null dataspace holds no elements at all.
    pub null: bool,
}

impl Dataspace {
    /// Number of elements, or an error if the product overflows.
    pub(crate) fn num_elements(&self) -> R<u64> {
        if self.null {
            return Ok(0);
        }
        self.shape.iter().try_fold(1u64, |acc, &d| {
            acc.checked_mul(d)
                .ok_or_else(|| corrupt("dataspace element count overflows"))
        })
    }
}

pub(crate) fn dataspace(data: &[u8], fmt: &Format) -> R<Dataspace> {
    let mut c = Cursor::new(data);
    let version = c.u8()?;
    let ndims = usize::from(c.u8()?);
    let flags = c.u8()?;
    let null = match version {
        1 => {
            c.skip(5)?;
            false
        }
        2 => match c.u8()? {
            0 | 1 => false,
            2 => true,
            t => return Err(corrupt(format!("dataspace type {t}"))),
        },
        v => return Err(version_error("dataspace message", v)),
    };
    if ndims > MAX_RANK {
        return Err(corrupt(format!(
            "dataspace rank {ndims} exceeds {MAX_RANK}"
        )));
    }
    let shape = (0..ndims)
        .map(|_| fmt.length(&mut c))
        .collect::<R<Vec<_>>>()?;
    let max_shape = if flags & 0x01 != 0 {
        Some(
            (0..ndims)
                .map(|_| fmt.length_or_max(&mut c))
                .collect::<R<Vec<_>>>()?,
        )
    } else {
        None
    };
    let ds = Dataspace {
        shape,
        max_shape,
        null,
    };
    ds.num_elements()?;
    Ok(ds)
}

// ---------------------------------------------------------------- datatype

/// How a fixed-length string is padded (datatype class 3 bit field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrPad {
    NullTerm,
    NullPad,
    SpacePad,
}

/// Datatype message (0x03), with the padding rule the model's type does not carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeMsg {
    pub dtype: Datatype,
    /// Stored element size in bytes.
    pub size: u32,
    pub pad: StrPad,
}

pub(crate) fn datatype(data: &[u8]) -> R<TypeMsg> {
    datatype_at(&mut Cursor::new(data), 0)
}

fn datatype_at(c: &mut Cursor<'_>, depth: u32) -> R<TypeMsg> {
    if depth > 8 {
        return Err(corrupt("datatype nested too deeply"));
    }
    let b0 = c.u8()?;
    let (class, version) = (b0 & 0x0F, b0 >> 4);
    if !(1..=5).contains(&version) {
        return Err(version_error("datatype message", version));
    }
    let bits = c.uint(3)? as u32;
    let size = c.u32()?;
    let order = if bits & 1 == 0 {
        ByteOrder::Little
    } else {
        ByteOrder::Big
    };
    let mut pad = StrPad::NullTerm;
    let unsupported = |what: String| Datatype::Unsupported(what);
    let dtype = match class {
        0 => {
            c.skip(4)?;
            match size {
                1 | 2 | 4 | 8 => Datatype::Integer {
                    size: size as u8,
                    signed: bits & 0x08 != 0,
                    order,
                },
                _ => unsupported(format!("{size}-byte integer")),
            }
        }
        1 => {
            c.skip(12)?;
            if bits & 0x40 != 0 {
                unsupported("VAX-order float".into())
            } else if matches!(size, 2 | 4 | 8) {
                Datatype::Float {
                    size: size as u8,
                    order,
                }
            } else {
                unsupported(format!("{size}-byte float"))
            }
        }
        3 => {
            pad = match bits & 0x0F {
                0 => StrPad::NullTerm,
                1 => StrPad::NullPad,
                _ => StrPad::SpacePad,
            };
            Datatype::FixedString { size }
        }
        7 => match bits & 0x0F {
            0 if size == 8 => Datatype::ObjectReference,
            0 => unsupported(format!("{size}-byte object reference")),
            1 | 3 => unsupported("region reference".into()),
            t => unsupported(format!("reference type {t}")),
        },
        9 => match bits & 0x0F {
            0 => {
                let base = datatype_at(c, depth + 1)?;
                Datatype::Sequence(Box::new(base.dtype))
            }
            1 => Datatype::VarString,
            t => unsupported(format!("variable-length type {t}")),
        },
        2 => unsupported("time".into()),
        4 => unsupported("bitfield".into()),
        5 => unsupported("opaque".into()),
        6 => unsupported("compound".into()),
        8 => unsupported("enum".into()),
        10 => unsupported("array".into()),
        11 => unsupported("complex".into()),
        k => return Err(corrupt(format!("datatype class {k}"))),
    };
    Ok(TypeMsg { dtype, size, pad })
}

// ---------------------------------------------------------------- fill value

/// New fill value message (0x05), versions 1–3: the fill bytes if the user defined one.
pub(crate) fn fill_value(data: &[u8]) -> R<Option<Vec<u8>>> {
    let mut c = Cursor::new(data);
    let version = c.u8()?;
    match version {
        1 | 2 => {
            c.skip(2)?; // allocation time, fill write time
            let defined = c.u8()?;
            if version == 2 && defined == 0 {
                return Ok(None);
            }
            let size = c.u32()? as usize;
            let value = c.bytes(size)?;
            Ok((defined != 0 && size > 0).then(|| value.to_vec()))
        }
        3 => {
            let flags = c.u8()?;
            if flags & 0x20 == 0 {
                return Ok(None);
            }
            let size = c.u32()? as usize;
            Ok(Some(c.bytes(size)?.to_vec()))
        }
        v => Err(version_error("fill value message", v)),
    }
}

/// Old fill value message (0x04): size and bytes.
pub(crate) fn fill_value_old(data: &[u8]) -> R<Option<Vec<u8>>> {
    let mut c = Cursor::new(data);
    let size = c.u32()? as usize;
    let value = c.bytes(size)?;
    Ok((size > 0).then(|| value.to_vec()))
}

// ---------------------------------------------------------------- layout

/// How a chunked dataset indexes its chunks, with the index's creation parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChunkIndexMsg {
    BtreeV1,
    /// Filtered single chunks store their size and filter mask in the message.
    Single {
        filtered: Option<(u64, u32)>,
    },
    Implicit,
    FixedArray {
        page_bits: u8,
    },
    ExtensibleArray(EaParams),
    BtreeV2,
}

/// Extensible array creation parameters from the layout message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EaParams {
    pub max_nelmts_bits: u8,
    pub idx_blk_elmts: u8,
    pub sup_blk_min_data_ptrs: u8,
    pub data_blk_min_elmts: u8,
    pub max_dblk_page_nelmts_bits: u8,
}

/// Data layout message (0x08).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LayoutMsg {
    Compact(Bytes),
    Contiguous {
        address: Option<u64>,
        size: u64,
    },
    Chunked {
        version: u8,
        /// Chunk dimensions without the trailing element-size dimension.
        dims: Vec<u64>,
        element_size: u64,
        /// Version-4 flags (bit 1: partial edge chunks are not filtered).
        flags: u8,
        index: ChunkIndexMsg,
        /// Absolute address of the index (or of the chunk/data for single/implicit).
        address: Option<u64>,
    },
}

pub(crate) fn layout(data: &Bytes, fmt: &Format) -> R<LayoutMsg> {
    let mut c = Cursor::new(data);
    let version = c.u8()?;
    if !(3..=5).contains(&version) {
        return Err(version_error("data layout message", version));
    }
    let class = c.u8()?;
    match class {
        0 => {
            let size = usize::from(c.u16()?);
            let start = c.pos();
            c.skip(size)?;
            Ok(LayoutMsg::Compact(data.slice(start..start + size)))
        }
        1 => Ok(LayoutMsg::Contiguous {
            address: fmt.addr(&mut c)?,
            size: fmt.length(&mut c)?,
        }),
        2 if version == 3 => {
            let ndims = usize::from(c.u8()?);
            check_chunk_rank(ndims)?;
            let address = fmt.addr(&mut c)?;
            let all = (0..ndims)
                .map(|_| c.u32().map(u64::from))
                .collect::<R<Vec<_>>>()?;
            chunked(version, all, 0, ChunkIndexMsg::BtreeV1, address)
        }
        2 => {
            let flags = c.u8()?;
            let ndims = usize::from(c.u8()?);
            check_chunk_rank(ndims)?;
            let enc = usize::from(c.u8()?);
            if !(1..=8).contains(&enc) {
                return Err(corrupt(format!("chunk dimension width {enc}")));
            }
            let all = (0..ndims).map(|_| c.uint(enc)).collect::<R<Vec<_>>>()?;
            let index = match c.u8()? {
                1 => ChunkIndexMsg::Single {
                    filtered: if flags & 0x02 != 0 {
                        Some((fmt.length(&mut c)?, c.u32()?))
                    } else {
                        None
                    },
                },
                2 => ChunkIndexMsg::Implicit,
                3 => ChunkIndexMsg::FixedArray { page_bits: c.u8()? },
                4 => ChunkIndexMsg::ExtensibleArray(EaParams {
                    max_nelmts_bits: c.u8()?,
                    idx_blk_elmts: c.u8()?,
                    sup_blk_min_data_ptrs: c.u8()?,
                    data_blk_min_elmts: c.u8()?,
                    max_dblk_page_nelmts_bits: c.u8()?,
                }),
                5 => {
                    c.skip(6)?; // node size, split and merge percent: the header repeats them
                    ChunkIndexMsg::BtreeV2
                }
                t => return Err(corrupt(format!("chunk index type {t}"))),
            };
            let address = fmt.addr(&mut c)?;
            chunked(version, all, flags, index, address)
        }
        3 => Err(unsupported("virtual dataset layout")),
        k => Err(corrupt(format!("layout class {k}"))),
    }
}

fn check_chunk_rank(ndims: usize) -> R<()> {
    if !(2..=MAX_RANK + 1).contains(&ndims) {
        return Err(corrupt(format!("chunk rank {ndims}")));
    }
    Ok(())
}

fn chunked(
    version: u8,
    mut all: Vec<u64>,
    flags: u8,
    index: ChunkIndexMsg,
    address: Option<u64>,
) -> R<LayoutMsg> {
    let element_size = all.pop().unwrap_or(0);
    if element_size == 0 || all.contains(&0) {
        return Err(corrupt("chunk dimension of 0"));
    }
    Ok(LayoutMsg::Chunked {
        version,
        dims: all,
        element_size,
        flags,
        index,
        address,
    })
}

// ---------------------------------------------------------------- filters

/// Filter pipeline message (0x0B), versions 1 and 2.
pub(crate) fn filter_pipeline(data: &[u8]) -> R<Vec<Filter>> {
    let mut c = Cursor::new(data);
    let version = c.u8()?;
    let n = c.u8()?;
    match version {
        1 => c.skip(6)?,
        2 => {}
        v => return Err(version_error("filter pipeline message", v)),
    }
    if n > 32 {
        return Err(corrupt(format!("{n} filters (at most 32)")));
    }
    let mut filters = Vec::with_capacity(usize::from(n));
    for _ in 0..n {
        let id = c.u16()?;
        let name_len = if version == 1 || id >= 256 {
            usize::from(c.u16()?)
        } else {
            0
        };
        let flags = c.u16()?;
        let nvalues = usize::from(c.u16()?);
        let name = if name_len > 0 {
            let raw = c.bytes(name_len)?;
            if version == 1 {
                c.skip((8 - name_len % 8) % 8)?;
            }
            Some(c_string(raw))
        } else {
            None
        };
        if nvalues > c.remaining() / 4 {
            return Err(corrupt(format!("{nvalues} filter client values")));
        }
        let client_data = (0..nvalues).map(|_| c.u32()).collect::<R<Vec<_>>>()?;
        if version == 1 && nvalues % 2 == 1 {
            c.skip(4)?;
        }
        filters.push(Filter {
            id,
            name,
            optional: flags & 0x01 != 0,
            client_data,
        });
    }
    Ok(filters)
}

/// Text up to the first NUL, lossily decoded.
pub(crate) fn c_string(raw: &[u8]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

// ---------------------------------------------------------------- attribute

/// Attribute message (0x0C), not yet decoded into a value.
#[derive(Debug, Clone)]
pub(crate) struct AttributeMsg {
    pub name: String,
    /// `Err` holds why the type cannot be decoded (e.g. a shared datatype).
    pub dtype: Result<TypeMsg, String>,
    pub space: Dataspace,
    pub data: Bytes,
}

pub(crate) fn attribute(data: &Bytes, fmt: &Format) -> R<AttributeMsg> {
    let mut c = Cursor::new(data);
    let version = c.u8()?;
    if !(1..=3).contains(&version) {
        return Err(version_error("attribute message", version));
    }
    let flags = c.u8()?;
    let name_size = usize::from(c.u16()?);
    let dt_size = usize::from(c.u16()?);
    let ds_size = usize::from(c.u16()?);
    if version == 3 {
        c.skip(1)?; // name character set
    }
    let padded = |n: usize| if version == 1 { n.div_ceil(8) * 8 } else { n };
    let name = c_string(c.bytes(name_size)?);
    c.skip(padded(name_size) - name_size)?;
    let dt_raw = c.bytes(dt_size)?;
    c.skip(padded(dt_size) - dt_size)?;
    let ds_raw = c.bytes(ds_size)?;
    c.skip(padded(ds_size) - ds_size)?;
    if flags & 0x02 != 0 {
        return Err(unsupported(format!(
            "attribute {name:?} has a shared dataspace"
        )));
    }
    let dtype = if flags & 0x01 != 0 {
        Err("shared (committed) datatype".to_string())
    } else {
        Ok(datatype(dt_raw)?)
    };
    let space = dataspace(ds_raw, fmt)?;
    let start = c.pos();
    Ok(AttributeMsg {
        name,
        dtype,
        space,
        data: data.slice(start..),
    })
}

// ---------------------------------------------------------------- links

/// Where a link points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkTarget {
    /// A hard link: the absolute address of the object header.
    Hard(u64),
    /// Soft, external or user-defined links name no object in this file.
    Other,
}

/// Link message (0x06).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkMsg {
    pub name: String,
    pub creation_order: Option<u64>,
    pub target: LinkTarget,
}

pub(crate) fn link(data: &[u8], fmt: &Format) -> R<LinkMsg> {
    let mut c = Cursor::new(data);
    let version = c.u8()?;
    if version != 1 {
        return Err(version_error("link message", version));
    }
    let flags = c.u8()?;
    let link_type = if flags & 0x08 != 0 { c.u8()? } else { 0 };
    let creation_order = if flags & 0x04 != 0 {
        Some(c.u64()?)
    } else {
        None
    };
    if flags & 0x10 != 0 {
        c.skip(1)?;
    }
    let name_len = c.uint(1 << (flags & 0x03))?;
    let name_len = usize::try_from(name_len).map_err(|_| corrupt("link name length"))?;
    let name = String::from_utf8_lossy(c.bytes(name_len)?).into_owned();
    let target = match link_type {
        0 => LinkTarget::Hard(
            fmt.addr(&mut c)?
                .ok_or_else(|| corrupt(format!("hard link {name:?} to an undefined address")))?,
        ),
        _ => LinkTarget::Other,
    };
    Ok(LinkMsg {
        name,
        creation_order,
        target,
    })
}

/// Link info (0x02) and attribute info (0x15) messages: where dense storage lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DenseInfo {
    pub tracks_creation_order: bool,
    pub fractal_heap: Option<u64>,
    pub name_index: Option<u64>,
    pub order_index: Option<u64>,
}

/// Link info message; `max_index_width` is 8 for links and 2 for attributes.
fn dense_info(
    data: &[u8],
    fmt: &Format,
    what: &'static str,
    max_index_width: usize,
) -> R<DenseInfo> {
    let mut c = Cursor::new(data);
    let version = c.u8()?;
    if version != 0 {
        return Err(version_error(what, version));
    }
    let flags = c.u8()?;
    if flags & 0x01 != 0 {
        c.skip(max_index_width)?;
    }
    let fractal_heap = fmt.addr(&mut c)?;
    let name_index = fmt.addr(&mut c)?;
    let order_index = if flags & 0x02 != 0 {
        fmt.addr(&mut c)?
    } else {
        None
    };
    Ok(DenseInfo {
        tracks_creation_order: flags & 0x01 != 0,
        fractal_heap,
        name_index,
        order_index,
    })
}

pub(crate) fn link_info(data: &[u8], fmt: &Format) -> R<DenseInfo> {
    dense_info(data, fmt, "link info message", 8)
}

pub(crate) fn attribute_info(data: &[u8], fmt: &Format) -> R<DenseInfo> {
    dense_info(data, fmt, "attribute info message", 2)
}

/// Symbol table message (0x11): (B-tree address, local heap address).
pub(crate) fn symbol_table(data: &[u8], fmt: &Format) -> R<(u64, u64)> {
    let mut c = Cursor::new(data);
    let btree = fmt.addr(&mut c)?;
    let heap = fmt.addr(&mut c)?;
    match (btree, heap) {
        (Some(b), Some(h)) => Ok((b, h)),
        _ => Err(corrupt("symbol table message with an undefined address")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FMT: Format = Format {
        sizeof_addr: 8,
        sizeof_size: 8,
        base: 0,
    };

    #[test]
    fn dataspace_rejects_overflowing_shape() {
        let mut d = vec![2u8, 2, 0, 1];
        d.extend_from_slice(&u64::MAX.to_le_bytes());
        d.extend_from_slice(&3u64.to_le_bytes());
        assert!(dataspace(&d, &FMT).is_err());
    }

    #[test]
    fn filter_pipeline_v2() {
        // shuffle (id 2, 1 value) then deflate (id 1, level 7).
        let d = [
            2u8, 2, 2, 0, 0, 0, 1, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 7, 0, 0, 0,
        ];
        let f = filter_pipeline(&d).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!((f[0].id, f[0].client_data.as_slice()), (2, &[2u32][..]));
        assert_eq!((f[1].id, f[1].client_data.as_slice()), (1, &[7u32][..]));
    }
}
