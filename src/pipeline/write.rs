//! The commit step's `write` action: check the generated days against the store, then
//! write them to the run's temporary branch in one commit. `main` is not touched.

use std::collections::BTreeMap;

pub use crate::store::record::Rejection;
use chrono::NaiveDate;
use icechunk::format::SnapshotId;
use serde::{Deserialize, Serialize};

use super::materialize::{NativeJob, attach_native};
use super::run::snapshot_id;
use super::{Context, GenerateRefsOutput, PipelineError, Run};
use crate::artifacts::ArtifactStore;
use crate::store::create::{self, NewStore};
use crate::store::layout::Role;
use crate::store::materialize::Materialized;
use crate::store::prepared::PreparedGranule;
use crate::store::record::CommitRecord;
use crate::store::schema::StoreSchema;
use crate::store::writer;
use crate::store::{SessionStores, StoreError, StoreRepo, StoreState, schema};

/// The run and what its Map iterations generated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteInput {
    pub run: Run,
    pub refs: Vec<GenerateRefsOutput>,
}

/// The branch commit: what it holds, and what stayed out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteOutput {
    /// The branch tip validation reads and merge moves `main` to.
    pub snapshot: String,
    /// The days written (re-pointed and added), in order.
    pub days: Vec<NaiveDate>,
    /// Those of `days` the store already held, now pointing at their current granule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reprocessed: Vec<NaiveDate>,
    pub refs_written: u64,
    pub days_before: u64,
    pub days_after: u64,
    pub store_first_day: Option<NaiveDate>,
    /// The first misfit and every day after it (a gap never enters the time axis).
    pub rejected: Vec<Rejection>,
    /// Whether an earlier attempt had already made this commit.
    pub reused: bool,
    /// Days materialized rather than referenced: day → variable → why.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub native: BTreeMap<NaiveDate, BTreeMap<String, String>>,
    /// What materializing took.
    #[serde(default, skip_serializing_if = "Materialized::is_none")]
    pub materialized: Materialized,
    /// Native days still to be materialized: nothing was committed (`snapshot` is the
    /// base); run the materialize step for each, then this write again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub materialize: Vec<NativeJob>,
}

impl WriteOutput {
    /// Nothing committed yet: `jobs` must be materialized first.
    fn pending(base: &SnapshotId, days_before: u64, jobs: Vec<NativeJob>) -> Self {
        Self {
            snapshot: base.to_string(),
            days_before,
            days_after: days_before,
            materialize: jobs,
            ..Self::default()
        }
    }

    /// The commit `snapshot` as its record describes it: what a fresh commit returns,
    /// and what a retried write finds of its own earlier one.
    fn from_record(snapshot: String, r: CommitRecord) -> Self {
        Self {
            snapshot,
            days: r.days,
            reprocessed: r.reprocessed,
            refs_written: r.refs_written,
            days_before: r.days_before,
            days_after: r.days_after,
            store_first_day: r.store_first_day,
            rejected: r.rejected,
            native: r.native,
            ..Self::default()
        }
    }

    /// Refuse a write that is still waiting for native days (a definition or caller
    /// that skipped the materialize step).
    pub(super) fn check_committed(&self) -> Result<(), PipelineError> {
        match self.materialize.is_empty() {
            true => Ok(()),
            false => Err(PipelineError::NotMaterialized {
                days: self.materialize.iter().map(|j| j.date).collect(),
            }),
        }
    }
}

/// Write step: the accepted days on the run's branch, committed.
pub async fn write_branch(ctx: &Context, input: WriteInput) -> Result<WriteOutput, PipelineError> {
    let WriteInput { run, refs } = input;
    run.check_store(ctx)?;
    let repo = StoreRepo::open(&ctx.store, &ctx.store_s3, &ctx.source_s3).await?;
    let _lock = repo.write_lock().await?;
    let base = run.base()?;
    if let Some(done) = already_written(&repo, &run, &base).await? {
        return Ok(done);
    }
    let before = repo.state_at(&base).await?;
    let store = ArtifactStore::open(&run.artifacts, &ctx.artifacts_s3).await?;
    let prepared = load_prepared(&store, &refs).await?;
    let SchemaSplit {
        accepted,
        rejected,
        schema,
    } = SchemaSplit::of(before.as_ref(), prepared, &run);
    let Some(first) = accepted.first() else {
        let count = rejected.len();
        let first = rejected.into_iter().next().map(|(_, e)| e);
        let first = first.unwrap_or_else(|| StoreError::metadata("/", "no days to write"));
        return Err(PipelineError::Rejected { count, first });
    };
    let store_first_day = before
        .as_ref()
        .and_then(|s| s.first_day)
        .or(Some(first.granule.date));
    let reprocessed: Vec<NaiveDate> = accepted
        .iter()
        .map(|d| d.granule.date)
        .filter(|d| before.as_ref().is_some_and(|s| s.holds(*d)))
        .collect();
    let commit = BranchCommit {
        store: &store,
        repo: &repo,
        run: &run,
        base: &base,
        before: before.as_ref(),
        days_before: before.as_ref().map_or(0, |s| s.days),
        message: commit_message(&accepted, &reprocessed),
        record: CommitRecord {
            store_first_day,
            rejected: rejected
                .iter()
                .map(|(granule, e)| Rejection {
                    granule: granule.clone(),
                    reason: e.to_string(),
                })
                .collect(),
            ..CommitRecord::for_run(&run.id)
        },
    };
    commit.write(accepted, schema).await
}

/// The sequence both writes share once their days are loaded and checked: attach the
/// days' native chunks (or hand back the jobs still to materialize), then write the days
/// on the run's branch in one commit.
struct BranchCommit<'a> {
    store: &'a ArtifactStore,
    repo: &'a StoreRepo,
    run: &'a Run,
    base: &'a SnapshotId,
    /// The store as the branch has it before this commit (`None`: empty).
    before: Option<&'a StoreState>,
    /// The store's days when the run began, which an output still waiting for
    /// materialized days reports.
    days_before: u64,
    message: String,
    /// What the caller records of the run; the writer adds the days.
    record: CommitRecord,
}

impl BranchCommit<'_> {
    /// Commit `accepted`, checked against `schema`; the output says what the commit
    /// records, or which native days must be materialized first.
    async fn write(
        self,
        mut accepted: Vec<PreparedGranule>,
        schema: Option<StoreSchema>,
    ) -> Result<WriteOutput, PipelineError> {
        let (Some(schema), Some(first)) = (schema, accepted.first()) else {
            return Err(StoreError::metadata("/", "no days to write").into());
        };
        let new = new_store(self.run, first);
        let jobs = attach_native(self.store, self.run, &mut accepted, &schema).await?;
        if !jobs.is_empty() {
            return Ok(WriteOutput::pending(self.base, self.days_before, jobs));
        }
        let session = self
            .repo
            .branch_session(&self.run.branch, self.base)
            .await?;
        let stores = SessionStores::new(session).await;
        super::crash_point("write-before-commit");
        let summary = writer::write_days(
            &stores,
            self.before,
            &accepted,
            &new,
            &self.message,
            self.record,
        )
        .await?;
        Ok(WriteOutput {
            materialized: summary.materialized,
            ..WriteOutput::from_record(summary.snapshot, summary.record)
        })
    }
}

/// "re-point D, D; add A..B": what a run's commit did, for the store's log.
fn commit_message(accepted: &[PreparedGranule], reprocessed: &[NaiveDate]) -> String {
    let added: Vec<NaiveDate> = accepted
        .iter()
        .map(|d| d.granule.date)
        .filter(|d| !reprocessed.contains(d))
        .collect();
    let mut parts = Vec::new();
    if !reprocessed.is_empty() {
        let dates: Vec<String> = reprocessed.iter().map(|d| d.to_string()).collect();
        parts.push(format!("re-point {}", dates.join(", ")));
    }
    if let (Some(a), Some(b)) = (added.first(), added.last()) {
        parts.push(format!("add {a}..{b}"));
    }
    parts.join("; ")
}

/// The days' artifacts, in date order.
pub(super) async fn load_prepared(
    store: &ArtifactStore,
    refs: &[GenerateRefsOutput],
) -> Result<Vec<PreparedGranule>, PipelineError> {
    let mut sorted: Vec<&GenerateRefsOutput> = refs.iter().collect();
    sorted.sort_by_key(|r| r.date);
    let mut out = Vec::with_capacity(sorted.len());
    for r in sorted {
        out.push(store.get_json::<PreparedGranule>(&r.artifact).await?);
    }
    Ok(out)
}

/// A write's days checked against the store: those that fit (each with its route), the
/// misfits with their errors, and the schema they were checked against (`None` if no
/// day fit).
struct SchemaSplit {
    accepted: Vec<PreparedGranule>,
    rejected: Vec<(String, StoreError)>,
    schema: Option<StoreSchema>,
}

impl SchemaSplit {
    /// A new day that does not fit ends the appends (a gap never enters the time axis);
    /// a stored day that does not fit keeps its old references, and the other days go
    /// on.
    fn of(before: Option<&StoreState>, prepared: Vec<PreparedGranule>, run: &Run) -> Self {
        let mut accepted = Vec::new();
        let mut rejected = Vec::new();
        // A new store takes its layout from its first day (and the configured chunking),
        // which every day, the first included, must fit or be materialized onto.
        let mut created = None;
        for mut day in prepared {
            let fits = match (before, &created) {
                (Some(state), _) => schema::check(&day.refs, &day.coordinates, &state.schema),
                (None, Some(schema)) => schema::check(&day.refs, &day.coordinates, schema),
                (None, None) => {
                    let new = new_store(run, &day);
                    create::new_schema(&day, &new.variables, new.chunks.as_ref()).and_then(
                        |schema| {
                            let route = schema::check(&day.refs, &day.coordinates, &schema);
                            created = Some(schema);
                            route
                        },
                    )
                }
            };
            let repoint = before.is_some_and(|s| s.holds(day.granule.date));
            match fits {
                Ok(route) => {
                    day.route = route;
                    accepted.push(day);
                }
                Err(e) => {
                    rejected.push((day.granule.url.clone(), e));
                    if !repoint {
                        break;
                    }
                }
            }
        }
        let schema = match accepted.is_empty() {
            true => None,
            false => before.map(|s| s.schema.clone()).or(created),
        };
        Self {
            accepted,
            rejected,
            schema,
        }
    }
}

/// What a new store keeps (`all`: every data variable of the first granule) and how it
/// is chunked.
fn new_store(run: &Run, first: &PreparedGranule) -> NewStore {
    let Some(create) = &run.create else {
        return NewStore::default();
    };
    let chunks = create.chunks.clone();
    if !create.variables.iter().any(|v| v == "all") {
        let variables = create.variables.clone();
        return NewStore { variables, chunks };
    }
    let variables = first
        .refs
        .variables
        .iter()
        .filter(|v| crate::store::layout::role(v) == Role::Data)
        .map(|v| v.name.clone())
        .collect();
    NewStore { variables, chunks }
}

/// This run's commit, if an earlier attempt made it: on the branch, or already on
/// `main` (merged, branch deleted). A branch holding someone else's commit is refused.
async fn already_written(
    repo: &StoreRepo,
    run: &Run,
    base: &SnapshotId,
) -> Result<Option<WriteOutput>, PipelineError> {
    let on_branch = repo.has_branch(&run.branch).await?;
    let tip = if on_branch {
        repo.branch_tip(&run.branch).await?
    } else {
        repo.branch_tip("main").await?
    };
    if &tip == base {
        return Ok(None);
    }
    match repo.commit_record(&tip).await? {
        Some(r) if r.run_id.as_deref() == Some(run.id.as_str()) => Ok(Some(WriteOutput {
            reused: true,
            ..WriteOutput::from_record(tip.to_string(), r)
        })),
        found if on_branch => Err(PipelineError::BranchTaken {
            branch: run.branch.clone(),
            found: found
                .and_then(|r| r.run_id)
                .unwrap_or_else(|| format!("snapshot {tip}")),
        }),
        _ => Ok(None),
    }
}

/// The snapshot a write output names.
pub(super) fn tip_of(write: &WriteOutput) -> Result<SnapshotId, PipelineError> {
    snapshot_id(&write.snapshot)
}

/// One backfill commit: batch `batch` of the run's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteBatchInput {
    pub run: Run,
    pub batch: u64,
}

/// Where the backfill's commits stand (the loop's Choice reads `done`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteBatchOutput {
    pub batch: u64,
    pub next_batch: u64,
    pub done: bool,
    /// The branch tip after this batch, with the days so far (`days` stays empty: a
    /// record's worth of dates would not fit a payload; `days_after` counts them).
    pub write: WriteOutput,
}

/// Write step of a backfill: the manifest's days `batch * batch_days ..` on the run's
/// branch, one commit, each invocation bounded by the batch size. Repeating a batch
/// that is already on the branch does nothing.
pub async fn write_batch(
    ctx: &Context,
    input: WriteBatchInput,
) -> Result<WriteBatchOutput, PipelineError> {
    let WriteBatchInput { run, batch } = input;
    run.check_store(ctx)?;
    let repo = StoreRepo::open(&ctx.store, &ctx.store_s3, &ctx.source_s3).await?;
    let _lock = repo.write_lock().await?;
    let store = ArtifactStore::open(&run.artifacts, &ctx.artifacts_s3).await?;
    let Batch {
        granules,
        start,
        batches,
    } = Batch::read(&store, &run, batch).await?;
    let granules = granules.as_slice();
    let base = run.base()?;
    let tip = match repo.has_branch(&run.branch).await? {
        true => repo.branch_tip(&run.branch).await?,
        false => base.clone(),
    };
    let state = repo.state_at(&tip).await?;
    let have = state.as_ref().map_or(0, |s| s.days);
    let days_before = state_days_at_base(&repo, &base).await?;
    let write = if granules.is_empty() || have >= days_before + (start + granules.len()) as u64 {
        // Nothing left, or an earlier attempt committed this batch already.
        summary_of(&state, &tip, days_before, true)
    } else {
        commit_batch(
            ctx,
            &repo,
            &run,
            state.as_ref(),
            &base,
            granules,
            days_before,
        )
        .await?
    };
    if !write.materialize.is_empty() {
        // The same batch again once its native days are materialized.
        return Ok(WriteBatchOutput {
            batch,
            next_batch: batch,
            done: false,
            write,
        });
    }
    Ok(WriteBatchOutput {
        batch,
        next_batch: batch + 1,
        done: batch + 1 >= batches,
        write,
    })
}

async fn state_days_at_base(repo: &StoreRepo, base: &SnapshotId) -> Result<u64, PipelineError> {
    Ok(repo.state_at(base).await?.map_or(0, |s| s.days))
}

/// The write output describing the branch as it stands.
fn summary_of(
    state: &Option<StoreState>,
    tip: &SnapshotId,
    days_before: u64,
    reused: bool,
) -> WriteOutput {
    WriteOutput {
        snapshot: tip.to_string(),
        days_before,
        days_after: state.as_ref().map_or(0, |s| s.days),
        store_first_day: state.as_ref().and_then(|s| s.first_day),
        reused,
        ..WriteOutput::default()
    }
}

/// Commit one batch of a backfill on the branch (created at the base for the first).
async fn commit_batch(
    ctx: &Context,
    repo: &StoreRepo,
    run: &Run,
    state: Option<&StoreState>,
    base: &SnapshotId,
    granules: &[crate::granule::Granule],
    days_before: u64,
) -> Result<WriteOutput, PipelineError> {
    let expected = state.and_then(|s| s.last_day).and_then(|d| d.succ_opt());
    if let (Some(want), Some(first)) = (expected, granules.first())
        && first.date != want
    {
        return Err(StoreError::metadata(
            "/",
            format!(
                "the branch ends before {want}, but the batch starts at {}",
                first.date
            ),
        )
        .into());
    }
    let store = ArtifactStore::open(&run.artifacts, &ctx.artifacts_s3).await?;
    let prepared = Batch::load(&store, run, granules).await?;
    let SchemaSplit {
        accepted,
        rejected,
        schema,
    } = SchemaSplit::of(state, prepared, run);
    if let Some((_, first)) = rejected.into_iter().next() {
        // A backfill adds every day or none: a misfit stops it, naming the day.
        return Err(PipelineError::Rejected { count: 1, first });
    }
    let (Some(first), Some(last)) = (accepted.first(), accepted.last()) else {
        return Err(StoreError::metadata("/", "no days to write").into());
    };
    let store_first_day = state.and_then(|s| s.first_day).or(Some(first.granule.date));
    let commit = BranchCommit {
        store: &store,
        repo,
        run,
        base,
        before: state,
        days_before,
        message: format!("backfill {}..{}", first.granule.date, last.granule.date),
        record: CommitRecord::for_run(&run.id),
    };
    let written = commit.write(accepted, schema).await?;
    if !written.materialize.is_empty() {
        return Ok(written);
    }
    // The batch's dates stay out: a backfill's would not fit a payload.
    Ok(WriteOutput {
        days: Vec::new(),
        days_before,
        store_first_day,
        ..written
    })
}

/// One batch of a backfill's manifest.
pub(super) struct Batch {
    pub granules: Vec<crate::granule::Granule>,
    /// Index of the first granule in the manifest.
    pub start: usize,
    /// Batches in the manifest.
    pub batches: u64,
}

impl Batch {
    /// Batch `batch` of the run's manifest (empty past the end).
    pub async fn read(store: &ArtifactStore, run: &Run, batch: u64) -> Result<Self, PipelineError> {
        let mut manifest: Vec<crate::granule::Granule> = store
            .get_json(&crate::artifacts::manifest_key(&run.id))
            .await?;
        let size = usize::try_from(run.options.batch_days.max(1)).unwrap_or(usize::MAX);
        let start = usize::try_from(batch)
            .unwrap_or(usize::MAX)
            .saturating_mul(size)
            .min(manifest.len());
        let batches = manifest.len().div_ceil(size) as u64;
        manifest.truncate((start + size).min(manifest.len()));
        let granules = manifest.split_off(start);
        Ok(Self {
            granules,
            start,
            batches,
        })
    }

    /// The batch's prepared days, through each day's pointer to its current artifact.
    pub async fn load(
        store: &ArtifactStore,
        run: &Run,
        granules: &[crate::granule::Granule],
    ) -> Result<Vec<PreparedGranule>, PipelineError> {
        let mut pointers = Vec::with_capacity(granules.len());
        for g in granules {
            let key = crate::artifacts::day_pointer_key(&run.id, g.date);
            pointers.push(store.get_json::<GenerateRefsOutput>(&key).await?);
        }
        load_prepared(store, &pointers).await
    }
}
