//! The commit Lambda's `maintain` action, on its own schedule: prune the temporary
//! branches of runs that died, then expire old snapshots and collect their files.

use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{Context, PipelineError};
use crate::store::StoreRepo;
use crate::store::hygiene::ExpireReport;

/// How old branches and snapshots must be before they go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintainInput {
    /// Snapshots older than this many days expire (readers pinned to newer ones keep them).
    pub expire_older_than_days: u32,
    /// Temporary branches whose tip is older than this many days are deleted; keep it
    /// longer than the longest execution, so no running run loses its branch.
    pub prune_older_than_days: u32,
}

/// What maintenance removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintainOutput {
    pub pruned_branches: Vec<String>,
    pub expired: ExpireReport,
}

/// Prune leftover branches, then expire and collect.
pub async fn maintain(
    ctx: &Context,
    input: MaintainInput,
) -> Result<MaintainOutput, PipelineError> {
    let repo = StoreRepo::open(&ctx.store, &ctx.store_s3, &ctx.source_s3).await?;
    let now = Utc::now();
    let pruned_branches = repo
        .prune_branches(
            now - Duration::days(input.prune_older_than_days.into()),
            &[],
        )
        .await?;
    let expired = repo
        .expire_and_collect(now - Duration::days(input.expire_older_than_days.into()))
        .await?;
    Ok(MaintainOutput {
        pruned_branches,
        expired,
    })
}
