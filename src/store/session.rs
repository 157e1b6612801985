//! One icechunk session seen through both store APIs: icechunk's own (metadata keys,
//! virtual references, commits) and zarrs' (real chunks, any codec), so zarrs' chunk
//! writes land in the same commit as the references.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use icechunk::format::SnapshotId;
use icechunk::format::snapshot::SnapshotProperties;
use icechunk::session::Session;
use icechunk::store::ListDirItem;
use icechunk::{Store, format::ByteRange};
use serde_json::{Map, Value};
use tokio::sync::RwLock;
use zarrs::array::Array;
use zarrs_icechunk::AsyncIcechunkStore;

use super::StoreError;
use super::layout::{self, ArrayMeta, GroupMeta};

/// A session shared by the icechunk Zarr store API and zarrs.
pub struct SessionStores {
    pub icechunk: Store,
    pub zarrs: Arc<AsyncIcechunkStore>,
}

impl SessionStores {
    /// Both APIs over one session.
    pub async fn new(session: Session) -> Self {
        let shared = Arc::new(RwLock::new(session));
        Self {
            icechunk: Store::from_session(Arc::clone(&shared)).await,
            zarrs: Arc::new(AsyncIcechunkStore::from(shared)),
        }
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self.icechunk.get(key, &ByteRange::ALL).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if matches!(e.kind, icechunk::store::StoreErrorKind::NotFound(_)) => Ok(None),
            Err(e) => Err(StoreError::icechunk(format!("reading {key}"), e)),
        }
    }

    pub(crate) async fn set(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.icechunk
            .set(key, Bytes::from(value))
            .await
            .map_err(|e| StoreError::icechunk(format!("writing {key}"), e))
    }

    /// Write an array's metadata.
    pub(crate) async fn set_array(&self, name: &str, meta: &ArrayMeta) -> Result<(), StoreError> {
        self.set(&format!("{name}/zarr.json"), meta.to_bytes())
            .await
    }

    /// Write the root group's metadata with the store's global attributes.
    pub(crate) async fn set_group(&self, attributes: Map<String, Value>) -> Result<(), StoreError> {
        self.set("zarr.json", GroupMeta::new(attributes).to_bytes())
            .await
    }

    /// Open an array with zarrs, for reading and writing real chunks.
    pub async fn array(&self, name: &str) -> Result<Array<AsyncIcechunkStore>, StoreError> {
        Array::async_open(Arc::clone(&self.zarrs), &format!("/{name}"))
            .await
            .map_err(|e| StoreError::zarr(format!("opening array {name}"), e))
    }

    /// The root group's attributes and every child array's metadata, or `None` if the
    /// repository has no root group yet.
    pub async fn nodes(
        &self,
    ) -> Result<Option<(Map<String, Value>, Vec<(String, ArrayMeta)>)>, StoreError> {
        let Some(group) = self.get("zarr.json").await? else {
            return Ok(None);
        };
        let group = GroupMeta::parse(&group)?;
        let children: Vec<ListDirItem> = self
            .icechunk
            .list_dir_items("")
            .await
            .map_err(|e| StoreError::icechunk("listing the root group", e))?
            .try_collect()
            .await
            .map_err(|e| StoreError::icechunk("listing the root group", e))?;
        let mut arrays = Vec::new();
        for item in children {
            let ListDirItem::Prefix(name) = item else {
                continue;
            };
            let Some(bytes) = self.get(&format!("{name}/zarr.json")).await? else {
                continue;
            };
            if layout::is_array(&bytes) {
                arrays.push((name.clone(), ArrayMeta::parse(&name, &bytes)?));
            }
        }
        Ok(Some((group.attributes, arrays)))
    }

    /// Commit the session, returning the new snapshot.
    pub async fn commit(
        &self,
        message: &str,
        properties: SnapshotProperties,
    ) -> Result<SnapshotId, StoreError> {
        let session = self.icechunk.session();
        let mut session = session.write().await;
        session
            .commit(message)
            .properties(properties)
            .execute()
            .await
            .map_err(|e| StoreError::icechunk(format!("committing {message:?}"), e))
    }
}
