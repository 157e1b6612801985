//! Run artifacts: what one step hands the next when they run as separate processes
//! (a granule's references are far too large for a Step Functions payload).
//!
//! Layout under the artifact root (a local directory or an `s3://` prefix):
//!
//! ```text
//! runs/<run-id>/refs/<day>-<version>.json   one granule's PreparedGranule
//! runs/<run-id>/days/<day>.json             which version is current for the day
//! runs/<run-id>/native/<day>-<version>.plan.json  what commit asks materialize to write
//! runs/<run-id>/native/<day>-<version>.json       the native chunks materialize wrote
//! runs/<run-id>/manifest.json               the backfill's granule list
//! ```
//!
//! Keys are deterministic (the version is the granule's ETag, or its size and mtime), so
//! a retried or redriven step overwrites or reuses an artifact, never duplicates it.
//! A finished run's directory is removable as a whole.

use std::path::PathBuf;

use chrono::NaiveDate;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::BoxError;
use crate::source::{Location, ObjectInfo, S3Settings, SourceError};

/// Why an artifact could not be written or read; each names the key.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error(transparent)]
    Location(#[from] SourceError),
    #[error("artifact {key}: {source}")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("artifact {key}: S3: {}", crate::error::error_chain(.source.as_ref()))]
    S3 {
        key: String,
        #[source]
        source: BoxError,
    },
    #[error("artifact {key}: not valid JSON of the expected shape: {source}")]
    Json {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("artifact {key}: not found")]
    NotFound { key: String },
}

/// Where a run's artifacts live.
#[derive(Debug, Clone)]
pub enum ArtifactStore {
    Local(PathBuf),
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        prefix: String,
    },
}

/// The key of a run's directory.
pub fn run_prefix(run_id: &str) -> String {
    format!("runs/{run_id}/")
}

/// The key of a granule's references for a run: one per day and granule version.
pub fn refs_key(run_id: &str, day: NaiveDate, object: &ObjectInfo) -> String {
    format!("{}{}", refs_day_prefix(run_id, day), version_tag(object)) + ".json"
}

/// The key of what the commit step asks the materialize step to write for a day's
/// granule version.
pub fn native_plan_key(run_id: &str, day: NaiveDate, object: &ObjectInfo) -> String {
    format!(
        "{}native/{day}-{}.plan.json",
        run_prefix(run_id),
        version_tag(object)
    )
}

/// The key of the native chunks the materialize step wrote for a day's granule version.
pub fn native_key(run_id: &str, day: NaiveDate, object: &ObjectInfo) -> String {
    format!(
        "{}native/{day}-{}.json",
        run_prefix(run_id),
        version_tag(object)
    )
}

/// The key of the pointer to a day's current references (a generate-refs output).
pub fn day_pointer_key(run_id: &str, day: NaiveDate) -> String {
    format!("{}days/{day}.json", run_prefix(run_id))
}

/// The key of a backfill's granule list.
pub fn manifest_key(run_id: &str) -> String {
    format!("{}manifest.json", run_prefix(run_id))
}

/// The prefix every version of one day's references shares.
pub fn refs_day_prefix(run_id: &str, day: NaiveDate) -> String {
    format!("{}refs/{day}-", run_prefix(run_id))
}

/// A file-name-safe tag for one version of an object.
pub fn version_tag(object: &ObjectInfo) -> String {
    match (&object.etag, object.last_modified) {
        (Some(etag), _) => {
            let clean: String = etag
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            format!("e{clean}")
        }
        (None, modified) => format!(
            "s{}-m{}",
            object.size,
            modified.map_or(0, |t| t.timestamp_nanos_opt().unwrap_or_default())
        ),
    }
}

impl ArtifactStore {
    /// Open the artifact root at `location` (a directory or `s3://bucket/prefix`).
    pub async fn open(location: &str, s3: &S3Settings) -> Result<Self, ArtifactError> {
        Ok(match Location::parse(location)? {
            Location::Local(dir) => Self::Local(dir),
            Location::S3 { bucket, key } => {
                let prefix = key.trim_end_matches('/');
                Self::S3 {
                    client: s3.client().await,
                    bucket,
                    prefix: if prefix.is_empty() {
                        String::new()
                    } else {
                        format!("{prefix}/")
                    },
                }
            }
        })
    }

    /// Store `value` as JSON under `key`, replacing what was there (atomically locally).
    pub async fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), ArtifactError> {
        let body = serde_json::to_vec(value).map_err(|source| ArtifactError::Json {
            key: key.into(),
            source,
        })?;
        match self {
            Self::Local(dir) => {
                let path = dir.join(key);
                let io = |source| ArtifactError::Io {
                    key: key.into(),
                    source,
                };
                if let Some(parent) = path.parent() {
                    tokio::fs::create_dir_all(parent).await.map_err(io)?;
                }
                let tmp = path.with_extension("json.partial");
                tokio::fs::write(&tmp, &body).await.map_err(io)?;
                tokio::fs::rename(&tmp, &path).await.map_err(io)
            }
            Self::S3 {
                client,
                bucket,
                prefix,
            } => client
                .put_object()
                .bucket(bucket)
                .key(format!("{prefix}{key}"))
                .content_type("application/json")
                .body(body.into())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| s3_error(key, e)),
        }
    }

    /// [`Self::get_json`], with `None` where nothing is stored under `key`.
    pub async fn find_json<T: DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, ArtifactError> {
        match self.get_json(key).await {
            Ok(v) => Ok(Some(v)),
            Err(ArtifactError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Read and parse the JSON under `key`.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<T, ArtifactError> {
        let bytes = match self {
            Self::Local(dir) => match tokio::fs::read(dir.join(key)).await {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ArtifactError::NotFound { key: key.into() });
                }
                Err(source) => {
                    return Err(ArtifactError::Io {
                        key: key.into(),
                        source,
                    });
                }
            },
            Self::S3 {
                client,
                bucket,
                prefix,
            } => {
                let out = client
                    .get_object()
                    .bucket(bucket)
                    .key(format!("{prefix}{key}"))
                    .send()
                    .await;
                let out = match out {
                    Ok(out) => out,
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                        return Err(ArtifactError::NotFound { key: key.into() });
                    }
                    Err(e) => return Err(s3_error(key, e)),
                };
                out.body
                    .collect()
                    .await
                    .map_err(|e| s3_error(key, e))?
                    .to_vec()
            }
        };
        serde_json::from_slice(&bytes).map_err(|source| ArtifactError::Json {
            key: key.into(),
            source,
        })
    }

    /// Keys starting with `prefix`, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, ArtifactError> {
        let mut keys = match self {
            Self::Local(dir) => list_local(dir, prefix).await?,
            Self::S3 {
                client,
                bucket,
                prefix: root,
            } => {
                let mut pages = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(format!("{root}{prefix}"))
                    .into_paginator()
                    .send();
                let mut keys = Vec::new();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| s3_error(prefix, e))?;
                    keys.extend(
                        page.contents()
                            .iter()
                            .filter_map(|o| o.key()?.strip_prefix(root.as_str()))
                            .map(str::to_string),
                    );
                }
                keys
            }
        };
        keys.sort();
        Ok(keys)
    }

    /// Remove every artifact under `prefix` (a finished run's directory).
    pub async fn remove_prefix(&self, prefix: &str) -> Result<(), ArtifactError> {
        match self {
            Self::Local(dir) => match tokio::fs::remove_dir_all(dir.join(prefix)).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(ArtifactError::Io {
                    key: prefix.into(),
                    source,
                }),
            },
            Self::S3 {
                client,
                bucket,
                prefix: root,
            } => {
                for key in self.list(prefix).await? {
                    client
                        .delete_object()
                        .bucket(bucket)
                        .key(format!("{root}{key}"))
                        .send()
                        .await
                        .map_err(|e| s3_error(&key, e))?;
                }
                Ok(())
            }
        }
    }

    /// The bucket and full object key of `key` (what an S3 `ItemReader` names); a local
    /// store has no bucket and gives the file's path.
    pub fn object(&self, key: &str) -> (String, String) {
        match self {
            Self::Local(dir) => (String::new(), dir.join(key).display().to_string()),
            Self::S3 { bucket, prefix, .. } => (bucket.clone(), format!("{prefix}{key}")),
        }
    }

    /// Where the store is, as a URL (for messages and the run record).
    pub fn url(&self) -> String {
        match self {
            Self::Local(dir) => Location::Local(dir.clone()).url(),
            Self::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

fn s3_error(key: &str, e: impl std::error::Error + Send + Sync + 'static) -> ArtifactError {
    ArtifactError::S3 {
        key: key.into(),
        source: Box::new(e),
    }
}

/// Keys under `dir` whose path starts with `prefix` (which may end mid-name).
async fn list_local(dir: &std::path::Path, prefix: &str) -> Result<Vec<String>, ArtifactError> {
    let (parent, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
    let io = |source| ArtifactError::Io {
        key: prefix.into(),
        source,
    };
    let mut pending = vec![dir.join(parent)];
    let mut keys = Vec::new();
    while let Some(d) = pending.pop() {
        let mut entries = match tokio::fs::read_dir(&d).await {
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
            let Ok(rel) = path.strip_prefix(dir) else {
                continue;
            };
            let key = rel.to_string_lossy().replace('\\', "/");
            if key.starts_with(prefix) && !key.ends_with(".partial") {
                keys.push(key);
            }
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_artifacts_round_trip_and_list_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path().to_str().unwrap(), &S3Settings::default())
            .await
            .unwrap();
        let day = NaiveDate::from_ymd_opt(2025, 1, 2).unwrap();
        let object = ObjectInfo {
            url: "s3://b/k".into(),
            size: 10,
            etag: Some("\"abc123\"".into()),
            last_modified: None,
        };
        let key = refs_key("r1", day, &object);
        assert_eq!(key, "runs/r1/refs/2025-01-02-eabc123.json");
        store.put_json(&key, &vec![1, 2, 3]).await.unwrap();
        store.put_json(&key, &vec![4]).await.unwrap();
        assert_eq!(store.get_json::<Vec<i32>>(&key).await.unwrap(), [4]);
        assert_eq!(
            store.list(&refs_day_prefix("r1", day)).await.unwrap(),
            std::slice::from_ref(&key)
        );
        assert!(store.list("runs/r2/").await.unwrap().is_empty());
        assert!(matches!(
            store.get_json::<Vec<i32>>("runs/r1/none.json").await,
            Err(ArtifactError::NotFound { .. })
        ));
        store.remove_prefix(&run_prefix("r1")).await.unwrap();
        assert!(store.list("runs/").await.unwrap().is_empty());
    }
}
