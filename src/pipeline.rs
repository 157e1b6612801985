//! The pipeline steps, each callable on its own (a Lambda per step) or chained by
//! [`update`] / [`init`] (the CLI): discover → generate refs → write a temporary branch
//! → validate it against the sources → move `main` (compare-and-swap).

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use icechunk::format::SnapshotId;
use serde::Serialize;

use crate::codec::{self, DecodeError};
use crate::discover::{self, GranuleSource, Selection};
use crate::granule::Granule;
use crate::hdf5::ReadOptions;
use crate::refs::{self, RefsError};
use crate::source::{self, Counted, RangeRead, S3Settings, SourceError};
use crate::store::layout::{self, Role, TIME};
use crate::store::writer::{self, PreparedGranule, SessionStores, StoreState};
use crate::store::{RepoLocation, StoreError, StoreRepo, schema};
use crate::validate::{self, ValidateMode, ValidationError, ValidationReport};

/// The variables the existing production store keeps.
pub const DEFAULT_VARIABLES: &[&str] =
    &["analysed_sst", "analysis_error", "mask", "sea_ice_fraction"];

/// Days a granule must age before it is referenced: PO.DAAC replaces granules in
/// place for up to ~9 days after their date.
pub const DEFAULT_LAG_DAYS: u32 = 10;

/// Any step's failure, naming the granule, variable or rule involved.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Refs(#[from] Box<RefsError>),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("{source}; main not moved, branch {branch} kept for inspection")]
    Unvalidated {
        branch: String,
        #[source]
        source: ValidationError,
    },
    #[error("{0}")]
    Usage(String),
}

/// Everything the steps need to reach the store and the granules.
#[derive(Debug, Clone)]
pub struct Context {
    pub store: RepoLocation,
    pub store_s3: S3Settings,
    pub source: GranuleSource,
    pub source_s3: S3Settings,
    pub read_options: ReadOptions,
    /// Granules indexed at once.
    pub concurrency: usize,
    /// Show a progress bar (only drawn on a terminal).
    pub progress: bool,
}

impl Context {
    /// The embedded default: a repository directory and a directory of granules.
    pub fn local(
        store: impl Into<std::path::PathBuf>,
        granules: impl Into<std::path::PathBuf>,
    ) -> Self {
        Self {
            store: RepoLocation::Local(store.into()),
            store_s3: S3Settings::default(),
            source: GranuleSource::Local(granules.into()),
            source_s3: S3Settings::default(),
            read_options: ReadOptions::default(),
            concurrency: 4,
            progress: false,
        }
    }
}

/// Output of the discover step.
#[derive(Debug, Clone, Serialize)]
pub struct Discovery {
    /// Snapshot of `main` the run starts from; `main` moves only if it is still there.
    pub base_snapshot: String,
    pub days_in_store: u64,
    pub last_day: Option<NaiveDate>,
    pub selection: Selection,
}

/// What one run did, printed at the end (`--json` for machines).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub store: String,
    pub source: String,
    pub days_added: Vec<NaiveDate>,
    pub store_first_day: Option<NaiveDate>,
    pub store_last_day: Option<NaiveDate>,
    pub store_days: u64,
    pub refs: u64,
    pub requests: u64,
    pub bytes_read: u64,
    pub timings_s: BTreeMap<&'static str, f64>,
    pub old_snapshot: Option<String>,
    pub new_snapshot: Option<String>,
    pub branch: Option<String>,
    pub main_moved: bool,
    pub dry_run: bool,
    pub gap_at: Option<NaiveDate>,
    pub settling: usize,
    pub limited: bool,
    pub rejected: Vec<Rejection>,
    pub validation: Option<ValidationReport>,
    pub message: String,
}

/// A granule that does not fit the store, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    pub granule: String,
    pub reason: String,
}

/// Knobs of an update run.
#[derive(Debug, Clone)]
pub struct UpdateOptions {
    pub dry_run: bool,
    pub limit: Option<usize>,
    pub validate: ValidateMode,
    pub lag_days: u32,
    pub today: NaiveDate,
    pub seed: u64,
}

impl Default for UpdateOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            limit: None,
            validate: ValidateMode::Sample,
            lag_days: DEFAULT_LAG_DAYS,
            today: Utc::now().date_naive(),
            seed: 0,
        }
    }
}

struct Timer(BTreeMap<&'static str, f64>, Instant);

impl Timer {
    fn new() -> Self {
        Self(BTreeMap::new(), Instant::now())
    }
    fn lap(&mut self, step: &'static str) {
        *self.0.entry(step).or_default() += self.1.elapsed().as_secs_f64();
        self.1 = Instant::now();
    }
}

async fn state_at(
    repo: &StoreRepo,
    snapshot: &SnapshotId,
) -> Result<Option<StoreState>, PipelineError> {
    let stores = SessionStores::new(repo.readonly_at(snapshot).await?).await;
    Ok(writer::read_state(&stores, snapshot.clone()).await?)
}

/// Discover step: the granules after the store's last day, settled and consecutive.
/// `window` restricts the days considered (for `init`).
pub async fn discover(
    repo: &StoreRepo,
    source: &GranuleSource,
    options: &UpdateOptions,
    window: Option<(NaiveDate, NaiveDate)>,
) -> Result<(Discovery, Option<StoreState>), PipelineError> {
    let base = repo.branch_tip("main").await?;
    let state = state_at(repo, &base).await?;
    let mut available = source.list().await?;
    let mut last_day = state.as_ref().and_then(|s| s.last_day);
    if let Some((start, end)) = window {
        available.retain(|g| g.date >= start && g.date <= end);
        if last_day.is_none() {
            last_day = start.pred_opt();
        }
    }
    let selection = discover::select_new(
        &available,
        last_day,
        options.today,
        options.lag_days,
        options.limit,
    );
    Ok((
        Discovery {
            base_snapshot: base.to_string(),
            days_in_store: state.as_ref().map_or(0, |s| s.days),
            last_day: state.as_ref().and_then(|s| s.last_day),
            selection,
        },
        state,
    ))
}

/// Generate-refs step for one granule: its references, time value and coordinates.
/// Returns the requests and bytes it took.
pub async fn prepare_granule(
    granule: &Granule,
    s3: &S3Settings,
    options: &ReadOptions,
) -> Result<(PreparedGranule, u64, u64), PipelineError> {
    let reader = source::open(&granule.url, s3).await?;
    let counted = Arc::new(Counted::new(reader));
    let reader: &dyn RangeRead = counted.as_ref();
    let refs = refs::index_granule(reader, options)
        .await
        .map_err(Box::new)?;
    let time = refs.variable(TIME).ok_or_else(|| {
        StoreError::schema(
            granule.url.clone(),
            TIME,
            "variable",
            "missing from the granule",
        )
    })?;
    let units = time
        .attributes
        .get("units")
        .and_then(|u| u.as_str())
        .unwrap_or_default();
    let (unit, time_epoch) = layout::parse_time_units(units)
        .filter(|(u, _)| u == "seconds")
        .ok_or_else(|| {
            StoreError::schema(
                granule.url.clone(),
                TIME,
                "units",
                format!("{units:?} is not seconds since a date"),
            )
        })?;
    debug_assert_eq!(unit, "seconds");
    let raw = codec::read_1d(reader, time).await?;
    let time_seconds = match writer::Values::from_le_bytes(time.dtype.zarr_v3_name(), &raw) {
        Some(writer::Values::I32(v)) if v.len() == 1 => i64::from(v[0]),
        Some(writer::Values::I64(v)) if v.len() == 1 => v[0],
        Some(writer::Values::F64(v)) if v.len() == 1 && v[0].fract() == 0.0 => v[0] as i64,
        _ => {
            return Err(StoreError::Schema {
                granule: granule.url.clone(),
                variable: TIME.into(),
                field: "values".into(),
                message: format!(
                    "expected one integer time value, found {} bytes of {}",
                    raw.len(),
                    time.dtype.zarr_v3_name()
                ),
            }
            .into());
        }
    };
    let mut coordinates = HashMap::new();
    for var in &refs.variables {
        if layout::role(var) == Role::Coordinate && var.shape.len() == 1 {
            coordinates.insert(var.name.clone(), codec::read_1d(reader, var).await?);
        }
    }
    let prepared = PreparedGranule {
        granule: granule.clone(),
        refs,
        time_seconds,
        time_epoch,
        coordinates,
    };
    writer::check_time(&prepared)?;
    Ok((prepared, counted.stats.requests(), counted.stats.bytes()))
}

fn progress_bar(enabled: bool, len: usize, what: &str) -> indicatif::ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}

/// Generate refs for many granules concurrently, in date order.
pub async fn prepare_all(
    ctx: &Context,
    granules: &[Granule],
) -> Result<(Vec<PreparedGranule>, u64, u64), PipelineError> {
    let bar = progress_bar(ctx.progress, granules.len(), "indexing granules");
    let results: Vec<(PreparedGranule, u64, u64)> =
        futures::stream::iter(granules.iter().map(|g| {
            let bar = bar.clone();
            async move {
                let r = prepare_granule(g, &ctx.source_s3, &ctx.read_options).await;
                bar.inc(1);
                r
            }
        }))
        .buffered(ctx.concurrency.max(1))
        .try_collect()
        .await?;
    bar.finish_and_clear();
    let requests = results.iter().map(|r| r.1).sum();
    let bytes = results.iter().map(|r| r.2).sum();
    Ok((results.into_iter().map(|r| r.0).collect(), requests, bytes))
}

/// The temporary branch name for a run starting now.
pub fn branch_name() -> String {
    format!("add_time_{}", Utc::now().format("%Y%m%dT%H%M%S%.6fZ"))
}

/// Run the whole pipeline: the daily job.
pub async fn update(ctx: &Context, options: &UpdateOptions) -> Result<Report, PipelineError> {
    let repo = StoreRepo::open(&ctx.store, &ctx.store_s3, &ctx.source_s3).await?;
    run(ctx, &repo, options, None, &[]).await
}

/// Create the store from the days `start..=end` of the source.
pub async fn init(
    ctx: &Context,
    options: &UpdateOptions,
    start: NaiveDate,
    end: NaiveDate,
    variables: &[String],
) -> Result<Report, PipelineError> {
    if end < start {
        return Err(PipelineError::Usage(format!(
            "--end {end} is before --start {start}"
        )));
    }
    let repo = match StoreRepo::create(&ctx.store, &ctx.store_s3, &ctx.source).await {
        Ok(repo) => repo,
        // A run that died before main moved left an empty repository: carry on with it.
        Err(StoreError::AlreadyExists { .. }) => {
            let repo = StoreRepo::open(&ctx.store, &ctx.store_s3, &ctx.source_s3).await?;
            let tip = repo.branch_tip("main").await?;
            if state_at(&repo, &tip).await?.is_some() {
                return Err(StoreError::AlreadyExists {
                    location: ctx.store.to_string(),
                }
                .into());
            }
            repo
        }
        Err(e) => return Err(e.into()),
    };
    let report = run(ctx, &repo, options, Some((start, end)), variables).await?;
    if report.days_added.first() != Some(&start) && !options.dry_run {
        return Err(PipelineError::Usage(format!(
            "no granule for --start {start} in {}",
            ctx.source.url_prefix()
        )));
    }
    Ok(report)
}

async fn run(
    ctx: &Context,
    repo: &StoreRepo,
    options: &UpdateOptions,
    window: Option<(NaiveDate, NaiveDate)>,
    variables: &[String],
) -> Result<Report, PipelineError> {
    let mut timer = Timer::new();
    let mut report = Report {
        store: ctx.store.to_string(),
        source: ctx.source.url_prefix(),
        dry_run: options.dry_run,
        ..Default::default()
    };
    let (discovery, before) = discover(repo, &ctx.source, options, window).await?;
    if before.is_none() && window.is_none() {
        return Err(PipelineError::Usage(format!(
            "{}: the store holds no days yet; create it with `mursst init`",
            ctx.store
        )));
    }
    timer.lap("discover");
    report.old_snapshot = Some(discovery.base_snapshot.clone());
    report.gap_at = discovery.selection.gap_at;
    report.settling = discovery.selection.settling;
    report.limited = discovery.selection.limited;
    report.store_days = discovery.days_in_store;
    report.store_last_day = discovery.last_day;
    let finish = |mut report: Report, timer: Timer, message: String| {
        report.timings_s = timer.0;
        report.message = message;
        report
    };
    if discovery.selection.granules.is_empty() {
        let message = match discovery.selection.gap_at {
            Some(gap) => format!("nothing added: no granule for {gap}, the next day of the store"),
            None => "nothing new to add".to_string(),
        };
        return Ok(finish(report, timer, message));
    }

    let (prepared, requests, bytes) = prepare_all(ctx, &discovery.selection.granules).await?;
    report.requests = requests;
    report.bytes_read = bytes;
    timer.lap("refs");

    // Schema check: the first misfit and everything after it stay out (no gaps).
    let mut accepted = Vec::new();
    if let Some(state) = &before {
        for day in prepared {
            match schema::check(&day.refs, &day.coordinates, &state.schema) {
                Ok(()) => accepted.push(day),
                Err(e) => {
                    report.rejected.push(Rejection {
                        granule: day.granule.url.clone(),
                        reason: e.to_string(),
                    });
                    break;
                }
            }
        }
    } else {
        accepted = prepared;
    }
    timer.lap("schema");
    if accepted.is_empty() {
        return Ok(finish(
            report,
            timer,
            "nothing added: the next granule was rejected".into(),
        ));
    }

    let variables: Vec<String> = if variables.iter().any(|v| v == "all") {
        accepted[0]
            .refs
            .variables
            .iter()
            .filter(|v| layout::role(v) == Role::Data)
            .map(|v| v.name.clone())
            .collect()
    } else {
        variables.to_vec()
    };
    let base = SnapshotId::try_from(discovery.base_snapshot.as_str())
        .map_err(|e| StoreError::icechunk("base snapshot id", e))?;
    let branch = branch_name();
    report.branch = Some(branch.clone());
    let stores = SessionStores::new(repo.start_branch(&branch, &base).await?).await;
    let first = accepted[0].granule.date;
    let last = accepted[accepted.len() - 1].granule.date;
    let summary = writer::append_days(
        &stores,
        before.as_ref(),
        &accepted,
        &variables,
        &format!("add {first}..{last}"),
    )
    .await?;
    report.refs = summary.refs_written;
    report.new_snapshot = Some(summary.snapshot.clone());
    report.days_added = accepted.iter().map(|d| d.granule.date).collect();
    timer.lap("write");

    let tip = SnapshotId::try_from(summary.snapshot.as_str())
        .map_err(|e| StoreError::icechunk("new snapshot id", e))?;
    let branch_stores = SessionStores::new(repo.readonly_at(&tip).await?).await;
    let after = writer::read_state(&branch_stores, tip.clone())
        .await?
        .ok_or_else(|| StoreError::metadata("/", "the branch has no root group"))?;
    report.store_days = after.days;
    report.store_last_day = after.last_day;
    let validation = validate::validate(
        &branch_stores,
        before.as_ref(),
        &after,
        &accepted,
        options.validate,
        options.seed,
        &ctx.source_s3,
    )
    .await
    .map_err(|source| PipelineError::Unvalidated {
        branch: branch.clone(),
        source,
    })?;
    report.validation = Some(validation);
    timer.lap("validate");

    if options.dry_run {
        return Ok(finish(
            report,
            timer,
            format!("dry run: branch {branch} holds the new days; main not moved"),
        ));
    }
    repo.promote(&tip, &base, &branch).await?;
    report.main_moved = true;
    repo.delete_branch(&branch).await?;
    timer.lap("promote");
    let first_time = first_day(&branch_stores, &after).await?;
    report.store_first_day = first_time;
    let message = format!(
        "added {} day(s) {first}..{last}; main moved {} -> {}",
        report.days_added.len(),
        discovery.base_snapshot,
        summary.snapshot
    );
    Ok(finish(report, timer, message))
}

async fn first_day(
    stores: &SessionStores,
    state: &StoreState,
) -> Result<Option<NaiveDate>, PipelineError> {
    if state.days == 0 {
        return Ok(None);
    }
    let array = stores.array(TIME).await?;
    let first = writer::Values::read(&array, &writer::range_1d(0, 1)).await?;
    let secs = first.as_i64().first().copied();
    Ok(secs.map(|s| writer::date_of(state.time_epoch, s)))
}
