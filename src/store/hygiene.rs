//! Keeping a long-lived store tidy: temporary branches of runs that died are listed and
//! pruned, old snapshots are expired and their unreachable files collected, the history
//! of `main` is shown with the days each commit added, and `main` can be rolled back.

use std::collections::HashSet;
use std::num::{NonZeroU16, NonZeroUsize};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use icechunk::format::SnapshotId;
use icechunk::ops::expiration::{ExpiredRefAction, expire};
use icechunk::ops::gc::{GCConfig, garbage_collect};
use icechunk::repository::VersionInfo;
use serde::{Deserialize, Serialize};

use super::record::CommitRecord;
use super::{StoreError, StoreRepo};

/// Prefix of the branches runs write before `main` moves.
pub const RUN_BRANCH_PREFIX: &str = "add_time_";

/// How old a branch or snapshot must be before hygiene removes it: `7d`, `12h`, `30m`
/// or `45s` on a command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Age(pub chrono::Duration);

/// An age that is not a whole number followed by one of `d`, `h`, `m`, `s`.
#[derive(Debug, thiserror::Error)]
#[error("{text:?}: expected an age such as 7d, 12h, 30m or 45s")]
pub struct BadAge {
    text: String,
}

impl std::str::FromStr for Age {
    type Err = BadAge;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadAge { text: text.into() };
        let (n, unit) = text.split_at(text.len().saturating_sub(1));
        let n: i64 = n.parse().map_err(|_| bad())?;
        let age = match unit {
            "d" => chrono::Duration::try_days(n),
            "h" => chrono::Duration::try_hours(n),
            "m" => chrono::Duration::try_minutes(n),
            "s" => chrono::Duration::try_seconds(n),
            _ => None,
        };
        age.filter(|a| *a >= chrono::Duration::zero())
            .map(Age)
            .ok_or_else(bad)
    }
}

impl Age {
    /// The moment `self` before `now`.
    pub fn before(self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.0
    }
}

/// A branch and what its tip holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchInfo {
    pub name: String,
    pub tip: String,
    /// When the tip was committed.
    pub committed_at: DateTime<Utc>,
    /// The run that wrote it, if a run did.
    pub run_id: Option<String>,
    /// Whether this is a run's temporary branch (everything but `main` and others').
    pub temporary: bool,
}

/// One commit of `main`'s history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub snapshot: String,
    pub committed_at: DateTime<Utc>,
    pub message: String,
    /// The days the commit added (empty for commits the pipeline did not make).
    pub days: Vec<String>,
    pub run_id: Option<String>,
}

/// What expiry and garbage collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpireReport {
    pub older_than: Option<DateTime<Utc>>,
    pub snapshots_released: u64,
    pub snapshots_deleted: u64,
    pub manifests_deleted: u64,
    pub chunks_deleted: u64,
    pub bytes_deleted: u64,
}

impl StoreRepo {
    /// Every branch with its tip; temporary ones are runs' `add_time_*` branches.
    pub async fn branches(&self) -> Result<Vec<BranchInfo>, StoreError> {
        let mut out = Vec::new();
        for name in self.list_branches().await? {
            let tip = self.branch_tip(&name).await?;
            let info = self
                .repo
                .lookup_snapshot(&tip)
                .await
                .map_err(|e| StoreError::icechunk(format!("reading snapshot {tip}"), e))?;
            let record = CommitRecord::from_properties(&tip.to_string(), &info.metadata)?;
            out.push(BranchInfo {
                temporary: name.starts_with(RUN_BRANCH_PREFIX),
                run_id: record.and_then(|r| r.run_id),
                name,
                tip: tip.to_string(),
                committed_at: info.flushed_at,
            });
        }
        Ok(out)
    }

    /// Delete temporary branches whose tip is older than `cutoff`, except those in
    /// `keep` (branches of executions still running). `main` is never touched.
    pub async fn prune_branches(
        &self,
        cutoff: DateTime<Utc>,
        keep: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let _lock = self.write_lock().await?;
        let mut pruned = Vec::new();
        for b in self.branches().await? {
            if b.temporary && b.committed_at < cutoff && !keep.contains(&b.name) {
                self.delete_branch(&b.name).await?;
                pruned.push(b.name);
            }
        }
        Ok(pruned)
    }

    /// `main`'s commits, newest first, at most `limit`.
    pub async fn log(&self, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        let history = self
            .repo
            .ancestry(&VersionInfo::BranchTipRef("main".into()))
            .await
            .map_err(|e| StoreError::icechunk("reading main's history", e))?;
        let infos: Vec<_> = history
            .take(limit)
            .try_collect()
            .await
            .map_err(|e| StoreError::icechunk("reading main's history", e))?;
        infos
            .into_iter()
            .map(|info| {
                let snapshot = info.id.to_string();
                let record = CommitRecord::from_properties(&snapshot, &info.metadata)?;
                let (days, run_id) = record.map_or((Vec::new(), None), |r| {
                    (r.days.iter().map(ToString::to_string).collect(), r.run_id)
                });
                Ok(LogEntry {
                    snapshot,
                    committed_at: info.flushed_at,
                    message: info.message.clone(),
                    days,
                    run_id,
                })
            })
            .collect()
    }

    /// Move `main` back to `to`, one of its own earlier snapshots, only if `main` is
    /// still at `expected` (compare-and-swap: a run that moved it meanwhile wins).
    pub async fn rollback(&self, to: &SnapshotId, expected: &SnapshotId) -> Result<(), StoreError> {
        let _lock = self.write_lock().await?;
        let history = self.log(usize::MAX).await?;
        if !history.iter().any(|e| e.snapshot == to.to_string()) {
            return Err(StoreError::metadata(
                "main",
                format!("snapshot {to} is not in main's history; refusing to move main there"),
            ));
        }
        match self.repo.reset_branch("main", to, Some(expected)).await {
            Ok(()) => Ok(()),
            Err(err) => {
                let actual = self.branch_tip("main").await?;
                if &actual == expected {
                    return Err(StoreError::icechunk("moving main", err));
                }
                Err(StoreError::metadata(
                    "main",
                    format!(
                        "main moved from {expected} to {actual} meanwhile; rollback refused, \
                         nothing changed"
                    ),
                ))
            }
        }
    }

    /// Expire snapshots older than `cutoff` (never a branch or tag tip), then delete the
    /// files no remaining snapshot reaches. Snapshots newer than the cutoff stay
    /// readable, so users who pinned one keep it for the window.
    pub async fn expire_and_collect(
        &self,
        cutoff: DateTime<Utc>,
    ) -> Result<ExpireReport, StoreError> {
        let _lock = self.write_lock().await?;
        let am = Arc::clone(self.repo.asset_manager());
        let config = self.repo.config();
        let expired = expire(
            Arc::clone(&am),
            cutoff,
            ExpiredRefAction::Ignore,
            ExpiredRefAction::Ignore,
            Some(config.repo_update_retries()),
            config.num_updates_per_repo_info_file(),
        )
        .await
        .map_err(|e| StoreError::icechunk("expiring snapshots", e))?;
        let gc = garbage_collect(
            am,
            &gc_config(cutoff),
            Some(config.repo_update_retries()),
            config.num_updates_per_repo_info_file(),
        )
        .await
        .map_err(|e| StoreError::icechunk("collecting garbage", e))?;
        Ok(ExpireReport {
            older_than: Some(cutoff),
            snapshots_released: expired.released_snapshots.len() as u64,
            snapshots_deleted: gc.snapshots_deleted,
            manifests_deleted: gc.manifests_deleted,
            chunks_deleted: gc.chunks_deleted,
            bytes_deleted: gc.bytes_deleted,
        })
    }
}

/// Chunk objects younger than this are never collected, whatever the cut-off: a run's
/// native chunks stay unreferenced until its commit (the pipeline uses them for a day at
/// most, `pipeline::NATIVE_MAX_AGE`), so collecting them would break a running backfill.
pub const CHUNK_MIN_AGE: chrono::TimeDelta = chrono::TimeDelta::days(2);

/// Collect everything unreachable that was written before `cutoff` (chunks: before
/// `CHUNK_MIN_AGE` ago at the latest); the bounds are icechunk's own defaults for
/// memory and concurrency.
fn gc_config(cutoff: DateTime<Utc>) -> GCConfig {
    let n16 = |n: u16| NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN);
    let nsize = |n: usize| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
    GCConfig::clean_all(
        cutoff.min(Utc::now() - CHUNK_MIN_AGE),
        cutoff,
        Some(HashSet::new()),
        n16(10),
        nsize(1_000_000_000),
        nsize(4 << 30),
        n16(10),
        n16(10),
        n16(50),
        None,
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_with_their_unit_and_refuse_anything_else() {
        let age = |t: &str| t.parse::<Age>().map(|a| a.0);
        assert_eq!(age("7d").unwrap(), chrono::Duration::days(7));
        assert_eq!(age("12h").unwrap(), chrono::Duration::hours(12));
        assert_eq!(age("30m").unwrap(), chrono::Duration::minutes(30));
        assert_eq!(age("0s").unwrap(), chrono::Duration::zero());
        for bad in ["", "7", "d", "7w", "-1d", "1.5h", "99999999999999d"] {
            let err = age(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }
}
