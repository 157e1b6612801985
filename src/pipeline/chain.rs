//! The steps chained in one process, as the CLI runs them: exactly the functions the
//! Lambdas run, handing each other the same values Step Functions would.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use super::write::Rejection;
use super::{
    Context, CreateSpec, DEFAULT_LAG_DAYS, DiscoverInput, DiscoverOutput, GenerateRefsInput,
    GenerateRefsOutput, MergeInput, PipelineError, Repoint, Reprocess, WriteInput, WriteOutput,
};
use crate::retry::Backoff;
use crate::store::create::GridChunks;
use crate::store::materialize::Materialized;
use crate::store::{StoreError, StoreRepo};
use crate::validate::{ValidateMode, ValidationReport};

/// What one run did, printed at the end (`--json` for machines).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub run_id: String,
    pub store: String,
    pub source: String,
    pub days_added: Vec<NaiveDate>,
    /// Days materialized onto the store's grid rather than referenced: day → variable →
    /// why.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub native: BTreeMap<NaiveDate, BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Materialized::is_none")]
    pub materialized: Materialized,
    /// Stored days re-pointed at their current granule, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub days_reprocessed: Vec<Repoint>,
    pub store_first_day: Option<NaiveDate>,
    pub store_last_day: Option<NaiveDate>,
    pub store_days: u64,
    pub refs: u64,
    pub requests: u64,
    pub bytes_read: u64,
    /// Granule reads tried again after a transient S3 failure (in this process, during
    /// the run).
    pub source_retries: u64,
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

/// Knobs of an update run.
#[derive(Debug, Clone)]
pub struct UpdateOptions {
    pub dry_run: bool,
    pub limit: Option<usize>,
    pub validate: ValidateMode,
    pub lag_days: u32,
    pub today: NaiveDate,
    pub seed: u64,
    /// Only these days.
    pub dates: Option<Vec<NaiveDate>>,
    /// Stored days to re-point as well (`--reprocess`).
    pub reprocess: Option<Reprocess>,
    /// `init`: the `(lat, lon)` chunk shapes of the new store's data arrays.
    pub chunks: Option<GridChunks>,
    /// `init`: the icechunk format of the new repository (1 or 2; default 2).
    pub spec_version: Option<u8>,
    pub reprocess_window_days: Option<u32>,
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
            dates: None,
            reprocess: None,
            reprocess_window_days: None,
            chunks: None,
            spec_version: None,
        }
    }
}

impl UpdateOptions {
    fn discover_input(&self, create: Option<CreateSpec>) -> DiscoverInput {
        DiscoverInput {
            dry_run: self.dry_run,
            validate: Some(self.validate),
            limit: self.limit,
            lag_days: Some(self.lag_days),
            dates: self.dates.clone(),
            today: Some(self.today),
            seed: Some(self.seed),
            reprocess: self.reprocess.clone(),
            reprocess_window_days: self.reprocess_window_days,
            create,
            ..Default::default()
        }
    }
}

/// Seconds per step, in the order they ran.
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

/// Run the whole pipeline: the daily job.
pub async fn update(ctx: &Context, options: &UpdateOptions) -> Result<Report, PipelineError> {
    run(ctx, options.discover_input(None)).await
}

/// Create the store from the days `start..=end` of the source.
pub async fn init(
    ctx: &Context,
    options: &UpdateOptions,
    start: NaiveDate,
    end: NaiveDate,
    variables: &[String],
) -> Result<Report, PipelineError> {
    let create = CreateSpec {
        start,
        end,
        variables: variables.to_vec(),
        chunks: options.chunks.clone(),
        spec_version: options.spec_version,
    };
    run(ctx, options.discover_input(Some(create))).await
}

/// The report as discover leaves it.
fn report_of(found: &DiscoverOutput) -> Report {
    Report {
        run_id: found.run.id.clone(),
        store: found.run.store.clone(),
        source: found.run.source.clone(),
        store_first_day: found.store_first_day,
        store_last_day: found.store_last_day,
        store_days: found.store_days,
        old_snapshot: Some(found.run.base_snapshot.clone()),
        dry_run: found.run.options.dry_run,
        gap_at: found.gap_at,
        settling: found.settling,
        limited: found.limited,
        message: found.message.clone(),
        ..Default::default()
    }
}

/// `call` (one step) again after a retryable failure (I/O, throttling, 5xx), as
/// [`Backoff::STEP`] says; any other kind is final on its first try.
async fn retried<T, F, Fut>(step: &str, call: F) -> Result<T, PipelineError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, PipelineError>>,
{
    let retryable = |e: &PipelineError| e.kind() == super::ErrorKind::Retryable;
    let on_retry = |attempt: u32, e: &PipelineError| {
        tracing::warn!(step, attempt, error = %e, "retrying the step");
    };
    Backoff::STEP.retry(call, retryable, on_retry).await
}

/// Times a run starts over because another run moved `main` with other days.
pub const ATTEMPTS: usize = 3;

/// The chain, started over from the new `main` when another run moved it meanwhile.
async fn run(ctx: &Context, input: DiscoverInput) -> Result<Report, PipelineError> {
    let mut attempt = 1;
    let retries_before = crate::objects::s3_retries();
    loop {
        match Box::pin(run_once(ctx, input.clone())).await {
            Ok(mut report) => {
                report.source_retries = crate::objects::s3_retries() - retries_before;
                return Ok(report);
            }
            Err(PipelineError::Store(StoreError::Conflict { branch, .. }))
                if attempt < ATTEMPTS =>
            {
                // The branch holds days on an old base: drop it and look again.
                let repo = StoreRepo::open(&ctx.store, &ctx.store_s3, &ctx.source_s3).await?;
                let _lock = repo.write_lock().await?;
                if repo.has_branch(&branch).await? {
                    repo.delete_branch(&branch).await?;
                }
                attempt += 1;
            }
            Err(PipelineError::Store(source @ StoreError::Conflict { .. })) => {
                return Err(PipelineError::KeptMoving {
                    attempts: attempt,
                    source,
                });
            }
            other => return other,
        }
    }
}

async fn run_once(ctx: &Context, input: DiscoverInput) -> Result<Report, PipelineError> {
    let mut timer = Timer::new();
    let found = retried("discover", || Box::pin(super::discover(ctx, input.clone()))).await?;
    super::crash_point("discover");
    let mut report = report_of(&found);
    timer.lap("discover");
    if !found.has_work {
        report.timings_s = timer.0;
        return Ok(report);
    }
    report.days_reprocessed = found.reprocess.clone();
    let run = found.run;
    let refs = Box::pin(generate_all(ctx, &run, found.granules)).await?;
    report.requests = refs.iter().map(|r| r.requests).sum();
    report.bytes_read = refs.iter().map(|r| r.bytes_read).sum();
    timer.lap("refs");
    let write_input = WriteInput {
        run: run.clone(),
        refs: refs.clone(),
    };
    let write = match Box::pin(write_with_native(ctx, &write_input, &mut timer)).await {
        Ok(write) => write,
        Err(PipelineError::Rejected { first, .. }) => {
            report.rejected.push(Rejection {
                granule: schema_granule(&first),
                reason: first.to_string(),
            });
            report.message = "nothing added: the next granule was rejected".into();
            report.timings_s = timer.0;
            return Ok(report);
        }
        Err(e) => return Err(e),
    };
    super::crash_point("write");
    record_write(&mut report, &run.branch, &write);
    timer.lap("write");
    report.validation = Some({
        let input = super::ValidateInput {
            run: run.clone(),
            refs,
            write: write.clone(),
        };
        retried("validate", || {
            Box::pin(super::validate_branch(ctx, input.clone()))
        })
        .await?
    });
    super::crash_point("validate");
    timer.lap("validate");
    let merge_input = MergeInput { run, write };
    let merged = retried("merge", || Box::pin(super::merge(ctx, merge_input.clone()))).await?;
    report.main_moved = merged.main_moved;
    report.message = merged.message;
    timer.lap("merge");
    report.timings_s = timer.0;
    Ok(report)
}

/// The commit step's write, after the materialize step for every native day it asks
/// for: the loop the state machines run (the write bounds it, see
/// [`super::NATIVE_ROUNDS`]).
async fn write_with_native(
    ctx: &Context,
    input: &WriteInput,
    timer: &mut Timer,
) -> Result<WriteOutput, PipelineError> {
    loop {
        let write = retried("write", || {
            Box::pin(super::write_branch(ctx, input.clone()))
        })
        .await?;
        if write.materialize.is_empty() {
            return Ok(write);
        }
        timer.lap("write");
        Box::pin(materialize_all(ctx, &input.run, write.materialize)).await?;
        timer.lap("materialize");
    }
}

/// The materialize Map in one process: a day or two at a time (each decodes whole
/// variables, up to a gigabyte or more of a full-size granule).
async fn materialize_all(
    ctx: &Context,
    run: &super::Run,
    jobs: Vec<super::NativeJob>,
) -> Result<Vec<super::MaterializeOutput>, PipelineError> {
    if let Some(p) = &ctx.progress {
        p.begin("materializing native days", jobs.len() as u64);
    }
    let done = futures::stream::iter(jobs.into_iter().map(|job| async {
        let input = super::MaterializeInput {
            run: run.clone(),
            job,
        };
        let out = retried("materialize", || {
            Box::pin(super::materialize(ctx, input.clone()))
        })
        .await;
        if let Some(p) = &ctx.progress {
            p.advance();
        }
        out
    }))
    .buffered(ctx.concurrency.clamp(1, 2))
    .try_collect()
    .await;
    if let Some(p) = &ctx.progress {
        p.end();
    }
    done
}

/// The granule a schema error names.
fn schema_granule(e: &crate::store::StoreError) -> String {
    match e {
        crate::store::StoreError::Schema { granule, .. } => granule.clone(),
        other => other.to_string(),
    }
}

fn record_write(report: &mut Report, branch: &str, write: &WriteOutput) {
    report.branch = Some(branch.to_string());
    report.refs = write.refs_written;
    report.new_snapshot = Some(write.snapshot.clone());
    report.days_added = (write.days.iter())
        .filter(|d| !write.reprocessed.contains(d))
        .copied()
        .collect();
    report
        .days_reprocessed
        .retain(|r| write.reprocessed.contains(&r.date));
    report.rejected = write.rejected.clone();
    report.native = write.native.clone();
    report.materialized = write.materialized;
    report.store_days = write.days_after;
    report.store_first_day = write.store_first_day;
    report.store_last_day = report.days_added.last().copied().or(report.store_last_day);
}

/// The Map state in one process: every granule's generate-refs step, concurrently.
async fn generate_all(
    ctx: &Context,
    run: &super::Run,
    granules: Vec<crate::granule::Granule>,
) -> Result<Vec<GenerateRefsOutput>, PipelineError> {
    if let Some(p) = &ctx.progress {
        p.begin("indexing granules", granules.len() as u64);
    }
    let refs = futures::stream::iter(granules.into_iter().map(|granule| async {
        let input = GenerateRefsInput {
            run: run.clone(),
            granule,
        };
        let out = retried("generate-refs", || {
            Box::pin(super::generate_refs(ctx, input.clone()))
        })
        .await;
        super::crash_point("refs");
        if let Some(p) = &ctx.progress {
            p.advance();
        }
        out
    }))
    .buffered(ctx.concurrency.max(1))
    .try_collect()
    .await;
    if let Some(p) = &ctx.progress {
        p.end();
    }
    refs
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::error::ErrorKind;

    /// Tries `retried` made of a step failing with `err` every time.
    async fn attempts(err: impl Fn() -> PipelineError) -> u32 {
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = retried("test", || {
            calls.fetch_add(1, Ordering::Relaxed);
            let e = err();
            async move { Err(e) }
        })
        .await;
        assert!(out.is_err());
        calls.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn a_deterministic_failure_is_attempted_once_and_a_transient_one_again() {
        // A real one: the granule is its signature and nothing more, so indexing it
        // fails the same way every time.
        let granule = crate::source::InMemory {
            url: "mem://cut-short.nc".into(),
            data: bytes::Bytes::from_static(b"\x89HDF\r\n\x1a\n\0\0"),
        };
        let cut_short = crate::refs::index_granule(&granule, &Default::default())
            .await
            .unwrap_err();
        let cut_short = std::sync::Mutex::new(Some(cut_short));
        let deterministic = || {
            let err = cut_short.lock().unwrap().take().expect("one attempt only");
            PipelineError::from(Box::new(err))
        };
        assert_eq!(attempts(deterministic).await, 1);

        let timed_out = || PipelineError::Io {
            path: "/granules/g.nc".into(),
            source: std::io::ErrorKind::TimedOut.into(),
        };
        assert_eq!(timed_out().kind(), ErrorKind::Retryable);
        assert_eq!(attempts(timed_out).await, Backoff::STEP.attempts);
    }
}
