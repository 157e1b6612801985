//! mursst keeps a virtual icechunk store of NASA's MUR SST v4.1 record up to date.
//!
//! The pipeline steps (discover, generate refs, commit to a temporary branch, validate,
//! merge) live here; the CLI and the Lambda handlers are thin shells around them.

pub mod artifacts;
pub mod aws;
pub mod cmr;
pub mod codec;
pub mod credentials;
#[cfg(all(feature = "synthetic", feature = "validate"))]
pub mod demo;
pub mod discover;
pub mod error;
pub mod granule;
pub mod hdf5;
pub mod kerchunk;
pub mod logging;
pub mod metrics;
pub mod objects;
#[cfg(feature = "ops")]
pub mod ops;
pub mod oracle;
pub mod pipeline;
pub mod refs;
pub mod retry;
pub mod source;
pub mod store;
#[cfg(feature = "synthetic")]
pub mod synthetic;
pub mod validate;
