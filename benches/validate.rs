//! Validation against the source: seconds and bytes read to check one full-size day,
//! `sample` and `full`, with the granule on local disk and on S3 (moto on loopback).
//!
//! ```sh
//! scripts/bootstrap.sh && source scripts/env.sh
//! cargo bench --bench validate
//! ```
//!
//! A store holds the day before; each run is a `--dry-run` update adding the day (refs,
//! write to a branch, validation, no move of `main`), so every run validates the same
//! day afresh. Printed: the validate step's median seconds over `MURSST_BENCH_RUNS`
//! (default 3), the chunks and values compared, and the bytes validation read from the
//! source (0 locally: libhdf5 opens the file itself; over S3 the metadata and the
//! compared chunks, filled into a sparse local copy). Granules are cached under
//! `target/bench-data/`. Under `cargo test` it runs a small smoke version.

mod common;

use chrono::NaiveDate;
use common::tooling::{MotoServer, TempDir};
use common::{human, median, print_table};
use mursst::discover::GranuleSource;
use mursst::pipeline::{self, Context, DEFAULT_VARIABLES, UpdateOptions};
use mursst::synthetic::GranuleSpec;
use mursst::validate::{ValidateMode, ValidationReport};

fn main() {
    let bench = common::is_bench();
    let runs = common::runs(bench);
    let date = NaiveDate::from_ymd_opt(2025, 1, 15).expect("valid date");
    let previous = date.pred_opt().expect("a day before");
    let spec = |d| {
        if bench {
            GranuleSpec::new(d)
        } else {
            GranuleSpec::small(d, 1000, 2000)
        }
    };
    let paths = [
        common::cached_granule(&spec(previous)),
        common::cached_granule(&spec(date)),
    ];
    let size = common::file_size(&paths[1]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let rows = rt.block_on(async {
        let moto = MotoServer::start();
        moto.create_bucket("granules").await;
        for path in &paths {
            let name = path.file_name().expect("a file name").to_string_lossy();
            moto.put_file("granules", &format!("mur/{name}"), path)
                .await;
        }
        let work = TempDir::new("bench-validate");
        // The cache keeps each granule in its own directory: link both into one.
        let granules = work.path().join("granules");
        std::fs::create_dir_all(&granules).expect("a granule directory");
        for path in &paths {
            let name = path.file_name().expect("a file name");
            std::os::unix::fs::symlink(path, granules.join(name)).expect("link a granule");
        }
        let local = GranuleSource::Local(granules);
        let s3 =
            GranuleSource::parse("s3://granules/mur/", &moto.s3_access()).expect("an S3 source");
        let mut rows = Vec::new();
        for (where_, source) in [("local disk", local), ("S3 (moto)", s3)] {
            let dir = work.path().join(where_.replace(' ', "-"));
            let ctx = Context {
                source,
                source_s3: moto.s3_settings().into(),
                artifacts: dir.join("artifacts").display().to_string(),
                ..Context::local(dir.join("store"), &dir)
            };
            init(&ctx, previous).await;
            for mode in [ValidateMode::Sample, ValidateMode::Full] {
                rows.push(measure(&ctx, date, mode, runs, where_).await);
            }
        }
        rows
    });
    println!();
    println!(
        "validation of one day ({}, {}), medians of {runs}:",
        if bench {
            "17999 × 36000"
        } else {
            "small smoke granule"
        },
        human(size)
    );
    print_table(
        &[
            "granule on",
            "mode",
            "validate s",
            "chunks",
            "values",
            "bytes read",
        ],
        &rows,
    );
    if !bench {
        println!("(smoke run on small granules: run `cargo bench --bench validate` for figures)");
    }
}

/// A store holding `day`, unvalidated (the bench times the next day's validation).
async fn init(ctx: &Context, day: NaiveDate) {
    let options = UpdateOptions {
        lag_days: 0,
        validate: ValidateMode::Off,
        ..Default::default()
    };
    let vars: Vec<String> = DEFAULT_VARIABLES.iter().map(|s| s.to_string()).collect();
    pipeline::init(ctx, &options, day, day, &vars)
        .await
        .expect("init the store");
}

/// The validate step of `runs` dry-run updates adding `day`.
async fn measure(
    ctx: &Context,
    day: NaiveDate,
    mode: ValidateMode,
    runs: usize,
    where_: &str,
) -> Vec<String> {
    let mut seconds = Vec::new();
    let mut last = ValidationReport::default();
    for seed in 0..runs as u64 {
        let options = UpdateOptions {
            lag_days: 0,
            validate: mode,
            dry_run: true,
            limit: Some(1),
            seed,
            ..Default::default()
        };
        let report = pipeline::update(ctx, &options).await.expect("update");
        assert_eq!(report.days_added, [day], "the run adds the day");
        seconds.push(report.timings_s["validate"]);
        last = report.validation.expect("a validation report");
        remove_branch(ctx, report.branch.as_deref()).await;
    }
    vec![
        where_.to_string(),
        format!("{mode:?}").to_lowercase(),
        format!("{:.3}", median(&seconds)),
        last.chunks_compared.to_string(),
        last.values_compared.to_string(),
        human(last.source_bytes_read),
    ]
}

/// A dry run keeps its branch; the next run makes its own.
async fn remove_branch(ctx: &Context, branch: Option<&str>) {
    let Some(branch) = branch else { return };
    let repo = mursst::store::StoreRepo::open(&ctx.store, &ctx.store_s3, &ctx.source_s3)
        .await
        .expect("open the store");
    repo.delete_branch(branch).await.expect("delete the branch");
}
