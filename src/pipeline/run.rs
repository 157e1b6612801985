//! A run's identity, decided once by discover and carried by every later step, so a
//! retried or redriven step acts on the same branch, base snapshot and options.

use chrono::{DateTime, NaiveDate, Utc};
use icechunk::format::SnapshotId;
use serde::{Deserialize, Serialize};

use super::{Context, PipelineError, Reprocess};
use crate::store::StoreError;
use crate::store::create::GridChunks;
use crate::validate::ValidateMode;

/// Who a run is and what it was asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Names the run's artifacts and is recorded in its commit.
    pub id: String,
    /// The temporary branch the run writes (`add_time_<UTC>`).
    pub branch: String,
    /// The day the settling lag counts back from.
    pub today: NaiveDate,
    /// `main` when the run started; `main` moves only if it is still there.
    pub base_snapshot: String,
    /// The store, granule source and artifact root the run was discovered for.
    pub store: String,
    pub source: String,
    pub artifacts: String,
    pub options: RunOptions,
    /// Set when the run creates the store (`mursst init`, a backfill).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<CreateSpec>,
}

/// Knobs a run was started with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOptions {
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub validate: ValidateMode,
    pub lag_days: u32,
    #[serde(default)]
    pub limit: Option<usize>,
    /// Seed for the chunks `sample` validation picks.
    #[serde(default)]
    pub seed: u64,
    /// Generate-refs iterations at once (the Map state reads it).
    pub map_concurrency: u32,
    /// Days per backfill commit: smaller for eras whose days are materialized, so each
    /// commit stays within a Lambda's 15 minutes.
    #[serde(default = "default_batch_days")]
    pub batch_days: u64,
}

fn default_batch_days() -> u64 {
    super::BATCH_DAYS
}

/// What a run does where its input is silent: the crate's defaults on the command line,
/// a stage's configuration in a Lambda (`MURSST_LAG_DAYS`, `MURSST_VALIDATE`,
/// `MURSST_VARIABLES`, `MURSST_REPROCESS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDefaults {
    pub lag_days: u32,
    pub validate: ValidateMode,
    /// Variables a new store keeps when its create spec names none.
    pub variables: Vec<String>,
    /// Stored days every run re-points (a stage sets `changed`).
    pub reprocess: Option<Reprocess>,
}

impl Default for RunDefaults {
    fn default() -> Self {
        Self {
            lag_days: super::DEFAULT_LAG_DAYS,
            validate: ValidateMode::default(),
            variables: super::DEFAULT_VARIABLES
                .iter()
                .map(|v| v.to_string())
                .collect(),
            reprocess: None,
        }
    }
}

impl RunDefaults {
    /// The crate's defaults with the stage's `MURSST_*` settings applied; a value that
    /// does not parse is an error naming the variable.
    pub fn from_env() -> Result<Self, PipelineError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Self::from_env`] over any source of variables.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, PipelineError> {
        let mut d = Self::default();
        let var = |name: &'static str| get(name).filter(|v| !v.trim().is_empty());
        let bad = |name: &'static str, value: &str, expected: &str| PipelineError::BadSetting {
            name,
            value: value.to_string(),
            expected: expected.to_string(),
        };
        if let Some(v) = var("MURSST_LAG_DAYS") {
            d.lag_days = v
                .trim()
                .parse()
                .map_err(|_| bad("MURSST_LAG_DAYS", &v, "a number of days"))?;
        }
        if let Some(v) = var("MURSST_VALIDATE") {
            d.validate = serde_json::from_value(serde_json::Value::String(v.trim().into()))
                .map_err(|_| bad("MURSST_VALIDATE", &v, "off, metadata, sample or full"))?;
        }
        if let Some(v) = var("MURSST_VARIABLES") {
            d.variables = v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(v) = var("MURSST_REPROCESS") {
            d.reprocess = match v.trim() {
                "off" | "none" => None,
                other => Some(
                    other
                        .parse()
                        .map_err(|e: String| bad("MURSST_REPROCESS", &v, &e))?,
                ),
            };
        }
        Ok(d)
    }
}

/// The days and variables a new store is created from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSpec {
    pub start: NaiveDate,
    pub end: NaiveDate,
    /// Data variables to keep, or `["all"]`; none: the process's defaults.
    #[serde(default)]
    pub variables: Vec<String>,
    /// `(lat, lon)` chunk shape of the data arrays, one for all or by variable; where
    /// it is silent: `[1023, 2047]` (today's producer layout) on the full MUR grid, else
    /// the first granule's. Days chunked otherwise are materialized onto it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<GridChunks>,
    /// The icechunk format of the new repository: 1 for readers still on icechunk 1.x
    /// (as the public store's), 2 (the default) for the current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_version: Option<u8>,
}

impl Run {
    /// The base snapshot as icechunk's id.
    pub fn base(&self) -> Result<SnapshotId, PipelineError> {
        snapshot_id(&self.base_snapshot)
    }

    /// Fail unless this process serves the store the run was discovered for.
    pub fn check_store(&self, ctx: &Context) -> Result<(), PipelineError> {
        let configured = ctx.store.to_string();
        if self.store != configured {
            return Err(PipelineError::WrongStore {
                run: self.store.clone(),
                configured,
            });
        }
        Ok(())
    }
}

/// Parse a snapshot id carried in a step's JSON.
pub(crate) fn snapshot_id(id: &str) -> Result<SnapshotId, PipelineError> {
    SnapshotId::try_from(id).map_err(|message| {
        StoreError::BadSnapshotId {
            id: id.to_string(),
            message: message.to_string(),
        }
        .into()
    })
}

/// A run id and branch name for a run starting at `now`, or for the run `given` (an
/// earlier run's id, to resume it: same branch, same artifacts).
pub(crate) fn identity(now: DateTime<Utc>, given: Option<&str>) -> (String, String) {
    let safe = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let id: String = match given {
        Some(g) => g.chars().map(|c| if safe(c) { c } else { '_' }).collect(),
        None => now.format("%Y%m%dT%H%M%S%.6fZ").to_string(),
    };
    let branch = format!("add_time_{id}");
    (id, branch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_configures_what_the_input_leaves_out() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            RunDefaults::from_vars(vars(&[])).unwrap(),
            RunDefaults::default()
        );
        let d = RunDefaults::from_vars(vars(&[
            ("MURSST_LAG_DAYS", "2"),
            ("MURSST_VALIDATE", "full"),
            ("MURSST_VARIABLES", "analysed_sst, mask"),
            ("MURSST_REPROCESS", "changed"),
        ]))
        .unwrap();
        assert_eq!(d.lag_days, 2);
        assert_eq!(d.validate, ValidateMode::Full);
        assert_eq!(d.variables, ["analysed_sst", "mask"]);
        assert_eq!(d.reprocess, Some("changed".parse().unwrap()));
        let off = RunDefaults::from_vars(vars(&[("MURSST_REPROCESS", "off")])).unwrap();
        assert_eq!(off.reprocess, None);
        for (name, value) in [
            ("MURSST_LAG_DAYS", "ten"),
            ("MURSST_VALIDATE", "most"),
            ("MURSST_REPROCESS", "sometimes"),
        ] {
            let pairs: &'static [(&str, &str)] = Box::leak(vec![(name, value)].into_boxed_slice());
            let err = RunDefaults::from_vars(vars(pairs)).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains(value), "{err}");
        }
    }

    #[test]
    fn identity_is_a_timestamp_or_the_resumed_run() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T19:00:00.5Z")
            .unwrap()
            .with_timezone(&Utc);
        let (id, branch) = identity(now, None);
        assert_eq!(id, "20261202T190000.500000Z");
        assert_eq!(branch, "add_time_20261202T190000.500000Z");
        let (id, branch) = identity(now, Some("daily/2026:12"));
        assert_eq!(id, "daily_2026_12");
        assert_eq!(branch, "add_time_daily_2026_12");
    }
}
