//! A read-only libhdf5 virtual file driver over [`Backing`]: libhdf5 asks for bytes at an
//! address, the backing answers from what it holds or fetches them first. A byte libhdf5
//! needs is therefore never a hole read as zeros, whatever it reads (metadata our
//! indexer never touched, a chunk the comparison did not plan for).
//!
//! The class struct and the file struct's public part are declared here as HDF5 2.0's
//! `H5FDdevelop.h` lays them out (the `-sys` crate's declaration predates its `version`
//! and vector callbacks); [`driver`] refuses any other major version of the library.

use std::collections::HashMap;
use std::ffi::{CString, c_char, c_int, c_uint, c_ulong, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use hdf5_metno_sys::h5::{haddr_t, herr_t, hsize_t};
use hdf5_metno_sys::h5i::hid_t;

use crate::error::BoxError;

/// Where a driver-opened file's bytes come from.
pub(super) trait Backing: Send + Sync {
    /// The file's size (its end of file).
    fn size(&self) -> u64;
    /// Fill `buf` with the bytes at `addr`, fetching any not held yet. Called by libhdf5
    /// with its lock held, off the async runtime.
    fn read_at(&self, addr: u64, buf: &mut [u8]) -> Result<(), BoxError>;
}

/// Open a file through the driver: `label` names it in libhdf5's messages only.
pub(super) fn open(label: &str, backing: Arc<dyn Backing>) -> Result<libhdf5::File, BoxError> {
    let driver = driver()?;
    let fapl = libhdf5::plist::FileAccessBuilder::new()
        .file_locking(false)
        .finish()?;
    let name = CString::new(label)?;
    let token = Pending::insert(backing);
    let opened = libhdf5::sync::sync(|| -> libhdf5::Result<libhdf5::File> {
        // SAFETY: `token` outlives both calls; libhdf5 copies `fapl_size` bytes of it.
        unsafe {
            libhdf5::h5check(hdf5_metno_sys::h5p::H5Pset_driver(
                fapl.id(),
                driver,
                std::ptr::from_ref(&token).cast::<c_void>(),
            ))?;
            let id = libhdf5::h5check(hdf5_metno_sys::h5f::H5Fopen(
                name.as_ptr(),
                0, // H5F_ACC_RDONLY
                fapl.id(),
            ))?;
            libhdf5::from_id::<libhdf5::File>(id)
        }
    });
    Pending::remove(token);
    Ok(opened?)
}

/// Backings handed to `open` by token (the driver info libhdf5 copies is that token).
struct Pending;

static PENDING: Mutex<Option<HashMap<u64, Arc<dyn Backing>>>> = Mutex::new(None);
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

impl Pending {
    fn insert(backing: Arc<dyn Backing>) -> u64 {
        let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
        let mut map = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        map.get_or_insert_default().insert(token, backing);
        token
    }

    fn get(token: u64) -> Option<Arc<dyn Backing>> {
        let map = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        map.as_ref().and_then(|m| m.get(&token).cloned())
    }

    fn remove(token: u64) {
        let mut map = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = map.as_mut() {
            m.remove(&token);
        }
    }
}

/// The driver's id, registered with libhdf5 on first use.
fn driver() -> Result<hid_t, BoxError> {
    static DRIVER: OnceLock<Result<hid_t, String>> = OnceLock::new();
    DRIVER
        .get_or_init(|| {
            let (major, minor, release) = libhdf5::library_version();
            if major != 2 {
                return Err(format!(
                    "the ranged-read driver is laid out for libhdf5 2.x, this is {major}.{minor}.{release}"
                ));
            }
            libhdf5::sync::sync(|| {
                // SAFETY: CLASS is a complete, 'static class of libhdf5 2.x's layout.
                let id = unsafe {
                    hdf5_metno_sys::h5fd::H5FDregister(
                        std::ptr::from_ref(&CLASS).cast::<hdf5_metno_sys::h5fd::H5FD_class_t>(),
                    )
                };
                if id < 0 {
                    Err("libhdf5 refused to register the ranged-read driver".to_string())
                } else {
                    Ok(id)
                }
            })
        })
        .clone()
        .map_err(Into::into)
}

type MemType = c_int;
const H5FD_MEM_SUPER: MemType = 1;
const H5FD_MEM_DRAW: MemType = 3;
const H5F_CLOSE_WEAK: c_int = 1;
const H5F_ACC_RDWR: c_uint = 1;

/// `H5FD_class_t` of libhdf5 2.x (`H5FD_CLASS_VERSION` 1).
#[repr(C)]
struct Class {
    version: c_uint,
    value: c_int,
    name: *const c_char,
    maxaddr: haddr_t,
    fc_degree: c_int,
    terminate: Option<unsafe extern "C" fn() -> herr_t>,
    sb_size: Option<unsafe extern "C" fn() -> hsize_t>,
    sb_encode: Option<unsafe extern "C" fn() -> herr_t>,
    sb_decode: Option<unsafe extern "C" fn() -> herr_t>,
    fapl_size: usize,
    fapl_get: Option<unsafe extern "C" fn() -> *mut c_void>,
    fapl_copy: Option<unsafe extern "C" fn() -> *mut c_void>,
    fapl_free: Option<unsafe extern "C" fn() -> herr_t>,
    dxpl_size: usize,
    dxpl_copy: Option<unsafe extern "C" fn() -> *mut c_void>,
    dxpl_free: Option<unsafe extern "C" fn() -> herr_t>,
    open: Option<unsafe extern "C" fn(*const c_char, c_uint, hid_t, haddr_t) -> *mut Public>,
    close: Option<unsafe extern "C" fn(*mut Public) -> herr_t>,
    cmp: Option<unsafe extern "C" fn() -> c_int>,
    query: Option<unsafe extern "C" fn(*const Public, *mut c_ulong) -> herr_t>,
    get_type_map: Option<unsafe extern "C" fn() -> herr_t>,
    alloc: Option<unsafe extern "C" fn() -> haddr_t>,
    free: Option<unsafe extern "C" fn() -> herr_t>,
    get_eoa: Option<unsafe extern "C" fn(*const Public, MemType) -> haddr_t>,
    set_eoa: Option<unsafe extern "C" fn(*mut Public, MemType, haddr_t) -> herr_t>,
    get_eof: Option<unsafe extern "C" fn(*const Public, MemType) -> haddr_t>,
    get_handle: Option<unsafe extern "C" fn() -> herr_t>,
    read: Option<
        unsafe extern "C" fn(*mut Public, MemType, hid_t, haddr_t, usize, *mut c_void) -> herr_t,
    >,
    write: Option<
        unsafe extern "C" fn(*mut Public, MemType, hid_t, haddr_t, usize, *const c_void) -> herr_t,
    >,
    read_vector: Option<unsafe extern "C" fn() -> herr_t>,
    write_vector: Option<unsafe extern "C" fn() -> herr_t>,
    read_selection: Option<unsafe extern "C" fn() -> herr_t>,
    write_selection: Option<unsafe extern "C" fn() -> herr_t>,
    flush: Option<unsafe extern "C" fn() -> herr_t>,
    truncate: Option<unsafe extern "C" fn() -> herr_t>,
    lock: Option<unsafe extern "C" fn() -> herr_t>,
    unlock: Option<unsafe extern "C" fn() -> herr_t>,
    del: Option<unsafe extern "C" fn() -> herr_t>,
    ctl: Option<unsafe extern "C" fn() -> herr_t>,
    fl_map: [MemType; 7],
}

// SAFETY: the class is immutable and its one pointer is to a 'static C string.
unsafe impl Sync for Class {}

static CLASS: Class = Class {
    version: 1,
    // User drivers take values from 256 (H5_VFD_RESERVED) up.
    value: 0x1a7,
    name: c"mursst_ranged".as_ptr(),
    maxaddr: i64::MAX as haddr_t,
    fc_degree: H5F_CLOSE_WEAK,
    terminate: None,
    sb_size: None,
    sb_encode: None,
    sb_decode: None,
    fapl_size: size_of::<u64>(),
    fapl_get: None,
    fapl_copy: None,
    fapl_free: None,
    dxpl_size: 0,
    dxpl_copy: None,
    dxpl_free: None,
    open: Some(open_cb),
    close: Some(close_cb),
    cmp: None,
    query: Some(query_cb),
    get_type_map: None,
    alloc: None,
    free: None,
    get_eoa: Some(get_eoa_cb),
    set_eoa: Some(set_eoa_cb),
    get_eof: Some(get_eof_cb),
    get_handle: None,
    read: Some(read_cb),
    write: Some(write_cb),
    read_vector: None,
    write_vector: None,
    read_selection: None,
    write_selection: None,
    flush: None,
    truncate: None,
    lock: None,
    unlock: None,
    del: None,
    ctl: None,
    fl_map: [
        H5FD_MEM_SUPER,
        H5FD_MEM_SUPER,
        H5FD_MEM_SUPER,
        H5FD_MEM_DRAW,
        H5FD_MEM_DRAW,
        H5FD_MEM_SUPER,
        H5FD_MEM_SUPER,
    ],
};

/// `struct H5FD_t` of libhdf5 2.x: the fields libhdf5 fills in after `open`.
#[repr(C)]
struct Public {
    driver_id: hid_t,
    cls: *const Class,
    fileno: c_ulong,
    access_flags: c_uint,
    feature_flags: c_ulong,
    maxaddr: haddr_t,
    base_addr: haddr_t,
    threshold: hsize_t,
    alignment: hsize_t,
    paged_aggr: bool,
}

/// One open file: libhdf5's part first, as drivers lay it out.
#[repr(C)]
struct OpenFile {
    public: Public,
    eoa: haddr_t,
    backing: Arc<dyn Backing>,
}

unsafe extern "C" fn open_cb(
    _name: *const c_char,
    flags: c_uint,
    fapl: hid_t,
    _maxaddr: haddr_t,
) -> *mut Public {
    if flags & H5F_ACC_RDWR != 0 {
        return std::ptr::null_mut();
    }
    // SAFETY: the driver info of a fapl set by `open` is the u64 token.
    let token = unsafe {
        let info = hdf5_metno_sys::h5p::H5Pget_driver_info(fapl).cast::<u64>();
        if info.is_null() {
            return std::ptr::null_mut();
        }
        *info
    };
    let Some(backing) = Pending::get(token) else {
        return std::ptr::null_mut();
    };
    let file = Box::new(OpenFile {
        public: Public {
            driver_id: 0,
            cls: std::ptr::null(),
            fileno: 0,
            access_flags: 0,
            feature_flags: 0,
            maxaddr: 0,
            base_addr: 0,
            threshold: 0,
            alignment: 0,
            paged_aggr: false,
        },
        eoa: 0,
        backing,
    });
    Box::into_raw(file).cast::<Public>()
}

unsafe extern "C" fn close_cb(file: *mut Public) -> herr_t {
    // SAFETY: `file` came from `open_cb`'s Box, and libhdf5 closes it once.
    drop(unsafe { Box::from_raw(file.cast::<OpenFile>()) });
    0
}

unsafe extern "C" fn query_cb(_file: *const Public, flags: *mut c_ulong) -> herr_t {
    if !flags.is_null() {
        // No metadata accumulation or sieving: libhdf5 asks for what it uses, no more.
        // SAFETY: libhdf5 passes a valid out-pointer.
        unsafe { *flags = 0 };
    }
    0
}

unsafe extern "C" fn get_eoa_cb(file: *const Public, _type: MemType) -> haddr_t {
    // SAFETY: every `Public` this driver sees heads an `OpenFile`.
    unsafe { (*file.cast::<OpenFile>()).eoa }
}

unsafe extern "C" fn set_eoa_cb(file: *mut Public, _type: MemType, addr: haddr_t) -> herr_t {
    // SAFETY: as above; libhdf5 serializes calls on one file.
    unsafe { (*file.cast::<OpenFile>()).eoa = addr };
    0
}

unsafe extern "C" fn get_eof_cb(file: *const Public, _type: MemType) -> haddr_t {
    // SAFETY: as above.
    unsafe { (*file.cast::<OpenFile>()).backing.size() }
}

unsafe extern "C" fn read_cb(
    file: *mut Public,
    _type: MemType,
    _dxpl: hid_t,
    addr: haddr_t,
    size: usize,
    buf: *mut c_void,
) -> herr_t {
    // SAFETY: as above, and libhdf5 hands a buffer of `size` writable bytes.
    let (file, buf) = unsafe {
        (
            &*file.cast::<OpenFile>(),
            std::slice::from_raw_parts_mut(buf.cast::<u8>(), size),
        )
    };
    if addr
        .checked_add(size as u64)
        .is_none_or(|end| end > file.eoa)
    {
        return -1;
    }
    // Past the end of the object (but within the addressed space) reads as zeros, as
    // libhdf5's own drivers do.
    let eof = file.backing.size();
    let within = (eof.saturating_sub(addr) as usize).min(size);
    buf[within..].fill(0);
    if within == 0 {
        return 0;
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        file.backing.read_at(addr, &mut buf[..within])
    })) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            tracing::debug!(addr, size, error = %e, "the ranged-read driver could not read");
            -1
        }
        Err(_) => -1,
    }
}

unsafe extern "C" fn write_cb(
    _file: *mut Public,
    _type: MemType,
    _dxpl: hid_t,
    _addr: haddr_t,
    _size: usize,
    _buf: *const c_void,
) -> herr_t {
    -1
}
