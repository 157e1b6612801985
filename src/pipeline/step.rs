//! One step run from the JSON event a Lambda receives: what each Lambda handler and
//! `mursst step NAME --event FILE` call, so a failed state's input reproduces locally.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::generate::{GenerateRefsBatch, GenerateRefsInput};
use super::write::WriteBatchInput;
use super::{Context, MergeInput, PipelineError, WriteInput};
use crate::metrics::MetricSet;

/// The Lambdas, by the names Step Functions and the CLI use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Step {
    Discover,
    GenerateRefs,
    Commit,
    Validate,
    Materialize,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Discover => "discover",
            Step::GenerateRefs => "generate-refs",
            Step::Commit => "commit",
            Step::Validate => "validate",
            Step::Materialize => "materialize",
        }
    }
}

/// The commit Lambda's event: which action on the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum CommitEvent {
    /// Write the generated days to the run's temporary branch.
    Write(WriteInput),
    /// Move `main` to the validated branch tip, then delete the branch.
    Merge(MergeInput),
    /// One batch of a backfill's days on its branch.
    WriteBatch(WriteBatchInput),
    /// Prune leftover branches, expire old snapshots (the maintenance schedule).
    Maintain(super::MaintainInput),
    /// Create the empty repository a backfill builds (before its discover).
    Create(super::CreateStoreInput),
}

/// The generate-refs Lambda's event: one granule (the update's Map) or a batch (the
/// backfill's Distributed Map with an `ItemBatcher`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GenerateRefsEvent {
    One(GenerateRefsInput),
    Batch(GenerateRefsBatch),
}

/// The validate Lambda's event: the whole run, or one batch of a backfill.
#[cfg(feature = "validate")]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ValidateEvent {
    Whole(super::ValidateInput),
    Batch(super::validate::ValidateBatchInput),
}

fn parse<T: serde::de::DeserializeOwned>(step: Step, event: Value) -> Result<T, PipelineError> {
    serde_json::from_value(event).map_err(|source| PipelineError::InvalidEvent {
        step: step.name(),
        source,
    })
}

/// What a step's output reports as metrics (nothing, unless it says otherwise).
trait Measure {
    fn measure(&self, _metrics: &mut MetricSet) {}
}

impl Measure for super::DiscoverOutput {
    fn measure(&self, m: &mut MetricSet) {
        m.store_age(self.run.today, self.store_last_day)
            .count("GranulesNew", self.granules.len() as u64);
    }
}

impl Measure for super::GenerateRefsOutput {
    fn measure(&self, m: &mut MetricSet) {
        m.reads(self.requests, self.bytes_read);
    }
}

impl Measure for super::GenerateRefsBatchOutput {
    fn measure(&self, m: &mut MetricSet) {
        m.reads(self.requests, self.bytes_read);
    }
}

impl Measure for super::WriteOutput {
    fn measure(&self, m: &mut MetricSet) {
        m.count("DaysWritten", self.days.len() as u64)
            .count("DaysRejected", self.rejected.len() as u64);
    }
}

impl Measure for super::WriteBatchOutput {}
impl Measure for super::MaterializeOutput {}
impl Measure for super::MaintainOutput {}
impl Measure for super::CreateStoreOutput {}

#[cfg(feature = "validate")]
impl Measure for crate::validate::ValidationReport {
    fn measure(&self, m: &mut MetricSet) {
        m.count("ValidationChunksCompared", self.chunks_compared)
            .count("ValidationMismatches", 0);
    }
}

/// The days a merge put on main, and how old main is after it.
fn measure_merge(input: &MergeInput, out: &super::MergeOutput, m: &mut MetricSet) {
    let write = &input.write;
    let moved = |n: usize| if out.main_moved { n as u64 } else { 0 };
    let repointed = write.reprocessed.len();
    m.count(
        "DaysAdded",
        moved(write.days.len().saturating_sub(repointed)),
    )
    .count("DaysRepointed", moved(repointed))
    .count("DaysRejected", write.rejected.len() as u64);
    let last_day = write
        .store_first_day
        .filter(|_| write.days_after > 0)
        .map(|first| first + chrono::Days::new(write.days_after - 1));
    m.store_age(input.run.today, last_day);
}

fn measured<T: Serialize + Measure>(
    out: T,
    metrics: &mut MetricSet,
) -> Result<Value, PipelineError> {
    out.measure(metrics);
    json(out)
}

fn json<T: Serialize>(value: T) -> Result<Value, PipelineError> {
    // Our output types serialize to JSON without fail (string keys, finite numbers).
    Ok(serde_json::to_value(value).unwrap_or(Value::Null))
}

/// Run `step` on `event`, returning its output as JSON; its figures (and its failure,
/// if it fails) go out as metrics.
pub async fn run_step(ctx: &Context, step: Step, event: Value) -> Result<Value, PipelineError> {
    let started = Instant::now();
    let mut metrics = MetricSet::for_step(step.name());
    let out = Box::pin(dispatch(ctx, step, event, &mut metrics)).await;
    metrics.duration("StepDuration", started.elapsed());
    if let Err(e) = &out {
        metrics.count("StepErrors", 1);
        if e.kind() == super::ErrorKind::ValidationFailed {
            metrics.count("ValidationMismatches", 1);
        }
    }
    metrics.emit();
    out
}

async fn dispatch(
    ctx: &Context,
    step: Step,
    event: Value,
    m: &mut MetricSet,
) -> Result<Value, PipelineError> {
    match step {
        Step::Discover => measured(
            Box::pin(super::discover(ctx, parse(step, event)?)).await?,
            m,
        ),
        Step::GenerateRefs => match parse(step, event)? {
            GenerateRefsEvent::One(input) => {
                measured(Box::pin(super::generate_refs(ctx, input)).await?, m)
            }
            GenerateRefsEvent::Batch(input) => measured(
                Box::pin(super::generate::generate_refs_batch(ctx, input)).await?,
                m,
            ),
        },
        Step::Commit => match parse(step, event)? {
            CommitEvent::Write(input) => {
                measured(Box::pin(super::write_branch(ctx, input)).await?, m)
            }
            CommitEvent::Merge(input) => {
                let out = Box::pin(super::merge(ctx, input.clone())).await?;
                measure_merge(&input, &out, m);
                json(out)
            }
            CommitEvent::WriteBatch(input) => {
                measured(Box::pin(super::write::write_batch(ctx, input)).await?, m)
            }
            CommitEvent::Maintain(input) => {
                measured(Box::pin(super::maintain(ctx, input)).await?, m)
            }
            CommitEvent::Create(input) => {
                measured(Box::pin(super::create_store(ctx, input)).await?, m)
            }
        },
        Step::Materialize => measured(
            Box::pin(super::materialize(ctx, parse(step, event)?)).await?,
            m,
        ),
        #[cfg(feature = "validate")]
        Step::Validate => match parse(step, event)? {
            ValidateEvent::Whole(input) => {
                measured(Box::pin(super::validate_branch(ctx, input)).await?, m)
            }
            ValidateEvent::Batch(input) => measured(
                Box::pin(super::validate::validate_batch(ctx, input)).await?,
                m,
            ),
        },
        #[cfg(not(feature = "validate"))]
        Step::Validate => Err(PipelineError::NotBuilt {
            step: "validate",
            feature: "validate",
        }),
    }
}
