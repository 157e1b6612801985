//! The product: an icechunk repository of virtual references to MUR granules, laid out
//! exactly as a VirtualiZarr-built store so Python users open it the same way.
//!
//! As icechunk splits repository, session and storage: `repository` opens, creates and
//! moves branches; `session` is one session seen through both icechunk's and zarrs'
//! store APIs; `state` reads what a snapshot holds; `layout` is the typed Zarr metadata;
//! `values` the typed buffers of real arrays; `attributes` combines global attributes
//! across days; `schema` decides whether a granule fits; `prepared` is the day a generate-refs step
//! hands on; `create` lays out a new store from its first day; `writer` appends days.

pub mod attributes;
pub mod create;
pub mod hygiene;
pub mod layout;
pub mod materialize;
pub mod prepared;
pub mod record;
pub mod repository;
pub mod schema;
pub mod session;
pub mod state;
pub mod values;
pub mod writer;

pub use repository::{RepoLocation, StoreRepo};
pub use session::SessionStores;
pub use state::StoreState;

use crate::error::{BoxError, error_chain};

/// Errors from the store: each names what it was doing and, where it applies, the
/// granule, variable or attribute at fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{location}: not a store location (expected a directory or s3://bucket/prefix)")]
    BadLocation { location: String },
    #[error("{location}: no icechunk repository here; create one with `mursst init`")]
    NotFound { location: String },
    #[error("{location}: a repository already exists here")]
    AlreadyExists { location: String },
    #[error("icechunk: {context}: {}", error_chain(.source.as_ref()))]
    Icechunk {
        context: String,
        #[source]
        source: BoxError,
    },
    #[error("zarr: {context}: {}", error_chain(.source.as_ref()))]
    Zarr {
        context: String,
        #[source]
        source: BoxError,
    },
    #[error("{granule}: variable {variable}: {field}: {message}")]
    Schema {
        granule: String,
        variable: String,
        field: String,
        message: String,
    },
    #[error(transparent)]
    Decode(Box<crate::codec::DecodeError>),
    #[error("global attribute {attribute}: {message}")]
    Attributes { attribute: String, message: String },
    #[error("store metadata: {node}: {message}")]
    Metadata { node: String, message: String },
    #[error("{id:?} is not a snapshot id: {message}")]
    BadSnapshotId { id: String, message: String },
    /// Not the store's fault nor the input's: a task that panicked or was cancelled.
    #[error("internal error: {context}: {message}")]
    Internal { context: String, message: String },
    /// A snapshot's pipeline record that does not read as [`record::CommitRecord`].
    #[error("snapshot {snapshot}: the mursst commit record does not read: {message}")]
    Record { snapshot: String, message: String },
    #[error(
        "main moved from snapshot {expected} to {actual} while this run worked; nothing was \
         changed on main, the validated branch {branch} is kept"
    )]
    Conflict {
        expected: String,
        actual: String,
        branch: String,
    },
}

impl From<crate::codec::DecodeError> for StoreError {
    fn from(e: crate::codec::DecodeError) -> Self {
        StoreError::Decode(Box::new(e))
    }
}

impl StoreError {
    pub(crate) fn icechunk(context: impl Into<String>, err: impl Into<BoxError>) -> Self {
        StoreError::Icechunk {
            context: context.into(),
            source: err.into(),
        }
    }

    /// A blocking task that did not finish: it panicked (a bug) or the runtime is
    /// shutting down; neither says anything about the store or the input.
    pub(crate) fn internal(context: impl Into<String>, err: impl std::fmt::Display) -> Self {
        StoreError::Internal {
            context: context.into(),
            message: err.to_string(),
        }
    }

    pub(crate) fn zarr(context: impl Into<String>, err: impl Into<BoxError>) -> Self {
        StoreError::Zarr {
            context: context.into(),
            source: err.into(),
        }
    }

    /// A granule that does not fit the store (or the request), naming the field.
    pub(crate) fn schema(
        granule: impl Into<String>,
        variable: impl Into<String>,
        field: &str,
        message: impl Into<String>,
    ) -> Self {
        StoreError::Schema {
            granule: granule.into(),
            variable: variable.into(),
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn metadata(node: impl Into<String>, message: impl Into<String>) -> Self {
        StoreError::Metadata {
            node: node.into(),
            message: message.into(),
        }
    }
}
