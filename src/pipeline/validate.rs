//! The validate step: read the run's branch back and compare it with the sources
//! before `main` may move. A failure keeps the branch for inspection.

use icechunk::format::SnapshotId;
use serde::{Deserialize, Serialize};

use super::write::{Batch, load_prepared, tip_of};
use super::{Context, GenerateRefsOutput, PipelineError, Run, WriteOutput};
use crate::artifacts::ArtifactStore;
use crate::store::{SessionStores, StoreError, StoreRepo, StoreState};
use crate::validate::{self, ValidationReport};

/// The run, what it generated, and the branch commit to check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidateInput {
    pub run: Run,
    pub refs: Vec<GenerateRefsOutput>,
    pub write: WriteOutput,
}

/// Validate step: the rules and the data comparison of the run's validation level.
pub async fn validate_branch(
    ctx: &Context,
    input: ValidateInput,
) -> Result<ValidationReport, PipelineError> {
    let ValidateInput { run, refs, write } = input;
    run.check_store(ctx)?;
    write.check_committed()?;
    let repo = StoreRepo::open(&ctx.store, &ctx.store_s3, &ctx.source_s3).await?;
    let before = repo.state_at(&run.base()?).await?;
    let tip = tip_of(&write)?;
    let after = branch_state(&repo, &tip).await?;
    let added: Vec<GenerateRefsOutput> = refs
        .into_iter()
        .filter(|r| write.days.contains(&r.date))
        .collect();
    let store = ArtifactStore::open(&run.artifacts, &ctx.artifacts_s3).await?;
    let days = load_prepared(&store, &added).await?;
    let stores = SessionStores::new(repo.readonly_at(&tip).await?).await;
    let branch = validate::Branch {
        stores: &stores,
        before: before.as_ref(),
        after: &after,
        days: &days,
        first: before.as_ref().map_or(0, |b| b.days),
        whole: true,
    };
    check(ctx, &run, &branch).await
}

/// The run's validation level on `branch`; a failure keeps the branch and says so.
async fn check(
    ctx: &Context,
    run: &Run,
    branch: &validate::Branch<'_>,
) -> Result<ValidationReport, PipelineError> {
    validate::check(
        branch,
        run.options.validate,
        run.options.seed,
        &ctx.source_s3,
    )
    .await
    .map_err(|source| PipelineError::Unvalidated {
        branch: run.branch.clone(),
        source,
    })
}

/// One batch of a backfill to check on the branch's final tip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidateBatchInput {
    pub run: Run,
    pub batch: u64,
    /// The branch tip after the last batch.
    pub snapshot: String,
}

/// Validate step of a backfill: the batch's days, read through the final tip; batches
/// run side by side and none grows with the record.
pub async fn validate_batch(
    ctx: &Context,
    input: ValidateBatchInput,
) -> Result<ValidationReport, PipelineError> {
    let ValidateBatchInput {
        run,
        batch,
        snapshot,
    } = input;
    run.check_store(ctx)?;
    let repo = StoreRepo::open(&ctx.store, &ctx.store_s3, &ctx.source_s3).await?;
    let store = ArtifactStore::open(&run.artifacts, &ctx.artifacts_s3).await?;
    let Batch {
        granules, start, ..
    } = Batch::read(&store, &run, batch).await?;
    let days = Batch::load(&store, &run, &granules).await?;
    let base_days = repo.state_at(&run.base()?).await?.map_or(0, |s| s.days);
    let tip = super::run::snapshot_id(&snapshot)?;
    let after = branch_state(&repo, &tip).await?;
    let stores = SessionStores::new(repo.readonly_at(&tip).await?).await;
    let branch = validate::Branch {
        stores: &stores,
        before: None,
        after: &after,
        days: &days,
        first: base_days + start as u64,
        whole: false,
    };
    check(ctx, &run, &branch).await
}

/// A committed branch tip's state (it always has the root group the write made).
async fn branch_state(repo: &StoreRepo, tip: &SnapshotId) -> Result<StoreState, PipelineError> {
    Ok(repo
        .state_at(tip)
        .await?
        .ok_or_else(|| StoreError::metadata("/", "the branch has no root group"))?)
}
