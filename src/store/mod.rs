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

use icechunk::refs::RefErrorKind;
use icechunk::repository::RepositoryErrorKind;
use icechunk::session::SessionErrorKind;
use icechunk::storage::StorageErrorKind;

use crate::error::{BoxError, ErrorKind, error_chain};

/// `err` and its causes, outermost first.
fn chain<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |e| e.source())
}

/// What icechunk's own error kinds, found in `err`'s chain, say of trying again.
fn icechunk_kind(err: &(dyn std::error::Error + 'static)) -> ErrorKind {
    for e in chain(err) {
        if let Some(storage) = e.downcast_ref::<StorageErrorKind>() {
            return match storage {
                StorageErrorKind::ObjectNotFound => ErrorKind::Failed,
                StorageErrorKind::BadPrefix(_)
                | StorageErrorKind::R2ConfigurationError(_)
                | StorageErrorKind::CannotParseUrl { .. }
                | StorageErrorKind::BadRedirect(_) => ErrorKind::InvalidInput,
                _ => ErrorKind::Retryable,
            };
        }
        // Another writer moved the branch under a commit: the step reads it again.
        let moved = matches!(
            e.downcast_ref::<RepositoryErrorKind>(),
            Some(RepositoryErrorKind::Conflict { .. })
        ) || matches!(
            e.downcast_ref::<RefErrorKind>(),
            Some(RefErrorKind::Conflict { .. })
        ) || matches!(
            e.downcast_ref::<SessionErrorKind>(),
            Some(SessionErrorKind::Conflict { .. })
        );
        if moved || e.is::<std::io::Error>() {
            return ErrorKind::Retryable;
        }
    }
    ErrorKind::Failed
}

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
    /// icechunk's error, kept whole, with the kind its own error kinds imply (decided
    /// by [`StoreError::icechunk`] when it is made).
    #[error("icechunk: {context}: {}", error_chain(.source.as_ref()))]
    Icechunk {
        context: String,
        kind: ErrorKind,
        #[source]
        source: BoxError,
    },
    /// A zarrs error on the session's store, with its kind decided likewise.
    #[error("zarr: {context}: {}", error_chain(.source.as_ref()))]
    Zarr {
        context: String,
        kind: ErrorKind,
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
    /// icechunk's failure, classified by its typed kinds: its storage failing (S3, a
    /// disk, a throttle) or another writer moving a branch may pass on a new try; a
    /// missing object, a bad configuration or anything about the repository's contents
    /// will not.
    pub(crate) fn icechunk(context: impl Into<String>, err: impl Into<BoxError>) -> Self {
        let source = err.into();
        StoreError::Icechunk {
            context: context.into(),
            kind: icechunk_kind(source.as_ref()),
            source,
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

    /// A zarrs failure: its storage (icechunk underneath, which zarrs reports as text)
    /// may pass on a new try; metadata, codecs and shapes will not.
    pub(crate) fn zarr(context: impl Into<String>, err: impl Into<BoxError>) -> Self {
        let source = err.into();
        let storage = chain(source.as_ref()).any(|e| {
            matches!(
                e.downcast_ref::<zarrs::storage::StorageError>(),
                Some(
                    zarrs::storage::StorageError::IOError(_)
                        | zarrs::storage::StorageError::Other(_)
                )
            )
        });
        StoreError::Zarr {
            context: context.into(),
            kind: ErrorKind::retryable_if(storage),
            source,
        }
    }

    /// Whether to retry, and under which name Step Functions sees the failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Icechunk { kind, .. } | StoreError::Zarr { kind, .. } => *kind,
            StoreError::Schema { .. } | StoreError::Attributes { .. } => ErrorKind::SchemaRejected,
            StoreError::Conflict { .. } => ErrorKind::Conflict,
            StoreError::BadLocation { .. }
            | StoreError::BadSnapshotId { .. }
            | StoreError::NotFound { .. }
            | StoreError::AlreadyExists { .. } => ErrorKind::InvalidInput,
            StoreError::Metadata { .. } | StoreError::Record { .. } => ErrorKind::Failed,
            StoreError::Internal { .. } => ErrorKind::Internal,
            StoreError::Decode(d) => d.kind(),
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
