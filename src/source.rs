//! Ranged reads of granule objects: the only I/O the HDF5 indexer needs.
//!
//! A granule lives on a local disk or in S3 ([`crate::objects`]); the indexer sees one
//! small trait, [`RangeRead`], so it issues the same requests to both and depends on
//! nothing else.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::error::{BoxError, ErrorKind, error_chain};

/// Errors reading a granule object; each names the object it concerns.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{location}: {source}")]
    Io {
        location: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{location}: S3 request failed{}: {}", endpoint_note(.endpoint), error_chain(.source.as_ref()))]
    S3 {
        location: String,
        /// The custom endpoint the request went to, if any: a newcomer's first question.
        endpoint: Option<String>,
        /// A throttle, a 5xx, a timeout or a broken connection: trying again may work.
        retryable: bool,
        #[source]
        source: BoxError,
    },
    #[error("{location}: requested bytes {start}..{end} but the object has {size} bytes")]
    OutOfBounds {
        location: String,
        start: u64,
        end: u64,
        size: u64,
    },
    #[error("{url}: not a location (expected a path, file:// or s3:// URL)")]
    BadUrl { url: String },
    #[error("{location}: no such object")]
    NotFound { location: String },
}

fn endpoint_note(endpoint: &Option<String>) -> String {
    endpoint
        .as_deref()
        .map(|e| format!(" (endpoint {e})"))
        .unwrap_or_default()
}

impl SourceError {
    /// A location that does not parse is the caller's mistake; the rest may pass on
    /// their own or not, as [`Self::is_retryable`] says.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SourceError::BadUrl { .. } => ErrorKind::InvalidInput,
            e => ErrorKind::retryable_if(e.is_retryable()),
        }
    }

    /// Whether the failure may pass on its own (I/O, throttling, 5xx, timeouts).
    pub fn is_retryable(&self) -> bool {
        match self {
            SourceError::Io { source, .. } => !matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ),
            SourceError::S3 { retryable, .. } => *retryable,
            SourceError::OutOfBounds { .. }
            | SourceError::BadUrl { .. }
            | SourceError::NotFound { .. } => false,
        }
    }
}

/// Where an object or a prefix lives: the one parser for the paths, `file://` and
/// `s3://` URLs that every command takes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// An absolute local path.
    Local(PathBuf),
    /// A bucket and a key (or key prefix, possibly empty).
    S3 { bucket: String, key: String },
}

impl Location {
    /// Parse a path (made absolute), a `file://` URL or `s3://bucket[/key]`.
    pub fn parse(location: &str) -> Result<Self, SourceError> {
        let bad = || SourceError::BadUrl {
            url: location.to_string(),
        };
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad());
            }
            return Ok(Self::S3 {
                bucket: bucket.into(),
                key: key.into(),
            });
        }
        let path = if location.starts_with("file://") {
            url::Url::parse(location)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .ok_or_else(bad)?
        } else if location.contains("://") || location.is_empty() {
            return Err(bad());
        } else {
            PathBuf::from(location)
        };
        let abs = std::path::absolute(&path).map_err(|source| SourceError::Io {
            location: location.into(),
            source,
        })?;
        Ok(Self::Local(abs))
    }

    /// The canonical URL: `file:///abs/path` or `s3://bucket/key`.
    pub fn url(&self) -> String {
        match self {
            Location::Local(path) => url::Url::from_file_path(path)
                .map(String::from)
                .unwrap_or_else(|()| format!("file://{}", path.display())),
            Location::S3 { bucket, key } => format!("s3://{bucket}/{key}"),
        }
    }
}

/// What identifies one version of a source object, so a reference can be pinned to it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectInfo {
    /// Canonical URL of the object (`file:///abs/path` or `s3://bucket/key`).
    pub url: String,
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: Option<DateTime<Utc>>,
}

/// Byte-range access to one object; async so many ranges can be in flight at once.
#[async_trait]
pub trait RangeRead: Send + Sync {
    /// The object's URL, used in references and error messages.
    fn url(&self) -> &str;
    /// Size and version of the object (one HEAD or `stat`).
    async fn info(&self) -> Result<ObjectInfo, SourceError>;
    /// Bytes `range.start..range.end` of the object; a range past the end is an error.
    async fn read_range(&self, range: Range<u64>) -> Result<Bytes, SourceError>;

    /// The first `len` bytes (all of a shorter object) and the object's info: one
    /// request where the backend returns both, saving a round trip per granule.
    async fn read_head(&self, len: u64) -> Result<(Bytes, ObjectInfo), SourceError> {
        let info = self.info().await?;
        let head = self.read_range(0..len.min(info.size)).await?;
        Ok((head, info))
    }
}

/// Fail unless `range` lies within an object of `size` bytes.
pub(crate) fn check_bounds(
    location: &str,
    range: &Range<u64>,
    size: u64,
) -> Result<(), SourceError> {
    if range.start > range.end || range.end > size {
        return Err(SourceError::OutOfBounds {
            location: location.to_string(),
            start: range.start,
            end: range.end,
            size,
        });
    }
    Ok(())
}

/// Request and byte counts, for `--stats` and benchmarks.
#[derive(Debug, Default)]
pub struct ReadStats {
    pub requests: AtomicU64,
    pub bytes: AtomicU64,
}

impl ReadStats {
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// Wraps a reader and counts what passes through it.
pub struct Counted<R: ?Sized> {
    pub stats: Arc<ReadStats>,
    inner: Arc<R>,
}

impl<R: RangeRead + ?Sized> Counted<R> {
    pub fn new(inner: Arc<R>) -> Self {
        Self {
            stats: Arc::default(),
            inner,
        }
    }
}

#[async_trait]
impl<R: RangeRead + ?Sized> RangeRead for Counted<R> {
    fn url(&self) -> &str {
        self.inner.url()
    }

    async fn info(&self) -> Result<ObjectInfo, SourceError> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        self.inner.info().await
    }

    async fn read_head(&self, len: u64) -> Result<(Bytes, ObjectInfo), SourceError> {
        let (head, info) = self.inner.read_head(len).await?;
        // One request: a single GET on S3 (locally, a stat and a read of the same file).
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes
            .fetch_add(head.len() as u64, Ordering::Relaxed);
        Ok((head, info))
    }

    async fn read_range(&self, range: Range<u64>) -> Result<Bytes, SourceError> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let bytes = self.inner.read_range(range).await?;
        self.stats
            .bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }
}

/// An in-memory object, for tests and fuzzing.
#[derive(Debug, Clone)]
pub struct InMemory {
    pub url: String,
    pub data: Bytes,
}

#[async_trait]
impl RangeRead for InMemory {
    fn url(&self) -> &str {
        &self.url
    }

    async fn info(&self) -> Result<ObjectInfo, SourceError> {
        Ok(ObjectInfo {
            url: self.url.clone(),
            size: self.data.len() as u64,
            etag: None,
            last_modified: None,
        })
    }

    async fn read_range(&self, range: Range<u64>) -> Result<Bytes, SourceError> {
        check_bounds(&self.url, &range, self.data.len() as u64)?;
        Ok(self.data.slice(range.start as usize..range.end as usize))
    }
}
