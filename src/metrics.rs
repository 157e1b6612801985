//! CloudWatch metrics as Embedded Metric Format (EMF) log lines: a step's figures become
//! metrics when its log line reaches CloudWatch Logs, with no API call and no client.
//!
//! Each step writes one line to standard error when `MURSST_METRICS=emf` (the stack sets
//! it on every Lambda), under the namespace [`NAMESPACE`] and the dimensions `Stage`
//! (`MURSST_STAGE`), `Branch` and `Step`, and again by `Stage` and `Branch` alone, which
//! is what the alarms watch.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value, json};

/// The CloudWatch namespace of every metric.
pub const NAMESPACE: &str = "mursst";

/// The units the metrics use, named as CloudWatch names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Bytes,
    Milliseconds,
    /// Days, which CloudWatch has no unit for.
    None,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Bytes => "Bytes",
            Unit::Milliseconds => "Milliseconds",
            Unit::None => "None",
        }
    }
}

/// One step's figures, with the dimensions they are reported under.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSet {
    stage: String,
    branch: String,
    step: String,
    values: Vec<(&'static str, Unit, f64)>,
}

impl MetricSet {
    pub fn new(stage: &str, branch: &str, step: &str) -> Self {
        Self {
            stage: stage.into(),
            branch: branch.into(),
            step: step.into(),
            values: Vec::new(),
        }
    }

    /// The stage from `MURSST_STAGE` (`local` when unset), for the `main` branch.
    pub fn for_step(step: &str) -> Self {
        let stage = std::env::var("MURSST_STAGE")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "local".into());
        Self::new(&stage, "main", step)
    }

    pub fn add(&mut self, name: &'static str, unit: Unit, value: f64) -> &mut Self {
        self.values.push((name, unit, value));
        self
    }

    pub fn count(&mut self, name: &'static str, n: u64) -> &mut Self {
        self.add(name, Unit::Count, n as f64)
    }

    /// `RequestsMade` and `BytesRead`: what reading the granules took.
    pub fn reads(&mut self, requests: u64, bytes: u64) -> &mut Self {
        self.count("RequestsMade", requests)
            .add("BytesRead", Unit::Bytes, bytes as f64)
    }

    pub fn duration(&mut self, name: &'static str, d: Duration) -> &mut Self {
        self.add(name, Unit::Milliseconds, d.as_secs_f64() * 1e3)
    }

    /// `StoreAgeDays`: how far the branch's last day is behind `today` (the alarms'
    /// freshness measure); nothing when the store holds no day.
    pub fn store_age(&mut self, today: NaiveDate, last_day: Option<NaiveDate>) -> &mut Self {
        if let Some(last) = last_day {
            let age = (today - last).num_days();
            self.add("StoreAgeDays", Unit::None, age as f64);
        }
        self
    }

    /// The value of metric `name`, if set.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.values
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, _, v)| *v)
    }

    /// The EMF document: the `_aws` metadata, the dimensions and the values as members.
    pub fn to_emf(&self, at: DateTime<Utc>) -> Value {
        let mut doc = Map::new();
        let metrics: Vec<Value> = self
            .values
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.name()}))
            .collect();
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": at.timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Stage", "Branch", "Step"], ["Stage", "Branch"]],
                    "Metrics": metrics,
                }],
            }),
        );
        doc.insert("Stage".into(), self.stage.clone().into());
        doc.insert("Branch".into(), self.branch.clone().into());
        doc.insert("Step".into(), self.step.clone().into());
        for (name, _, value) in &self.values {
            doc.insert((*name).into(), json!(value));
        }
        Value::Object(doc)
    }

    /// Write the EMF line to standard error if `MURSST_METRICS=emf`.
    pub fn emit(&self) {
        if self.values.is_empty() || !enabled() {
            return;
        }
        eprintln!("{}", self.to_emf(Utc::now()));
    }
}

/// Whether steps write EMF lines (`MURSST_METRICS=emf`).
fn enabled() -> bool {
    std::env::var("MURSST_METRICS").is_ok_and(|v| v.eq_ignore_ascii_case("emf"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_become_members_named_by_the_directive() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        let mut m = MetricSet::new("prod", "main", "commit");
        m.count("DaysAdded", 2)
            .store_age(today, NaiveDate::from_ymd_opt(2026, 11, 26))
            .store_age(today, None)
            .duration("StepDuration", Duration::from_millis(1500));
        let doc = m.to_emf(Utc::now());
        assert_eq!(doc["StoreAgeDays"], 11.0);
        assert_eq!(doc["DaysAdded"], 2.0);
        assert_eq!(doc["StepDuration"], 1500.0);
        assert_eq!(doc["Stage"], "prod");
        let names: Vec<&str> = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["DaysAdded", "StoreAgeDays", "StepDuration"]);
    }
}
