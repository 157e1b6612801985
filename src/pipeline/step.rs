//! One step run from the JSON event a Lambda receives: what each Lambda handler and
//! `mursst step NAME --event FILE` call, so a failed state's input reproduces locally.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::generate::{GenerateRefsBatch, GenerateRefsInput};
use super::write::WriteBatchInput;
use super::{Context, MergeInput, PipelineError, WriteInput};

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

fn json<T: Serialize>(value: T) -> Result<Value, PipelineError> {
    // Our output types serialize to JSON without fail (string keys, finite numbers).
    Ok(serde_json::to_value(value).unwrap_or(Value::Null))
}

/// Run `step` on `event`, returning its output as JSON.
pub async fn run_step(ctx: &Context, step: Step, event: Value) -> Result<Value, PipelineError> {
    match step {
        Step::Discover => json(Box::pin(super::discover(ctx, parse(step, event)?)).await?),
        Step::GenerateRefs => match parse(step, event)? {
            GenerateRefsEvent::One(input) => {
                json(Box::pin(super::generate_refs(ctx, input)).await?)
            }
            GenerateRefsEvent::Batch(input) => {
                json(Box::pin(super::generate::generate_refs_batch(ctx, input)).await?)
            }
        },
        Step::Commit => match parse(step, event)? {
            CommitEvent::Write(input) => json(Box::pin(super::write_branch(ctx, input)).await?),
            CommitEvent::Merge(input) => json(Box::pin(super::merge(ctx, input)).await?),
            CommitEvent::WriteBatch(input) => {
                json(Box::pin(super::write::write_batch(ctx, input)).await?)
            }
            CommitEvent::Maintain(input) => json(Box::pin(super::maintain(ctx, input)).await?),
            CommitEvent::Create(input) => json(Box::pin(super::create_store(ctx, input)).await?),
        },
        Step::Materialize => json(Box::pin(super::materialize(ctx, parse(step, event)?)).await?),
        #[cfg(feature = "validate")]
        Step::Validate => match parse(step, event)? {
            ValidateEvent::Whole(input) => {
                json(Box::pin(super::validate_branch(ctx, input)).await?)
            }
            ValidateEvent::Batch(input) => {
                json(Box::pin(super::validate::validate_batch(ctx, input)).await?)
            }
        },
        #[cfg(not(feature = "validate"))]
        Step::Validate => Err(PipelineError::NotBuilt {
            step: "validate",
            feature: "validate",
        }),
    }
}
