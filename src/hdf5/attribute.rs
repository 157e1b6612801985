//! Turning attribute messages into values: numbers, strings (fixed and
//! variable-length), object references and sequences of them.

use futures::future::try_join_all;

use super::cursor::{Cursor, le_uint};
use super::file::FileCtx;
use super::global_heap::{self, HeapId};
use super::messages::{AttributeMsg, StrPad};
use super::place::{At, Place, corrupt};
use super::{Attribute, AttributeValue, ByteOrder, Datatype, Hdf5Error, Hdf5ErrorKind};

/// Decode one attribute, fetching global heap objects for variable-length data.
pub(crate) async fn decode(
    f: &FileCtx<'_>,
    msg: AttributeMsg,
    place: &Place,
) -> Result<Attribute, Hdf5Error> {
    let field = || format!("attribute {:?}", msg.name);
    let n = msg.space.num_elements().at(place, field)?;
    let shape = if msg.space.null {
        vec![0]
    } else {
        msg.space.shape.clone()
    };
    let value = match &msg.dtype {
        Err(why) => AttributeValue::Unsupported(why.clone()),
        Ok(t) => {
            let need = n.checked_mul(u64::from(t.size));
            if need.is_none_or(|need| need > msg.data.len() as u64) {
                return Err(place.err(
                    field(),
                    Hdf5ErrorKind::Truncated {
                        needed: need.unwrap_or(u64::MAX),
                        available: msg.data.len() as u64,
                    },
                ));
            }
            let n = n as usize;
            let size = t.size as usize;
            let data = &msg.data[..n * size];
            match &t.dtype {
                Datatype::Integer {
                    size,
                    signed,
                    order,
                } => {
                    let raw = data
                        .chunks_exact(usize::from(*size))
                        .map(|b| ordered(b, *order));
                    if *signed {
                        let bits = u32::from(*size) * 8;
                        let values = raw.map(|v| sign_extend(v, bits)).collect();
                        AttributeValue::Int {
                            size: *size,
                            values,
                        }
                    } else {
                        AttributeValue::UInt {
                            size: *size,
                            values: raw.collect(),
                        }
                    }
                }
                Datatype::Float { size: 4, order } => AttributeValue::Float {
                    size: 4,
                    values: data
                        .chunks_exact(4)
                        .map(|b| f64::from(f32::from_bits(ordered(b, *order) as u32)))
                        .collect(),
                },
                Datatype::Float { size: 8, order } => AttributeValue::Float {
                    size: 8,
                    values: data
                        .chunks_exact(8)
                        .map(|b| f64::from_bits(ordered(b, *order)))
                        .collect(),
                },
                Datatype::FixedString { .. } => AttributeValue::Strings(
                    data.chunks_exact(size.max(1))
                        .take(if size == 0 { 0 } else { n })
                        .map(|b| fixed_string(b, t.pad))
                        .chain(std::iter::repeat_n(
                            String::new(),
                            if size == 0 { n } else { 0 },
                        ))
                        .collect(),
                ),
                Datatype::ObjectReference => {
                    let mut c = Cursor::new(data);
                    AttributeValue::References(
                        (0..n)
                            .map(|_| f.fmt.addr(&mut c).map(|a| a.unwrap_or(u64::MAX)))
                            .collect::<Result<_, _>>()
                            .at(place, field)?,
                    )
                }
                Datatype::VarString => {
                    let objs = vlen_objects(f, data, n, size, 1, place, &field).await?;
                    AttributeValue::Strings(
                        objs.into_iter()
                            .map(|b| String::from_utf8_lossy(&b).into_owned())
                            .collect(),
                    )
                }
                Datatype::Sequence(inner) if **inner == Datatype::ObjectReference => {
                    let objs = vlen_objects(f, data, n, size, 8, place, &field).await?;
                    let mut lists = Vec::with_capacity(n);
                    for b in objs {
                        let mut c = Cursor::new(&b);
                        let refs = (0..b.len() / 8)
                            .map(|_| f.fmt.addr(&mut c).map(|a| a.unwrap_or(u64::MAX)))
                            .collect::<Result<Vec<_>, _>>()
                            .at(place, field)?;
                        lists.push(refs);
                    }
                    AttributeValue::ReferenceLists(lists)
                }
                other => AttributeValue::Unsupported(describe(other)),
            }
        }
    };
    Ok(Attribute {
        name: msg.name,
        shape,
        value,
    })
}

fn describe(t: &Datatype) -> String {
    match t {
        Datatype::Unsupported(s) => s.clone(),
        Datatype::Sequence(inner) => format!("variable-length sequence of {}", describe(inner)),
        other => format!("{other:?}"),
    }
}

/// The heap objects of `n` variable-length elements of `size` bytes each, each cut
/// to its stored element count times the base size (bytes for strings).
async fn vlen_objects(
    f: &FileCtx<'_>,
    data: &[u8],
    n: usize,
    size: usize,
    base_size: usize,
    place: &Place,
    field: &(dyn Fn() -> String + Sync),
) -> Result<Vec<bytes::Bytes>, Hdf5Error> {
    let fmt = f.fmt;
    if size != 8 + fmt.addr_len() {
        return Err(place.err(
            field(),
            corrupt(format!("variable-length element of {size} bytes")),
        ));
    }
    let mut ids = Vec::with_capacity(n);
    for elem in data.chunks_exact(size).take(n) {
        let mut c = Cursor::new(elem);
        let (len, addr, index) =
            (|| Ok::<_, Hdf5ErrorKind>((c.u32()?, fmt.addr(&mut c)?, c.u32()?)))()
                .at(place, field)?;
        ids.push((len, addr, index));
    }
    try_join_all(ids.into_iter().map(|(len, addr, index)| async move {
        match addr {
            Some(collection) if len > 0 && collection != fmt.base => {
                let obj = global_heap::object(f, HeapId { collection, index }, place).await?;
                let want = (len as usize).saturating_mul(base_size);
                if want > obj.len() {
                    return Err(place.err(
                        field(),
                        Hdf5ErrorKind::Truncated {
                            needed: want as u64,
                            available: obj.len() as u64,
                        },
                    ));
                }
                Ok(obj.slice(..want))
            }
            _ => Ok(bytes::Bytes::new()),
        }
    }))
    .await
}

fn ordered(b: &[u8], order: ByteOrder) -> u64 {
    match order {
        ByteOrder::Little => le_uint(b),
        ByteOrder::Big => b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)),
    }
}

fn sign_extend(v: u64, bits: u32) -> i64 {
    if bits >= 64 {
        v as i64
    } else {
        let shift = 64 - bits;
        ((v << shift) as i64) >> shift
    }
}

fn fixed_string(b: &[u8], pad: StrPad) -> String {
    let end = match pad {
        StrPad::NullTerm | StrPad::NullPad => b.iter().position(|&x| x == 0).unwrap_or(b.len()),
        StrPad::SpacePad => b
            .iter()
            .rposition(|&x| x != b' ' && x != 0)
            .map_or(0, |p| p + 1),
    };
    String::from_utf8_lossy(&b[..end]).into_owned()
}
