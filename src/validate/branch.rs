//! A committed branch, the days to check on it, and the order the checks run in.

use super::{Rule, ValidateMode, ValidationError, ValidationReport, compare, rules};
use crate::objects::S3Access;
use crate::store::prepared::PreparedGranule;
use crate::store::{SessionStores, StoreState};

/// A committed branch and what it should hold: the state it started from (`None` when
/// the store was empty), its own state, and the days it wrote: stored days it
/// re-pointed, and days it added from time index `first`.
pub struct Branch<'a> {
    pub stores: &'a SessionStores,
    pub before: Option<&'a StoreState>,
    pub after: &'a StoreState,
    pub days: &'a [PreparedGranule],
    /// Time index of the first added day (the length of the axis before them).
    pub first: u64,
    /// Whether `days` are everything the branch added (else one batch of a backfill).
    pub whole: bool,
}

impl Branch<'_> {
    /// Where `day` is on the branch's time axis.
    pub(super) fn index(&self, day: &PreparedGranule) -> Result<u64, ValidationError> {
        self.after.index_of(day.granule.date).ok_or_else(|| {
            super::failed(
                Rule::NewStepsEqualGranules,
                format!("{} is not on the branch's time axis", day.granule.date),
            )
        })
    }

    /// How many of `days` were added (the rest were re-pointed).
    pub(super) fn added(&self) -> u64 {
        let first = self.first;
        self.days
            .iter()
            .filter(|d| {
                self.after
                    .index_of(d.granule.date)
                    .is_none_or(|t| t >= first)
            })
            .count() as u64
    }

    /// The state the branch grew from, if it held any days.
    pub(super) fn nonempty_before(&self) -> Option<&StoreState> {
        self.before.filter(|b| b.days > 0)
    }
}

/// Validate the branch behind `stores` (already committed) against `before` and the
/// granules it added.
pub async fn validate(
    stores: &SessionStores,
    before: Option<&StoreState>,
    after: &StoreState,
    days: &[PreparedGranule],
    mode: ValidateMode,
    seed: u64,
    s3: &S3Access,
) -> Result<ValidationReport, ValidationError> {
    let branch = Branch {
        stores,
        before,
        after,
        days,
        first: before.map_or(0, |b| b.days),
        whole: true,
    };
    check(&branch, mode, seed, s3).await
}

/// Run every rule of `mode` on `branch`.
pub async fn check(
    branch: &Branch<'_>,
    mode: ValidateMode,
    seed: u64,
    s3: &S3Access,
) -> Result<ValidationReport, ValidationError> {
    let mut report = ValidationReport {
        mode,
        ..Default::default()
    };
    if mode == ValidateMode::Off {
        return Ok(report);
    }
    report.rules.extend(rules::check_time_axis(branch).await?);
    report.rules.extend(rules::check_attributes(branch)?);
    report.rules.extend(rules::check_coordinates(branch)?);
    report.references_checked = rules::check_references(branch).await?;
    report.rules.push(Rule::GranuleReferenced);
    if mode == ValidateMode::Metadata {
        return Ok(report);
    }
    let compared = compare::compare_data(branch, mode, seed, s3).await?;
    report.chunks_compared = compared.chunks;
    report.values_compared = compared.values;
    report.source_bytes_read = compared.source_bytes;
    report.source_fetches_on_demand = compared.fetched_on_demand;
    report.rules.push(Rule::DataEqualToSource);
    Ok(report)
}
