//! Operating a deployed stage from a terminal: start, watch and redrive its state
//! machines, as the console does, but scriptable.
//!
//! A redrive here resumes the failed run: a new execution with the original input plus
//! the failed run's id, `today` and days, so its branch and the artifacts of the
//! granules already indexed are reused. (The console's Redrive button re-runs the
//! failed state, which in our definitions is the `Fail` state after the notification.)

use aws_sdk_sfn::types::{ExecutionListItem, HistoryEvent, HistoryEventType};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::aws::AwsSettings;
use crate::error::{BoxError, error_chain};
use crate::pipeline::DiscoverOutput;

/// Why an operation on the state machines failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("Step Functions: {action}: {}", error_chain(.source.as_ref()))]
    Sfn {
        action: String,
        #[source]
        source: BoxError,
    },
    #[error("{execution}: {status}, not failed: nothing to redrive")]
    NotFailed { execution: String, status: String },
    #[error("{execution}: no Discover output in its history; start a new execution instead")]
    NoRun { execution: String },
    #[error("{execution}: {what} is not valid JSON: {source}")]
    Json {
        execution: String,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

fn sfn_err(
    action: impl Into<String>,
    e: impl std::error::Error + Send + Sync + 'static,
) -> OpsError {
    OpsError::Sfn {
        action: action.into(),
        source: Box::new(e),
    }
}

/// One execution as `ops status` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    pub arn: String,
    pub name: String,
    pub status: String,
    pub started: Option<DateTime<Utc>>,
    pub stopped: Option<DateTime<Utc>>,
}

fn time(t: Option<&aws_sdk_sfn::primitives::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

impl From<&ExecutionListItem> for Execution {
    fn from(e: &ExecutionListItem) -> Self {
        Self {
            arn: e.execution_arn().to_string(),
            name: e.name().to_string(),
            status: e.status().as_str().to_string(),
            started: time(Some(e.start_date())),
            stopped: time(e.stop_date()),
        }
    }
}

/// A Step Functions client for a stage's state machines.
pub struct Ops {
    client: aws_sdk_sfn::Client,
}

impl Ops {
    /// A client from the standard AWS settings (`AWS_ENDPOINT_URL` for a stand-in).
    pub async fn new(settings: &AwsSettings) -> Self {
        Self {
            client: aws_sdk_sfn::Client::new(&settings.sdk_config().await),
        }
    }

    /// Start an execution of `state_machine` with `input`; returns its ARN.
    pub async fn start(&self, state_machine: &str, input: &Value) -> Result<String, OpsError> {
        let out = self
            .client
            .start_execution()
            .state_machine_arn(state_machine)
            .input(input.to_string())
            .send()
            .await
            .map_err(|e| sfn_err(format!("starting {state_machine}"), e))?;
        Ok(out.execution_arn().to_string())
    }

    /// The most recent executions, newest first.
    pub async fn executions(
        &self,
        state_machine: &str,
        limit: i32,
    ) -> Result<Vec<Execution>, OpsError> {
        let out = self
            .client
            .list_executions()
            .state_machine_arn(state_machine)
            .max_results(limit)
            .send()
            .await
            .map_err(|e| sfn_err(format!("listing executions of {state_machine}"), e))?;
        Ok(out.executions().iter().map(Execution::from).collect())
    }

    /// Resume a failed execution's run in a new execution; returns the new ARN.
    pub async fn redrive(&self, execution: &str) -> Result<String, OpsError> {
        let described = self
            .client
            .describe_execution()
            .execution_arn(execution)
            .send()
            .await
            .map_err(|e| sfn_err(format!("describing {execution}"), e))?;
        let status = described.status().as_str().to_string();
        if !matches!(status.as_str(), "FAILED" | "TIMED_OUT" | "ABORTED") {
            return Err(OpsError::NotFailed {
                execution: execution.into(),
                status,
            });
        }
        let history = self
            .client
            .get_execution_history()
            .execution_arn(execution)
            .reverse_order(false)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<HistoryEvent>, _>>()
            .await
            .map_err(|e| sfn_err(format!("reading the history of {execution}"), e))?;
        let input = resume_input(execution, described.input().unwrap_or("{}"), &history)?;
        self.start(described.state_machine_arn(), &input).await
    }
}

/// The input that resumes a failed execution: its own input, plus the run's id and
/// `today` and the days it had taken, from its Discover state's output.
pub fn resume_input(
    execution: &str,
    original_input: &str,
    history: &[HistoryEvent],
) -> Result<Value, OpsError> {
    let json = |what, text: &str| {
        serde_json::from_str::<Value>(text).map_err(|source| OpsError::Json {
            execution: execution.into(),
            what,
            source,
        })
    };
    let discover_output = history
        .iter()
        .filter(|e| e.r#type() == &HistoryEventType::TaskStateExited)
        .filter_map(|e| e.state_exited_event_details())
        .find(|d| d.name() == "Discover")
        .and_then(|d| d.output())
        .ok_or_else(|| OpsError::NoRun {
            execution: execution.into(),
        })?;
    let found: DiscoverOutput =
        serde_json::from_value(json("the Discover output", discover_output)?).map_err(
            |source| OpsError::Json {
                execution: execution.into(),
                what: "the Discover output",
                source,
            },
        )?;
    let mut input = match json("the execution input", original_input)? {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    input.insert("run_id".into(), found.run.id.into());
    input.insert("today".into(), found.run.today.to_string().into());
    if !found.granules.is_empty() {
        let dates: Vec<String> = found.granules.iter().map(|g| g.date.to_string()).collect();
        input.insert("dates".into(), dates.into());
    }
    Ok(Value::Object(input))
}
