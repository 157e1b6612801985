//! The backfill's steps over a long record of small synthetic days, as its state
//! machine runs them: discover writes the manifest, generate-refs in batches of 16, one
//! commit per 64-day batch (each in its own `mursst step commit` process, so its peak
//! memory is measured as a Lambda's would be), validation per batch, one merge.
//!
//! `cargo bench --bench backfill` runs 365 and 3650 days and prints days/s, the largest
//! commit's time and the commit step's peak RSS: none of them may grow with the record.
//! Under `cargo test` it runs 70 days.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use mursst::granule::Granule;
use mursst::pipeline::{
    self, Context, CreateSpec, DiscoverInput, GenerateRefsBatch, MergeInput, ValidateBatchInput,
    WriteBatchOutput,
};
use mursst::synthetic::{ChunkLayout, GranuleSpec};
use mursst::validate::ValidateMode;
use serde_json::json;

fn day(i: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2015, 1, 1).unwrap() + chrono::Days::new(i)
}

/// The cached granules of `days` small days.
fn granules(days: u64) -> std::path::PathBuf {
    let dir = common::bench_data_dir().join(format!("backfill-{days}"));
    for i in 0..days {
        let mut spec = GranuleSpec::small(day(i), 24, 48);
        spec.chunks = ChunkLayout::uniform([12, 24]);
        let cached = common::cached_granule(&spec);
        let link = dir.join(spec.file_name());
        if std::fs::read_link(&link).ok().as_ref() != Some(&cached) {
            std::fs::create_dir_all(&dir).unwrap();
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&cached, &link).unwrap();
        }
    }
    dir
}

/// Run one commit batch as its own process; its wall time and peak RSS (MiB, from
/// `VmHWM`, polled: the high-water mark only grows).
fn commit_batch(event: &Path, ctx: &Context, granules: &Path) -> (WriteBatchOutput, f64, f64) {
    let start = Instant::now();
    let mut child = common::tooling::spawn(
        Command::new(env!("CARGO_BIN_EXE_mursst"))
            .args(["step", "commit", "--event"])
            .arg(event)
            .arg("--store")
            .arg(ctx.store.to_string())
            .arg("--source")
            .arg(granules)
            .arg("--artifacts")
            .arg(&ctx.artifacts)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    );
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(kb) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "commit step failed");
    let output: WriteBatchOutput = serde_json::from_slice(&out.stdout).unwrap();
    (
        output,
        start.elapsed().as_secs_f64(),
        peak_kb as f64 / 1024.0,
    )
}

struct Figures {
    days: u64,
    total_s: f64,
    generate_s: f64,
    commit_s: f64,
    largest_commit_s: f64,
    commit_peak_mib: f64,
    validate_s: f64,
}

async fn backfill(days: u64) -> Figures {
    let granules = granules(days);
    let tmp = common::tooling::TempDir::new("bench-backfill");
    let mut ctx = Context::local(tmp.path().join("store"), &granules);
    ctx.artifacts = tmp.path().join("artifacts").display().to_string();
    let t0 = Instant::now();
    let found = pipeline::discover(
        &ctx,
        DiscoverInput {
            lag_days: Some(0),
            validate: Some(ValidateMode::Sample),
            manifest: true,
            create: Some(CreateSpec {
                start: day(0),
                end: day(days - 1),
                variables: pipeline::DEFAULT_VARIABLES
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                chunks: None,
                spec_version: None,
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let manifest = found.manifest.clone().unwrap();
    let items: Vec<Granule> =
        serde_json::from_slice(&std::fs::read(&manifest.key).unwrap()).unwrap();
    for batch in items.chunks(16) {
        let input = GenerateRefsBatch {
            run: found.run.clone(),
            items: batch.to_vec(),
        };
        pipeline::generate_refs_batch(&ctx, input).await.unwrap();
    }
    let generate_s = t0.elapsed().as_secs_f64();

    let (mut commit_s, mut largest, mut peak) = (0.0, 0.0f64, 0.0f64);
    let event = tmp.path().join("commit.json");
    let mut batch = 0;
    let last = loop {
        let e = json!({"action": "write_batch", "run": found.run, "batch": batch});
        std::fs::write(&event, e.to_string()).unwrap();
        let (out, s, mib) = commit_batch(&event, &ctx, &granules);
        commit_s += s;
        largest = largest.max(s);
        peak = peak.max(mib);
        batch = out.next_batch;
        if out.done {
            break out;
        }
    };
    let t = Instant::now();
    for b in &manifest.batches {
        let input = ValidateBatchInput {
            run: found.run.clone(),
            batch: *b,
            snapshot: last.write.snapshot.clone(),
        };
        pipeline::validate_batch(&ctx, input).await.unwrap();
    }
    let validate_s = t.elapsed().as_secs_f64();
    let merged = pipeline::merge(
        &ctx,
        MergeInput {
            run: found.run.clone(),
            write: last.write,
        },
    )
    .await
    .unwrap();
    assert!(merged.main_moved);
    Figures {
        days,
        total_s: t0.elapsed().as_secs_f64(),
        generate_s,
        commit_s,
        largest_commit_s: largest,
        commit_peak_mib: peak,
        validate_s,
    }
}

#[tokio::main]
async fn main() {
    let sizes: &[u64] = if common::is_bench() {
        &[365, 3650]
    } else {
        &[70]
    };
    let mut rows = Vec::new();
    for &days in sizes {
        let f = backfill(days).await;
        rows.push(vec![
            f.days.to_string(),
            format!("{:.1}", f.days as f64 / f.total_s),
            format!("{:.1}", f.generate_s),
            format!("{:.1}", f.commit_s),
            format!("{:.2}", f.largest_commit_s),
            format!("{:.0}", f.commit_peak_mib),
            format!("{:.1}", f.validate_s),
            format!("{:.1}", f.total_s),
        ]);
    }
    common::print_table(
        &[
            "days",
            "days/s",
            "generate s",
            "commit s",
            "largest commit s",
            "commit peak RSS MiB",
            "validate s",
            "total s",
        ],
        &rows,
    );
}
