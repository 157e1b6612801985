//! One error type for every step, classified so Step Functions can `Retry` what may pass
//! on its own and `Catch` the rest by name.

use chrono::NaiveDate;

use crate::artifacts::ArtifactError;
use crate::codec::DecodeError;
use crate::discover::ListError;
use crate::error::ErrorKind;
use crate::refs::RefsError;
use crate::source::SourceError;
use crate::store::StoreError;
#[cfg(feature = "validate")]
use crate::validate::ValidationError;

/// Any step's failure, naming the granule, variable, rule or input involved.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Refs(#[from] Box<RefsError>),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    List(#[from] ListError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[cfg(feature = "validate")]
    #[error("{source}; main not moved, branch {branch} kept for inspection")]
    Unvalidated {
        branch: String,
        #[source]
        source: ValidationError,
    },
    #[error("{} granule(s) rejected, the first: {first}", .count)]
    Rejected {
        count: usize,
        #[source]
        first: StoreError,
    },
    /// Retrying the step cannot help (its input names the old version); a new run
    /// indexes the granule anew.
    #[error(
        "{granule}: the granule changed since its chunks were indexed; start a new run to \
         index it anew"
    )]
    SourceChanged { granule: String },
    #[error("{store}: the store holds no days yet; create it with `mursst init`")]
    EmptyStore { store: String },
    #[error("no granule for --start {start} in {source_prefix}")]
    NoGranuleForStart {
        start: NaiveDate,
        source_prefix: String,
    },
    #[error("{date} is not in the store ({first}..{last}): only stored days can be reprocessed")]
    NotInStore {
        date: NaiveDate,
        first: NaiveDate,
        last: NaiveDate,
    },
    #[error("no granule for {date} in {source_prefix}: nothing to re-point it at")]
    NoGranuleToReprocess {
        date: NaiveDate,
        source_prefix: String,
    },
    #[error("--end {end} is before --start {start}")]
    EndBeforeStart { start: NaiveDate, end: NaiveDate },
    #[error("the {step} event is not valid: {source}")]
    InvalidEvent {
        step: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("the run is for store {run}, but this process serves {configured}")]
    WrongStore { run: String, configured: String },
    #[error("main kept moving under this run: gave up after {attempts} attempts; {source}")]
    KeptMoving {
        attempts: usize,
        #[source]
        source: StoreError,
    },
    #[error(
        "branch {branch} holds commits of another run ({found}); not touching it, start a new run"
    )]
    BranchTaken { branch: String, found: String },
    #[error(
        "the write has not committed: {} day(s) wait to be materialized ({}); run the \
         materialize step for each, then the write again",
        .days.len(),
        .days.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotMaterialized { days: Vec<NaiveDate> },
    #[error(
        "{date}: asked the materialize step for its native chunks {rounds} times, and they \
         were never usable (lost or outdated each time); start a new run"
    )]
    NativeLoop { date: NaiveDate, rounds: u32 },
    #[error("this binary was built without the `{feature}` feature, which the {step} step needs")]
    NotBuilt {
        step: &'static str,
        feature: &'static str,
    },
    #[error("{name}={value:?} is not valid: expected {expected}")]
    BadSetting {
        name: &'static str,
        value: String,
        expected: String,
    },
    #[error("{name} is not set: it names a location this process needs")]
    MissingSetting { name: &'static str },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[cfg(feature = "synthetic")]
    #[error(transparent)]
    Synthetic(#[from] crate::synthetic::SyntheticError),
}

impl PipelineError {
    /// Whether to retry, and under which name the failure is reported: each layer's
    /// error decided that where it was made.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PipelineError::Store(e) => e.kind(),
            PipelineError::Refs(e) => e.kind(),
            PipelineError::Source(e) => e.kind(),
            PipelineError::Decode(e) => e.kind(),
            PipelineError::List(e) => e.kind(),
            PipelineError::Artifact(e) => e.kind(),
            #[cfg(feature = "validate")]
            PipelineError::Unvalidated { source, .. } => source.kind(),
            PipelineError::Rejected { .. } => ErrorKind::SchemaRejected,
            PipelineError::Io { .. } => ErrorKind::Retryable,
            PipelineError::EmptyStore { .. }
            | PipelineError::NoGranuleForStart { .. }
            | PipelineError::NotInStore { .. }
            | PipelineError::NoGranuleToReprocess { .. }
            | PipelineError::EndBeforeStart { .. }
            | PipelineError::InvalidEvent { .. }
            | PipelineError::WrongStore { .. }
            | PipelineError::NotBuilt { .. }
            | PipelineError::NotMaterialized { .. }
            | PipelineError::MissingSetting { .. }
            | PipelineError::BadSetting { .. } => ErrorKind::InvalidInput,
            PipelineError::BranchTaken { .. } | PipelineError::KeptMoving { .. } => {
                ErrorKind::Conflict
            }
            PipelineError::NativeLoop { .. } | PipelineError::SourceChanged { .. } => {
                ErrorKind::Failed
            }
            #[cfg(feature = "synthetic")]
            PipelineError::Synthetic(_) => ErrorKind::Failed,
        }
    }
}

#[cfg(all(test, feature = "validate"))]
mod tests {
    use super::*;

    fn unvalidated(source: ValidationError) -> PipelineError {
        PipelineError::Unvalidated {
            branch: "add_time_test".into(),
            source,
        }
    }

    #[test]
    fn validation_failures_are_retried_only_when_a_fetch_may_pass_next_time() {
        let oracle = ValidationError::Oracle {
            granule: "s3://podaac/g.nc".into(),
            variable: "mask".into(),
            source: "H5Dread(): inflate() failed".into(),
        };
        assert_eq!(unvalidated(oracle).kind(), ErrorKind::Failed);
        let fetch = |retryable| ValidationError::Fetch {
            granule: "s3://podaac/g.nc".into(),
            variable: "mask".into(),
            retryable,
            source: "SlowDown".into(),
        };
        assert_eq!(unvalidated(fetch(true)).kind(), ErrorKind::Retryable);
        assert_eq!(unvalidated(fetch(false)).kind(), ErrorKind::Failed);
        let rule = ValidationError::Failed {
            rule: crate::validate::Rule::DataEqualToSource,
            detail: "value 3 differs".into(),
        };
        assert_eq!(unvalidated(rule).kind(), ErrorKind::ValidationFailed);
    }
}

/// Kinds decided where the error arises, each from a real failure of its kind.
#[cfg(test)]
mod kinds {
    use super::*;

    #[test]
    fn a_bad_snapshot_id_is_the_input_s_fault_and_is_not_retried() {
        let err = crate::pipeline::run::snapshot_id("not-a-snapshot").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("not-a-snapshot"), "{err}");
    }

    #[tokio::test]
    async fn a_panicked_task_is_internal_not_the_store_s_fault() {
        let join = tokio::task::spawn_blocking(|| -> u8 { panic!("decoder bug") })
            .await
            .unwrap_err();
        let err = PipelineError::from(StoreError::internal("materialize: decoding a chunk", join));
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert_eq!(err.kind().name(), "Internal");
    }

    #[test]
    fn a_granule_changed_under_a_run_is_final_for_that_run() {
        let err = PipelineError::SourceChanged {
            granule: "s3://podaac/g.nc".into(),
        };
        assert_eq!(err.kind(), ErrorKind::Failed);
        assert!(err.to_string().contains("s3://podaac/g.nc"));
    }
}
