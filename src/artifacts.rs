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

use std::sync::Arc;

use bytes::Bytes;
use chrono::NaiveDate;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ErrorKind;
use crate::objects::S3Access;
use crate::objects::{self, ObjectStore};
use crate::source::{Location, ObjectInfo, SourceError};

/// Why an artifact could not be written or read; each names the key.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("artifact {key}: {source}")]
    Object {
        key: String,
        #[source]
        source: SourceError,
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

impl ArtifactError {
    fn object(key: &str, source: SourceError) -> Self {
        match source {
            SourceError::NotFound { .. } => Self::NotFound { key: key.into() },
            source => Self::Object {
                key: key.into(),
                source,
            },
        }
    }

    /// The object store's failure decides; an artifact missing or unreadable is final.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Object { source, .. } => source.kind(),
            Self::Json { .. } | Self::NotFound { .. } => ErrorKind::Failed,
        }
    }
}

/// Where a run's artifacts live: a directory or an `s3://` prefix.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    location: Location,
    objects: Arc<dyn ObjectStore>,
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
    pub async fn open(location: &str, s3: &S3Access) -> Result<Self, ArtifactError> {
        let root = |e| ArtifactError::object(location, e);
        let location = Location::parse(location).map_err(root)?;
        let objects = objects::store_at(&location, s3).await.map_err(root)?;
        Ok(Self { location, objects })
    }

    /// Store `value` as JSON under `key`, replacing what was there (atomically).
    pub async fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), ArtifactError> {
        let body = serde_json::to_vec(value).map_err(|source| ArtifactError::Json {
            key: key.into(),
            source,
        })?;
        self.objects
            .put(key, Bytes::from(body))
            .await
            .map_err(|e| ArtifactError::object(key, e))
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
        let bytes = self
            .objects
            .get(key)
            .await
            .map_err(|e| ArtifactError::object(key, e))?;
        serde_json::from_slice(&bytes).map_err(|source| ArtifactError::Json {
            key: key.into(),
            source,
        })
    }

    /// Keys starting with `prefix`, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, ArtifactError> {
        self.objects
            .list(prefix)
            .await
            .map_err(|e| ArtifactError::object(prefix, e))
    }

    /// Remove every artifact under `prefix` (a finished run's directory).
    pub async fn remove_prefix(&self, prefix: &str) -> Result<(), ArtifactError> {
        self.objects
            .delete_prefix(prefix)
            .await
            .map_err(|e| ArtifactError::object(prefix, e))
    }

    /// The bucket and full object key of `key` (what an S3 `ItemReader` names); a local
    /// store has no bucket and gives the file's path.
    pub fn object(&self, key: &str) -> (String, String) {
        match &self.location {
            Location::Local(dir) => (String::new(), dir.join(key).display().to_string()),
            Location::S3 { bucket, key: root } => {
                let root = root.trim_end_matches('/');
                let full = if root.is_empty() {
                    key.to_string()
                } else {
                    format!("{root}/{key}")
                };
                (bucket.clone(), full)
            }
        }
    }

    /// Where the store is, as a URL (for messages and the run record).
    pub fn url(&self) -> String {
        match &self.location {
            Location::Local(_) => self.location.url(),
            Location::S3 { .. } => self.objects.url(""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_artifacts_round_trip_and_list_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path().to_str().unwrap(), &S3Access::default())
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
