//! Object headers (version 1 and 2) and their continuation blocks: the list of
//! raw messages every object is described by.

use std::collections::HashSet;

use bytes::Bytes;

use super::checksum;
use super::cursor::Cursor;
use super::file::FileCtx;
use super::place::{At, Place, corrupt, limit};
use super::{Hdf5Error, Hdf5ErrorKind};

/// Message type numbers used by the reader.
pub(crate) mod kind {
    pub const NIL: u16 = 0x00;
    pub const DATASPACE: u16 = 0x01;
    pub const LINK_INFO: u16 = 0x02;
    pub const DATATYPE: u16 = 0x03;
    pub const FILL_VALUE_OLD: u16 = 0x04;
    pub const FILL_VALUE: u16 = 0x05;
    pub const LINK: u16 = 0x06;
    pub const EXTERNAL_FILES: u16 = 0x07;
    pub const LAYOUT: u16 = 0x08;
    pub const FILTER_PIPELINE: u16 = 0x0B;
    pub const ATTRIBUTE: u16 = 0x0C;
    pub const SHARED_MESSAGE_TABLE: u16 = 0x0F;
    pub const CONTINUATION: u16 = 0x10;
    pub const SYMBOL_TABLE: u16 = 0x11;
    pub const BTREE_K: u16 = 0x13;
    pub const ATTRIBUTE_INFO: u16 = 0x15;
}

/// Message flag bit: the message body lives in the shared-message heap or another header.
pub(crate) const FLAG_SHARED: u8 = 0x02;

/// Most continuation blocks one header may have.
const MAX_CHUNKS: usize = 4096;
/// Most messages one header may have.
const MAX_MESSAGES: usize = 1 << 20;

/// One undecoded message.
#[derive(Debug, Clone)]
pub(crate) struct RawMessage {
    pub kind: u16,
    pub flags: u8,
    /// Creation order, stored per message when the header tracks attribute creation order.
    pub creation_order: Option<u16>,
    pub data: Bytes,
}

impl RawMessage {
    pub(crate) fn is_shared(&self) -> bool {
        self.flags & FLAG_SHARED != 0
    }
}

/// An object header with its messages from every chunk, in file order.
#[derive(Debug, Clone)]
pub(crate) struct ObjectHeader {
    pub messages: Vec<RawMessage>,
    /// Version-2 flag: attribute creation order is tracked.
    pub tracks_attr_order: bool,
}

impl ObjectHeader {
    pub(crate) fn find(&self, kind: u16) -> Option<&RawMessage> {
        self.messages.iter().find(|m| m.kind == kind)
    }

    pub(crate) fn all(&self, kind: u16) -> impl Iterator<Item = &RawMessage> {
        self.messages.iter().filter(move |m| m.kind == kind)
    }
}

/// Read the object header at absolute address `addr`, following continuations.
pub(crate) async fn read_object_header(
    f: &FileCtx<'_>,
    addr: u64,
    place: &Place,
) -> Result<ObjectHeader, Hdf5Error> {
    let field = || format!("object header at {addr:#x}");
    let first = f.io.read(addr, 1).await.at(place, field)?;
    let (version, tracks_attr_order, mut messages, mut pending) = if first[0] == 1 {
        let prefix = f.io.read(addr, 16).await.at(place, field)?;
        let mut c = Cursor::new(&prefix);
        let (size, _nmsgs) = (|| {
            c.skip(2)?;
            let nmsgs = c.u16()?;
            c.skip(4)?;
            Ok::<_, Hdf5ErrorKind>((c.u32()?, nmsgs))
        })()
        .at(place, field)?;
        let body =
            f.io.read(addr + 16, u64::from(size))
                .await
                .at(place, field)?;
        let mut out = Vec::new();
        let mut conts = Vec::new();
        parse_v1_messages(&body, &mut out, &mut conts, f).at(place, field)?;
        (1, false, out, conts)
    } else {
        let sig = f.io.read(addr, 6).await.at(place, field)?;
        if &sig[..4] != b"OHDR" {
            return Err(place.err(
                field(),
                Hdf5ErrorKind::BadSignature {
                    expected: "OHDR or version 1".into(),
                    found: String::from_utf8_lossy(&sig[..4]).into_owned(),
                },
            ));
        }
        if sig[4] != 2 {
            return Err(place.err(
                field(),
                Hdf5ErrorKind::UnsupportedVersion {
                    what: "object header",
                    version: sig[4],
                },
            ));
        }
        let flags = sig[5];
        let size_width = 1usize << (flags & 0x03);
        let prefix_len = 6
            + if flags & 0x20 != 0 { 16 } else { 0 }
            + if flags & 0x10 != 0 { 4 } else { 0 }
            + size_width;
        let prefix = f.io.read(addr, prefix_len as u64).await.at(place, field)?;
        let mut c = Cursor::new(&prefix);
        let size0 = (|| {
            c.seek(prefix_len - size_width)?;
            c.uint(size_width)
        })()
        .at(place, field)?;
        let total = (prefix_len as u64)
            .checked_add(size0)
            .and_then(|t| t.checked_add(4))
            .ok_or_else(|| place.err(field(), corrupt("chunk size overflows")))?;
        let block = f.io.read(addr, total).await.at(place, field)?;
        checksum::verify(&block).at(place, field)?;
        let body = block.slice(prefix_len..block.len() - 4);
        let mut out = Vec::new();
        let mut conts = Vec::new();
        parse_v2_messages(&body, flags, &mut out, &mut conts, f).at(place, field)?;
        (2, flags & 0x04 != 0, out, conts)
    };

    let mut seen = HashSet::from([addr]);
    let mut chunks = 1usize;
    while !pending.is_empty() {
        for &(a, _) in &pending {
            if !seen.insert(a) {
                return Err(place.err(field(), Hdf5ErrorKind::Cycle(a)));
            }
        }
        chunks += pending.len();
        if chunks > MAX_CHUNKS {
            return Err(place.err(field(), limit("too many continuation blocks")));
        }
        let reads = pending.iter().map(|&(a, len)| async move {
            f.io.read(a, len)
                .await
                .at(place, || format!("continuation block at {a:#x}"))
                .map(|b| (a, b))
        });
        let blocks = futures::future::try_join_all(reads).await?;
        pending = Vec::new();
        for (a, block) in blocks {
            let cfield = || format!("continuation block at {a:#x}");
            if version == 1 {
                parse_v1_messages(&block, &mut messages, &mut pending, f).at(place, cfield)?;
            } else {
                if block.len() < 8 {
                    return Err(place.err(
                        cfield(),
                        corrupt(format!("continuation block of {} bytes", block.len())),
                    ));
                }
                let mut c = Cursor::new(&block);
                c.signature(b"OCHK").at(place, cfield)?;
                checksum::verify(&block).at(place, cfield)?;
                let body = block.slice(4..block.len() - 4);
                let flags = if tracks_attr_order { 0x04 } else { 0 };
                parse_v2_messages(&body, flags, &mut messages, &mut pending, f)
                    .at(place, cfield)?;
            }
            if messages.len() > MAX_MESSAGES {
                return Err(place.err(field(), limit("too many header messages")));
            }
        }
    }
    Ok(ObjectHeader {
        messages,
        tracks_attr_order,
    })
}

/// Decode a continuation message: (absolute address, length).
fn continuation(data: &[u8], f: &FileCtx<'_>) -> Result<(u64, u64), Hdf5ErrorKind> {
    let mut c = Cursor::new(data);
    let addr = f
        .fmt
        .addr(&mut c)?
        .ok_or_else(|| corrupt("continuation message with undefined address"))?;
    let len = f.fmt.length(&mut c)?;
    if len == 0 {
        return Err(corrupt("continuation block of length 0"));
    }
    Ok((addr, len))
}

fn parse_v1_messages(
    body: &Bytes,
    out: &mut Vec<RawMessage>,
    conts: &mut Vec<(u64, u64)>,
    f: &FileCtx<'_>,
) -> Result<(), Hdf5ErrorKind> {
    let mut c = Cursor::new(body);
    while c.remaining() >= 8 {
        let kind = c.u16()?;
        let size = usize::from(c.u16()?);
        let flags = c.u8()?;
        c.skip(3)?;
        let start = c.pos();
        c.skip(size)?;
        let data = body.slice(start..start + size);
        // Version-1 messages are padded to 8 bytes.
        c.align(8).or_else(|_| c.seek(body.len()))?;
        push_message(kind, flags, None, data, out, conts, f)?;
    }
    Ok(())
}

fn parse_v2_messages(
    body: &Bytes,
    header_flags: u8,
    out: &mut Vec<RawMessage>,
    conts: &mut Vec<(u64, u64)>,
    f: &FileCtx<'_>,
) -> Result<(), Hdf5ErrorKind> {
    let has_order = header_flags & 0x04 != 0;
    let header_len = if has_order { 6 } else { 4 };
    let mut c = Cursor::new(body);
    // Fewer bytes than a message header left is a gap.
    while c.remaining() >= header_len {
        let kind = u16::from(c.u8()?);
        let size = usize::from(c.u16()?);
        let flags = c.u8()?;
        let creation_order = if has_order { Some(c.u16()?) } else { None };
        let start = c.pos();
        c.skip(size)?;
        let data = body.slice(start..start + size);
        push_message(kind, flags, creation_order, data, out, conts, f)?;
    }
    Ok(())
}

fn push_message(
    kind: u16,
    flags: u8,
    creation_order: Option<u16>,
    data: Bytes,
    out: &mut Vec<RawMessage>,
    conts: &mut Vec<(u64, u64)>,
    f: &FileCtx<'_>,
) -> Result<(), Hdf5ErrorKind> {
    match kind {
        kind::NIL => {}
        kind::CONTINUATION => conts.push(continuation(&data, f)?),
        _ => out.push(RawMessage {
            kind,
            flags,
            creation_order,
            data,
        }),
    }
    Ok(())
}
