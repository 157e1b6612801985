//! The discover step: what the run will take, and the run's identity.

use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::reprocess::{self, Repoint, Reprocess};
use super::run::identity;
use super::{Context, CreateSpec, DEFAULT_MAP_CONCURRENCY, PipelineError};
use super::{Run, RunOptions};
use crate::artifacts::{self, ArtifactStore};
use crate::cmr::{ResolvedDuplicate, Unusable};
use crate::discover::{self, Selection};
use crate::granule::Granule;
use crate::store::{SessionStores, StoreError, StoreRepo, StoreState};
use crate::validate::ValidateMode;

/// The execution input: every field optional, production defaults otherwise. Written
/// (by `mursst ops start`) with only the fields set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverInput {
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<ValidateMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_days: Option<u32>,
    /// Only these days (still consecutive after the store's last day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dates: Option<Vec<NaiveDate>>,
    /// The day the lag counts back from (default: today, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub today: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_concurrency: Option<u32>,
    /// Resume this earlier run: its branch and artifacts are reused (a redrive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Create the store from these days (init, backfill).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<CreateSpec>,
    /// Write the granule list to a manifest artifact instead of the output (a backfill:
    /// thousands of days do not fit a state payload).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manifest: bool,
    /// Stored days to re-point at their current granule, besides the new days:
    /// `"changed"` (sources replaced since ingest) or a list of dates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprocess: Option<Reprocess>,
    /// How many days back from the store's last day `"changed"` looks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprocess_window_days: Option<u32>,
    /// Days per backfill commit (default [`BATCH_DAYS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_days: Option<u64>,
}

/// Where a backfill's granule list is, and how its commits are batched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The S3 bucket and key of the JSON array of granules (a Distributed Map reads it).
    pub bucket: String,
    pub key: String,
    pub days: u64,
    /// Days per commit (and per validation batch).
    pub batch_days: u64,
    /// The batch indices `0..n`, for the Map that validates them.
    pub batches: Vec<u64>,
}

/// Days a backfill writes per commit unless told otherwise: one manifest split of the
/// store, so no commit grows with the length of the record.
pub const BATCH_DAYS: u64 = crate::store::repository::TIME_SPLIT_SIZE as u64;

/// What the run will do; the state every later step receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoverOutput {
    pub run: Run,
    /// Whether there is anything to add (a Choice state reads it).
    pub has_work: bool,
    /// The granules to write (stored days to re-point, then new days), in date order.
    pub granules: Vec<Granule>,
    /// The stored days among `granules`, and why each is re-pointed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reprocess: Vec<Repoint>,
    pub store_days: u64,
    pub store_first_day: Option<NaiveDate>,
    pub store_last_day: Option<NaiveDate>,
    /// The first day after the store (or the selection) that has no granule.
    pub gap_at: Option<NaiveDate>,
    /// Granules that exist but are within the settling lag.
    pub settling: usize,
    pub limited: bool,
    /// Days with more than one granule in the catalog, and which was taken.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub duplicates: Vec<ResolvedDuplicate>,
    /// Granules the catalog lists that cannot be used (their days count as missing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unusable: Vec<Unusable>,
    /// Set for a backfill; `granules` is then empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Manifest>,
    pub message: String,
}

/// The commit Lambda's `create` action: the empty repository a backfill builds into, so
/// that discover, which only reads the store, finds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateStoreInput {
    pub create: CreateSpec,
}

/// Whether the repository was made now or was there (empty, from an earlier attempt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateStoreOutput {
    pub store: String,
    pub created: bool,
}

/// Create step: the empty repository a run that creates the store writes into.
pub async fn create_store(
    ctx: &Context,
    input: CreateStoreInput,
) -> Result<CreateStoreOutput, PipelineError> {
    let (_, created) = open_or_create(ctx, &input.create).await?;
    Ok(CreateStoreOutput {
        store: ctx.store.to_string(),
        created,
    })
}

/// The store, created empty if absent; one left by an earlier attempt must be of the
/// format the spec asks for.
async fn open_or_create(
    ctx: &Context,
    spec: &CreateSpec,
) -> Result<(StoreRepo, bool), PipelineError> {
    let created = StoreRepo::create(
        &ctx.store,
        &ctx.store_s3,
        &ctx.source.root(),
        spec.spec_version,
    )
    .await;
    match created {
        Ok(repo) => Ok((repo, true)),
        // A run that died before main moved left an empty repository: carry on.
        Err(StoreError::AlreadyExists { .. }) => {
            let repo = StoreRepo::open(&ctx.store, &ctx.store_s3, &ctx.source_s3).await?;
            match spec.spec_version {
                Some(want) if want != repo.spec_version() => Err(StoreError::metadata(
                    "/",
                    format!(
                        "{} is icechunk format {}, not the {want} asked for",
                        ctx.store,
                        repo.spec_version()
                    ),
                )
                .into()),
                _ => Ok((repo, false)),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// Open the store, creating an empty one when the run creates the store and it is
/// absent (locally; in AWS the commit Lambda's `create` action ran first, and discover
/// only reads). An empty repository holds nothing a reader sees.
async fn open_store(
    ctx: &Context,
    create: Option<&CreateSpec>,
) -> Result<(StoreRepo, Option<StoreState>), PipelineError> {
    let repo = match create {
        None => StoreRepo::open(&ctx.store, &ctx.store_s3, &ctx.source_s3).await?,
        Some(spec) => open_or_create(ctx, spec).await?.0,
    };
    let tip = repo.branch_tip("main").await?;
    let state = repo.state_at(&tip).await?;
    match (&state, create) {
        (None, None) => Err(PipelineError::EmptyStore {
            store: ctx.store.to_string(),
        }),
        (Some(_), Some(_)) => Err(StoreError::AlreadyExists {
            location: ctx.store.to_string(),
        }
        .into()),
        _ => Ok((repo, state)),
    }
}

/// Discover step: the granules after the store's last day, settled and consecutive.
pub async fn discover(
    ctx: &Context,
    input: DiscoverInput,
) -> Result<DiscoverOutput, PipelineError> {
    if let Some(c) = &input.create
        && c.end < c.start
    {
        return Err(PipelineError::EndBeforeStart {
            start: c.start,
            end: c.end,
        });
    }
    let (repo, state) = open_store(ctx, input.create.as_ref()).await?;
    let base = repo.branch_tip("main").await?;
    let now = Utc::now();
    let today = input.today.unwrap_or_else(|| now.date_naive());
    let mut after = state.as_ref().and_then(|s| s.last_day);
    let (from, to) = match &input.create {
        Some(c) => {
            after = c.start.pred_opt();
            (c.start, c.end)
        }
        None => (after.and_then(|d| d.succ_opt()).unwrap_or(today), today),
    };
    let listing = ctx.source.list_between(from, to).await?;
    let mut available = listing.granules;
    if let Some(dates) = &input.dates {
        available.retain(|g| dates.contains(&g.date));
    }
    let lag_days = input.lag_days.unwrap_or(ctx.defaults.lag_days);
    let selection = discover::select_new(&available, after, today, lag_days, input.limit);
    if let Some(c) = &input.create
        && selection.granules.first().map(|g| g.date) != Some(c.start)
    {
        return Err(PipelineError::NoGranuleForStart {
            start: c.start,
            source_prefix: ctx.source.url_prefix(),
        });
    }
    let (id, branch) = identity(now, input.run_id.as_deref());
    let run = Run {
        id,
        branch,
        today,
        base_snapshot: base.to_string(),
        store: ctx.store.to_string(),
        source: ctx.source.url_prefix(),
        artifacts: ctx.artifacts.clone(),
        options: run_options(ctx, &input, lag_days),
        create: input.create.clone().map(|mut c| {
            if c.variables.is_empty() {
                c.variables = ctx.defaults.variables.clone();
            }
            c
        }),
    };
    let mut out = output(run, state.as_ref(), selection);
    out.duplicates = listing.duplicates;
    out.unusable = listing.unusable;
    let reprocess = input.reprocess.as_ref().or(ctx.defaults.reprocess.as_ref());
    if let (Some(wanted), Some(state)) = (reprocess, &state) {
        let window = input
            .reprocess_window_days
            .unwrap_or(reprocess::DEFAULT_WINDOW_DAYS);
        let repoints = to_reprocess(ctx, &repo, state, wanted, window).await?;
        add_repoints(&mut out, repoints);
    }
    if input.manifest {
        out.manifest = Some(write_manifest(ctx, &out.run, &out.granules).await?);
        out.granules.clear();
    }
    Ok(out)
}

/// The run's knobs: the input's, else the process's defaults.
fn run_options(ctx: &Context, input: &DiscoverInput, lag_days: u32) -> RunOptions {
    RunOptions {
        dry_run: input.dry_run,
        validate: input.validate.unwrap_or(ctx.defaults.validate),
        lag_days,
        limit: input.limit,
        seed: input.seed.unwrap_or(0),
        map_concurrency: input.map_concurrency.unwrap_or(DEFAULT_MAP_CONCURRENCY),
        batch_days: input.batch_days.unwrap_or(BATCH_DAYS).max(1),
    }
}

/// The stored days to re-point and their current granules.
async fn to_reprocess(
    ctx: &Context,
    repo: &StoreRepo,
    state: &StoreState,
    wanted: &Reprocess,
    window_days: u32,
) -> Result<Vec<(Granule, Repoint)>, PipelineError> {
    let (Some(first), Some(last)) = (state.first_day, state.last_day) else {
        return Ok(Vec::new());
    };
    let (from, to) = match wanted {
        Reprocess::Dates(dates) => {
            if let Some(d) = dates.iter().find(|d| !state.holds(**d)) {
                return Err(PipelineError::NotInStore {
                    date: *d,
                    first,
                    last,
                });
            }
            let from = dates.iter().min().copied().unwrap_or(first);
            (from, dates.iter().max().copied().unwrap_or(last))
        }
        Reprocess::Changed(_) => {
            let back = chrono::Days::new(u64::from(window_days.saturating_sub(1)));
            (
                last.checked_sub_days(back).unwrap_or(first).max(first),
                last,
            )
        }
    };
    let listed = ctx.source.list_between(from, to).await?.granules;
    match wanted {
        Reprocess::Dates(dates) => {
            let mut out = Vec::new();
            for d in dates {
                let g = listed.iter().find(|g| g.date == *d).ok_or_else(|| {
                    PipelineError::NoGranuleToReprocess {
                        date: *d,
                        source_prefix: ctx.source.url_prefix(),
                    }
                })?;
                let reason = "asked for".to_string();
                let repoint = Repoint {
                    date: *d,
                    url: g.url.clone(),
                    reason,
                };
                out.push((g.clone(), repoint));
            }
            out.sort_by_key(|(g, _)| g.date);
            out.dedup_by_key(|(g, _)| g.date);
            Ok(out)
        }
        Reprocess::Changed(_) => {
            let stores = SessionStores::new(repo.readonly_at(&state.snapshot).await?).await;
            reprocess::changed(repo, &stores, state, &listed, &ctx.source_s3).await
        }
    }
}

/// Put the re-pointed days before the new ones, and say so.
fn add_repoints(out: &mut DiscoverOutput, repoints: Vec<(Granule, Repoint)>) {
    if repoints.is_empty() {
        return;
    }
    let (granules, reasons): (Vec<Granule>, Vec<Repoint>) = repoints.into_iter().unzip();
    let dates: Vec<String> = reasons.iter().map(|r| r.date.to_string()).collect();
    let repointed = format!(
        "{} stored day(s) to re-point: {}",
        dates.len(),
        dates.join(", ")
    );
    out.message = if out.has_work {
        format!("{repointed}; {}", out.message)
    } else {
        repointed
    };
    out.granules.splice(0..0, granules);
    out.reprocess = reasons;
    out.has_work = true;
}

/// Write the granule list where the backfill's Distributed Map reads it.
async fn write_manifest(
    ctx: &Context,
    run: &Run,
    granules: &[Granule],
) -> Result<Manifest, PipelineError> {
    let store = ArtifactStore::open(&run.artifacts, &ctx.artifacts_s3).await?;
    let key = artifacts::manifest_key(&run.id);
    store.put_json(&key, &granules).await?;
    let (bucket, key) = store.object(&key);
    let days = granules.len() as u64;
    Ok(Manifest {
        bucket,
        key,
        days,
        batch_days: run.options.batch_days,
        batches: (0..days.div_ceil(run.options.batch_days)).collect(),
    })
}

fn output(run: Run, state: Option<&StoreState>, selection: Selection) -> DiscoverOutput {
    let message = match (selection.granules.first(), selection.granules.last()) {
        (Some(first), Some(last)) => format!(
            "{} day(s) to add: {}..{}",
            selection.granules.len(),
            first.date,
            last.date
        ),
        _ => match selection.gap_at {
            Some(gap) => format!("nothing added: no granule for {gap}, the next day of the store"),
            None => "nothing new to add".to_string(),
        },
    };
    DiscoverOutput {
        run,
        has_work: !selection.granules.is_empty(),
        granules: selection.granules,
        reprocess: Vec::new(),
        store_days: state.map_or(0, |s| s.days),
        store_first_day: state.and_then(|s| s.first_day),
        store_last_day: state.and_then(|s| s.last_day),
        gap_at: selection.gap_at,
        settling: selection.settling,
        limited: selection.limited,
        duplicates: Vec::new(),
        unusable: Vec::new(),
        manifest: None,
        message,
    }
}
