//! Opening and creating the icechunk repository, with the virtual chunk container for
//! the granule source and manifest splitting along `time` in its configuration.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;
use futures::TryStreamExt;
use icechunk::config::{
    Credentials, ManifestConfig, ManifestSplitCondition, ManifestSplitDim,
    ManifestSplitDimCondition, ManifestSplittingConfig, S3Credentials, S3Options,
    S3StaticCredentials,
};
use icechunk::format::SnapshotId;
use icechunk::format::format_constants::SpecVersionBin;
use icechunk::refs::RefErrorKind;
use icechunk::repository::{RepositoryErrorKind, VersionInfo};
use icechunk::session::Session;
use icechunk::virtual_chunks::VirtualChunkContainer;
use icechunk::{ObjectStoreConfig, Repository, RepositoryConfig, Storage};

use super::StoreError;
use super::record::{CommitRecord, SourceVersion};
use super::session::SessionStores;
use super::state::{StoreState, read_state};
use crate::aws::AwsSettings;
use crate::objects::S3Access;
use crate::source::Location;

/// Days of references per manifest: appending a day rewrites at most one split.
pub const TIME_SPLIT_SIZE: u32 = 64;

/// Where the repository lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoLocation {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl RepoLocation {
    /// Parse a directory path or `s3://bucket/prefix`.
    pub fn parse(location: &str) -> Result<Self, StoreError> {
        match Location::parse(location) {
            Ok(Location::Local(path)) => Ok(Self::Local(path)),
            Ok(Location::S3 { bucket, key }) => Ok(Self::S3 {
                bucket,
                prefix: key.trim_end_matches('/').into(),
            }),
            Err(_) => Err(StoreError::BadLocation {
                location: location.into(),
            }),
        }
    }

    async fn storage(
        &self,
        s3: &AwsSettings,
    ) -> Result<Arc<dyn Storage + Send + Sync>, StoreError> {
        match self {
            RepoLocation::Local(path) => icechunk::new_local_filesystem_storage(path)
                .await
                .map_err(|e| StoreError::icechunk(format!("opening {}", path.display()), e)),
            RepoLocation::S3 { bucket, prefix } => icechunk::new_s3_storage(
                s3_options(s3),
                bucket.clone(),
                (!prefix.is_empty()).then(|| prefix.clone()),
                Some(s3_credentials(s3, None)),
                Vec::new(),
                Vec::new(),
                None,
            )
            .map_err(|e| StoreError::icechunk(format!("opening {self}"), e)),
        }
    }
}

impl RepoLocation {
    /// The location as error messages give it: with the custom S3 endpoint, if any, so
    /// "connection refused" says where.
    fn describe(&self, s3: &AwsSettings) -> String {
        match (self, &s3.endpoint) {
            (RepoLocation::S3 { .. }, Some(endpoint)) => format!("{self} (endpoint {endpoint})"),
            _ => self.to_string(),
        }
    }
}

impl std::fmt::Display for RepoLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RepoLocation::Local(p) => write!(f, "{}", p.display()),
            RepoLocation::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

fn s3_options(s3: &AwsSettings) -> S3Options {
    let mut options = S3Options::default()
        .with_region(s3.region.clone().unwrap_or_else(|| "us-west-2".into()))
        .with_anonymous(s3.anonymous)
        .with_force_path_style(s3.force_path_style);
    if let Some(endpoint) = &s3.endpoint {
        options = options
            .with_endpoint_url(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    options
}

/// icechunk's credentials for `s3`, or PO.DAAC's through an Earthdata login.
fn s3_credentials(
    s3: &AwsSettings,
    earthdata: Option<&crate::credentials::EdlSettings>,
) -> S3Credentials {
    if s3.anonymous {
        return S3Credentials::Anonymous;
    }
    if let Some(login) = earthdata {
        return S3Credentials::Refreshable(Arc::new(crate::credentials::PodaacFetcher(
            login.clone(),
        )));
    }
    match &s3.credentials {
        Some(c) => S3Credentials::Static(S3StaticCredentials {
            access_key_id: c.access_key_id.clone(),
            secret_access_key: c.secret_access_key.clone(),
            session_token: c.session_token.clone(),
            expires_after: None,
        }),
        None => S3Credentials::FromEnv,
    }
}

/// What the store's virtual references point into, and how it is reached: all the
/// repository needs to know of where granules come from.
#[derive(Debug, Clone)]
pub enum SourceRoot<'a> {
    /// A local directory of granules.
    Local(&'a std::path::Path),
    /// An S3 prefix (`s3://bucket/prefix/`), read through `s3`.
    S3 {
        url_prefix: String,
        s3: &'a S3Access,
    },
}

impl SourceRoot<'_> {
    /// The URL prefix every reference starts with (ends in `/`).
    pub fn url_prefix(&self) -> String {
        match self {
            SourceRoot::Local(dir) => {
                let mut url = Location::Local(dir.to_path_buf()).url();
                if !url.ends_with('/') {
                    url.push('/');
                }
                url
            }
            SourceRoot::S3 { url_prefix, .. } => url_prefix.clone(),
        }
    }

    fn s3(&self) -> &S3Access {
        static NONE: std::sync::OnceLock<S3Access> = std::sync::OnceLock::new();
        match self {
            SourceRoot::S3 { s3, .. } => s3,
            SourceRoot::Local(_) => NONE.get_or_init(S3Access::default),
        }
    }
}

/// The virtual chunk container that lets the store reference granules under `root`.
pub fn container_for(root: &SourceRoot<'_>) -> Result<VirtualChunkContainer, StoreError> {
    let store = match root {
        SourceRoot::Local(dir) => ObjectStoreConfig::LocalFileSystem(dir.to_path_buf()),
        SourceRoot::S3 { s3, .. } if s3.settings().endpoint.is_some() => {
            ObjectStoreConfig::S3Compatible(s3_options(s3.settings()))
        }
        SourceRoot::S3 { s3, .. } => ObjectStoreConfig::S3(s3_options(s3.settings())),
    };
    VirtualChunkContainer::new(root.url_prefix(), store)
        .map_err(|e| StoreError::icechunk("virtual chunk container", e))
}

/// Layered repository configuration: manifests split along `time`, so a daily append
/// rewrites a bounded amount of manifest data whatever the history length.
pub fn repo_config(container: Option<VirtualChunkContainer>) -> RepositoryConfig {
    let splitting = ManifestSplittingConfig {
        split_sizes: Some(vec![(
            ManifestSplitCondition::AnyArray,
            vec![ManifestSplitDim {
                condition: ManifestSplitDimCondition::DimensionName("time".into()),
                num_chunks: TIME_SPLIT_SIZE,
            }],
        )]),
    };
    let mut config = RepositoryConfig {
        manifest: Some(ManifestConfig {
            splitting: Some(splitting),
            ..Default::default()
        }),
        ..Default::default()
    };
    if let Some(c) = container {
        // set_virtual_chunk_container only fails for invalid prefixes, which
        // `VirtualChunkContainer::new` already rejected.
        let _ = config.set_virtual_chunk_container(c);
    }
    config
}

/// Exclusive use of a local repository's metadata while this process changes it.
///
/// icechunk's local-filesystem storage has no conditional writes, so two processes that
/// commit or move branches at once could each overwrite the other's repository info (S3
/// has conditional writes and needs no lock). The lock is released on drop.
pub struct WriteLock(#[allow(dead_code)] Option<std::fs::File>);

/// The lock file inside a local repository's directory.
const WRITE_LOCK_FILE: &str = ".mursst-write.lock";

/// An open repository and where it lives.
pub struct StoreRepo {
    pub repo: Repository,
    pub location: RepoLocation,
}

impl StoreRepo {
    /// Create a repository whose config holds the container for `source`, in icechunk's
    /// format `spec_version` (1 for icechunk 1.x readers; `None`: the current one).
    pub async fn create(
        location: &RepoLocation,
        store_s3: &AwsSettings,
        source: &SourceRoot<'_>,
        spec_version: Option<u8>,
    ) -> Result<Self, StoreError> {
        let spec = match spec_version {
            None => SpecVersionBin::current(),
            Some(v) => SpecVersionBin::try_from(v).map_err(|_| {
                StoreError::metadata("/", format!("icechunk spec version {v}: expected 1 or 2"))
            })?,
        };
        let storage = location.storage(store_s3).await?;
        let place = location.describe(store_s3);
        if Repository::exists(Arc::clone(&storage), None)
            .await
            .map_err(|e| StoreError::icechunk(format!("checking {place}"), e))?
        {
            return Err(StoreError::AlreadyExists {
                location: location.to_string(),
            });
        }
        let container = container_for(source)?;
        let repo = Repository::create(storage)
            .spec_version(spec)
            .config(repo_config(Some(container.clone())))
            .authorize_virtual_chunk_access(authorizations([&container], source.s3()))
            .execute()
            .await
            .map_err(|e| StoreError::icechunk(format!("creating {place}"), e))?;
        Ok(Self {
            repo,
            location: location.clone(),
        })
    }

    /// The repository's icechunk format (1 or 2).
    pub fn spec_version(&self) -> u8 {
        self.repo.spec_version() as u8
    }

    /// Open an existing repository (spec v1 or v2, without migrating it), authorizing
    /// reads from every container its config declares, through `source_s3` for S3 ones.
    pub async fn open(
        location: &RepoLocation,
        store_s3: &AwsSettings,
        source_s3: &S3Access,
    ) -> Result<Self, StoreError> {
        let storage = location.storage(store_s3).await?;
        let place = location.describe(store_s3);
        let exists = Repository::exists(Arc::clone(&storage), None)
            .await
            .map_err(|e| StoreError::icechunk(format!("checking {place}"), e))?;
        if !exists {
            return Err(StoreError::NotFound {
                location: location.to_string(),
            });
        }
        let repo = Repository::open(storage)
            .config(repo_config(None))
            .execute()
            .await
            .map_err(|e| StoreError::icechunk(format!("opening {place}"), e))?;
        let containers: Vec<VirtualChunkContainer> =
            repo.config().virtual_chunk_containers().cloned().collect();
        let repo = repo
            .reopen(None, Some(authorizations(&containers, source_s3)))
            .await
            .map_err(|e| StoreError::icechunk(format!("opening {place}"), e))?;
        Ok(Self {
            repo,
            location: location.clone(),
        })
    }

    /// Hold [`WriteLock`] for the changes that follow (a no-op on S3).
    pub async fn write_lock(&self) -> Result<WriteLock, StoreError> {
        let RepoLocation::Local(dir) = &self.location else {
            return Ok(WriteLock(None));
        };
        let path = dir.join(WRITE_LOCK_FILE);
        let locked = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            file.lock()?;
            Ok(file)
        })
        .await
        .map_err(|e| StoreError::internal("locking the repository", e))?
        .map_err(|e| StoreError::icechunk(format!("locking {}", dir.display()), e))?;
        Ok(WriteLock(Some(locked)))
    }

    /// The URL prefixes of the virtual chunk containers the store may reference.
    pub fn container_prefixes(&self) -> Vec<String> {
        self.repo
            .config()
            .virtual_chunk_containers()
            .map(|c| c.url_prefix().to_string())
            .collect()
    }

    /// The snapshot a branch points at (`main`'s is a run's compare-and-swap base).
    pub async fn branch_tip(&self, branch: &str) -> Result<SnapshotId, StoreError> {
        self.repo
            .lookup_branch(branch)
            .await
            .map_err(|e| StoreError::icechunk(format!("looking up branch {branch}"), e))
    }

    /// The store's state as of `snapshot`; `None` while the repository is empty.
    pub async fn state_at(&self, snapshot: &SnapshotId) -> Result<Option<StoreState>, StoreError> {
        let stores = SessionStores::new(self.readonly_at(snapshot).await?).await;
        read_state(&stores, snapshot.clone()).await
    }

    /// Read the store exactly as of one snapshot, whatever the branches do meanwhile.
    pub async fn readonly_at(&self, snapshot: &SnapshotId) -> Result<Session, StoreError> {
        self.repo
            .readonly_session(&VersionInfo::SnapshotId(snapshot.clone()))
            .await
            .map_err(|e| StoreError::icechunk(format!("reading snapshot {snapshot}"), e))
    }

    /// Create `branch` at `snapshot` and open a writable session on it.
    pub async fn start_branch(
        &self,
        branch: &str,
        snapshot: &SnapshotId,
    ) -> Result<Session, StoreError> {
        self.repo
            .create_branch(branch, snapshot)
            .await
            .map_err(|e| StoreError::icechunk(format!("creating branch {branch}"), e))?;
        self.repo
            .writable_session(branch)
            .await
            .map_err(|e| StoreError::icechunk(format!("opening branch {branch}"), e))
    }

    /// A writable session on `branch`, created at `snapshot` unless it exists already
    /// (a retried write resumes on the branch its first attempt created).
    pub async fn branch_session(
        &self,
        branch: &str,
        snapshot: &SnapshotId,
    ) -> Result<Session, StoreError> {
        if !self.list_branches().await?.iter().any(|b| b == branch) {
            return self.start_branch(branch, snapshot).await;
        }
        self.repo
            .writable_session(branch)
            .await
            .map_err(|e| StoreError::icechunk(format!("opening branch {branch}"), e))
    }

    /// Whether a branch exists.
    pub async fn has_branch(&self, branch: &str) -> Result<bool, StoreError> {
        Ok(self.list_branches().await?.iter().any(|b| b == branch))
    }

    /// What the pipeline recorded with a snapshot (`None` for one it did not make).
    pub async fn commit_record(
        &self,
        snapshot: &SnapshotId,
    ) -> Result<Option<CommitRecord>, StoreError> {
        let info = self
            .repo
            .lookup_snapshot(snapshot)
            .await
            .map_err(|e| StoreError::icechunk(format!("reading snapshot {snapshot}"), e))?;
        CommitRecord::from_properties(&snapshot.to_string(), &info.metadata)
    }

    /// The source versions that `from`'s history recorded for native days (date → time
    /// index): each day's from the newest commit that wrote it, so a day that commit
    /// did not record (written before versions were, or no longer fully native) is
    /// absent. The walk ends at the first commit that left the store shorter than the
    /// earliest day still sought: no older one wrote it.
    pub async fn native_sources(
        &self,
        from: &SnapshotId,
        days: &BTreeMap<NaiveDate, u64>,
    ) -> Result<BTreeMap<NaiveDate, SourceVersion>, StoreError> {
        let context = || format!("reading the history of snapshot {from}");
        let mut sought = days.clone();
        let mut found = BTreeMap::new();
        let history = self
            .repo
            .ancestry(&VersionInfo::SnapshotId(from.clone()))
            .await
            .map_err(|e| StoreError::icechunk(context(), e))?;
        let mut history = std::pin::pin!(history);
        while let Some(earliest) = sought.values().min().copied() {
            let Some(info) = history
                .try_next()
                .await
                .map_err(|e| StoreError::icechunk(context(), e))?
            else {
                break;
            };
            let Some(commit) = CommitRecord::from_properties(&info.id.to_string(), &info.metadata)?
            else {
                continue;
            };
            let mut sources = commit.native_sources;
            sought.retain(|date, _| {
                if !commit.days.contains(date) {
                    return true;
                }
                if let Some(v) = sources.remove(date) {
                    found.insert(*date, v);
                }
                false
            });
            if commit.days_after <= earliest {
                break;
            }
        }
        Ok(found)
    }

    /// Move `main` to `to`, only if it still points at `expected` (compare-and-swap).
    pub async fn move_main(
        &self,
        to: &SnapshotId,
        expected: &SnapshotId,
        branch: &str,
    ) -> Result<(), StoreError> {
        let err = match self.repo.reset_branch("main", to, Some(expected)).await {
            Ok(()) => return Ok(()),
            Err(err) => err,
        };
        // icechunk says which snapshot main holds instead: spec 2 in the repository's
        // own conflict, spec 1 in the ref's.
        let actual = match &err.kind {
            RepositoryErrorKind::Conflict { actual_parent, .. }
            | RepositoryErrorKind::Ref(RefErrorKind::Conflict { actual_parent, .. }) => {
                actual_parent.as_ref()
            }
            _ => return Err(StoreError::icechunk("moving main", err)),
        };
        Err(StoreError::Conflict {
            expected: expected.to_string(),
            actual: actual.map_or_else(|| "none".into(), ToString::to_string),
            branch: branch.into(),
        })
    }

    /// Remove a temporary branch once main has its snapshot.
    pub async fn delete_branch(&self, branch: &str) -> Result<(), StoreError> {
        self.repo
            .delete_branch(branch)
            .await
            .map_err(|e| StoreError::icechunk(format!("deleting branch {branch}"), e))
    }

    /// Branch names; leftover `add_time_*` branches are runs that did not finish.
    pub async fn list_branches(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .repo
            .list_branches()
            .await
            .map_err(|e| StoreError::icechunk("listing branches", e))?
            .into_iter()
            .collect())
    }
}

fn authorizations<'a>(
    containers: impl IntoIterator<Item = &'a VirtualChunkContainer>,
    s3: &S3Access,
) -> HashMap<String, Option<Credentials>> {
    containers
        .into_iter()
        .map(|c| {
            let creds = match c.store {
                ObjectStoreConfig::LocalFileSystem(_) => Credentials::LocalFileSystemAccess,
                _ => Credentials::S3(s3_credentials(s3.settings(), s3.earthdata())),
            };
            (c.url_prefix().to_string(), Some(creds))
        })
        .collect()
}
