//! Group members: symbol-table groups (v1 B-tree, symbol table nodes, local heap),
//! compact link messages and dense links (fractal heap + v2 B-tree type 5/6).

use bytes::Bytes;
use futures::future::try_join_all;

use super::cursor::Cursor;
use super::file::FileCtx;
use super::messages::{self, LinkMsg, LinkTarget, c_string};
use super::object_header::{ObjectHeader, kind};
use super::place::{At, Place, corrupt, limit};
use super::{Hdf5Error, Hdf5ErrorKind, btree_v1, btree_v2, fractal_heap};

/// A hard link to a member object.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub name: String,
    pub address: u64,
}

/// The group's hard links, in creation order when tracked, else in name order.
pub(crate) async fn members(
    f: &FileCtx<'_>,
    oh: &ObjectHeader,
    place: &Place,
) -> Result<Vec<Member>, Hdf5Error> {
    if let Some(m) = oh.find(kind::SYMBOL_TABLE) {
        let (btree, heap) =
            messages::symbol_table(&m.data, &f.fmt).at(place, || "symbol table message")?;
        return symbol_table_members(f, btree, heap, place).await;
    }
    let mut links = Vec::new();
    for m in oh.all(kind::LINK) {
        links.push(messages::link(&m.data, &f.fmt).at(place, || "link message")?);
    }
    let mut by_order = false;
    if let Some(m) = oh.find(kind::LINK_INFO) {
        let info = messages::link_info(&m.data, &f.fmt).at(place, || "link info message")?;
        by_order = info.tracks_creation_order;
        if let Some(heap_addr) = info.fractal_heap {
            let (index, tree_type) = match info.order_index {
                Some(a) => (a, 6),
                None => (
                    info.name_index.ok_or_else(|| {
                        place.err(
                            "link info message",
                            corrupt("dense links without a name index"),
                        )
                    })?,
                    5,
                ),
            };
            let heap = fractal_heap::open(f, heap_addr, place).await?;
            let (record_size, records) = btree_v2::records(f, index, tree_type, place).await?;
            let id_at = if tree_type == 6 { 8 } else { 4 };
            let heap = &heap;
            let dense = try_join_all(records.iter().map(|r| async move {
                let id = r
                    .get(id_at..record_size)
                    .ok_or_else(|| place.err("link name index", corrupt("record too short")))?;
                let obj = heap.object(f, id, place).await?;
                messages::link(&obj, &f.fmt).at(place, || "dense link message")
            }))
            .await?;
            links.extend(dense);
        }
    }
    Ok(order_links(links, by_order))
}

fn order_links(mut links: Vec<LinkMsg>, by_order: bool) -> Vec<Member> {
    if by_order {
        links.sort_by_key(|l| l.creation_order.unwrap_or(u64::MAX));
    } else {
        links.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    }
    links
        .into_iter()
        .filter_map(|l| match l.target {
            LinkTarget::Hard(address) => Some(Member {
                name: l.name,
                address,
            }),
            LinkTarget::Other => None,
        })
        .collect()
}

async fn symbol_table_members(
    f: &FileCtx<'_>,
    btree: u64,
    heap: u64,
    place: &Place,
) -> Result<Vec<Member>, Hdf5Error> {
    let (names, nodes) = futures::try_join!(
        local_heap(f, heap, place),
        btree_v1::group_nodes(f, btree, place)
    )?;
    let names = &names;
    let per_node = try_join_all(nodes.into_iter().map(|addr| async move {
        let field = || format!("symbol table node at {addr:#x}");
        let (a, leaf_k) = (
            f.fmt.addr_len(),
            usize::from(f.superblock.btree_k.group_leaf),
        );
        let entry = 2 * a + 24;
        let len = (8 + 2 * leaf_k * entry) as u64;
        let len = len.min(f.io.size().saturating_sub(addr));
        let block = f.io.read(addr, len).await.at(place, field)?;
        (|| {
            let mut c = Cursor::new(&block);
            c.signature(b"SNOD")?;
            let version = c.u8()?;
            if version != 1 {
                return Err(Hdf5ErrorKind::UnsupportedVersion {
                    what: "symbol table node",
                    version,
                });
            }
            c.skip(1)?;
            let n = usize::from(c.u16()?);
            if n > 2 * leaf_k {
                return Err(corrupt(format!(
                    "{n} symbols in a node of at most {}",
                    2 * leaf_k
                )));
            }
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let name_off = c.uint(a)?;
                let address = f.fmt.addr(&mut c)?;
                c.skip(24)?;
                let name = usize::try_from(name_off)
                    .ok()
                    .and_then(|o| names.get(o..))
                    .map(c_string)
                    .ok_or_else(|| {
                        corrupt(format!(
                            "link name offset {name_off} outside the local heap"
                        ))
                    })?;
                let address =
                    address.ok_or_else(|| corrupt(format!("{name:?} has an undefined address")))?;
                out.push(Member { name, address });
            }
            Ok(out)
        })()
        .at(place, field)
    }))
    .await?;
    let mut members: Vec<Member> = per_node.into_iter().flatten().collect();
    members.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(members)
}

/// The data segment of the local heap at `addr` (link names of an old-style group).
async fn local_heap(f: &FileCtx<'_>, addr: u64, place: &Place) -> Result<Bytes, Hdf5Error> {
    let field = || format!("local heap at {addr:#x}");
    let (a, l) = (f.fmt.addr_len(), f.fmt.size_len());
    let head =
        f.io.read(addr, (8 + 2 * l + a) as u64)
            .await
            .at(place, field)?;
    let (size, data) = (|| {
        let mut c = Cursor::new(&head);
        c.signature(b"HEAP")?;
        let version = c.u8()?;
        if version != 0 {
            return Err(Hdf5ErrorKind::UnsupportedVersion {
                what: "local heap",
                version,
            });
        }
        c.skip(3)?;
        let size = f.fmt.length(&mut c)?;
        f.fmt.length(&mut c)?; // free list head
        let data = f
            .fmt
            .addr(&mut c)?
            .ok_or_else(|| corrupt("undefined data segment address"))?;
        if size > f.io.size() {
            return Err(limit(format!("local heap of {size} bytes")));
        }
        Ok((size, data))
    })()
    .at(place, field)?;
    f.io.read(data, size).await.at(place, field)
}
