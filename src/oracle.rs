//! libhdf5, the independent reader that validation trusts over our own.
//!
//! libhdf5 and netCDF-C are built without thread safety and share one library state:
//! every use in this process (writing sample granules, reading sources to validate)
//! holds [`lock`]. It is reentrant, so a caller may hold it around calls that take it.

use parking_lot::{ReentrantMutex, ReentrantMutexGuard};

static LIBHDF5: ReentrantMutex<()> = ReentrantMutex::new(());

/// Proof of exclusive use of libhdf5 / netCDF-C by this thread.
pub type Guard = ReentrantMutexGuard<'static, ()>;

/// Exclusive use of libhdf5 / netCDF-C until the guard drops.
pub fn lock() -> Guard {
    LIBHDF5.lock()
}
