//! `mursst`: the pipeline's steps, run locally.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};

use icechunk::format::SnapshotId;
use mursst::aws::AwsSettings;
use mursst::discover::GranuleSource;
use mursst::logging::{self, LogFormat};
use mursst::objects::S3Access;
use mursst::pipeline::{self, Context, Progress, Report, Step, UpdateOptions};
use mursst::source::{Counted, RangeRead};
use mursst::store::create::{ChunkFlag, GridChunks};
use mursst::store::hygiene::Age;
use mursst::store::{RepoLocation, StoreRepo};
use mursst::validate::ValidateMode;

#[derive(Parser)]
#[command(
    version,
    about = "Keeps a virtual icechunk store of MUR SST up to date"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a granule's virtual chunk references as a Kerchunk (v1) reference file.
    Refs {
        /// A path, file:// or s3:// URL.
        granule: String,
        /// Print requests made, bytes read and wall time on stderr.
        #[arg(long)]
        stats: bool,
    },
    /// Create the store from the granules of a date range.
    Init {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        start: NaiveDate,
        #[arg(long)]
        end: NaiveDate,
        /// Variables to keep (comma separated), or `all`.
        #[arg(long, value_delimiter = ',', default_values_t = pipeline::DEFAULT_VARIABLES.iter().map(|s| s.to_string()))]
        variables: Vec<String>,
        /// Chunk the data arrays (1, LAT, LON): `LAT,LON` for all, `VAR=LAT,LON` for
        /// one (repeat the flag); days chunked otherwise are materialized onto it.
        /// Default on the full MUR grid: `1023,2047` (today's producer layout, so daily
        /// appends stay virtual); elsewhere the first day's.
        #[arg(long, value_names = ["[VAR=]LAT,LON"])]
        chunks: Vec<ChunkFlag>,
        /// The icechunk format of the new repository: 1 for readers on icechunk 1.x (as
        /// the public store's), 2 for the current one.
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=2))]
        spec_version: Option<u8>,
    },
    /// Run the whole pipeline on sample granules: no AWS, no NASA access needed.
    Demo {
        /// Working directory for the sample granules and the store.
        #[arg(long, default_value = "mursst-demo")]
        dir: std::path::PathBuf,
        /// Days of sample granules in all.
        #[arg(long, default_value_t = 8)]
        days: u32,
        /// Days the store is created with; `update` appends the rest.
        #[arg(long, default_value_t = 5)]
        init_days: u32,
        /// Grid size (latitudes × longitudes) of the sample granules.
        #[arg(long, num_args = 2, value_names = ["LAT", "LON"], default_values_t = [2000, 4000])]
        grid: Vec<usize>,
        /// Print the reports as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a MUR-shaped sample granule (full size unless `--grid`) with the chunk
    /// layout and filters that real granules of any day of the record have; prints its
    /// path. `--dir` is a cache: the same granule is written once.
    Sample {
        /// The granule's day.
        #[arg(long)]
        date: NaiveDate,
        /// Take the layout real granules of this day have (default: `--date`'s own).
        #[arg(long)]
        layout_of: Option<NaiveDate>,
        /// Other values for the same day (a replaced granule).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Grid size (latitudes × longitudes); default the full 17999 × 36000.
        #[arg(long, num_args = 2, value_names = ["LAT", "LON"])]
        grid: Option<Vec<usize>>,
        #[arg(long)]
        dir: std::path::PathBuf,
    },
    /// What the next run would take, writing nothing: "what will tonight's run do?".
    Discover {
        /// Where the granules are: a directory, s3://bucket/prefix, or `cmr`.
        #[arg(long, env = "MURSST_SOURCE")]
        source: String,
        /// The store whose last day the run continues from.
        #[arg(long, env = "MURSST_STORE")]
        store: Option<String>,
        /// Without a store: the first day to consider (default 30 days ago).
        #[arg(long)]
        start: Option<NaiveDate>,
        /// The last day to consider (default today).
        #[arg(long)]
        end: Option<NaiveDate>,
        #[arg(long, default_value_t = pipeline::DEFAULT_LAG_DAYS)]
        lag_days: u32,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cmr: CmrArgs,
    },
    /// Append the new, settled days: the daily job.
    Update {
        #[command(flatten)]
        common: Common,
        /// Add at most N days.
        #[arg(long)]
        limit: Option<usize>,
        /// Also re-point stored days at their current granule: `changed` (sources
        /// replaced since ingest) or dates and ranges (`2025-01-02,2025-01-05..2025-01-07`).
        #[arg(long)]
        reprocess: Option<pipeline::Reprocess>,
        /// Days back from the store's last day that `--reprocess changed` checks.
        #[arg(long, default_value_t = pipeline::DEFAULT_WINDOW_DAYS)]
        reprocess_window: u32,
    },
    /// Look after the store: leftover branches, history, rollback, expiry.
    Store {
        #[command(subcommand)]
        action: StoreCommand,
        /// The icechunk repository: a directory or s3://bucket/prefix.
        #[arg(long, env = "MURSST_STORE", global = true)]
        store: Option<String>,
        /// Print JSON.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Operate a deployed stage: start, watch and redrive its state machines.
    Ops {
        #[command(subcommand)]
        action: OpsCommand,
    },
    /// Run one step with the JSON event its Lambda gets, printing the output JSON
    /// (reproduces a failed state from the console's input).
    Step {
        /// The Lambda: discover, generate-refs, commit, materialize or validate.
        #[arg(value_enum)]
        name: Step,
        /// The event: a file, or `-` for standard input.
        #[arg(long)]
        event: String,
        #[command(flatten)]
        locations: Locations,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Every branch; temporary ones are runs that have not finished (or died).
    Branches,
    /// Delete temporary branches older than an age (never main, never one in --keep).
    Prune {
        /// e.g. `7d`, `12h`.
        #[arg(long)]
        older_than: Age,
        /// Branches of runs still going.
        #[arg(long)]
        keep: Vec<String>,
    },
    /// Expire snapshots older than an age and delete what nothing reaches any more.
    Expire {
        #[arg(long)]
        older_than: Age,
    },
    /// main's commits, newest first, with the days each added.
    Log {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Move main back to one of its earlier snapshots (refused if main moves meanwhile).
    Rollback {
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
enum OpsCommand {
    /// Start an execution (the daily run, or given dates).
    Start {
        /// The state machine's ARN.
        #[arg(long, env = "MURSST_STATE_MACHINE")]
        state_machine: String,
        /// Only these days (comma separated).
        #[arg(long, value_delimiter = ',')]
        dates: Vec<NaiveDate>,
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum)]
        validate: Option<ValidateMode>,
        /// Re-point stored days: `changed`, or dates and ranges.
        #[arg(long)]
        reprocess: Option<pipeline::Reprocess>,
    },
    /// Recent executions and their outcome, and the store's head.
    Status {
        #[arg(long, env = "MURSST_STATE_MACHINE")]
        state_machine: String,
        #[arg(long, default_value_t = 10)]
        limit: i32,
        /// Also show the store: last day, main's snapshot, leftover branches.
        #[arg(long, env = "MURSST_STORE")]
        store: Option<String>,
    },
    /// Resume a failed execution's run: same branch, indexed granules reused.
    Redrive { execution: String },
}

/// Where the store, the granules and the run artifacts are.
#[derive(Args)]
struct Locations {
    /// The icechunk repository: a directory or s3://bucket/prefix.
    #[arg(long, env = "MURSST_STORE")]
    store: String,
    /// Where the granules are: a directory, s3://bucket/prefix, or `cmr`.
    #[arg(long, env = "MURSST_SOURCE")]
    source: String,
    /// Where steps leave artifacts for each other: a directory or s3://bucket/prefix.
    #[arg(long, env = "MURSST_ARTIFACTS", default_value_t = pipeline::default_artifacts())]
    artifacts: String,
    /// Granules indexed at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    #[command(flatten)]
    cmr: CmrArgs,
}

/// Which CMR collection `--source cmr` searches.
#[derive(Args, Clone)]
struct CmrArgs {
    /// The CMR search endpoint.
    #[arg(long = "cmr-url", env = "MURSST_CMR_URL", default_value = mursst::cmr::DEFAULT_CMR_URL)]
    url: String,
    /// The collection's short name.
    #[arg(long, env = "MURSST_COLLECTION", default_value = mursst::cmr::DEFAULT_COLLECTION)]
    collection: String,
    /// The collection's CMR provider.
    #[arg(long, env = "MURSST_PROVIDER", default_value = mursst::cmr::DEFAULT_PROVIDER)]
    provider: String,
}

impl CmrArgs {
    /// Search this collection if `source` is CMR.
    fn apply(&self, source: &mut GranuleSource) {
        if let GranuleSource::Cmr { config, .. } = source {
            config.url = self.url.clone();
            config.collection = self.collection.clone();
            config.provider = self.provider.clone();
        }
    }
}

impl Locations {
    fn context(&self, progress: bool) -> anyhow::Result<Context> {
        let mut ctx = Context::at(&self.store, &self.source, &self.artifacts)?;
        self.cmr.apply(&mut ctx.source);
        ctx.concurrency = self.concurrency;
        ctx.progress = progress.then(|| Arc::new(Bar::default()) as Arc<dyn Progress>);
        Ok(ctx)
    }
}

#[derive(Args)]
struct Common {
    #[command(flatten)]
    locations: Locations,
    /// Write and validate the branch, but leave main where it is.
    #[arg(long)]
    dry_run: bool,
    /// How much of the new data to compare with the source before main moves.
    #[arg(long, value_enum, default_value_t = ValidateMode::Sample)]
    validate: ValidateMode,
    /// Only granules at least this many days old are referenced.
    #[arg(long, default_value_t = pipeline::DEFAULT_LAG_DAYS)]
    lag_days: u32,
    /// Seed for the chunks `sample` validation picks.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

impl Common {
    fn context(&self) -> anyhow::Result<Context> {
        self.locations.context(!self.json)
    }

    fn options(&self, limit: Option<usize>) -> UpdateOptions {
        UpdateOptions {
            dry_run: self.dry_run,
            limit,
            validate: self.validate,
            lag_days: self.lag_days,
            seed: self.seed,
            ..Default::default()
        }
    }
}

/// A progress bar on a terminal, nothing elsewhere.
#[derive(Default)]
struct Bar(std::sync::Mutex<Option<indicatif::ProgressBar>>);

impl Progress for Bar {
    fn begin(&self, what: &str, len: u64) {
        if !std::io::stderr().is_terminal() {
            return;
        }
        let bar = indicatif::ProgressBar::new(len);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(what.to_string());
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
    }
    fn advance(&self) {
        if let Some(bar) = &*self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            bar.inc(1);
        }
    }
    fn end(&self) {
        if let Some(bar) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish_and_clear();
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // A reader that stops early (`mursst discover | head`) ends the output quietly, as
    // for any Unix tool, instead of `println!` panicking on the closed pipe.
    // SAFETY: at the start of main, before anything else depends on the signal's action.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let format = match LogFormat::from_env(LogFormat::Text) {
        Ok(format) => format,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // icechunk warns about local-filesystem storage on every open; that is the embedded
    // default working as intended.
    logging::init(
        format,
        "warn,icechunk_arrow_object_store=error,icechunk_storage=error",
        false,
    );
    match run(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Library errors carry their causes in their message already.
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Refs { granule, stats } => refs(&granule, stats).await,
        Command::Init {
            common,
            start,
            end,
            variables,
            chunks,
            spec_version,
        } => {
            let ctx = common.context()?;
            let options = UpdateOptions {
                chunks: GridChunks::from_flags(&chunks),
                spec_version,
                ..common.options(None)
            };
            let report = pipeline::init(&ctx, &options, start, end, &variables).await?;
            print_report(&report, common.json)
        }
        Command::Demo {
            dir,
            days,
            init_days,
            grid,
            json,
        } => demo(dir, days, init_days, &grid, json).await,
        Command::Sample {
            date,
            layout_of,
            seed,
            grid,
            dir,
        } => sample(date, layout_of, seed, grid.as_deref(), &dir),
        Command::Update {
            common,
            limit,
            reprocess,
            reprocess_window,
        } => {
            let options = UpdateOptions {
                reprocess,
                reprocess_window_days: Some(reprocess_window),
                ..common.options(limit)
            };
            let report = pipeline::update(&common.context()?, &options).await?;
            print_report(&report, common.json)
        }
        Command::Store {
            action,
            store,
            json,
        } => store_command(action, store, json).await,
        Command::Ops { action } => ops_command(action).await,
        Command::Discover {
            source,
            store,
            start,
            end,
            lag_days,
            limit,
            json,
            cmr,
        } => {
            let found = discover(&source, &cmr, store, start, end, lag_days, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else {
                print_discovery(&found);
            }
            Ok(())
        }
        Command::Step {
            name,
            event,
            locations,
        } => step(name, &event, &locations).await,
    }
}

/// A sample granule in `date`'s name with the layout `layout_of`'s day had, cached in
/// `dir`; prints its path.
fn sample(
    date: NaiveDate,
    layout_of: Option<NaiveDate>,
    seed: u64,
    grid: Option<&[usize]>,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let mut spec = mursst::synthetic::GranuleSpec {
        date,
        seed,
        ..mursst::synthetic::GranuleSpec::historical(layout_of.unwrap_or(date))
    };
    if let Some([lat, lon]) = grid {
        (spec.lat_size, spec.lon_size) = (*lat, *lon);
    }
    let (path, _) = mursst::synthetic::write_cached(dir, &spec)?;
    println!("{}", path.display());
    Ok(())
}

/// One Lambda's step on the event in `event` (a file, or `-` for standard input).
async fn step(name: Step, event: &str, locations: &Locations) -> anyhow::Result<()> {
    let text = if event == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(event)?
    };
    let event: serde_json::Value = serde_json::from_str(&text)?;
    let out = pipeline::run_step(&locations.context(false)?, name, event).await?;
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// What a run would take, from the store's last day or from `start`.
/// What `mursst discover` found: for a store (the discover step's own output), or in
/// the source alone.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Found {
    Store(Box<pipeline::DiscoverOutput>),
    Source {
        #[serde(flatten)]
        selection: mursst::discover::Selection,
        duplicates: Vec<mursst::cmr::ResolvedDuplicate>,
        unusable: Vec<mursst::cmr::Unusable>,
    },
}

async fn discover(
    source: &str,
    cmr: &CmrArgs,
    store: Option<String>,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
    lag_days: u32,
    limit: Option<usize>,
) -> anyhow::Result<Found> {
    let mut granules = GranuleSource::parse(source, &S3Access::source_from_env())?;
    cmr.apply(&mut granules);
    let today = end.unwrap_or_else(|| chrono::Utc::now().date_naive());
    if let Some(store) = store {
        let locations = Locations {
            store,
            source: source.to_string(),
            artifacts: pipeline::default_artifacts(),
            concurrency: 1,
            cmr: cmr.clone(),
        };
        let input = pipeline::DiscoverInput {
            lag_days: Some(lag_days),
            limit,
            today: Some(today),
            ..Default::default()
        };
        let found = pipeline::discover(&locations.context(false)?, input).await?;
        return Ok(Found::Store(Box::new(found)));
    }
    let from = start.unwrap_or(today - chrono::Days::new(30));
    let listing = granules.list_between(from, today).await?;
    let selection =
        mursst::discover::select_new(&listing.granules, from.pred_opt(), today, lag_days, limit);
    Ok(Found::Source {
        selection,
        duplicates: listing.duplicates,
        unusable: listing.unusable,
    })
}

fn print_discovery(found: &Found) {
    let (granules, settling, gap_at, duplicates, unusable) = match found {
        Found::Store(out) => {
            if let Some(last) = out.store_last_day {
                println!("store: {} day(s), last {last}", out.store_days);
            }
            let (d, u) = (&out.duplicates, &out.unusable);
            (&out.granules, out.settling, out.gap_at, d, u)
        }
        Found::Source {
            selection,
            duplicates,
            unusable,
        } => (
            &selection.granules,
            selection.settling,
            selection.gap_at,
            duplicates,
            unusable,
        ),
    };
    println!("{} granule(s) to add:", granules.len());
    for g in granules {
        let revision = g.revision.as_deref().unwrap_or("");
        println!("  {}  {}  {revision}", g.date, g.url);
    }
    if settling > 0 {
        println!("{settling} granule(s) still settling (within the lag)");
    }
    if let Some(gap) = gap_at {
        println!("stops before {gap}: no usable granule for that day");
    }
    for d in duplicates {
        println!(
            "duplicate {}: kept {}, dropped {} ({})",
            d.day,
            d.kept,
            d.dropped.join(", "),
            d.reason
        );
    }
    for u in unusable {
        println!("unusable {}: {}", u.concept_id, u.reason);
    }
}

async fn store_command(
    action: StoreCommand,
    store: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let store = store.ok_or_else(|| anyhow::anyhow!("--store (or MURSST_STORE) is required"))?;
    let s3 = AwsSettings::from_env();
    let repo = StoreRepo::open(&RepoLocation::parse(&store)?, &s3, &s3.clone().into()).await?;
    let now = chrono::Utc::now();
    let out = match action {
        StoreCommand::Branches => serde_json::to_value(repo.branches().await?)?,
        StoreCommand::Prune { older_than, keep } => {
            serde_json::to_value(repo.prune_branches(older_than.before(now), &keep).await?)?
        }
        StoreCommand::Expire { older_than } => {
            serde_json::to_value(repo.expire_and_collect(older_than.before(now)).await?)?
        }
        StoreCommand::Log { limit } => serde_json::to_value(repo.log(limit).await?)?,
        StoreCommand::Rollback { to } => {
            let expected = repo.branch_tip("main").await?;
            let to = SnapshotId::try_from(to.as_str())
                .map_err(|e| anyhow::anyhow!("--to {to:?} is not a snapshot id: {e}"))?;
            repo.rollback(&to, &expected).await?;
            serde_json::json!({"main": to.to_string(), "was": expected.to_string()})
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_rows(&out);
    }
    Ok(())
}

async fn ops_command(action: OpsCommand) -> anyhow::Result<()> {
    let settings = AwsSettings::from_env();
    let ops = mursst::ops::Ops::new(&settings).await;
    let out = match action {
        OpsCommand::Start {
            state_machine,
            dates,
            dry_run,
            validate,
            reprocess,
        } => {
            // Typed, so the input is one the discover step accepts (it refuses unknown
            // fields) and a field renamed there cannot go out of step here.
            let input = pipeline::DiscoverInput {
                dry_run,
                validate,
                dates: (!dates.is_empty()).then_some(dates),
                reprocess,
                ..Default::default()
            };
            let input = serde_json::to_value(&input)?;
            serde_json::json!({"execution": ops.start(&state_machine, &input).await?})
        }
        OpsCommand::Status {
            state_machine,
            limit,
            store,
        } => {
            let mut out = serde_json::json!({
                "executions": ops.executions(&state_machine, limit).await?,
            });
            if let Some(store) = store {
                let repo = StoreRepo::open(
                    &RepoLocation::parse(&store)?,
                    &settings,
                    &settings.clone().into(),
                )
                .await?;
                let tip = repo.branch_tip("main").await?;
                let state = repo.state_at(&tip).await?;
                let leftover: Vec<String> = repo
                    .branches()
                    .await?
                    .into_iter()
                    .filter(|b| b.temporary)
                    .map(|b| b.name)
                    .collect();
                out["store"] = serde_json::json!({
                    "main": tip.to_string(),
                    "days": state.as_ref().map_or(0, |s| s.days),
                    "last_day": state.and_then(|s| s.last_day),
                    "leftover_branches": leftover,
                });
            }
            out
        }
        OpsCommand::Redrive { execution } => {
            serde_json::json!({"execution": ops.redrive(&execution).await?})
        }
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// A JSON result as plain lines: one object per line, `key: value` pairs.
fn print_rows(value: &serde_json::Value) {
    let line = |v: &serde_json::Value| match v {
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join("  "),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match value {
        serde_json::Value::Array(rows) if rows.is_empty() => println!("(none)"),
        serde_json::Value::Array(rows) => rows.iter().for_each(|r| println!("{}", line(r))),
        other => println!("{}", line(other)),
    }
}

async fn demo(
    dir: std::path::PathBuf,
    days: u32,
    init_days: u32,
    grid: &[usize],
    json: bool,
) -> anyhow::Result<()> {
    let outcome = mursst::demo::run(&mursst::demo::DemoOptions {
        dir,
        days,
        init_days,
        lat_size: grid[0],
        lon_size: grid[1],
        progress: Some(Arc::new(Bar::default())),
        ..Default::default()
    })
    .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
        return Ok(());
    }
    println!("== init: the store from the first days");
    print_report(&outcome.init, false)?;
    println!("\n== update: the daily job appends the rest");
    print_report(&outcome.update, false)?;
    println!(
        "\nstore: {}\nopen it in Python (icechunk 2.x + xarray):\n  {}",
        outcome.store.display(),
        mursst::demo::python_command(&outcome)
    );
    Ok(())
}

fn print_report(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("{}", report.message);
        if let (Some(first), Some(last)) = (report.store_first_day, report.store_last_day) {
            println!("store: {} day(s), {first}..{last}", report.store_days);
        }
        for r in &report.days_reprocessed {
            println!("re-pointed {}: {}", r.date, r.reason);
        }
        if !report.days_added.is_empty() || !report.days_reprocessed.is_empty() {
            println!(
                "refs: {}  requests: {}  bytes read: {}",
                report.refs, report.requests, report.bytes_read
            );
        }
        if report.source_retries > 0 {
            println!(
                "granule reads retried after a transient S3 failure: {}",
                report.source_retries
            );
        }
        if let Some(gap) = report.gap_at {
            println!("stopped: no granule for {gap}");
        }
        if report.settling > 0 {
            println!(
                "{} granule(s) still settling (within the lag)",
                report.settling
            );
        }
        for r in &report.rejected {
            println!("rejected {}: {}", r.granule, r.reason);
        }
        let timings: Vec<String> = report
            .timings_s
            .iter()
            .map(|(k, v)| format!("{k} {v:.2}s"))
            .collect();
        println!("timings: {}", timings.join(", "));
    }
    if !report.rejected.is_empty() {
        anyhow::bail!("{} granule(s) rejected", report.rejected.len());
    }
    Ok(())
}

async fn refs(granule: &str, stats: bool) -> anyhow::Result<()> {
    let start = Instant::now();
    let reader = mursst::objects::open(granule, &S3Access::source_from_env()).await?;
    let counted = Arc::new(Counted::new(reader));
    let refs = mursst::refs::index_granule(counted.as_ref() as &dyn RangeRead, &Default::default())
        .await?;
    let doc = mursst::kerchunk::to_kerchunk(&refs);
    serde_json::to_writer(std::io::stdout().lock(), &doc)?;
    println!();
    if stats {
        eprintln!(
            "requests: {}  bytes read: {}  wall time: {:.3} s",
            counted.stats.requests(),
            counted.stats.bytes(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
