//! The production rehearsal (`tests/common/rehearsal.rs`): full-size granules of every
//! era over S3, through both state machines with the release handlers, each Lambda under
//! its deployed memory, CPU share and timeout. It runs the release handlers and CLI:
//! `scripts/test.sh` runs the reduced form, `scripts/rehearse.sh` the full one; both
//! print the report.
//!
//! ```sh
//! cargo build --release --workspace --bins
//! cargo test --workspace --test rehearsal -- --ignored --exact reduced --nocapture
//! ```

mod common;

use chrono::NaiveDate;
use common::rehearsal::{Era, Rehearsal, Report, RunOptions};
use serde_json::{Value, json};

fn day(n: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 2, 1).unwrap() + chrono::Days::new(n - 1)
}

const VARIABLES: [&str; 4] = ["analysed_sst", "analysis_error", "mask", "sea_ice_fraction"];

/// The backfill's input: a new spec-v1 store (icechunk 1.x readers, as the public store)
/// from `start..=end`, validated by sample, one Map iteration at a time (each sandbox
/// then has the machine's CPU its limit gives it, as in Lambda).
fn backfill(start: NaiveDate, end: NaiveDate, today: NaiveDate) -> Value {
    json!({
        "lag_days": 0,
        "today": today,
        "validate": "sample",
        "map_concurrency": 1,
        "manifest": true,
        "create": {"start": start, "end": end, "variables": VARIABLES, "spec_version": 1},
    })
}

fn update(today: NaiveDate) -> Value {
    json!({"lag_days": 0, "today": today, "validate": "sample", "map_concurrency": 1})
}

/// What every rehearsal must show: each execution ended as planned, every function
/// stayed inside its limits, and no deterministic failure was attempted twice.
fn assert_inside_limits(report: &Report) {
    for (name, f) in &report.functions {
        let limit = f.memory_mb * 1024 * 1024;
        assert!(
            f.peak_rss_bytes < limit,
            "{name}: peak RSS {} over its {} MB",
            f.peak_rss_bytes,
            f.memory_mb
        );
        assert!(
            f.longest_ms < f.timeout_s * 1000,
            "{name}: {} ms against its {} s timeout",
            f.longest_ms,
            f.timeout_s
        );
        for e in ["Runtime.OutOfMemory", "Sandbox.Timedout"] {
            assert!(!f.errors.contains_key(e), "{name}: {e}: {:?}", f.errors);
        }
    }
    for e in &report.executions {
        for f in &e.failures {
            assert!(
                !f.deterministic || f.attempts == 1,
                "{}: the deterministic {} of {} ({} {}) was attempted {} times",
                e.name,
                f.error,
                f.function,
                f.state,
                f.what,
                f.attempts
            );
        }
    }
}

/// `.ci/run`'s form: a 2002–2023 day (mask and sea_ice_fraction materialized) made by
/// the backfill machine, then a current day added by the update machine.
#[test]
#[ignore = "release build with full-size granules: scripts/test.sh runs it"]
fn reduced() {
    let mut r = Rehearsal::start("reduced");
    r.publish(&[(day(1), Era::Classic, 0), (day(2), Era::Current, 0)]);
    let built = r.run(
        "backfill",
        "backfill.asl.json",
        backfill(day(1), day(1), day(3)),
        RunOptions::default(),
    );
    assert_eq!(built.status(), "SUCCEEDED", "{}", built.summary());
    let added = r.run(
        "update",
        "update.asl.json",
        update(day(3)),
        RunOptions::default(),
    );
    assert_eq!(added.status(), "SUCCEEDED", "{}", added.summary());
    r.check_store();
    r.read_back(true);
    let report = r.report().clone();
    assert_inside_limits(&report);
    assert_validation_reads_little(&report, &built);
}

/// The full form: `scripts/rehearse.sh`.
#[test]
#[ignore = "the full rehearsal: scripts/rehearse.sh runs it"]
fn full() {
    let mut r = Rehearsal::start("full");
    let eras = [
        Era::Classic,
        Era::NoShuffle,
        Era::DeflateFirst,
        Era::Large,
        Era::Mixed,
        Era::Classic,
        Era::Current,
        Era::Current,
    ];
    let days: Vec<_> = (1..).zip(eras).map(|(n, era)| (day(n), era, 0)).collect();
    r.publish(&days);
    // The backfill; materialize crashes on every try of the no-shuffle day, so the
    // execution fails there and an operator redrives it from the failed state.
    let crash = format!("\"job\":{{\"date\":\"{}\"", day(2));
    let failed = r.run(
        "backfill",
        "backfill.asl.json",
        backfill(day(1), day(8), day(10)),
        RunOptions {
            crash_first: vec![crash; 4],
            ..Default::default()
        },
    );
    assert_eq!(failed.status(), "FAILED", "{}", failed.summary());
    let (state, input) = failed
        .caught()
        .unwrap_or_else(|| panic!("no failed state: {}", failed.summary()));
    assert_eq!(state, "MaterializeBatch", "{}", failed.summary());
    let redriven = r.run(
        "backfill redrive",
        "backfill.asl.json",
        backfill(day(1), day(8), day(10)),
        RunOptions {
            start_at: Some((state, input)),
            ..Default::default()
        },
    );
    assert_eq!(redriven.status(), "SUCCEEDED", "{}", redriven.summary());

    // Two new days, with 10 % of every function's S3 requests failing.
    r.publish(&[(day(9), Era::Current, 0), (day(10), Era::Current, 0)]);
    let added = r.run(
        "update (10 % S3 faults)",
        "update.asl.json",
        update(day(11)),
        RunOptions {
            fault_rate: 0.10,
            ..Default::default()
        },
    );
    assert_eq!(added.status(), "SUCCEEDED", "{}", added.summary());

    // PO.DAAC replaces a granule in place: the next run re-points its day.
    r.publish(&[(day(6), Era::Classic, 1)]);
    let repointed = r.run(
        "update (reprocess changed)",
        "update.asl.json",
        update(day(11)),
        RunOptions::default(),
    );
    assert_eq!(repointed.status(), "SUCCEEDED", "{}", repointed.summary());
    let write = repointed
        .state_output("WriteBranch")
        .cloned()
        .unwrap_or_default();
    assert!(
        write.to_string().contains(&day(6).to_string()),
        "the re-point names {}: {write}",
        day(6)
    );
    r.check_store();
    r.read_back(true);
    let report = r.report().clone();
    assert_inside_limits(&report);
}

/// Validation of a full-size 2002–2023 day over S3 reads the metadata and the source
/// chunks under the sampled windows, never the granule.
fn assert_validation_reads_little(report: &Report, built: &common::sfn::SfnResult) {
    let validate = &report.functions["mursst-validate"];
    let granule = report.granule_bytes / report.store.len() as u64;
    println!(
        "validate read {} B of a {} B granule from S3; materialize {} B; generate-refs {} B",
        validate.source_bytes,
        granule,
        report.functions["mursst-materialize"].source_bytes,
        report.functions["mursst-generate-refs"].source_bytes,
    );
    assert!(validate.source_bytes > 0, "{}", built.summary());
    assert!(
        validate.source_bytes * 10 < granule,
        "validation read {} of a {granule}-byte granule",
        validate.source_bytes
    );
}
