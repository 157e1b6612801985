//! Materializing one full-size day: seconds, bytes read and written, and the memory it
//! holds, for the layouts of the record's older eras onto today's grid (1, 1023, 2047).
//!
//! ```sh
//! scripts/bootstrap.sh && source scripts/env.sh
//! cargo bench --bench materialize
//! ```
//!
//! Each case is `mursst init --chunks 1023,2047` of one granule of that era (refs, the
//! materialize step writing its native chunks, the write steps committing them, no
//! validation), on local disk. Printed: the materialize step's and the write steps'
//! median seconds over `MURSST_BENCH_RUNS` (default 3), the variables materialized,
//! compressed bytes read from the granule, decoded bytes re-encoded, the bytes the store
//! holds afterwards, the largest decoded buffer and the process's peak RSS so far. Granules are cached under `target/bench-data/`. Under `cargo test` it runs a
//! small smoke version.

mod common;

use chrono::NaiveDate;
use common::tooling::TempDir;
use common::{human, median, print_table};
use mursst::pipeline::{self, Context, DEFAULT_VARIABLES, UpdateOptions};
use mursst::store::create::GridChunks;
use mursst::synthetic::GranuleSpec;
use mursst::validate::ValidateMode;

/// Peak resident set of this process so far, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    common::dir_files(dir).values().map(|(size, _)| size).sum()
}

fn main() {
    let bench = common::is_bench();
    let runs = common::runs(bench);
    let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).expect("valid date");
    // (what, day): the eras of `ChunkLayout::for_date`.
    let cases = [
        (
            "2002–2023: mask, sea_ice_fraction (1, 1447, 2895)",
            d(2021, 7, 15),
        ),
        (
            "2021-12-24..2022-01-26: every variable deflate before shuffle",
            d(2022, 1, 5),
        ),
        (
            "2023-09..2024-05: every variable (1, 3600, 7200) / (1, 4500, 9000)",
            d(2023, 10, 1),
        ),
    ];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // The smoke version's grid is smaller than a chunk: a smaller target keeps it native.
    let target: Vec<u64> = if bench {
        vec![1023, 2047]
    } else {
        vec![256, 512]
    };
    let mut rows = Vec::new();
    for (what, date) in cases {
        let spec = if bench {
            GranuleSpec::historical(date)
        } else {
            GranuleSpec {
                lat_size: 1000,
                lon_size: 2000,
                ..GranuleSpec::historical(date)
            }
        };
        let path = common::cached_granule(&spec);
        let granules = path.parent().expect("a directory").to_path_buf();
        let mut seconds = Vec::new();
        let mut last = None;
        for _ in 0..runs {
            let work = TempDir::new("bench-materialize");
            let store = work.path().join("store");
            let mut ctx = Context::local(&store, &granules);
            ctx.artifacts = work.path().join("artifacts").display().to_string();
            let options = UpdateOptions {
                lag_days: 0,
                validate: ValidateMode::Off,
                chunks: Some(GridChunks::All(target.clone())),
                ..Default::default()
            };
            let vars: Vec<String> = DEFAULT_VARIABLES.iter().map(|s| s.to_string()).collect();
            let report = rt
                .block_on(pipeline::init(&ctx, &options, date, date, &vars))
                .expect("init materializing the day");
            assert_eq!(report.days_added, [date]);
            seconds.push((report.timings_s["materialize"], report.timings_s["write"]));
            last = Some((report, dir_bytes(&store)));
        }
        let (report, stored) = last.expect("at least one run");
        let native = &report.native[&date];
        let m = report.materialized;
        rows.push(vec![
            what.to_string(),
            native.keys().cloned().collect::<Vec<_>>().join(", "),
            format!(
                "{:.1}",
                median(&seconds.iter().map(|s| s.0).collect::<Vec<_>>())
            ),
            format!(
                "{:.2}",
                median(&seconds.iter().map(|s| s.1).collect::<Vec<_>>())
            ),
            human(m.bytes_read),
            human(m.bytes_written),
            human(stored),
            human(m.peak_buffer_bytes),
            human(peak_rss()),
        ]);
    }
    print_table(
        &[
            "era",
            "materialized",
            "materialize s",
            "write s",
            "read",
            "decoded",
            "store bytes",
            "peak buffer",
            "peak RSS so far",
        ],
        &rows,
    );
}
