//! The pipeline steps, each a function of one typed, serializable input to one typed
//! output, so the same code runs as a Lambda per step (Step Functions carrying the
//! JSON between them) or chained in one process by [`update`] / [`init`] (the CLI):
//!
//! discover → generate refs (per granule, into artifacts) → write a temporary branch
//! (after materializing, per day, the days chunked unlike the store) → validate it
//! against the sources → merge (move `main`, compare-and-swap).
//!
//! The run's identity ([`Run`]: id, branch, `today`, base snapshot, options) is decided
//! once by discover and carried through every later step.

#[cfg(feature = "validate")]
mod chain;
mod discover;
mod error;
mod generate;
mod maintain;
mod materialize;
mod merge;
mod reprocess;
mod run;
mod step;
#[cfg(feature = "validate")]
mod validate;
mod write;

use std::sync::Arc;

pub use crate::error::ErrorKind;
#[cfg(feature = "validate")]
pub use chain::{Report, UpdateOptions, init, update};
pub use discover::{
    BATCH_DAYS, CreateStoreInput, CreateStoreOutput, DiscoverInput, DiscoverOutput, Manifest,
    create_store, discover,
};
pub use error::PipelineError;
pub use generate::{
    GenerateRefsBatch, GenerateRefsBatchOutput, GenerateRefsInput, GenerateRefsOutput,
    generate_refs, generate_refs_batch, prepare_granule,
};
pub use maintain::{MaintainInput, MaintainOutput, maintain};
pub use materialize::{
    MaterializeInput, MaterializeOutput, NATIVE_MAX_AGE, NATIVE_ROUNDS, NativeDay, NativeJob,
    NativePlan, materialize,
};
pub use merge::{MergeInput, MergeOutput, merge};
pub use reprocess::{
    DEFAULT_WINDOW_DAYS, Recorded, Repoint, Reprocess, ReprocessKeyword, recorded,
};
pub use run::{CreateSpec, Run, RunDefaults, RunOptions};
pub use step::{CommitEvent, GenerateRefsEvent, Step, run_step};
#[cfg(feature = "validate")]
pub use validate::{ValidateBatchInput, ValidateInput, validate_batch, validate_branch};
pub use write::{
    Rejection, WriteBatchInput, WriteBatchOutput, WriteInput, WriteOutput, write_batch,
    write_branch,
};

use crate::aws::AwsSettings;
use crate::discover::GranuleSource;
use crate::hdf5::ReadOptions;
use crate::objects::S3Access;
use crate::store::RepoLocation;

/// The variables the existing production store keeps.
pub const DEFAULT_VARIABLES: &[&str] =
    &["analysed_sst", "analysis_error", "mask", "sea_ice_fraction"];

/// Days a granule must age before it is referenced: PO.DAAC replaces granules in
/// place for up to ~9 days after their date.
pub const DEFAULT_LAG_DAYS: u32 = 10;

/// Granules indexed at once in a Map state unless the execution input says otherwise.
pub const DEFAULT_MAP_CONCURRENCY: u32 = 8;

/// Told about long work, so a terminal can draw a progress bar (the library draws none).
pub trait Progress: Send + Sync {
    fn begin(&self, what: &str, len: u64);
    fn advance(&self);
    fn end(&self);
}

/// What a process was configured with: where the store, the granules and the run
/// artifacts are, and how to reach them. A Lambda builds it once per container.
#[derive(Clone)]
pub struct Context {
    pub store: RepoLocation,
    /// icechunk builds its own client for the store from these.
    pub store_s3: AwsSettings,
    pub source: GranuleSource,
    /// How granules are read (and the store's virtual chunks authorized); its client is
    /// built once and shared by every clone of the context.
    pub source_s3: S3Access,
    /// A directory or `s3://` prefix for run artifacts.
    pub artifacts: String,
    pub artifacts_s3: S3Access,
    pub read_options: ReadOptions,
    /// Granules indexed at once when steps are chained in one process.
    pub concurrency: usize,
    pub progress: Option<Arc<dyn Progress>>,
    /// What a run does where its input is silent.
    pub defaults: RunDefaults,
}

impl Context {
    /// The embedded default: a repository directory and a directory of granules, with
    /// run artifacts in the system's temporary directory.
    pub fn local(
        store: impl Into<std::path::PathBuf>,
        granules: impl Into<std::path::PathBuf>,
    ) -> Self {
        Self {
            store: RepoLocation::Local(store.into()),
            store_s3: AwsSettings::default(),
            source: GranuleSource::Local(granules.into()),
            source_s3: S3Access::default(),
            artifacts: default_artifacts(),
            artifacts_s3: S3Access::default(),
            read_options: ReadOptions::default(),
            concurrency: 4,
            progress: None,
            defaults: RunDefaults::default(),
        }
    }
}

impl Context {
    /// The store, granule source and artifact root at these locations (paths, `s3://`
    /// URLs, or `cmr` for the source), reached with the settings of the standard `AWS_*`
    /// variables (and an Earthdata login for granules, when one is configured).
    pub fn at(store: &str, source: &str, artifacts: &str) -> Result<Self, PipelineError> {
        let s3 = AwsSettings::from_env();
        let source_s3 = S3Access::source_from_env();
        Ok(Self {
            store: RepoLocation::parse(store)?,
            store_s3: s3.clone(),
            source: GranuleSource::parse(source, &source_s3)?,
            source_s3,
            artifacts: artifacts.to_string(),
            artifacts_s3: s3.into(),
            read_options: ReadOptions::default(),
            concurrency: 4,
            progress: None,
            defaults: RunDefaults::default(),
        })
    }

    /// The configuration a Lambda gets: [`Self::at`] the locations in `MURSST_STORE`,
    /// `MURSST_SOURCE` and `MURSST_ARTIFACTS`, with the run defaults of the environment.
    pub async fn from_env() -> Result<Self, PipelineError> {
        let var = |name: &'static str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or(PipelineError::MissingSetting { name })
        };
        Ok(Self {
            defaults: RunDefaults::from_env()?,
            ..Self::at(
                &var("MURSST_STORE")?,
                &var("MURSST_SOURCE")?,
                &var("MURSST_ARTIFACTS")?,
            )?
        })
    }
}

/// Where local runs keep their artifacts unless told otherwise.
pub fn default_artifacts() -> String {
    std::env::temp_dir()
        .join("mursst-artifacts")
        .display()
        .to_string()
}

/// Where a test may kill the run: `MURSST_CRASH_AT=NAME` aborts the process at the point
/// of that name, as a SIGKILL or a Lambda timeout would there, so the tests can prove
/// that a rerun finishes the job and main never holds a half-done one.
pub const CRASH_POINTS: [&str; 9] = [
    "discover",
    "refs-artifact",
    "refs",
    "write-before-commit",
    "write",
    "validate",
    "merge-before-move",
    "merge-moved",
    "merge-branch-deleted",
];

/// Abort here if `MURSST_CRASH_AT` names this point (see [`CRASH_POINTS`]).
pub(crate) fn crash_point(name: &'static str) {
    debug_assert!(
        CRASH_POINTS.contains(&name),
        "{name} is not in CRASH_POINTS"
    );
    if std::env::var("MURSST_CRASH_AT").is_ok_and(|v| v == name) {
        eprintln!("MURSST_CRASH_AT={name}: aborting");
        std::process::abort();
    }
}
