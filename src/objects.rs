//! Where objects live, behind one small trait (after `object_store`'s): a local
//! directory or an S3 bucket. Granule reads ([`RangeRead`]), run artifacts and granule
//! listings all sit on it, so each backend's requests, errors and retries are written
//! once.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use aws_credential_types::provider::SharedCredentialsProvider;
use tokio::sync::OnceCell;

use crate::aws::{AwsSettings, sdk_retryable};
use crate::credentials::{EdlSettings, PodaacCredentials, PodaacProvider};
use crate::retry::Backoff;
use crate::source::{Location, ObjectInfo, RangeRead, SourceError, check_bounds};

/// One S3 account as this process reaches it: settings, an optional Earthdata login
/// for PO.DAAC's bucket, and the client, built on first use and shared by every clone
/// (so a Lambda container builds it once, not once per object).
#[derive(Clone, Default)]
pub struct S3Access {
    settings: AwsSettings,
    earthdata: Option<EdlSettings>,
    client: Arc<OnceCell<aws_sdk_s3::Client>>,
}

impl std::fmt::Debug for S3Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Access")
            .field("settings", &self.settings)
            .field("earthdata", &self.earthdata)
            .field("client_built", &self.client.initialized())
            .finish()
    }
}

impl From<AwsSettings> for S3Access {
    fn from(settings: AwsSettings) -> Self {
        Self::new(settings)
    }
}

impl S3Access {
    pub fn new(settings: AwsSettings) -> Self {
        Self {
            settings,
            earthdata: None,
            client: Arc::default(),
        }
    }

    /// Sign with PO.DAAC's temporary credentials, obtained (and refreshed) through this
    /// Earthdata login, instead of the settings' own.
    pub fn with_earthdata(mut self, login: Option<EdlSettings>) -> Self {
        self.earthdata = login;
        self.client = Arc::default();
        self
    }

    /// What granules are read with: [`AwsSettings::source_from_env`], signed through an
    /// Earthdata login when one is configured (`MURSST_EDL_SECRET_ARN` or `EARTHDATA_*`).
    pub fn source_from_env() -> Self {
        Self::new(AwsSettings::source_from_env()).with_earthdata(EdlSettings::from_env())
    }

    pub fn settings(&self) -> &AwsSettings {
        &self.settings
    }

    /// The Earthdata login requests are signed through, if any.
    pub fn earthdata(&self) -> Option<&EdlSettings> {
        self.earthdata.as_ref()
    }

    /// The client (a cheap handle onto one connection pool), built the first time.
    pub async fn client(&self) -> aws_sdk_s3::Client {
        self.client
            .get_or_init(|| async {
                let provider = self.earthdata.as_ref().map(|login| {
                    SharedCredentialsProvider::new(PodaacProvider(PodaacCredentials::shared(login)))
                });
                let shared = self.settings.sdk_config_with(provider).await;
                let conf = aws_sdk_s3::config::Builder::from(&shared)
                    .force_path_style(self.settings.force_path_style)
                    .build();
                aws_sdk_s3::Client::from_conf(conf)
            })
            .await
            .clone()
    }
}

/// Objects under one root, addressed by keys relative to it (`a/b.json`).
#[async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// The object's URL (`file:///…` or `s3://bucket/…`), for references and errors.
    fn url(&self, key: &str) -> String;
    /// Size and version (one HEAD or `stat`).
    async fn head(&self, key: &str) -> Result<ObjectInfo, SourceError>;
    /// Bytes `range` of the object; a range past its end is an error.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, SourceError>;
    /// The first `len` bytes (all of a shorter object) and the object's info, in one
    /// request where the backend answers both.
    async fn get_head(&self, key: &str, len: u64) -> Result<(Bytes, ObjectInfo), SourceError> {
        let info = self.head(key).await?;
        let head = self.get_range(key, 0..len.min(info.size)).await?;
        Ok((head, info))
    }
    /// The whole object; [`SourceError::NotFound`] if there is none.
    async fn get(&self, key: &str) -> Result<Bytes, SourceError>;
    /// Store `body` under `key`, replacing what was there (a reader sees the old object
    /// or the new one, never part of one).
    async fn put(&self, key: &str, body: Bytes) -> Result<(), SourceError>;
    /// The keys starting with `prefix` (which may end mid-name), sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, SourceError>;
    /// Remove every object whose key starts with `prefix`.
    async fn delete_prefix(&self, prefix: &str) -> Result<(), SourceError>;
}

/// The store holding `location` (a directory or `s3://bucket/prefix`), with S3 reached
/// through `s3`'s client.
pub async fn store_at(
    location: &Location,
    s3: &S3Access,
) -> Result<Arc<dyn ObjectStore>, SourceError> {
    Ok(match location {
        Location::Local(dir) => Arc::new(LocalDir::new(dir.clone())),
        Location::S3 { bucket, key } => Arc::new(S3Bucket::open(s3, bucket, key).await),
    })
}

/// Open a granule given as a path, `file://` or `s3://` URL.
pub async fn open(url: &str, s3: &S3Access) -> Result<Arc<dyn RangeRead>, SourceError> {
    match Location::parse(url)? {
        Location::S3 { bucket, key } if !key.is_empty() && !key.ends_with('/') => {
            let bucket = S3Bucket::open(s3, &bucket, "").await;
            Ok(Arc::new(Object::new(Arc::new(bucket), key)))
        }
        Location::S3 { .. } => Err(SourceError::BadUrl { url: url.into() }),
        Location::Local(path) => Ok(Arc::new(Object::local(path)?)),
    }
}

/// One object of a store, read in byte ranges.
#[derive(Debug, Clone)]
pub struct Object {
    store: Arc<dyn ObjectStore>,
    key: String,
    url: String,
}

impl Object {
    pub fn new(store: Arc<dyn ObjectStore>, key: impl Into<String>) -> Self {
        let key = key.into();
        Self {
            url: store.url(&key),
            store,
            key,
        }
    }

    /// A local file; the path is made absolute, so references name it from anywhere.
    pub fn local(path: impl AsRef<Path>) -> Result<Self, SourceError> {
        let path = path.as_ref();
        let abs = std::path::absolute(path).map_err(|source| SourceError::Io {
            location: path.display().to_string(),
            source,
        })?;
        let (Some(dir), Some(name)) = (abs.parent(), abs.file_name()) else {
            return Err(SourceError::BadUrl {
                url: abs.display().to_string(),
            });
        };
        let store = Arc::new(LocalDir::new(dir.to_path_buf()));
        Ok(Self::new(store, name.to_string_lossy()))
    }

    /// `s3://bucket/key` through `client` (one client serves many objects: pass a clone).
    pub fn s3(client: aws_sdk_s3::Client, bucket: &str, key: &str) -> Self {
        Self::new(Arc::new(S3Bucket::new(client, bucket, "")), key)
    }
}

#[async_trait]
impl RangeRead for Object {
    fn url(&self) -> &str {
        &self.url
    }

    async fn info(&self) -> Result<ObjectInfo, SourceError> {
        self.store.head(&self.key).await
    }

    async fn read_range(&self, range: Range<u64>) -> Result<Bytes, SourceError> {
        self.store.get_range(&self.key, range).await
    }

    async fn read_head(&self, len: u64) -> Result<(Bytes, ObjectInfo), SourceError> {
        self.store.get_head(&self.key, len).await
    }
}

/// Objects as files under a local directory.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn io_err(&self, key: &str, source: std::io::Error) -> SourceError {
        SourceError::Io {
            location: self.url(key),
            source,
        }
    }
}

#[async_trait]
impl ObjectStore for LocalDir {
    fn url(&self, key: &str) -> String {
        Location::Local(self.path(key)).url()
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo, SourceError> {
        let meta = tokio::fs::metadata(self.path(key))
            .await
            .map_err(|e| self.io_err(key, e))?;
        Ok(ObjectInfo {
            url: self.url(key),
            size: meta.len(),
            etag: None,
            last_modified: meta.modified().ok().map(DateTime::<Utc>::from),
        })
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, SourceError> {
        let io = |e| self.io_err(key, e);
        let mut file = tokio::fs::File::open(self.path(key)).await.map_err(io)?;
        let size = file.metadata().await.map_err(io)?.len();
        check_bounds(&self.url(key), &range, size)?;
        file.seek(std::io::SeekFrom::Start(range.start))
            .await
            .map_err(io)?;
        let mut buf = vec![0u8; (range.end - range.start) as usize];
        file.read_exact(&mut buf).await.map_err(io)?;
        Ok(Bytes::from(buf))
    }

    async fn get(&self, key: &str) -> Result<Bytes, SourceError> {
        match tokio::fs::read(self.path(key)).await {
            Ok(b) => Ok(Bytes::from(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SourceError::NotFound {
                location: self.url(key),
            }),
            Err(e) => Err(self.io_err(key, e)),
        }
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<(), SourceError> {
        let path = self.path(key);
        let io = |e| self.io_err(key, e);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        // A name of its own, so writers of one key at once never rename each other's file.
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let mut partial = path.clone().into_os_string();
        let n = WRITES.fetch_add(1, Ordering::Relaxed);
        partial.push(format!(".{}-{n}{PARTIAL}", std::process::id()));
        tokio::fs::write(&partial, &body).await.map_err(io)?;
        tokio::fs::rename(&partial, &path).await.map_err(io)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, SourceError> {
        let (parent, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let io = |e| self.io_err(prefix, e);
        let mut pending = vec![self.path(parent)];
        let mut keys = Vec::new();
        while let Some(dir) = pending.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(e)),
            };
            while let Some(entry) = entries.next_entry().await.map_err(io)? {
                let path = entry.path();
                if entry.file_type().await.map_err(io)?.is_dir() {
                    pending.push(path);
                    continue;
                }
                let Ok(rel) = path.strip_prefix(&self.root) else {
                    continue;
                };
                let key = rel.to_string_lossy().replace('\\', "/");
                if key.starts_with(prefix) && !key.ends_with(PARTIAL) {
                    keys.push(key);
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<(), SourceError> {
        let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
        if prefix.ends_with('/') {
            // A whole directory, so a finished run leaves no empty directories behind.
            return match tokio::fs::remove_dir_all(self.path(prefix)).await {
                Err(e) if !gone(&e) => Err(self.io_err(prefix, e)),
                _ => Ok(()),
            };
        }
        for key in self.list(prefix).await? {
            match tokio::fs::remove_file(self.path(&key)).await {
                Err(e) if !gone(&e) => return Err(self.io_err(&key, e)),
                _ => {}
            }
        }
        Ok(())
    }
}

/// The suffix of a file being written; [`LocalDir::list`] never shows one.
const PARTIAL: &str = ".partial";

/// Objects under a prefix of an S3 bucket; every request is retried as
/// [`Backoff::S3`] says.
#[derive(Debug, Clone)]
pub struct S3Bucket {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Empty, or ends in `/`.
    prefix: String,
    /// The custom endpoint the client talks to, for error messages.
    endpoint: Option<String>,
}

impl S3Bucket {
    /// Keys under `prefix` of `bucket` (a prefix gets its trailing `/`).
    pub fn new(client: aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Self {
        let prefix = prefix.trim_end_matches('/');
        Self {
            client,
            bucket: bucket.into(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            endpoint: None,
        }
    }

    /// [`Self::new`] with `access`'s client, naming its endpoint in errors.
    pub async fn open(access: &S3Access, bucket: &str, prefix: &str) -> Self {
        Self {
            endpoint: access.settings().endpoint.clone(),
            ..Self::new(access.client().await, bucket, prefix)
        }
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn s3_err<E: std::error::Error + Send + Sync + 'static>(
        &self,
        key: &str,
        err: aws_sdk_s3::error::SdkError<E>,
    ) -> SourceError {
        SourceError::S3 {
            location: self.url(key),
            endpoint: self.endpoint.clone(),
            retryable: sdk_retryable(&err),
            source: Box::new(err),
        }
    }

    /// A body that broke off mid-transfer.
    fn body_err(&self, key: &str, err: aws_sdk_s3::primitives::ByteStreamError) -> SourceError {
        SourceError::S3 {
            location: self.url(key),
            endpoint: self.endpoint.clone(),
            retryable: true,
            source: Box::new(err),
        }
    }

    /// `call` again after a transient failure, as [`Backoff::S3`] says.
    async fn retrying<T, F, Fut>(&self, key: &str, call: F) -> Result<T, SourceError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, SourceError>>,
    {
        let on_retry = |attempt: u32, e: &SourceError| {
            S3_RETRIES.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(object = %self.url(key), attempt, error = %e, "retrying");
        };
        Backoff::S3
            .retry(call, SourceError::is_retryable, on_retry)
            .await
    }

    /// The contract's error for a range outside the object, with its size when known.
    async fn out_of_bounds(&self, key: &str, range: &Range<u64>, size: Option<u64>) -> SourceError {
        let size = match size {
            Some(s) => s,
            None => match self.head_once(key).await {
                Ok(info) => info.size,
                Err(e) => return e,
            },
        };
        SourceError::OutOfBounds {
            location: self.url(key),
            start: range.start,
            end: range.end,
            size,
        }
    }

    async fn head_once(&self, key: &str) -> Result<ObjectInfo, SourceError> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| self.s3_err(key, e))?;
        Ok(ObjectInfo {
            url: self.url(key),
            size: head.content_length().unwrap_or(0).max(0) as u64,
            etag: head.e_tag().map(str::to_string),
            last_modified: timestamp(head.last_modified()),
        })
    }

    async fn get_head_once(&self, key: &str, len: u64) -> Result<(Bytes, ObjectInfo), SourceError> {
        if len == 0 {
            return Ok((Bytes::new(), self.head_once(key).await?));
        }
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .range(format!("bytes=0-{}", len - 1))
            .send()
            .await
            .map_err(|e| self.s3_err(key, e))?;
        // `Content-Range: bytes 0-N/TOTAL` carries the size; a full (200) answer does not.
        let total = out.content_range().and_then(content_range_total);
        let etag = out.e_tag().map(str::to_string);
        let last_modified = timestamp(out.last_modified());
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| self.body_err(key, e))?;
        let head = body.into_bytes();
        let info = ObjectInfo {
            url: self.url(key),
            size: total.unwrap_or(head.len() as u64),
            etag,
            last_modified,
        };
        Ok((head, info))
    }

    async fn get_range_once(&self, key: &str, range: Range<u64>) -> Result<Bytes, SourceError> {
        if range.start > range.end {
            return Err(self.out_of_bounds(key, &range, None).await);
        }
        if range.start == range.end {
            // An empty read asks nothing of S3, but it must still lie within the object.
            let size = self.head_once(key).await?.size;
            check_bounds(&self.url(key), &range, size)?;
            return Ok(Bytes::new());
        }
        let sent = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            // 416: the range starts at or past the end.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
                return Err(self.out_of_bounds(key, &range, None).await);
            }
            Err(e) => return Err(self.s3_err(key, e)),
        };
        let total = out.content_range().and_then(content_range_total);
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| self.body_err(key, e))?;
        let bytes = body.into_bytes();
        if bytes.len() as u64 != range.end - range.start {
            return Err(self.out_of_bounds(key, &range, total).await);
        }
        Ok(bytes)
    }

    async fn get_once(&self, key: &str) -> Result<Bytes, SourceError> {
        let sent = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                return Err(SourceError::NotFound {
                    location: self.url(key),
                });
            }
            Err(e) => return Err(self.s3_err(key, e)),
        };
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| self.body_err(key, e))?;
        Ok(body.into_bytes())
    }

    async fn list_once(&self, prefix: &str) -> Result<Vec<String>, SourceError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.full_key(prefix))
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.s3_err(prefix, e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key()?.strip_prefix(self.prefix.as_str()))
                    .map(str::to_string),
            );
        }
        keys.sort();
        Ok(keys)
    }
}

#[async_trait]
impl ObjectStore for S3Bucket {
    fn url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.full_key(key))
    }

    async fn head(&self, key: &str) -> Result<ObjectInfo, SourceError> {
        self.retrying(key, || self.head_once(key)).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, SourceError> {
        self.retrying(key, || self.get_range_once(key, range.clone()))
            .await
    }

    async fn get_head(&self, key: &str, len: u64) -> Result<(Bytes, ObjectInfo), SourceError> {
        self.retrying(key, || self.get_head_once(key, len)).await
    }

    async fn get(&self, key: &str) -> Result<Bytes, SourceError> {
        self.retrying(key, || self.get_once(key)).await
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<(), SourceError> {
        self.retrying(key, || async {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(self.full_key(key))
                .body(body.clone().into())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.s3_err(key, e))
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, SourceError> {
        self.retrying(prefix, || self.list_once(prefix)).await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<(), SourceError> {
        for key in self.list(prefix).await? {
            self.retrying(&key, || async {
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(self.full_key(&key))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| self.s3_err(&key, e))
            })
            .await?;
        }
        Ok(())
    }
}

fn timestamp(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()))
}

/// The object size in `Content-Range: bytes A-B/TOTAL`.
fn content_range_total(range: &str) -> Option<u64> {
    range.rsplit_once('/').and_then(|(_, t)| t.parse().ok())
}

/// Transient S3 failures retried so far in this process, for reports.
static S3_RETRIES: AtomicU64 = AtomicU64::new(0);

/// Retries of S3 requests so far in this process (a report gives the difference).
pub fn s3_retries() -> u64 {
    S3_RETRIES.load(Ordering::Relaxed)
}
