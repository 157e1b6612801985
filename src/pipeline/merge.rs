//! The commit step's `merge` action: move `main` to the validated branch tip
//! (compare-and-swap against the run's base), then delete the branch and the run's
//! artifacts. Safe to repeat: a run whose snapshot is already on `main` just tidies up.

use serde::{Deserialize, Serialize};

use super::write::tip_of;
use super::{Context, PipelineError, Run, WriteOutput};
use crate::artifacts::{self, ArtifactStore};
use crate::store::{StoreError, StoreRepo};

/// The run and the validated commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeInput {
    pub run: Run,
    pub write: WriteOutput,
}

/// Where `main` is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeOutput {
    pub main_moved: bool,
    pub old_snapshot: String,
    pub new_snapshot: String,
    pub message: String,
}

/// Merge step: compare-and-swap `main` from the run's base to its validated tip.
pub async fn merge(ctx: &Context, input: MergeInput) -> Result<MergeOutput, PipelineError> {
    let MergeInput { run, write } = input;
    run.check_store(ctx)?;
    write.check_committed()?;
    let repo = StoreRepo::open(&ctx.store, &ctx.store_s3, &ctx.source_s3).await?;
    let _lock = repo.write_lock().await?;
    let (base, tip) = (run.base()?, tip_of(&write)?);
    let added = write.days_after.saturating_sub(write.days_before);
    let span = match (write.days.first(), write.days.last()) {
        (Some(first), Some(last)) => format!(" {first}..{last}"),
        _ => String::new(),
    };
    let did = match write.reprocessed.len() {
        0 => format!("added {added} day(s){span}"),
        n => format!("re-pointed {n} and added {added} day(s){span}"),
    };
    if run.options.dry_run {
        return Ok(MergeOutput {
            main_moved: false,
            old_snapshot: base.to_string(),
            new_snapshot: tip.to_string(),
            message: format!(
                "dry run: branch {} holds the new days; main not moved",
                run.branch
            ),
        });
    }
    if repo.branch_tip("main").await? != tip {
        super::crash_point("merge-before-move");
        match repo.move_main(&tip, &base, &run.branch).await {
            Ok(()) => super::crash_point("merge-moved"),
            Err(StoreError::Conflict { actual, .. }) if main_holds(&repo, &write).await? => {
                // Another run added exactly these days first: nothing is left to do.
                finish(ctx, &repo, &run).await?;
                return Ok(MergeOutput {
                    main_moved: false,
                    old_snapshot: base.to_string(),
                    new_snapshot: actual,
                    message: format!(
                        "nothing to do: another run added these days{span}; branch {} deleted",
                        run.branch
                    ),
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
    finish(ctx, &repo, &run).await?;
    Ok(MergeOutput {
        main_moved: true,
        old_snapshot: base.to_string(),
        new_snapshot: tip.to_string(),
        message: format!("{did}; main moved {base} -> {tip}"),
    })
}

/// Whether `main` now holds every day the run wrote (another run got there first). A
/// run that re-points stored days never finds them done by another: it starts over.
async fn main_holds(repo: &StoreRepo, write: &WriteOutput) -> Result<bool, PipelineError> {
    if !write.reprocessed.is_empty() {
        return Ok(false);
    }
    let tip = repo.branch_tip("main").await?;
    let Some(state) = repo.state_at(&tip).await? else {
        return Ok(false);
    };
    let (Some(first), Some(last)) = (write.days.first(), write.days.last()) else {
        return Ok(false);
    };
    Ok(state.first_day.is_some_and(|d| d <= *first) && state.last_day.is_some_and(|d| d >= *last))
}

/// Delete the run's branch and its artifacts: nothing of the run is needed any more.
async fn finish(ctx: &Context, repo: &StoreRepo, run: &Run) -> Result<(), PipelineError> {
    if repo.has_branch(&run.branch).await? {
        repo.delete_branch(&run.branch).await?;
    }
    super::crash_point("merge-branch-deleted");
    ArtifactStore::open(&run.artifacts, &ctx.artifacts_s3)
        .await?
        .remove_prefix(&artifacts::run_prefix(&run.id))
        .await?;
    Ok(())
}
