//! The product: an icechunk repository of virtual references to MUR granules, laid out
//! exactly as a VirtualiZarr-built store so Python users open it the same way.
//!
//! `repository` opens and creates repositories, `layout` writes the Zarr metadata,
//! `attributes` combines global attributes across days, `schema` decides whether a
//! granule fits the store, and `writer` appends days on a temporary branch.

pub mod attributes;
pub mod layout;
pub mod repository;
pub mod schema;
pub mod writer;

pub use repository::{RepoLocation, StoreRepo};

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
    #[error("icechunk: {context}: {message}")]
    Icechunk { context: String, message: String },
    #[error("zarr: {context}: {message}")]
    Zarr { context: String, message: String },
    #[error("{granule}: variable {variable}: {field}: {message}")]
    Schema {
        granule: String,
        variable: String,
        field: String,
        message: String,
    },
    #[error("global attribute {attribute}: {message}")]
    Attributes { attribute: String, message: String },
    #[error("store metadata: {node}: {message}")]
    Metadata { node: String, message: String },
    #[error(
        "main moved from snapshot {expected} to {actual} while this run worked; nothing was \
         changed on main, the validated branch {branch} is kept"
    )]
    Conflict {
        expected: String,
        actual: String,
        branch: String,
    },
    #[error(transparent)]
    Refs(#[from] Box<crate::refs::RefsError>),
    #[error(transparent)]
    Source(#[from] Box<crate::source::SourceError>),
}

/// An error's own message, without the span trace icechunk appends after it.
pub(crate) fn concise(err: impl std::fmt::Display) -> String {
    let text = err.to_string();
    match text.split_once("\n\ncontext:") {
        Some((message, _)) => message.trim_end().to_string(),
        None => text,
    }
}

impl StoreError {
    pub(crate) fn icechunk(context: impl Into<String>, err: impl std::fmt::Display) -> Self {
        StoreError::Icechunk {
            context: context.into(),
            message: concise(err),
        }
    }

    pub(crate) fn zarr(context: impl Into<String>, err: impl std::fmt::Display) -> Self {
        StoreError::Zarr {
            context: context.into(),
            message: concise(err),
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
