//! What a newcomer meets at the command line: errors that say where and why.

mod common;

use std::process::Command;

#[test]
fn an_unreachable_s3_endpoint_is_named_with_the_cause() {
    let tmp = common::TempDir::new("cli-endpoint");
    // Nothing listens on port 1.
    let out = common::output(
        Command::new(env!("CARGO_BIN_EXE_mursst"))
            .args(["update", "--store", "s3://stores/mur", "--source"])
            .arg(tmp.path())
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-west-2"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("s3://stores/mur"), "names the store: {err}");
    assert!(
        err.contains("http://127.0.0.1:1"),
        "names the endpoint: {err}"
    );
    assert!(err.contains("Connection refused"), "keeps the cause: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn day(d: u32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2025, 1, d).unwrap()
}

/// A step's figures leave as one Embedded Metric Format line, from a real run of the
/// discover step on a local store: valid by the specification's rules, with the store's
/// age as the alarms read it; none without `MURSST_METRICS=emf`.
#[test]
fn a_step_writes_its_metrics_as_one_emf_line() {
    use mursst::synthetic::{self, GranuleSpec};
    let tmp = common::TempDir::new("cli-emf");
    let granules = tmp.path().join("granules");
    for d in 1..=2 {
        synthetic::write_granule(&granules, &GranuleSpec::small(day(d), 20, 40)).unwrap();
    }
    let store = tmp.path().join("store");
    let locations = |cmd: &mut Command| {
        cmd.arg("--store")
            .arg(&store)
            .arg("--source")
            .arg(&granules)
            .arg("--artifacts")
            .arg(tmp.path().join("artifacts"));
    };
    let mut init = Command::new(env!("CARGO_BIN_EXE_mursst"));
    init.args([
        "init",
        "--start",
        "2025-01-01",
        "--end",
        "2025-01-02",
        "--lag-days",
        "0",
    ]);
    locations(&mut init);
    let out = common::output(&mut init);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let event = tmp.path().join("event.json");
    std::fs::write(&event, r#"{"lag_days": 0, "today": "2025-01-12"}"#).unwrap();
    let discover = |metrics: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mursst"));
        cmd.args(["step", "discover", "--event"]).arg(&event);
        locations(&mut cmd);
        cmd.env("MURSST_STAGE", "test").env_remove("MURSST_METRICS");
        if let Some(m) = metrics {
            cmd.env("MURSST_METRICS", m);
        }
        let out = common::output(&mut cmd);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        let stdout: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("the step's output alone on stdout: {e}"));
        assert_eq!(stdout["store_last_day"], "2025-01-02");
        common::emf::emf_lines(&stderr)
    };
    assert!(discover(None).is_empty(), "no metrics unless asked");
    let lines = discover(Some("emf"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    let doc = &lines[0];
    assert_eq!(
        doc["StoreAgeDays"], 10.0,
        "2025-01-12 less 2025-01-02: {doc:?}"
    );
    assert_eq!(doc["GranulesNew"], 0.0);
    assert_eq!(doc["Stage"], "test");
    assert_eq!(doc["Branch"], "main");
    assert_eq!(doc["Step"], "discover");
    assert!(
        doc["StepDuration"].as_f64().is_some_and(|ms| ms > 0.0),
        "{doc:?}"
    );
    assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], "mursst");
}

/// The checker the metric tests rely on refuses what CloudWatch would drop.
#[test]
fn the_emf_checker_refuses_what_cloudwatch_would_drop() {
    let good = mursst::metrics::MetricSet::new("dev", "main", "discover")
        .count("DaysAdded", 1)
        .to_emf(chrono::Utc::now());
    let broken = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut doc = good.clone();
        f(&mut doc);
        common::emf::check_emf(&doc.to_string())
    };
    assert!(broken(&|_| {}).is_ok());
    assert!(broken(&|d| d["DaysAdded"] = "one".into()).is_err());
    assert!(broken(&|d| d["Stage"] = serde_json::Value::Null).is_err());
    assert!(broken(&|d| d["_aws"]["Timestamp"] = "now".into()).is_err());
    assert!(
        broken(&|d| d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = "Days".into())
            .is_err()
    );
    assert!(broken(&|d| d["_aws"]["CloudWatchMetrics"][0]["Namespace"] = "".into()).is_err());
}

/// Output piped into a reader that stops early (`mursst discover | head`) ends quietly:
/// the pipe's default action, not a panic of the print.
#[test]
fn a_closed_pipe_ends_the_output_without_a_panic() {
    use std::process::Stdio;
    let tmp = common::TempDir::new("cli-pipe");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mursst"))
        .args(["discover", "--lag-days", "0", "--json", "--source"])
        .arg(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");
}
