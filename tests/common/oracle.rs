//! libhdf5 as the oracle: walk our metadata tree and check every fact against what
//! libhdf5 reports for the same object (through its C API).

#![allow(unsafe_code, clippy::missing_safety_doc)]

use std::ffi::{CStr, CString, c_char, c_uint, c_void};
use std::path::Path;

use hdf5_metno_sys::h5::{H5_index_t, H5_iter_order_t, haddr_t, hsize_t};
use hdf5_metno_sys::h5d::{self, H5D_fill_value_t, H5D_layout_t};
use hdf5_metno_sys::h5i::hid_t;
use hdf5_metno_sys::{h5a, h5g, h5l, h5o, h5p, h5s, h5t};
use mursst::hdf5::{
    Attribute, AttributeValue, ByteOrder, ChunkLocation, Dataset, Datatype, FileMetadata, Group,
    Layout,
};

use super::libhdf5_lock;

/// Collects mismatches instead of stopping at the first.
#[derive(Default)]
pub struct Report {
    pub errors: Vec<String>,
    /// Counts of what was compared, for the test log.
    pub datasets: usize,
    pub chunks: usize,
    pub attributes: usize,
}

impl Report {
    fn check<T: PartialEq + std::fmt::Debug>(
        &mut self,
        what: impl FnOnce() -> String,
        ours: T,
        theirs: T,
    ) {
        if ours != theirs {
            self.errors
                .push(format!("{}: ours {ours:?} != libhdf5 {theirs:?}", what()));
        }
    }
}

fn sync<T>(f: impl FnOnce() -> T) -> T {
    libhdf5::sync::sync(f)
}

struct Handle(hid_t, unsafe extern "C" fn(hid_t) -> i32);
impl Drop for Handle {
    fn drop(&mut self) {
        if self.0 >= 0 {
            unsafe { (self.1)(self.0) };
        }
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// Compare everything in `ours` with libhdf5's view of `path`; `base` is the
/// userblock size: libhdf5 reports data addresses as file offsets but object
/// addresses (tokens, references) relative to the superblock; ours are all offsets.
pub fn compare(path: &Path, ours: &FileMetadata, base: u64) -> Report {
    let _g = libhdf5_lock();
    let file = libhdf5::File::open(path).unwrap();
    let root = file.group("/").unwrap();
    let mut r = Report::default();
    compare_group(&root, &ours.root, base, &mut r);
    drop(root);
    drop(file);
    r
}

/// Object address of the object at `name` relative to `loc`, and whether it is a group.
fn object_info(loc: hid_t, name: &str) -> (u64, h5o::H5O_type_t) {
    sync(|| unsafe {
        let mut info: h5o::H5O_info2_t = std::mem::zeroed();
        let n = cstr(name);
        let rc = h5o::H5Oget_info_by_name3(
            loc,
            n.as_ptr(),
            &mut info,
            h5o::H5O_INFO_BASIC,
            h5p::H5P_DEFAULT,
        );
        assert!(rc >= 0, "H5Oget_info_by_name3({name})");
        let bytes: [u8; 16] = std::mem::transmute(info.token);
        (
            u64::from_le_bytes(bytes[..8].try_into().unwrap()),
            info.type_,
        )
    })
}

fn link_names(group: &libhdf5::Group) -> Vec<String> {
    sync(|| unsafe {
        let id = group.id();
        let gcpl = Handle(h5g::H5Gget_create_plist(id), h5p::H5Pclose);
        let mut flags: c_uint = 0;
        h5p::H5Pget_link_creation_order(gcpl.0, &mut flags);
        let index = if flags & h5p::H5P_CRT_ORDER_TRACKED != 0 {
            H5_index_t::H5_INDEX_CRT_ORDER
        } else {
            H5_index_t::H5_INDEX_NAME
        };
        let mut info: h5g::H5G_info_t = std::mem::zeroed();
        assert!(h5g::H5Gget_info(id, &mut info) >= 0);
        let dot = cstr(".");
        (0..info.nlinks)
            .map(|i| {
                let mut buf = vec![0u8; 1024];
                let n = h5l::H5Lget_name_by_idx(
                    id,
                    dot.as_ptr(),
                    index,
                    H5_iter_order_t::H5_ITER_INC,
                    i,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    h5p::H5P_DEFAULT,
                );
                assert!(n >= 0);
                String::from_utf8_lossy(&buf[..n as usize]).into_owned()
            })
            .collect()
    })
}

fn compare_group(g: &libhdf5::Group, ours: &Group, base: u64, r: &mut Report) {
    let names = link_names(g);
    let (mut groups, mut datasets) = (Vec::new(), Vec::new());
    for name in &names {
        let (addr, kind) = object_info(g.id(), name);
        match kind {
            h5o::H5O_type_t::H5O_TYPE_GROUP => groups.push((name.clone(), addr + base)),
            h5o::H5O_type_t::H5O_TYPE_DATASET => datasets.push((name.clone(), addr + base)),
            _ => {}
        }
    }
    let ours_groups: Vec<_> = ours
        .groups
        .iter()
        .map(|c| (c.name.clone(), c.address))
        .collect();
    let ours_datasets: Vec<_> = ours
        .datasets
        .iter()
        .map(|c| (c.name.clone(), c.address))
        .collect();
    r.check(
        || format!("{}: member groups (name, address)", ours.path),
        ours_groups,
        groups,
    );
    r.check(
        || format!("{}: member datasets (name, address)", ours.path),
        ours_datasets,
        datasets,
    );
    compare_attributes(g, &ours.path, &ours.attributes, base, r, false);
    for child in &ours.groups {
        let sub = g.group(&child.name).unwrap();
        compare_group(&sub, child, base, r);
    }
    for d in &ours.datasets {
        let ds = g.dataset(&d.name).unwrap();
        compare_dataset(&ds, d, base, r);
    }
}

fn compare_dataset(ds: &libhdf5::Dataset, ours: &Dataset, base: u64, r: &mut Report) {
    r.datasets += 1;
    let p = ours.path.clone();
    let id = ds.id();
    let (dims, maxdims) = extent(sync(|| unsafe { h5d::H5Dget_space(id) }));
    r.check(|| format!("{p}: shape"), ours.shape.clone(), dims.clone());
    r.check(
        || format!("{p}: max shape"),
        ours.max_shape.clone().unwrap_or_else(|| ours.shape.clone()),
        maxdims,
    );
    let dtype = sync(|| unsafe { Handle(h5d::H5Dget_type(id), h5t::H5Tclose) });
    r.check(
        || format!("{p}: datatype"),
        Some(ours.datatype.clone()),
        expected_type(dtype.0),
    );
    let dcpl = sync(|| unsafe { Handle(h5d::H5Dget_create_plist(id), h5p::H5Pclose) });
    r.check(
        || format!("{p}: filters"),
        our_filters(ours),
        filters(dcpl.0),
    );
    r.check(
        || format!("{p}: fill value"),
        ours.fill_value.clone(),
        fill_value(dcpl.0, dtype.0),
    );
    let layout = sync(|| unsafe { h5p::H5Pget_layout(dcpl.0) });
    match (&ours.layout, layout) {
        (Layout::Contiguous { address, size }, H5D_layout_t::H5D_CONTIGUOUS) => {
            let (offset, stored) =
                sync(|| unsafe { (h5d::H5Dget_offset(id), h5d::H5Dget_storage_size(id)) });
            let theirs = (offset != h5d_undef()).then_some(offset);
            r.check(|| format!("{p}: contiguous address"), *address, theirs);
            if theirs.is_some() {
                r.check(|| format!("{p}: contiguous size"), *size, stored);
            }
        }
        (Layout::Compact { data }, H5D_layout_t::H5D_COMPACT) => {
            let size = sync(|| unsafe { h5t::H5Tget_size(dtype.0) });
            let n: u64 = dims.iter().product();
            let mut buf = vec![0u8; n as usize * size];
            sync(|| unsafe {
                h5d::H5Dread(
                    id,
                    dtype.0,
                    h5s::H5S_ALL,
                    h5s::H5S_ALL,
                    h5p::H5P_DEFAULT,
                    buf.as_mut_ptr().cast(),
                )
            });
            r.check(|| format!("{p}: compact data"), data.clone(), buf);
        }
        (
            Layout::Chunked {
                chunk_shape,
                chunks,
                ..
            },
            H5D_layout_t::H5D_CHUNKED,
        ) => {
            let rank = dims.len();
            let mut theirs_shape = vec![0 as hsize_t; rank];
            sync(|| unsafe { h5p::H5Pget_chunk(dcpl.0, rank as i32, theirs_shape.as_mut_ptr()) });
            r.check(
                || format!("{p}: chunk shape"),
                chunk_shape.clone(),
                theirs_shape.clone(),
            );
            let mut theirs = chunk_info(id, rank, &theirs_shape);
            let unlimited_not_first = ours.max_shape.as_ref().is_some_and(|m| {
                m.iter().filter(|&&d| d == u64::MAX).count() == 1 && m[0] != u64::MAX
            });
            let mut ours_chunks = chunks.clone();
            if matches!(
                &ours.layout,
                Layout::Chunked {
                    index_kind: "extensible-array",
                    ..
                }
            ) && unlimited_not_first
            {
                // libhdf5 2.2's chunk-info calls (H5Dget_chunk_info and ..._by_coord) pair
                // extensible-array entries with offsets without undoing the "swizzle" that
                // makes the unlimited dimension vary slowest, while its data path does; our
                // positions decode to exactly what libhdf5 reads for every chunk (see the
                // decode tests). Compare the stored chunks here, positions there.
                let key = |c: &ChunkLocation| (c.address, c.size, c.filter_mask);
                ours_chunks.sort_by_key(key);
                theirs.sort_by_key(key);
                for c in ours_chunks.iter_mut().chain(theirs.iter_mut()) {
                    c.index.clear();
                }
            }
            r.chunks += theirs.len();
            r.check(
                || format!("{p}: number of chunks"),
                chunks.len(),
                theirs.len(),
            );
            if chunks.len() == theirs.len() {
                for (a, b) in ours_chunks.iter().zip(&theirs) {
                    if a != b {
                        r.errors
                            .push(format!("{p}: chunk ours {a:?} != libhdf5 {b:?}"));
                        break;
                    }
                }
            }
        }
        (l, t) => r
            .errors
            .push(format!("{p}: layout ours {l:?}, libhdf5 {t:?}")),
    }
    compare_attributes(ds, &p, &ours.attributes, base, r, true);
}

fn h5d_undef() -> haddr_t {
    hdf5_metno_sys::h5::HADDR_UNDEF
}

/// Every chunk as libhdf5's `H5Dget_chunk_info` lists it, ordered by grid index.
pub fn chunk_info(id: hid_t, rank: usize, chunk: &[u64]) -> Vec<ChunkLocation> {
    sync(|| unsafe {
        let mut n: hsize_t = 0;
        assert!(h5d::H5Dget_num_chunks(id, h5s::H5S_ALL, &mut n) >= 0);
        let mut out: Vec<ChunkLocation> = (0..n)
            .map(|i| {
                let mut offset = vec![0 as hsize_t; rank];
                let (mut mask, mut addr, mut size) = (0u32, 0 as haddr_t, 0 as hsize_t);
                assert!(
                    h5d::H5Dget_chunk_info(
                        id,
                        h5s::H5S_ALL,
                        i,
                        offset.as_mut_ptr(),
                        &mut mask,
                        &mut addr,
                        &mut size
                    ) >= 0
                );
                ChunkLocation {
                    index: offset.iter().zip(chunk).map(|(o, c)| o / c).collect(),
                    address: addr,
                    size,
                    filter_mask: mask,
                }
            })
            .collect();
        out.sort_by(|a, b| a.index.cmp(&b.index));
        out
    })
}

fn extent(space: hid_t) -> (Vec<u64>, Vec<u64>) {
    sync(|| unsafe {
        let space = Handle(space, h5s::H5Sclose);
        let n = h5s::H5Sget_simple_extent_ndims(space.0).max(0) as usize;
        let mut dims = vec![0 as hsize_t; n];
        let mut max = vec![0 as hsize_t; n];
        h5s::H5Sget_simple_extent_dims(space.0, dims.as_mut_ptr(), max.as_mut_ptr());
        (dims, max)
    })
}

fn expected_type(t: hid_t) -> Option<Datatype> {
    sync(|| unsafe {
        let size = h5t::H5Tget_size(t);
        let order = if h5t::H5Tget_order(t) == h5t::H5T_order_t::H5T_ORDER_BE {
            ByteOrder::Big
        } else {
            ByteOrder::Little
        };
        match h5t::H5Tget_class(t) {
            h5t::H5T_class_t::H5T_INTEGER => Some(Datatype::Integer {
                size: size as u8,
                signed: h5t::H5Tget_sign(t) == h5t::H5T_sign_t::H5T_SGN_2,
                order,
            }),
            h5t::H5T_class_t::H5T_FLOAT => Some(Datatype::Float {
                size: size as u8,
                order,
            }),
            h5t::H5T_class_t::H5T_STRING if h5t::H5Tis_variable_str(t) > 0 => {
                Some(Datatype::VarString)
            }
            h5t::H5T_class_t::H5T_STRING => Some(Datatype::FixedString { size: size as u32 }),
            _ => None,
        }
    })
}

fn our_filters(d: &Dataset) -> Vec<(u16, bool, Vec<u32>)> {
    d.filters
        .iter()
        .map(|f| (f.id, f.optional, f.client_data.clone()))
        .collect()
}

fn filters(dcpl: hid_t) -> Vec<(u16, bool, Vec<u32>)> {
    sync(|| unsafe {
        let n = h5p::H5Pget_nfilters(dcpl);
        (0..n.max(0) as c_uint)
            .map(|i| {
                let (mut flags, mut nelmts) = (0u32, 16usize);
                let mut cd = vec![0u32; 16];
                let mut name = vec![0 as c_char; 64];
                let mut config = 0u32;
                let id = h5p::H5Pget_filter2(
                    dcpl,
                    i,
                    &mut flags,
                    &mut nelmts,
                    cd.as_mut_ptr(),
                    name.len(),
                    name.as_mut_ptr(),
                    &mut config,
                );
                cd.truncate(nelmts);
                (id as u16, flags & 0x0001 != 0, cd)
            })
            .collect()
    })
}

fn fill_value(dcpl: hid_t, dtype: hid_t) -> Option<Vec<u8>> {
    sync(|| unsafe {
        let mut status = H5D_fill_value_t::H5D_FILL_VALUE_UNDEFINED;
        h5p::H5Pfill_value_defined(dcpl, &mut status);
        if status != H5D_fill_value_t::H5D_FILL_VALUE_USER_DEFINED {
            return None;
        }
        let mut buf = vec![0u8; h5t::H5Tget_size(dtype)];
        assert!(h5p::H5Pget_fill_value(dcpl, dtype, buf.as_mut_ptr().cast()) >= 0);
        Some(buf)
    })
}

fn attribute_names(obj: hid_t, is_dataset: bool) -> Vec<String> {
    sync(|| unsafe {
        let plist = Handle(
            if is_dataset {
                h5d::H5Dget_create_plist(obj)
            } else {
                h5g::H5Gget_create_plist(obj)
            },
            h5p::H5Pclose,
        );
        let mut flags: c_uint = 0;
        h5p::H5Pget_attr_creation_order(plist.0, &mut flags);
        let index = if flags & h5p::H5P_CRT_ORDER_TRACKED != 0 {
            H5_index_t::H5_INDEX_CRT_ORDER
        } else {
            H5_index_t::H5_INDEX_NAME
        };
        let mut info: h5o::H5O_info2_t = std::mem::zeroed();
        assert!(h5o::H5Oget_info3(obj, &mut info, h5o::H5O_INFO_NUM_ATTRS) >= 0);
        let dot = cstr(".");
        (0..info.num_attrs)
            .map(|i| {
                let mut buf = vec![0u8; 1024];
                let n = h5a::H5Aget_name_by_idx(
                    obj,
                    dot.as_ptr(),
                    index,
                    H5_iter_order_t::H5_ITER_INC,
                    i,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    h5p::H5P_DEFAULT,
                );
                assert!(n >= 0);
                String::from_utf8_lossy(&buf[..n as usize]).into_owned()
            })
            .collect()
    })
}

fn compare_attributes(
    obj: &libhdf5::Location,
    path: &str,
    ours: &[Attribute],
    base: u64,
    r: &mut Report,
    is_dataset: bool,
) {
    let names = attribute_names(obj.id(), is_dataset);
    let our_names: Vec<String> = ours.iter().map(|a| a.name.clone()).collect();
    r.check(
        || format!("{path}: attribute names in order"),
        our_names,
        names,
    );
    for a in ours {
        r.attributes += 1;
        let attr = obj.attr(&a.name).unwrap();
        let (shape, value) = attribute_value(&attr, base);
        r.check(
            || format!("{path}: attribute {:?} shape", a.name),
            a.shape.clone(),
            shape,
        );
        match value {
            Some(v) => r.check(
                || format!("{path}: attribute {:?} value", a.name),
                a.value.clone(),
                v,
            ),
            None => {
                if !matches!(a.value, AttributeValue::Unsupported(_)) {
                    r.errors.push(format!(
                        "{path}: attribute {:?}: ours {:?}, libhdf5 type not decodable",
                        a.name, a.value
                    ));
                }
            }
        }
    }
}

/// libhdf5's reading of an attribute as our model value; `None` for types we do not decode.
fn attribute_value(attr: &libhdf5::Attribute, base: u64) -> (Vec<u64>, Option<AttributeValue>) {
    sync(|| unsafe {
        let id = attr.id();
        let space = Handle(h5a::H5Aget_space(id), h5s::H5Sclose);
        let null = h5s::H5Sget_simple_extent_type(space.0) == h5s::H5S_class_t::H5S_NULL;
        let (dims, _) = extent(h5s::H5Scopy(space.0));
        let shape = if null { vec![0] } else { dims.clone() };
        let n = if null {
            0
        } else {
            dims.iter().product::<u64>() as usize
        };
        let t = Handle(h5a::H5Aget_type(id), h5t::H5Tclose);
        let size = h5t::H5Tget_size(t.0);
        let value = match h5t::H5Tget_class(t.0) {
            h5t::H5T_class_t::H5T_INTEGER
                if h5t::H5Tget_sign(t.0) == h5t::H5T_sign_t::H5T_SGN_2 =>
            {
                Some(AttributeValue::Int {
                    size: size as u8,
                    values: if n == 0 {
                        vec![]
                    } else {
                        attr.read_raw::<i64>().unwrap()
                    },
                })
            }
            h5t::H5T_class_t::H5T_INTEGER => Some(AttributeValue::UInt {
                size: size as u8,
                values: if n == 0 {
                    vec![]
                } else {
                    attr.read_raw::<u64>().unwrap()
                },
            }),
            h5t::H5T_class_t::H5T_FLOAT => Some(AttributeValue::Float {
                size: size as u8,
                values: if n == 0 {
                    vec![]
                } else {
                    attr.read_raw::<f64>().unwrap()
                },
            }),
            h5t::H5T_class_t::H5T_STRING if h5t::H5Tis_variable_str(t.0) > 0 => {
                let mem = Handle(h5t::H5Tcopy(t.0), h5t::H5Tclose);
                let mut ptrs: Vec<*mut c_char> = vec![std::ptr::null_mut(); n];
                if n > 0 {
                    assert!(h5a::H5Aread(id, mem.0, ptrs.as_mut_ptr().cast()) >= 0);
                }
                let strings = ptrs
                    .iter()
                    .map(|&p| {
                        if p.is_null() {
                            String::new()
                        } else {
                            CStr::from_ptr(p).to_string_lossy().into_owned()
                        }
                    })
                    .collect();
                if n > 0 {
                    h5t::H5Treclaim(mem.0, space.0, h5p::H5P_DEFAULT, ptrs.as_mut_ptr().cast());
                }
                Some(AttributeValue::Strings(strings))
            }
            h5t::H5T_class_t::H5T_STRING => {
                let mut buf = vec![0u8; n * size];
                if n > 0 {
                    assert!(h5a::H5Aread(id, t.0, buf.as_mut_ptr().cast()) >= 0);
                }
                let spacepad = h5t::H5Tget_strpad(t.0) == h5t::H5T_str_t::H5T_STR_SPACEPAD;
                Some(AttributeValue::Strings(
                    buf.chunks(size.max(1))
                        .take(n)
                        .map(|b| {
                            let b = if spacepad {
                                let end = b
                                    .iter()
                                    .rposition(|&c| c != b' ' && c != 0)
                                    .map_or(0, |e| e + 1);
                                &b[..end]
                            } else {
                                &b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())]
                            };
                            String::from_utf8_lossy(b).into_owned()
                        })
                        .collect(),
                ))
            }
            h5t::H5T_class_t::H5T_REFERENCE if size == 8 => {
                let mut buf = vec![0u64; n];
                assert!(
                    h5a::H5Aread(
                        id,
                        *libhdf5::globals::H5T_STD_REF_OBJ,
                        buf.as_mut_ptr().cast()
                    ) >= 0
                );
                Some(AttributeValue::References(
                    buf.iter().map(|a| a + base).collect(),
                ))
            }
            h5t::H5T_class_t::H5T_VLEN => {
                let super_t = Handle(h5t::H5Tget_super(t.0), h5t::H5Tclose);
                if h5t::H5Tget_class(super_t.0) != h5t::H5T_class_t::H5T_REFERENCE {
                    return (shape, None);
                }
                let mem = Handle(
                    h5t::H5Tvlen_create(*libhdf5::globals::H5T_STD_REF_OBJ),
                    h5t::H5Tclose,
                );
                let mut buf: Vec<h5t::hvl_t> = vec![std::mem::zeroed(); n];
                assert!(h5a::H5Aread(id, mem.0, buf.as_mut_ptr().cast::<c_void>()) >= 0);
                let lists = buf
                    .iter()
                    .map(|v| {
                        std::slice::from_raw_parts(v.p as *const u64, v.len)
                            .iter()
                            .map(|a| a + base)
                            .collect()
                    })
                    .collect();
                h5t::H5Treclaim(mem.0, space.0, h5p::H5P_DEFAULT, buf.as_mut_ptr().cast());
                Some(AttributeValue::ReferenceLists(lists))
            }
            _ => None,
        };
        (shape, value)
    })
}

/// libhdf5's raw bytes (file datatype) of the hyperslab `start..start+count`.
pub fn read_hyperslab(ds: &libhdf5::Dataset, start: &[u64], count: &[u64]) -> Vec<u8> {
    sync(|| unsafe {
        let id = ds.id();
        let t = Handle(h5d::H5Dget_type(id), h5t::H5Tclose);
        let size = h5t::H5Tget_size(t.0);
        let fspace = Handle(h5d::H5Dget_space(id), h5s::H5Sclose);
        assert!(
            h5s::H5Sselect_hyperslab(
                fspace.0,
                h5s::H5S_seloper_t::H5S_SELECT_SET,
                start.as_ptr(),
                std::ptr::null(),
                count.as_ptr(),
                std::ptr::null()
            ) >= 0
        );
        let mspace = Handle(
            h5s::H5Screate_simple(count.len() as i32, count.as_ptr(), std::ptr::null()),
            h5s::H5Sclose,
        );
        let n: u64 = count.iter().product();
        let mut buf = vec![0u8; n as usize * size];
        assert!(
            h5d::H5Dread(
                id,
                t.0,
                mspace.0,
                fspace.0,
                h5p::H5P_DEFAULT,
                buf.as_mut_ptr().cast()
            ) >= 0
        );
        buf
    })
}
