//! Walking the object tree: classify each object header as group or dataset and
//! assemble the model types, reading siblings, attributes and chunk indexes
//! concurrently.

use std::collections::HashSet;

use futures::future::{BoxFuture, try_join_all};

use super::attribute;
use super::chunk_index::{self, Grid};
use super::cursor::Cursor;
use super::file::FileCtx;
use super::group;
use super::messages::{self, AttributeMsg, LayoutMsg};
use super::object_header::{ObjectHeader, RawMessage, kind, read_object_header};
use super::place::{At, Place, corrupt, limit, unsupported};
use super::{Attribute, Dataset, Group, Hdf5Error, Layout, btree_v2, fractal_heap};

/// Deepest group nesting followed.
const MAX_GROUP_DEPTH: usize = 64;
/// Most objects (groups and datasets, counted once per path) one file may yield.
const MAX_OBJECTS: usize = 100_000;

fn child_path(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// What a child object turned out to be.
enum Object {
    Group(Group),
    Dataset(Dataset),
    /// Named datatypes and anything else the model has no place for.
    Other,
}

/// Read the group at `addr` and everything below it.
pub(crate) fn read_group<'a>(
    f: &'a FileCtx<'_>,
    addr: u64,
    name: String,
    path: String,
    ancestors: Vec<u64>,
) -> BoxFuture<'a, Result<Group, Hdf5Error>> {
    Box::pin(async move {
        let place = f.place.with_object(&path);
        let oh = read_object_header(f, addr, &place).await?;
        group_from_header(f, addr, name, path, oh, ancestors).await
    })
}

async fn group_from_header(
    f: &FileCtx<'_>,
    addr: u64,
    name: String,
    path: String,
    oh: ObjectHeader,
    mut ancestors: Vec<u64>,
) -> Result<Group, Hdf5Error> {
    let place = f.place.with_object(&path);
    if ancestors.len() >= MAX_GROUP_DEPTH {
        return Err(place.err(
            "group nesting",
            limit(format!("more than {MAX_GROUP_DEPTH} levels")),
        ));
    }
    ancestors.push(addr);
    let (attributes, members) =
        futures::try_join!(attributes(f, &oh, &place), group::members(f, &oh, &place))?;
    let ancestors = &ancestors;
    let children = try_join_all(members.into_iter().map(|m| {
        let path = child_path(&path, &m.name);
        async move {
            if ancestors.contains(&m.address) {
                // A hard link back to an enclosing group: the tree would be infinite.
                tracing::warn!(path, "skipping a link to an enclosing group");
                return Ok(Object::Other);
            }
            read_object(f, m.address, m.name, path, ancestors.clone()).await
        }
    }))
    .await?;
    let mut g = Group {
        name,
        path,
        address: addr,
        attributes,
        groups: Vec::new(),
        datasets: Vec::new(),
    };
    for child in children {
        match child {
            Object::Group(c) => g.groups.push(c),
            Object::Dataset(d) => g.datasets.push(d),
            Object::Other => {}
        }
    }
    Ok(g)
}

async fn read_object(
    f: &FileCtx<'_>,
    addr: u64,
    name: String,
    path: String,
    ancestors: Vec<u64>,
) -> Result<Object, Hdf5Error> {
    let place = f.place.with_object(&path);
    if !f.visit_object(MAX_OBJECTS) {
        return Err(place.err(
            "object tree",
            limit(format!("more than {MAX_OBJECTS} objects")),
        ));
    }
    let oh = read_object_header(f, addr, &place).await?;
    if oh.find(kind::LAYOUT).is_some() {
        return Ok(Object::Dataset(dataset(f, addr, name, path, &oh).await?));
    }
    if [kind::SYMBOL_TABLE, kind::LINK_INFO, kind::LINK]
        .iter()
        .any(|&k| oh.find(k).is_some())
    {
        let g = Box::pin(group_from_header(f, addr, name, path, oh, ancestors)).await?;
        return Ok(Object::Group(g));
    }
    Ok(Object::Other)
}

/// The body of a required, unshared message.
fn required<'h>(
    oh: &'h ObjectHeader,
    k: u16,
    what: &str,
    place: &Place,
) -> Result<&'h RawMessage, Hdf5Error> {
    let m = oh
        .find(k)
        .ok_or_else(|| place.err(what, corrupt("message missing")))?;
    unshared(m, what, place)?;
    Ok(m)
}

fn unshared(m: &RawMessage, what: &str, place: &Place) -> Result<(), Hdf5Error> {
    if m.is_shared() {
        return Err(place.err(what, unsupported("shared object header message")));
    }
    Ok(())
}

async fn dataset(
    f: &FileCtx<'_>,
    addr: u64,
    name: String,
    path: String,
    oh: &ObjectHeader,
) -> Result<Dataset, Hdf5Error> {
    let place = f.place.with_object(&path);
    let place = &place;
    let space_msg = required(oh, kind::DATASPACE, "dataspace message", place)?;
    let space = messages::dataspace(&space_msg.data, &f.fmt).at(place, || "dataspace message")?;
    let type_msg = required(oh, kind::DATATYPE, "datatype message", place)?;
    let dtype = messages::datatype(&type_msg.data).at(place, || "datatype message")?;
    let layout_msg = required(oh, kind::LAYOUT, "data layout message", place)?;
    let layout = messages::layout(&layout_msg.data, &f.fmt).at(place, || "data layout message")?;
    let filters = match oh.find(kind::FILTER_PIPELINE) {
        Some(m) => {
            unshared(m, "filter pipeline message", place)?;
            messages::filter_pipeline(&m.data).at(place, || "filter pipeline message")?
        }
        None => Vec::new(),
    };
    let fill_value = match (oh.find(kind::FILL_VALUE), oh.find(kind::FILL_VALUE_OLD)) {
        (Some(m), _) => {
            unshared(m, "fill value message", place)?;
            messages::fill_value(&m.data).at(place, || "fill value message")?
        }
        (None, Some(m)) => {
            messages::fill_value_old(&m.data).at(place, || "old fill value message")?
        }
        (None, None) => None,
    };
    if oh.find(kind::EXTERNAL_FILES).is_some() {
        return Err(place.err(
            "external data files message",
            unsupported("data stored in external files"),
        ));
    }
    let max_shape = space.max_shape.clone();
    let layout_fut = async {
        Ok::<_, Hdf5Error>(match layout {
            LayoutMsg::Compact(data) => Layout::Compact {
                data: data.to_vec(),
            },
            LayoutMsg::Contiguous { address, size } => Layout::Contiguous { address, size },
            LayoutMsg::Chunked {
                dims,
                element_size,
                flags,
                index,
                address,
                ..
            } => {
                if dims.len() != space.shape.len() {
                    return Err(place.err(
                        "data layout message",
                        corrupt(format!(
                            "chunk rank {} differs from dataspace rank {}",
                            dims.len(),
                            space.shape.len()
                        )),
                    ));
                }
                chunk_index::check_flags(flags, !filters.is_empty())
                    .at(place, || "data layout message")?;
                let chunk_bytes = dims
                    .iter()
                    .try_fold(element_size, |acc, &d| acc.checked_mul(d))
                    .ok_or_else(|| {
                        place.err("data layout message", corrupt("chunk size overflows"))
                    })?;
                let max = max_shape.clone().unwrap_or_else(|| space.shape.clone());
                let grid = Grid {
                    chunk_dims: &dims,
                    shape: &space.shape,
                    max_shape: &max,
                    chunk_bytes,
                    filtered: !filters.is_empty(),
                };
                let (chunks, index_kind) =
                    chunk_index::locate(f, &index, address, &grid, place).await?;
                Layout::Chunked {
                    chunk_shape: dims,
                    chunks,
                    index_kind,
                }
            }
        })
    };
    let (layout, attributes) = futures::try_join!(layout_fut, attributes(f, oh, place))?;
    Ok(Dataset {
        name,
        path,
        address: addr,
        datatype: dtype.dtype,
        shape: space.shape,
        max_shape,
        layout,
        filters,
        fill_value,
        attributes,
    })
}

/// An attribute message with the creation order used to sort it.
struct Ordered {
    order: Option<u64>,
    msg: AttributeMsg,
}

/// All attributes of an object, compact and dense, in creation order when the file
/// tracks it, else in name order.
async fn attributes(
    f: &FileCtx<'_>,
    oh: &ObjectHeader,
    place: &Place,
) -> Result<Vec<Attribute>, Hdf5Error> {
    let mut found = Vec::new();
    for m in oh.all(kind::ATTRIBUTE) {
        let msg = messages::attribute(&m.data, &f.fmt).at(place, || "attribute message")?;
        if m.is_shared() {
            return Err(place.err(
                format!("attribute {:?}", msg.name),
                unsupported("shared attribute message"),
            ));
        }
        found.push(Ordered {
            order: m.creation_order.map(u64::from),
            msg,
        });
    }
    let mut by_order = oh.tracks_attr_order;
    if let Some(m) = oh.find(kind::ATTRIBUTE_INFO) {
        let info =
            messages::attribute_info(&m.data, &f.fmt).at(place, || "attribute info message")?;
        by_order |= info.tracks_creation_order;
        if let Some(heap_addr) = info.fractal_heap {
            found.extend(
                dense_attributes(f, heap_addr, info.name_index, info.order_index, place).await?,
            );
        }
    }
    if by_order {
        found.sort_by_key(|a| a.order.unwrap_or(u64::MAX));
    } else {
        found.sort_by(|a, b| a.msg.name.as_bytes().cmp(b.msg.name.as_bytes()));
    }
    try_join_all(
        found
            .into_iter()
            .map(|a| attribute::decode(f, a.msg, place)),
    )
    .await
}

/// Attributes in dense storage, read via the creation-order index (type 9) when
/// there is one, else via the name index (type 8).
async fn dense_attributes(
    f: &FileCtx<'_>,
    heap_addr: u64,
    name_index: Option<u64>,
    order_index: Option<u64>,
    place: &Place,
) -> Result<Vec<Ordered>, Hdf5Error> {
    let (index, tree_type) = match (order_index, name_index) {
        (Some(a), _) => (a, 9),
        (None, Some(a)) => (a, 8),
        (None, None) => {
            return Err(place.err(
                "attribute info message",
                corrupt("dense attributes without an index"),
            ));
        }
    };
    let (heap, (record_size, records)) = futures::try_join!(
        fractal_heap::open(f, heap_addr, place),
        btree_v2::records(f, index, tree_type, place)
    )?;
    if record_size < 13 {
        return Err(place.err(
            "attribute index",
            corrupt(format!("record of {record_size} bytes")),
        ));
    }
    let seen = std::sync::Mutex::new(HashSet::new());
    let heap = &heap;
    let seen = &seen;
    try_join_all(records.iter().map(|r| async move {
        let field = || "attribute index record".to_string();
        let mut c = Cursor::new(r);
        let (id, flags, order) = (|| Ok((c.bytes(8)?, c.u8()?, c.u32()?)))().at(place, field)?;
        if flags & super::object_header::FLAG_SHARED != 0 {
            return Err(place.err(field(), unsupported("shared attribute message")));
        }
        if !seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_vec())
        {
            return Err(place.err(
                field(),
                corrupt("two index records name the same heap object"),
            ));
        }
        let obj = heap.object(f, id, place).await?;
        let msg = messages::attribute(&obj, &f.fmt).at(place, || "dense attribute message")?;
        Ok(Ordered {
            order: Some(u64::from(order)),
            msg,
        })
    }))
    .await
}
