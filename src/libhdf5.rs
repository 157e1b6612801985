//! libhdf5 and netCDF-C are built without thread safety and share one library state:
//! every use in this process (writing sample granules, reading sources to validate)
//! holds this lock.

use std::sync::{Mutex, MutexGuard};

static LIBHDF5: Mutex<()> = Mutex::new(());

/// Exclusive use of libhdf5 / netCDF-C until the guard drops.
pub fn lock() -> MutexGuard<'static, ()> {
    LIBHDF5.lock().unwrap_or_else(|e| e.into_inner())
}
