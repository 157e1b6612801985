//! Ranged reads of granule objects: the only I/O the HDF5 indexer needs.
//!
//! A granule lives on a local disk or in S3; everything above this module sees one
//! small trait, [`RangeRead`], so the indexer issues the same requests to both.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::error::{BoxError, error_chain};
use crate::retry::Backoff;

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
}

fn endpoint_note(endpoint: &Option<String>) -> String {
    endpoint
        .as_deref()
        .map(|e| format!(" (endpoint {e})"))
        .unwrap_or_default()
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
fn check_bounds(location: &str, range: &Range<u64>, size: u64) -> Result<(), SourceError> {
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

/// A granule on the local file system.
#[derive(Debug, Clone)]
pub struct LocalFile {
    path: PathBuf,
    url: String,
}

impl LocalFile {
    /// The path is made absolute: references must name the file from anywhere.
    pub fn new(path: impl AsRef<Path>) -> Result<Self, SourceError> {
        let path = path.as_ref();
        let abs = std::path::absolute(path).map_err(|source| SourceError::Io {
            location: path.display().to_string(),
            source,
        })?;
        let url = url::Url::from_file_path(&abs)
            .map_err(|()| SourceError::BadUrl {
                url: abs.display().to_string(),
            })?
            .to_string();
        Ok(Self { path: abs, url })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_err(&self, source: std::io::Error) -> SourceError {
        SourceError::Io {
            location: self.url.clone(),
            source,
        }
    }
}

#[async_trait]
impl RangeRead for LocalFile {
    fn url(&self) -> &str {
        &self.url
    }

    async fn info(&self) -> Result<ObjectInfo, SourceError> {
        let meta = tokio::fs::metadata(&self.path)
            .await
            .map_err(|e| self.io_err(e))?;
        let last_modified = meta.modified().ok().map(DateTime::<Utc>::from);
        Ok(ObjectInfo {
            url: self.url.clone(),
            size: meta.len(),
            etag: None,
            last_modified,
        })
    }

    async fn read_range(&self, range: Range<u64>) -> Result<Bytes, SourceError> {
        let mut file = tokio::fs::File::open(&self.path)
            .await
            .map_err(|e| self.io_err(e))?;
        let size = file.metadata().await.map_err(|e| self.io_err(e))?.len();
        check_bounds(&self.url, &range, size)?;
        file.seek(std::io::SeekFrom::Start(range.start))
            .await
            .map_err(|e| self.io_err(e))?;
        let mut buf = vec![0u8; (range.end - range.start) as usize];
        file.read_exact(&mut buf)
            .await
            .map_err(|e| self.io_err(e))?;
        Ok(Bytes::from(buf))
    }
}

/// Connection settings for S3 or an S3-compatible server.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// Custom endpoint (e.g. a local S3 server); `None` uses AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Address buckets as `endpoint/bucket` rather than `bucket.endpoint`.
    pub force_path_style: bool,
    /// Static credentials; `None` uses the default AWS provider chain.
    pub credentials: Option<StaticCredentials>,
    /// Send unsigned requests (public buckets).
    pub anonymous: bool,
    /// PO.DAAC temporary credentials through Earthdata Login (granules only).
    pub edl: Option<crate::credentials::EdlSettings>,
}

/// Access key, secret and optional session token (e.g. PO.DAAC temporary credentials).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl S3Settings {
    /// Settings from the standard AWS environment, plus `MURSST_S3_FORCE_PATH_STYLE`.
    ///
    /// `AWS_ENDPOINT_URL` selects a custom endpoint, which implies path-style addressing.
    pub fn from_env() -> Self {
        let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .ok()
            .filter(|s| !s.is_empty());
        let force_path_style = match std::env::var("MURSST_S3_FORCE_PATH_STYLE") {
            Ok(v) => v == "1" || v.eq_ignore_ascii_case("true"),
            Err(_) => endpoint.is_some(),
        };
        Self {
            region: std::env::var("AWS_REGION")
                .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                .ok(),
            endpoint,
            force_path_style,
            credentials: None,
            anonymous: false,
            edl: None,
        }
    }

    /// Settings for reading granules: [`Self::from_env`] plus PO.DAAC credentials when an
    /// Earthdata login is configured (`MURSST_EDL_SECRET_ARN` or `EARTHDATA_*`), and
    /// `MURSST_SOURCE_ENDPOINT_URL` when granules are behind another endpoint.
    pub fn source_from_env() -> Self {
        let mut s = Self {
            edl: crate::credentials::EdlSettings::from_env(),
            ..Self::from_env()
        };
        if let Some(e) = std::env::var("MURSST_SOURCE_ENDPOINT_URL")
            .ok()
            .filter(|e| !e.is_empty())
        {
            s.endpoint = Some(e);
            s.force_path_style = true;
        }
        s
    }

    /// Build an S3 client for these settings.
    pub async fn client(&self) -> aws_sdk_s3::Client {
        let shared = self.sdk_config().await;
        let conf = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(self.force_path_style)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// The shared AWS configuration (region, endpoint, credentials) any client of these
    /// settings starts from.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        } else {
            loader = loader.region(
                aws_config::meta::region::RegionProviderChain::default_provider()
                    .or_else(aws_config::Region::new("us-west-2")),
            );
        }
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(c) = &self.credentials {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                &c.access_key_id,
                &c.secret_access_key,
                c.session_token.clone(),
                None,
                "mursst-static",
            ));
        }
        if let Some(edl) = &self.edl {
            let shared = crate::credentials::PodaacCredentials::shared(edl);
            loader = loader.credentials_provider(crate::credentials::PodaacProvider(shared));
        }
        if self.anonymous {
            loader = loader.no_credentials();
        }
        loader.load().await
    }
}

/// A granule in S3, read with ranged GETs.
#[derive(Debug, Clone)]
pub struct S3Object {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    url: String,
    /// The custom endpoint the client talks to, for error messages.
    endpoint: Option<String>,
}

impl S3Object {
    /// One client serves many objects; pass a clone.
    pub fn new(client: aws_sdk_s3::Client, bucket: &str, key: &str) -> Self {
        Self {
            client,
            bucket: bucket.to_string(),
            key: key.to_string(),
            url: format!("s3://{bucket}/{key}"),
            endpoint: None,
        }
    }

    /// Name the client's custom endpoint in errors.
    pub fn with_endpoint(mut self, endpoint: Option<String>) -> Self {
        self.endpoint = endpoint;
        self
    }

    fn s3_err<E: std::error::Error + Send + Sync + 'static>(
        &self,
        err: aws_sdk_s3::error::SdkError<E>,
    ) -> SourceError {
        SourceError::S3 {
            location: self.url.clone(),
            endpoint: self.endpoint.clone(),
            retryable: sdk_retryable(&err),
            source: Box::new(err),
        }
    }

    /// A body that broke off mid-transfer.
    fn body_err(&self, err: aws_sdk_s3::primitives::ByteStreamError) -> SourceError {
        SourceError::S3 {
            location: self.url.clone(),
            endpoint: self.endpoint.clone(),
            retryable: true,
            source: Box::new(err),
        }
    }
}

/// Whether an SDK error is worth another try: no answer at all, or a throttle / 5xx.
pub(crate) fn sdk_retryable<E>(err: &aws_sdk_s3::error::SdkError<E>) -> bool {
    use aws_sdk_s3::error::SdkError;
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            status == 429 || status == 503 || status >= 500
        }
        _ => false,
    }
}

/// The object size in `Content-Range: bytes A-B/TOTAL`.
fn content_range_total(range: &str) -> Option<u64> {
    range.rsplit_once('/').and_then(|(_, t)| t.parse().ok())
}

impl SourceError {
    /// Whether the failure may pass on its own (I/O, throttling, 5xx, timeouts).
    pub fn is_retryable(&self) -> bool {
        match self {
            SourceError::Io { source, .. } => !matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ),
            SourceError::S3 { retryable, .. } => *retryable,
            SourceError::OutOfBounds { .. } | SourceError::BadUrl { .. } => false,
        }
    }
}

impl S3Object {
    /// The contract's error for a range outside the object, with its size when known.
    async fn out_of_bounds(&self, range: &Range<u64>, size: Option<u64>) -> SourceError {
        let size = match size {
            Some(s) => s,
            None => match self.info().await {
                Ok(info) => info.size,
                Err(e) => return e,
            },
        };
        SourceError::OutOfBounds {
            location: self.url.clone(),
            start: range.start,
            end: range.end,
            size,
        }
    }
}

impl S3Object {
    async fn info_once(&self) -> Result<ObjectInfo, SourceError> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await
            .map_err(|e| self.s3_err(e))?;
        let last_modified = head
            .last_modified()
            .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()));
        Ok(ObjectInfo {
            url: self.url.clone(),
            size: head.content_length().unwrap_or(0).max(0) as u64,
            etag: head.e_tag().map(str::to_string),
            last_modified,
        })
    }

    async fn read_head_once(&self, len: u64) -> Result<(Bytes, ObjectInfo), SourceError> {
        if len == 0 {
            let info = self.info_once().await?;
            return Ok((Bytes::new(), info));
        }
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .range(format!("bytes=0-{}", len - 1))
            .send()
            .await
            .map_err(|e| self.s3_err(e))?;
        // `Content-Range: bytes 0-N/TOTAL` carries the size; a full (200) answer does not.
        let total = out.content_range().and_then(content_range_total);
        let etag = out.e_tag().map(str::to_string);
        let last_modified = out
            .last_modified()
            .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()));
        let body = out.body.collect().await.map_err(|e| self.body_err(e))?;
        let head = body.into_bytes();
        let info = ObjectInfo {
            url: self.url.clone(),
            size: total.unwrap_or(head.len() as u64),
            etag,
            last_modified,
        };
        Ok((head, info))
    }

    async fn read_range_once(&self, range: Range<u64>) -> Result<Bytes, SourceError> {
        if range.start > range.end {
            return Err(self.out_of_bounds(&range, None).await);
        }
        if range.start == range.end {
            // An empty read asks nothing of S3, but it must still lie within the object.
            let size = self.info_once().await?.size;
            check_bounds(&self.url, &range, size)?;
            return Ok(Bytes::new());
        }
        let sent = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            // 416: the range starts at or past the end.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
                return Err(self.out_of_bounds(&range, None).await);
            }
            Err(e) => return Err(self.s3_err(e)),
        };
        let total = out.content_range().and_then(content_range_total);
        let body = out.body.collect().await.map_err(|e| self.body_err(e))?;
        let bytes = body.into_bytes();
        if bytes.len() as u64 != range.end - range.start {
            return Err(self.out_of_bounds(&range, total).await);
        }
        Ok(bytes)
    }
}

impl S3Object {
    /// `call` again after a transient failure, as [`Backoff::S3`] says.
    async fn retrying<T, F, Fut>(&self, call: F) -> Result<T, SourceError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SourceError>>,
    {
        let on_retry = |attempt: u32, e: &SourceError| {
            S3_RETRIES.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(object = %self.url, attempt, error = %e, "retrying");
        };
        Backoff::S3
            .retry(call, SourceError::is_retryable, on_retry)
            .await
    }
}

/// Transient S3 failures retried so far in this process, for reports.
static S3_RETRIES: AtomicU64 = AtomicU64::new(0);

/// Retries of granule reads so far in this process (a report gives the difference).
pub fn s3_retries() -> u64 {
    S3_RETRIES.load(Ordering::Relaxed)
}

#[async_trait]
impl RangeRead for S3Object {
    fn url(&self) -> &str {
        &self.url
    }

    async fn info(&self) -> Result<ObjectInfo, SourceError> {
        self.retrying(|| self.info_once()).await
    }

    async fn read_head(&self, len: u64) -> Result<(Bytes, ObjectInfo), SourceError> {
        self.retrying(|| self.read_head_once(len)).await
    }

    async fn read_range(&self, range: Range<u64>) -> Result<Bytes, SourceError> {
        self.retrying(|| self.read_range_once(range.clone())).await
    }
}

/// Open a granule given as a path, `file://` or `s3://` URL.
pub async fn open(url: &str, s3: &S3Settings) -> Result<Arc<dyn RangeRead>, SourceError> {
    match Location::parse(url)? {
        Location::S3 { bucket, key } if !key.is_empty() && !key.ends_with('/') => {
            let object = S3Object::new(s3.client().await, &bucket, &key);
            Ok(Arc::new(object.with_endpoint(s3.endpoint.clone())))
        }
        Location::S3 { .. } => Err(SourceError::BadUrl { url: url.into() }),
        Location::Local(path) => Ok(Arc::new(LocalFile::new(path)?)),
    }
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
