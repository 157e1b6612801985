//! The store: what appending one day costs as the history grows, and one full day end
//! to end on local disk.
//!
//! ```sh
//! scripts/bootstrap.sh && source scripts/env.sh
//! cargo bench --bench append
//! MURSST_BENCH_SPLITS=16,64,365 cargo bench --bench append   # compare split sizes
//! ```
//!
//! Part 1: local stores holding 10, 365 and 3650 days of MUR-shaped references
//! (analysed_sst and analysis_error 324 chunks a day, mask and sea_ice_fraction 169, the
//! full 17999 × 36000 grid in the Zarr metadata). The references are those of one real
//! indexed full-size synthetic granule, re-dated and pointed at a made-up file per day
//! under the store's virtual chunk container, with shifted offsets; they are never read.
//! Setup appends them with [`writer::write_days`] straight on `main` (up to
//! `MURSST_BENCH_SETUP_DAYS`, default 365, days per commit). Then, several times per size,
//! one more day goes in as the pipeline does it (reopen the repository, read the state,
//! branch, write the references and commit, move `main`); timed are the write + commit
//! (the issue's "commit time") and the whole cycle, and measured are the files and bytes
//! the cycle wrote in the store directory (new or changed files), split by kind. Prints
//! medians and whether 3650 days cost at most 1.5× what 10 days cost. The manifest split
//! size along `time` is `TIME_SPLIT_SIZE` from `src/store/repository.rs` unless
//! `MURSST_BENCH_SPLITS` lists others to compare (the repository is created and opened
//! with that size; the source constant is not touched).
//!
//! Part 2: one full-size MUR-shaped day on local disk: a store initialised with the day
//! before, then `pipeline::update` adds the day (refs generation, schema check, write +
//! commit, `sample` validation against the source with libhdf5, moving `main`); prints
//! the per-step timings from the pipeline's report, medians over
//! `MURSST_BENCH_FULL_RUNS` (default 3) fresh stores.
//!
//! What an append writes depends on where the day lands in its split (the split's
//! manifest is rewritten with all its days), so the tables show the days in that split
//! and split the bytes into manifests and the rest (snapshot, repo info file and its
//! backup in `overwritten/`, transaction log), which is what grows with the history.
//! Production commits once a day, and the repo info file lists every snapshot: set
//! `MURSST_BENCH_SETUP_DAYS=1` to build the stores with one commit per day (slow: ~10
//! minutes and a few GB for 3650 days, since every commit keeps its manifests).
//!
//! Other knobs: `MURSST_BENCH_REPS` (timed appends per store size, default 5),
//! `MURSST_BENCH_SIZES` (default 10,365,3650). Granules are cached under
//! `target/bench-data/` (shared with the `refs` bench); stores are built in a temporary
//! directory and removed. Under `cargo test` it runs a small smoke version.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use chrono::{Days, NaiveDate};
use icechunk::config::{Credentials, ManifestConfig};
use icechunk::{Repository, RepositoryConfig};

use common::tooling::TempDir;
use common::{Written, dir_files, human, median, print_table, verdict, written};
use mursst::discover::GranuleSource;
use mursst::granule::{self, Granule};
use mursst::pipeline::{self, Context, DEFAULT_VARIABLES, Report, UpdateOptions};
use mursst::refs::ChunkData;
use mursst::store::layout::{self, Role};
use mursst::store::prepared::PreparedGranule;
use mursst::store::repository::{self, TIME_SPLIT_SIZE};
use mursst::store::{RepoLocation, StoreRepo};
use mursst::store::{SessionStores, StoreState};
use mursst::store::{create, writer};
use mursst::synthetic::GranuleSpec;
use mursst::validate::ValidateMode;

/// The issue's target: appending to 3650 days costs at most this much more than to 10.
const TARGET_RATIO: f64 = 1.5;

fn env_list<T: std::str::FromStr>(name: &str, default: Vec<T>) -> Vec<T> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}: cannot parse {s:?}"))
            })
            .collect(),
        _ => default,
    }
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn variables() -> Vec<String> {
    DEFAULT_VARIABLES.iter().map(|s| s.to_string()).collect()
}

fn new_store() -> create::NewStore {
    create::NewStore {
        variables: variables(),
        chunks: None,
    }
}

// ---------------------------------------------------------------------------------
// Synthetic days

/// One indexed granule, re-dated into as many days as needed.
struct Template {
    day: PreparedGranule,
}

impl Template {
    /// Index `path` (a granule of `date`) as the pipeline does.
    async fn index(path: &Path, date: NaiveDate) -> Self {
        let url = url::Url::from_file_path(path)
            .expect("absolute granule path")
            .to_string();
        let (mut day, _, _) = pipeline::prepare_granule(
            &Granule {
                date,
                url,
                revision: None,
            },
            &mursst::objects::S3Access::default(),
            &Default::default(),
        )
        .await
        .expect("index the template granule");
        // Only what the store keeps: the default variables and the coordinates.
        day.refs.variables.retain(|v| {
            layout::role(v) != Role::Data || DEFAULT_VARIABLES.contains(&v.name.as_str())
        });
        Self { day }
    }

    fn chunks_per_day(&self) -> Vec<(String, usize)> {
        self.day
            .refs
            .variables
            .iter()
            .filter(|v| layout::role(v) == Role::Data)
            .map(|v| (v.name.clone(), v.chunks.len()))
            .collect()
    }

    /// The template as the granule of `date` in `prefix` (the store's container), its
    /// references shifted by `index` so no two days are alike. Only the first day of a
    /// store needs the coordinates.
    fn day(&self, prefix: &str, date: NaiveDate, index: u64, coordinates: bool) -> PreparedGranule {
        let url = format!("{prefix}{}", granule::file_name(date));
        let mut refs = self.day.refs.clone();
        refs.object.url = url.clone();
        refs.object.etag = None;
        refs.object.last_modified = date
            .and_hms_opt(23, 0, 0)
            .map(|t| t.and_utc() + chrono::Duration::days(3));
        for var in &mut refs.variables {
            if layout::role(var) != Role::Data {
                continue;
            }
            for (_, chunk) in &mut var.chunks {
                if let ChunkData::Ref(r) = chunk {
                    r.offset += (index * 7919) % 65_536;
                    r.length += index % 97;
                }
            }
        }
        let epoch_shift = (self.day.time_epoch - granule::time_epoch()).num_seconds();
        PreparedGranule {
            granule: Granule {
                date,
                url,
                revision: None,
            },
            refs,
            time_seconds: granule::time_value(date) - epoch_shift,
            time_epoch: self.day.time_epoch,
            coordinates: if coordinates {
                self.day.coordinates.clone()
            } else {
                HashMap::new()
            },
            route: Default::default(),
            native: Default::default(),
        }
    }
}

// ---------------------------------------------------------------------------------
// Repositories with a chosen split size

/// The store's configuration with every manifest split dimension set to `split` chunks.
fn config(split: u32, source: &GranuleSource, container: bool) -> RepositoryConfig {
    let c = container.then(|| repository::container_for(&source.root()).expect("container"));
    let mut config = repository::repo_config(c);
    if let Some(ManifestConfig {
        splitting: Some(splitting),
        ..
    }) = &mut config.manifest
    {
        for (_, dims) in splitting.split_sizes.iter_mut().flatten() {
            for dim in dims {
                dim.num_chunks = split;
            }
        }
    }
    config
}

fn authorizations(source: &GranuleSource) -> HashMap<String, Option<Credentials>> {
    HashMap::from([(
        source.url_prefix(),
        Some(Credentials::LocalFileSystemAccess),
    )])
}

async fn create_repo(dir: &Path, source: &GranuleSource, split: u32) -> StoreRepo {
    let storage = icechunk::new_local_filesystem_storage(dir)
        .await
        .expect("local storage");
    let repo = Repository::create(storage)
        .config(config(split, source, true))
        .authorize_virtual_chunk_access(authorizations(source))
        .execute()
        .await
        .expect("create repository");
    StoreRepo {
        repo,
        location: RepoLocation::Local(dir.to_path_buf()),
    }
}

/// Open as a daily run would (`StoreRepo::open`), with the split size under test.
async fn open_repo(dir: &Path, source: &GranuleSource, split: u32) -> StoreRepo {
    let storage = icechunk::new_local_filesystem_storage(dir)
        .await
        .expect("local storage");
    let repo = Repository::open(storage)
        .config(config(split, source, false))
        .authorize_virtual_chunk_access(authorizations(source))
        .execute()
        .await
        .expect("open repository");
    StoreRepo {
        repo,
        location: RepoLocation::Local(dir.to_path_buf()),
    }
}

async fn state_of_main(repo: &StoreRepo) -> (icechunk::format::SnapshotId, Option<StoreState>) {
    let tip = repo.branch_tip("main").await.expect("main");
    let state = repo.state_at(&tip).await.expect("read state");
    (tip, state)
}

/// A store of `days` days starting at `first`, appended `batch` days per commit on main.
async fn build_store(
    dir: &Path,
    source: &GranuleSource,
    split: u32,
    template: &Template,
    first: NaiveDate,
    days: u64,
    batch: u64,
) {
    let repo = create_repo(dir, source, split).await;
    let prefix = source.url_prefix();
    let mut done = 0u64;
    while done < days {
        let n = batch.min(days - done);
        let batch_days: Vec<PreparedGranule> = (done..done + n)
            .map(|i| template.day(&prefix, first + Days::new(i), i, i == 0))
            .collect();
        let (_, state) = state_of_main(&repo).await;
        let session = repo
            .repo
            .writable_session("main")
            .await
            .expect("session on main");
        let stores = SessionStores::new(session).await;
        writer::write_days(
            &stores,
            state.as_ref(),
            &batch_days,
            &new_store(),
            &format!("setup: days {done}..{}", done + n),
            Default::default(),
        )
        .await
        .expect("append setup days");
        done += n;
    }
}

/// One timed append of the next day, the way the pipeline does it.
struct Append {
    /// Writing the references and committing (`writer::write_days`).
    commit_s: f64,
    /// Open, read the state, branch, write + commit, move main, delete the branch.
    cycle_s: f64,
    written: Written,
    /// Days in the manifest split the new day lands in, the new day included: what
    /// the commit rewrites of each array's references.
    split_days: u64,
}

async fn append_one(
    dir: &Path,
    source: &GranuleSource,
    split: u32,
    template: &Template,
    first: NaiveDate,
) -> Append {
    let before = dir_files(dir);
    let start = Instant::now();
    let repo = open_repo(dir, source, split).await;
    let (base, state) = state_of_main(&repo).await;
    let state = state.expect("a built store");
    let index = state.days;
    let day = template.day(&source.url_prefix(), first + Days::new(index), index, false);
    let branch = format!("add_time_bench_{index}");
    let stores = SessionStores::new(repo.start_branch(&branch, &base).await.expect("branch")).await;
    let t = Instant::now();
    let summary = writer::write_days(
        &stores,
        Some(&state),
        std::slice::from_ref(&day),
        &new_store(),
        &format!("add {}", day.granule.date),
        Default::default(),
    )
    .await
    .expect("append one day");
    let commit_s = t.elapsed().as_secs_f64();
    let tip = icechunk::format::SnapshotId::try_from(summary.snapshot.as_str()).expect("snapshot");
    repo.move_main(&tip, &base, &branch).await.expect("merge");
    repo.delete_branch(&branch).await.expect("delete branch");
    let cycle_s = start.elapsed().as_secs_f64();
    Append {
        commit_s,
        cycle_s,
        written: written(&before, &dir_files(dir)),
        split_days: index % u64::from(split) + 1,
    }
}

/// Figures for one store size.
struct SizeResult {
    days: u64,
    /// Commits the store was built with (each adds an entry to the repo info file).
    commits: u64,
    setup_s: f64,
    store_bytes: u64,
    store_files: usize,
    appends: Vec<Append>,
}

/// Bytes an append wrote under `manifests/`.
fn manifest_bytes(a: &Append) -> u64 {
    a.written.by_kind.get("manifests").map_or(0, |e| e.1)
}

impl SizeResult {
    /// The median over this size's appends of one figure.
    fn median_of(&self, figure: impl Fn(&Append) -> f64) -> f64 {
        median(&self.appends.iter().map(figure).collect::<Vec<_>>())
    }
    fn commit_s(&self) -> f64 {
        self.median_of(|a| a.commit_s)
    }
    fn cycle_s(&self) -> f64 {
        self.median_of(|a| a.cycle_s)
    }
    fn bytes(&self) -> f64 {
        self.median_of(|a| a.written.bytes as f64)
    }
    fn files(&self) -> f64 {
        self.median_of(|a| a.written.files as f64)
    }
    fn split_days(&self) -> f64 {
        self.median_of(|a| a.split_days as f64)
    }
    /// Median bytes written outside `manifests/`: what grows with the history.
    fn other_bytes(&self) -> f64 {
        self.median_of(|a| (a.written.bytes - manifest_bytes(a)) as f64)
    }
    /// Median manifest bytes written per day of the rewritten split.
    fn manifest_bytes_per_split_day(&self) -> f64 {
        self.median_of(|a| manifest_bytes(a) as f64 / a.split_days as f64)
    }
    fn growth(&self) -> f64 {
        self.median_of(|a| a.written.growth as f64)
    }
    /// Median bytes written per kind of file.
    fn by_kind(&self) -> BTreeMap<String, f64> {
        let kinds: std::collections::BTreeSet<&String> = self
            .appends
            .iter()
            .flat_map(|a| a.written.by_kind.keys())
            .collect();
        kinds
            .into_iter()
            .map(|k| {
                let v: Vec<f64> = self
                    .appends
                    .iter()
                    .map(|a| a.written.by_kind.get(k).map_or(0.0, |e| e.1 as f64))
                    .collect();
                (k.clone(), median(&v))
            })
            .collect()
    }
}

async fn bench_split(
    work: &Path,
    template: &Template,
    split: u32,
    sizes: &[u64],
    reps: usize,
    batch: u64,
) -> Vec<SizeResult> {
    let first = NaiveDate::from_ymd_opt(2002, 6, 1).expect("valid date");
    let mut out = Vec::new();
    for &days in sizes {
        let root = work.join(format!("split{split}-days{days}"));
        let granules = root.join("granules");
        let store = root.join("store");
        std::fs::create_dir_all(&granules).expect("granule dir");
        let source = GranuleSource::Local(granules.clone());
        let t = Instant::now();
        build_store(&store, &source, split, template, first, days, batch).await;
        let setup_s = t.elapsed().as_secs_f64();
        let files = dir_files(&store);
        let store_bytes = files.values().map(|v| v.0).sum();
        eprintln!(
            "split {split}: built {days} days in {setup_s:.1} s ({}, {} files); timing {reps} \
             appends",
            human(store_bytes),
            files.len()
        );
        let mut appends = Vec::new();
        for _ in 0..reps {
            appends.push(append_one(&store, &source, split, template, first).await);
        }
        out.push(SizeResult {
            days,
            commits: days.div_ceil(batch),
            setup_s,
            store_bytes,
            store_files: files.len(),
            appends,
        });
        let _ = std::fs::remove_dir_all(&root);
    }
    out
}

fn print_split(split: u32, results: &[SizeResult], chunks_per_day: usize) {
    println!();
    println!(
        "manifest split along time: {split} day(s){}",
        if split == TIME_SPLIT_SIZE {
            " (TIME_SPLIT_SIZE)"
        } else {
            ""
        }
    );
    let kinds: std::collections::BTreeSet<String> = results
        .iter()
        .flat_map(|r| r.by_kind().into_keys())
        .collect();
    let mut header: Vec<String> = [
        "days in store",
        "commit s",
        "cycle s",
        "bytes written",
        "files written",
        "store growth",
        "days in split",
        "not manifests",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    header.extend(kinds.iter().map(|k| format!("{k}/")));
    header.extend([
        "store size".to_string(),
        "setup commits".to_string(),
        "setup s".to_string(),
    ]);
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let by_kind = r.by_kind();
            let mut row = vec![
                r.days.to_string(),
                format!("{:.3}", r.commit_s()),
                format!("{:.3}", r.cycle_s()),
                human(r.bytes() as u64),
                format!("{:.0}", r.files()),
                human(r.growth().max(0.0) as u64),
                format!("{:.0}", r.split_days()),
                human(r.other_bytes() as u64),
            ];
            row.extend(
                kinds
                    .iter()
                    .map(|k| human(by_kind.get(k).copied().unwrap_or(0.0) as u64)),
            );
            row.extend([
                format!("{} ({} files)", human(r.store_bytes), r.store_files),
                r.commits.to_string(),
                format!("{:.1}", r.setup_s),
            ]);
            row
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    print_table(&header, &rows);
    println!(
        "(one day = {chunks_per_day} references; medians of {} append(s) per size; columns \
         named after a directory are the bytes written there)",
        results.first().map_or(0, |r| r.appends.len())
    );
    if let (Some(small), Some(large)) = (results.first(), results.last())
        && large.days > small.days
    {
        let t = large.commit_s() / small.commit_s();
        let c = large.cycle_s() / small.cycle_s();
        let b = large.bytes() / small.bytes();
        println!(
            "{} → {} days: commit time {t:.2}×, cycle time {c:.2}×, bytes written {b:.2}× — \
             target ≤ {TARGET_RATIO}×: {}",
            small.days,
            large.days,
            verdict(t <= TARGET_RATIO && b <= TARGET_RATIO)
        );
        let per_day = results
            .iter()
            .map(SizeResult::manifest_bytes_per_split_day)
            .fold(0.0, f64::max);
        println!(
            "  manifests: each append rewrites the split it lands in ({} day(s) at {} days, \
             {} at {}), ≤ {} per day in the split, so at most ~{} for a full split of \
             {split}, whatever the history",
            small.split_days(),
            small.days,
            large.split_days(),
            large.days,
            human(per_day as u64),
            human((per_day * f64::from(split)) as u64),
        );
        println!(
            "  everything else (snapshot, repo info and its backup, transaction log, refs): \
             {} at {} days, {} at {} ({:.2}×); it grows with the snapshots and manifests \
             the store has",
            human(small.other_bytes() as u64),
            small.days,
            human(large.other_bytes() as u64),
            large.days,
            large.other_bytes() / small.other_bytes(),
        );
    }
}

// ---------------------------------------------------------------------------------
// Part 2: one full day end to end

async fn full_day(work: &Path, previous: &Path, day: &Path, date: NaiveDate, runs: usize) {
    let granules = work.join("full-granules");
    std::fs::create_dir_all(&granules).expect("granule dir");
    for path in [previous, day] {
        let link = granules.join(path.file_name().expect("file name"));
        if !link.exists() {
            std::os::unix::fs::symlink(path, &link).expect("link granule");
        }
    }
    let mut updates: Vec<(Report, f64)> = Vec::new();
    let mut inits: Vec<(Report, f64)> = Vec::new();
    for i in 0..runs {
        let store = work.join(format!("full-store-{i}"));
        let ctx = Context {
            concurrency: 8,
            ..Context::local(&store, &granules)
        };
        let options = UpdateOptions {
            lag_days: 0,
            validate: ValidateMode::Sample,
            seed: i as u64,
            ..Default::default()
        };
        let previous_day = date.pred_opt().expect("a day before");
        let t = Instant::now();
        let init = pipeline::init(&ctx, &options, previous_day, previous_day, &variables())
            .await
            .expect("init with the previous day");
        inits.push((init, t.elapsed().as_secs_f64()));
        let t = Instant::now();
        let update = pipeline::update(&ctx, &options)
            .await
            .expect("update adds the day");
        let total = t.elapsed().as_secs_f64();
        assert_eq!(update.days_added, vec![date], "{}", update.message);
        updates.push((update, total));
        let _ = std::fs::remove_dir_all(&store);
    }
    let steps: Vec<&str> = ["discover", "refs", "write", "validate", "merge"]
        .into_iter()
        .chain(
            updates
                .iter()
                .flat_map(|(r, _)| r.timings_s.keys().copied())
                .filter(|k| !["discover", "refs", "write", "validate", "merge"].contains(k)),
        )
        .collect();
    let med = |reports: &[(Report, f64)], step: &str| {
        median(
            &reports
                .iter()
                .map(|(r, _)| r.timings_s.get(step).copied().unwrap_or(0.0))
                .collect::<Vec<_>>(),
        )
    };
    let what = |step: &str| match step {
        "discover" => "open the store, read main's state, list the source",
        "refs" => "generate refs: HDF5 metadata, time and lat/lon values, artifact",
        "write" => "check the day fits, write refs to a new branch + commit",
        "validate" => "rules + `sample` chunks compared with libhdf5",
        "merge" => "move main (compare-and-swap), delete the branch and artifacts",
        _ => "",
    };
    let mut rows: Vec<Vec<String>> = steps
        .iter()
        .map(|s| {
            vec![
                s.to_string(),
                format!("{:.3}", med(&updates, s)),
                format!("{:.3}", med(&inits, s)),
                what(s).to_string(),
            ]
        })
        .collect();
    let total = |v: &[(Report, f64)]| median(&v.iter().map(|(_, t)| *t).collect::<Vec<_>>());
    rows.push(vec![
        "total".into(),
        format!("{:.3}", total(&updates)),
        format!("{:.3}", total(&inits)),
        "the whole pipeline::update / init call".into(),
    ]);
    println!();
    println!(
        "one full-size day on local disk ({}): store initialised with the day before, then \
         pipeline::update adds it; medians of {runs} fresh store(s)",
        day.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    print_table(&["step", "update s", "init s (first day)", "what"], &rows);
    if let Some((r, _)) = updates.last() {
        let v = r.validation.as_ref();
        println!(
            "update: {} refs written, {} requests / {} read for refs; validation compared {} \
             chunk(s), {} value(s)",
            r.refs,
            r.requests,
            human(r.bytes_read),
            v.map_or(0, |v| v.chunks_compared),
            v.map_or(0, |v| v.values_compared),
        );
    }
}

fn main() {
    let bench = common::is_bench();
    let reps: usize = env_number("MURSST_BENCH_REPS", if bench { 5 } else { 1 }).max(1);
    let full_runs: usize = env_number("MURSST_BENCH_FULL_RUNS", if bench { 3 } else { 1 }).max(1);
    let batch: u64 = env_number("MURSST_BENCH_SETUP_DAYS", 365u64).max(1);
    let sizes: Vec<u64> = env_list(
        "MURSST_BENCH_SIZES",
        if bench {
            vec![10, 365, 3650]
        } else {
            vec![2, 5]
        },
    );
    let splits: Vec<u32> = env_list("MURSST_BENCH_SPLITS", vec![TIME_SPLIT_SIZE]);
    let date = NaiveDate::from_ymd_opt(2025, 1, 15).expect("valid date");
    let previous = date.pred_opt().expect("a day before");
    let spec = |d| {
        if bench {
            GranuleSpec::new(d)
        } else {
            GranuleSpec::small(d, 1000, 2000)
        }
    };
    let day_path = common::cached_granule(&spec(date));
    let previous_path = common::cached_granule(&spec(previous));
    let work = TempDir::new("bench-append");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let template = Template::index(&day_path, date).await;
        let per_var = template.chunks_per_day();
        let chunks_per_day: usize = per_var.iter().map(|(_, n)| n).sum();
        println!();
        println!(
            "template: {} ({}); references per day: {}",
            day_path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            if bench {
                "17999 × 36000"
            } else {
                "small smoke granule"
            },
            per_var
                .iter()
                .map(|(v, n)| format!("{v} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for &split in &splits {
            let results = bench_split(work.path(), &template, split, &sizes, reps, batch).await;
            print_split(split, &results, chunks_per_day);
        }
        full_day(work.path(), &previous_path, &day_path, date, full_runs).await;
    });
    if !bench {
        println!("(smoke run on small granules: run `cargo bench --bench append` for figures)");
    }
}
