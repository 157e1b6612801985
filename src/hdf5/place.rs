//! Where a parser is in the file, so every error names the file, object and field.

use std::sync::Arc;

use super::{Hdf5Error, Hdf5ErrorKind};

/// The file and the object (HDF5 path or structure name) being read.
#[derive(Debug, Clone)]
pub(crate) struct Place {
    file: Arc<str>,
    object: Arc<str>,
}

impl Place {
    pub(crate) fn new(file: &str, object: &str) -> Self {
        Self {
            file: file.into(),
            object: object.into(),
        }
    }

    /// The same file, another object.
    pub(crate) fn with_object(&self, object: &str) -> Self {
        Self {
            file: self.file.clone(),
            object: object.into(),
        }
    }

    pub(crate) fn err(&self, field: impl Into<String>, kind: Hdf5ErrorKind) -> Hdf5Error {
        Hdf5Error {
            file: self.file.to_string(),
            object: self.object.to_string(),
            field: field.into(),
            kind,
        }
    }
}

/// Attach a [`Place`] and a field name to a low-level parse result.
pub(crate) trait At<T> {
    fn at<F: Into<String>>(self, place: &Place, field: impl FnOnce() -> F) -> Result<T, Hdf5Error>;
}

impl<T> At<T> for Result<T, Hdf5ErrorKind> {
    fn at<F: Into<String>>(self, place: &Place, field: impl FnOnce() -> F) -> Result<T, Hdf5Error> {
        self.map_err(|kind| place.err(field(), kind))
    }
}

/// Shorthand for a `Corrupt` error kind.
pub(crate) fn corrupt(msg: impl Into<String>) -> Hdf5ErrorKind {
    Hdf5ErrorKind::Corrupt(msg.into())
}

/// Shorthand for an `Unsupported` error kind.
pub(crate) fn unsupported(msg: impl Into<String>) -> Hdf5ErrorKind {
    Hdf5ErrorKind::Unsupported(msg.into())
}

/// Shorthand for a `Limit` error kind.
pub(crate) fn limit(msg: impl Into<String>) -> Hdf5ErrorKind {
    Hdf5ErrorKind::Limit(msg.into())
}

/// The node addresses a walk has entered: in a corrupt file a node can point back at
/// one already read, and the walk must stop there instead of looping.
#[derive(Debug, Default)]
pub(crate) struct Visited(std::sync::Mutex<std::collections::HashSet<u64>>);

impl Visited {
    /// Enter the node at `addr`, or fail naming it if the walk has been there before.
    pub(crate) fn enter(
        &self,
        addr: u64,
        place: &Place,
        field: impl Into<String>,
    ) -> Result<(), Hdf5Error> {
        let first = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(addr);
        match first {
            true => Ok(()),
            false => Err(place.err(field, Hdf5ErrorKind::Cycle(addr))),
        }
    }
}
