//! The one layout of the record netCDF-C cannot write: granules of 2021-12-24..2022-01-26
//! list their filters as deflate, then shuffle, and netCDF-C always puts shuffle first.
//! So after netCDF-C has written such a granule, each data variable is rebuilt through
//! libhdf5 with that pipeline: the same name, type, shape, chunks, fill value, attributes
//! (in creation order) and dimension scales, its values copied one chunk row at a time.

#![allow(unsafe_code)]

use std::ffi::{CString, c_uint};
use std::path::Path;

use hdf5_metno_sys::h5::{H5_index_t, H5_iter_order_t, herr_t};
use hdf5_metno_sys::h5a;
use hdf5_metno_sys::h5i::hid_t;
use hdf5_metno_sys::h5p::H5P_DEFAULT;
use hdf5_metno_sys::h5s::{H5Sclose, H5Sget_simple_extent_npoints};
use hdf5_metno_sys::h5t::{H5Tclose, H5Tget_size};
use hdf5_metno_sys::h5z::H5Z_FILTER_SHUFFLE;
use libhdf5::Dataset;
use libhdf5::dataset::AttrCreationOrder;
use libhdf5::filters::Filter;
use ndarray::{Array3, s};

use super::{DType, DataVar, GranuleSpec, SyntheticError};

// The dimension-scale API of HDF5's high-level library, which netCDF-C links (and with
// it this crate), but which hdf5-metno-sys does not declare.
unsafe extern "C" {
    fn H5DSattach_scale(did: hid_t, dsid: hid_t, idx: c_uint) -> herr_t;
    fn H5DSdetach_scale(did: hid_t, dsid: hid_t, idx: c_uint) -> herr_t;
}

/// The dimensions of every data variable, in order; each is a dimension-scale dataset.
const DIMENSIONS: [&str; 3] = ["time", "lat", "lon"];

/// Attributes libhdf5 writes itself when a dimension scale is attached.
const SCALE_ATTRIBUTES: [&str; 1] = ["DIMENSION_LIST"];

fn hdf5_error(path: &Path, action: String) -> impl FnOnce(libhdf5::Error) -> SyntheticError {
    let path = path.to_path_buf();
    move |e| SyntheticError::Hdf5 {
        path,
        action,
        message: e.to_string(),
    }
}

/// Rebuild every data variable of the granule at `path` (written from `spec`) with the
/// filter pipeline deflate, then shuffle. The caller holds the libhdf5 lock.
pub(super) fn deflate_before_shuffle(
    path: &Path,
    spec: &GranuleSpec,
    vars: &[DataVar],
) -> Result<(), SyntheticError> {
    let file = libhdf5::File::with_options()
        .with_fapl(|p| p.libver_v18())
        .open_rw(path)
        .map_err(hdf5_error(path, "opening it to reorder filters".into()))?;
    let scales = DIMENSIONS
        .iter()
        .map(|d| file.dataset(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(hdf5_error(path, "opening the dimension scales".into()))?;
    for &var in vars {
        rebuild(&file, &scales, path, spec, var)?;
    }
    drop(scales);
    file.close().map_err(hdf5_error(
        path,
        "closing it after reordering filters".into(),
    ))
}

/// Replace `var` by a copy whose pipeline is deflate, then shuffle.
fn rebuild(
    file: &libhdf5::File,
    scales: &[Dataset],
    path: &Path,
    spec: &GranuleSpec,
    var: DataVar,
) -> Result<(), SyntheticError> {
    let name = var.name();
    let err = |what: &str| hdf5_error(path, format!("{what} {name}"));
    let old = file.dataset(name).map_err(err("opening"))?;
    let temporary = format!("{name}.deflate-first");
    let chunk = spec.chunk_shape(var);
    let shape = (1, spec.lat_size, spec.lon_size);
    let builder = file
        .new_dataset_builder()
        .chunk(chunk)
        // hdf5-metno refuses shuffle after deflate; H5Pset_shuffle is this very call.
        .set_filters(&[
            Filter::deflate(spec.deflate_level),
            Filter::user(H5Z_FILTER_SHUFFLE, &[]),
        ])
        .attr_creation_order(AttrCreationOrder::TRACKED | AttrCreationOrder::INDEXED);
    let new = match var.dtype() {
        DType::Int16 => builder.empty::<i16>().fill_value(i16::MIN),
        DType::Int8 => builder.empty::<i8>().fill_value(i8::MIN),
    }
    .shape(shape)
    .create(temporary.as_str())
    .map_err(err("creating the reordered"))?;
    for r0 in (0..spec.lat_size).step_by(chunk[1]) {
        let rows = s![.., r0..(r0 + chunk[1]).min(spec.lat_size), ..];
        let copied = match var.dtype() {
            DType::Int16 => old
                .read_slice::<i16, _, ndarray::Ix3>(rows)
                .and_then(|a: Array3<i16>| new.write_slice(&a, rows)),
            DType::Int8 => old
                .read_slice::<i8, _, ndarray::Ix3>(rows)
                .and_then(|a: Array3<i8>| new.write_slice(&a, rows)),
        };
        copied.map_err(err("copying the values of"))?;
    }
    copy_attributes(&old, &new).map_err(|message| SyntheticError::Hdf5 {
        path: path.to_path_buf(),
        action: format!("copying the attributes of {name}"),
        message,
    })?;
    libhdf5::sync::sync(|| {
        for (index, scale) in (0..).zip(scales) {
            // SAFETY: all three are open dataset ids of this file; the calls only read
            // and write attributes of those datasets.
            let moved = unsafe {
                H5DSdetach_scale(old.id(), scale.id(), index) >= 0
                    && H5DSattach_scale(new.id(), scale.id(), index) >= 0
            };
            if !moved {
                return Err(SyntheticError::Hdf5 {
                    path: path.to_path_buf(),
                    action: format!(
                        "moving dimension {} to the reordered {name}",
                        DIMENSIONS[index as usize]
                    ),
                    message: "H5DSdetach_scale / H5DSattach_scale failed".into(),
                });
            }
        }
        Ok(())
    })?;
    drop((old, new));
    file.unlink(name).map_err(err("unlinking the original"))?;
    file.relink(&temporary, name)
        .map_err(err("renaming the reordered"))
}

/// An open libhdf5 identifier, closed when dropped.
struct Handle(hid_t, unsafe extern "C" fn(hid_t) -> herr_t);

impl Drop for Handle {
    fn drop(&mut self) {
        if self.0 >= 0 {
            // SAFETY: the id was returned open by libhdf5 and is closed once, by the
            // function matching its kind.
            unsafe { (self.1)(self.0) };
        }
    }
}

/// Copy every attribute of `from` but the dimension-scale bookkeeping to `to`, with its
/// own type and shape, in creation order.
fn copy_attributes(from: &Dataset, to: &Dataset) -> Result<(), String> {
    let names = from.attr_names().map_err(|e| e.to_string())?;
    libhdf5::sync::sync(|| {
        for index in 0..names.len() as u64 {
            let dot = CString::new(".").expect("no NUL");
            // SAFETY: `from` is an open dataset with more than `index` attributes; every
            // id opened here is closed by its Handle; the value buffer holds the
            // attribute's points at its type's in-memory size, which is what H5Aread
            // writes and H5Awrite reads.
            unsafe {
                let attr = Handle(
                    h5a::H5Aopen_by_idx(
                        from.id(),
                        dot.as_ptr(),
                        H5_index_t::H5_INDEX_CRT_ORDER,
                        H5_iter_order_t::H5_ITER_INC,
                        index,
                        H5P_DEFAULT,
                        H5P_DEFAULT,
                    ),
                    h5a::H5Aclose,
                );
                if attr.0 < 0 {
                    return Err(format!("attribute #{index} cannot be opened"));
                }
                let mut buf = vec![0u8; 256];
                let len = h5a::H5Aget_name(attr.0, buf.len(), buf.as_mut_ptr().cast());
                if len < 0 || len as usize >= buf.len() {
                    return Err(format!("attribute #{index}: no name of under 256 bytes"));
                }
                buf.truncate(len as usize);
                let name = String::from_utf8_lossy(&buf).into_owned();
                if SCALE_ATTRIBUTES.contains(&name.as_str()) {
                    continue;
                }
                let dtype = Handle(h5a::H5Aget_type(attr.0), H5Tclose);
                let space = Handle(h5a::H5Aget_space(attr.0), H5Sclose);
                let points = H5Sget_simple_extent_npoints(space.0).max(0) as usize;
                let mut value = vec![0u8; H5Tget_size(dtype.0) * points];
                let cname = CString::new(name.as_str()).map_err(|e| e.to_string())?;
                let copy = Handle(
                    h5a::H5Acreate2(
                        to.id(),
                        cname.as_ptr(),
                        dtype.0,
                        space.0,
                        H5P_DEFAULT,
                        H5P_DEFAULT,
                    ),
                    h5a::H5Aclose,
                );
                let ok = dtype.0 >= 0
                    && space.0 >= 0
                    && copy.0 >= 0
                    && h5a::H5Aread(attr.0, dtype.0, value.as_mut_ptr().cast()) >= 0
                    && h5a::H5Awrite(copy.0, dtype.0, value.as_ptr().cast()) >= 0;
                if !ok {
                    return Err(format!("attribute {name} could not be copied"));
                }
            }
        }
        Ok(())
    })
}
