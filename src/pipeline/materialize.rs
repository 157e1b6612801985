//! The materialize step, one native day per invocation. The commit step finds days whose
//! variables are chunked or encoded unlike the store's arrays, leaves a plan for each
//! (which variables, onto which array, why) and hands them over as jobs; this step
//! decodes those variables from the granule, re-chunks them onto the store's grid and
//! writes native chunks to the repository's chunk storage, leaving their payloads as an
//! artifact; the next commit attempt sets them on the branch. It is the heavy step
//! (whole variables decoded), so it has a Lambda of its own, sized for it, while the
//! commit stays light and the only writer of branches.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{Context, PipelineError, Run};
use crate::artifacts::{self, ArtifactStore};
use crate::objects::S3Access;
use crate::source::{ObjectInfo, RangeRead};
use crate::store::layout::ArrayMeta;
use crate::store::materialize::{self as native, Materialized, NativeVariable};
use crate::store::prepared::PreparedGranule;
use crate::store::record::checksum;
use crate::store::schema::StoreSchema;
use crate::store::{StoreError, StoreRepo};

/// How long a day's native chunks stay usable by a commit. Until a commit references
/// them they are unreferenced objects, which garbage collection deletes once older than
/// its cut-off, never less than [`crate::store::hygiene::CHUNK_MIN_AGE`]; older ones are
/// written anew.
pub const NATIVE_MAX_AGE: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// Times the write may ask for one day's native chunks before it gives up: the first,
/// and two more for chunks that expired meanwhile (a late redrive). It bounds the
/// write ⇄ materialize loop of the state machines.
pub const NATIVE_ROUNDS: u32 = 3;

/// One day for the materialize step: an item of the state machines' materialize Map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeJob {
    pub date: NaiveDate,
    /// Key of the day's [`PreparedGranule`] artifact (its chunk index).
    pub refs: String,
    /// Key of the day's [`NativePlan`].
    pub plan: String,
}

/// The materialize step's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaterializeInput {
    pub run: Run,
    pub job: NativeJob,
}

/// What one day's materializing left (the chunks are in the artifact).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaterializeOutput {
    pub date: NaiveDate,
    /// Key of the day's [`NativeDay`].
    pub artifact: String,
    pub variables: Vec<String>,
    pub chunks: u64,
    pub materialized: Materialized,
    /// Whether an earlier attempt's chunks were still good.
    pub reused: bool,
}

/// What the commit step asks of the materialize step for one day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NativePlan {
    /// The granule version whose chunk index the refs artifact holds.
    pub granule: ObjectInfo,
    pub variables: BTreeMap<String, PlannedVariable>,
    /// How many times the write has asked for these chunks (see [`NATIVE_ROUNDS`]).
    #[serde(default = "first_round")]
    pub round: u32,
}

fn first_round() -> u32 {
    1
}

impl NativePlan {
    /// Whether both ask for the same chunks (whatever the round).
    fn same_ask(&self, other: &NativePlan) -> bool {
        same_version(&self.granule, &other.granule) && self.variables == other.variables
    }
}

/// One variable to materialize: onto which store array, and why it cannot be referenced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedVariable {
    pub why: String,
    pub target: ArrayMeta,
}

/// What the materialize step leaves for the commit step: one day's native chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NativeDay {
    pub granule: ObjectInfo,
    pub written_at: DateTime<Utc>,
    pub variables: BTreeMap<String, NativeVariable>,
}

impl NativeDay {
    /// Whether these are the chunks `plan` asks for, recent enough that no garbage
    /// collection can have removed them.
    fn fulfils(&self, plan: &NativePlan, now: DateTime<Utc>) -> bool {
        same_version(&self.granule, &plan.granule)
            && now - self.written_at < NATIVE_MAX_AGE
            && plan.variables.iter().all(|(name, planned)| {
                self.variables
                    .get(name)
                    .is_some_and(|v| v.target == planned.target)
            })
    }

    fn output(&self, date: NaiveDate, artifact: String, reused: bool) -> MaterializeOutput {
        let mut materialized = Materialized::default();
        for v in self.variables.values() {
            materialized += v.materialized;
        }
        MaterializeOutput {
            date,
            artifact,
            variables: self.variables.keys().cloned().collect(),
            chunks: self.variables.values().map(|v| v.chunks.len() as u64).sum(),
            materialized,
            reused,
        }
    }
}

fn same_version(a: &ObjectInfo, b: &ObjectInfo) -> bool {
    a.url == b.url && a.size == b.size && checksum(a) == checksum(b)
}

/// Materialize step: the job's variables as native chunks, or an earlier attempt's.
pub async fn materialize(
    ctx: &Context,
    input: MaterializeInput,
) -> Result<MaterializeOutput, PipelineError> {
    let MaterializeInput { run, job } = input;
    run.check_store(ctx)?;
    let store = ArtifactStore::open(&run.artifacts, &ctx.artifacts_s3).await?;
    let plan: NativePlan = store.get_json(&job.plan).await?;
    let key = artifacts::native_key(&run.id, job.date, &plan.granule);
    if let Some(done) = find_native(&store, &key).await?
        && done.fulfils(&plan, Utc::now())
    {
        return Ok(done.output(job.date, key, true));
    }
    let day: PreparedGranule = store.get_json(&job.refs).await?;
    if !same_version(&day.refs.object, &plan.granule) {
        return Err(StoreError::schema(
            plan.granule.url.clone(),
            "/",
            "version",
            "the plan and the refs artifact name different versions of the granule",
        )
        .into());
    }
    let reader = open_unchanged(&day, &ctx.source_s3).await?;
    // Any session of the repository will do (only its chunk writer is used): main's tip
    // is one that no expiry can have removed.
    let repo = StoreRepo::open(&ctx.store, &ctx.store_s3, &ctx.source_s3).await?;
    let session = repo.readonly_at(&repo.branch_tip("main").await?).await?;
    let mut variables = BTreeMap::new();
    for (name, planned) in &plan.variables {
        let var = day.refs.variable(name).ok_or_else(|| {
            StoreError::schema(
                day.refs.object.url.clone(),
                name.clone(),
                "variable",
                "missing from the granule",
            )
        })?;
        let reader = Arc::clone(&reader);
        let done = native::materialize(&session, name, &planned.target, var, reader).await?;
        tracing::info!(
            date = %job.date,
            variable = %name,
            why = %planned.why,
            chunks = done.chunks.len(),
            "materialized"
        );
        variables.insert(name.clone(), done);
    }
    let done = NativeDay {
        granule: plan.granule,
        written_at: Utc::now(),
        variables,
    };
    store.put_json(&key, &done).await?;
    Ok(done.output(job.date, key, false))
}

/// The day's granule, for materializing: it must still be the version whose chunk
/// index the refs hold, or its bytes would be decoded at the wrong offsets.
async fn open_unchanged(
    day: &PreparedGranule,
    source: &S3Access,
) -> Result<Arc<dyn RangeRead>, PipelineError> {
    let url = &day.refs.object.url;
    let reader = crate::objects::open(url, source).await?;
    let now = reader.info().await?;
    if !same_version(&now, &day.refs.object) {
        return Err(PipelineError::SourceChanged {
            granule: url.clone(),
        });
    }
    Ok(reader)
}

/// The commit step's side: attach to every native day among `days` the chunks the
/// materialize step wrote for it onto `schema`'s arrays. Days without them (or whose
/// chunks are stale) get a plan and come back as jobs; nothing is written to the store
/// until there are none.
pub(super) async fn attach_native(
    store: &ArtifactStore,
    run: &Run,
    days: &mut [PreparedGranule],
    schema: &StoreSchema,
) -> Result<Vec<NativeJob>, PipelineError> {
    let now = Utc::now();
    let mut jobs = Vec::new();
    for day in days.iter_mut().filter(|d| !d.route.is_virtual()) {
        let mut plan = plan_for(day, schema)?;
        let (date, object) = (day.granule.date, &day.refs.object);
        let key = artifacts::native_key(&run.id, date, object);
        match find_native(store, &key).await? {
            Some(done) if done.fulfils(&plan, now) => {
                day.native = done
                    .variables
                    .into_iter()
                    .filter(|(name, _)| plan.variables.contains_key(name))
                    .collect();
            }
            _ => {
                let plan_key = artifacts::native_plan_key(&run.id, date, object);
                let asked = store
                    .find_json::<NativePlan>(&plan_key)
                    .await
                    .ok()
                    .flatten();
                if let Some(asked) = asked.filter(|a| a.same_ask(&plan)) {
                    plan.round = asked.round + 1;
                }
                if plan.round > NATIVE_ROUNDS {
                    return Err(PipelineError::NativeLoop {
                        date,
                        rounds: NATIVE_ROUNDS,
                    });
                }
                store.put_json(&plan_key, &plan).await?;
                jobs.push(NativeJob {
                    date,
                    refs: artifacts::refs_key(&run.id, date, object),
                    plan: plan_key,
                });
            }
        }
    }
    Ok(jobs)
}

/// What a native day needs: each variable its route names, onto the store's array.
fn plan_for(day: &PreparedGranule, schema: &StoreSchema) -> Result<NativePlan, StoreError> {
    let mut variables = BTreeMap::new();
    for (name, why) in &day.route.native {
        let meta = schema
            .arrays
            .get(name)
            .ok_or_else(|| StoreError::metadata(name, "not an array of the store"))?;
        variables.insert(
            name.clone(),
            PlannedVariable {
                why: why.clone(),
                target: native::target_of(meta),
            },
        );
    }
    Ok(NativePlan {
        granule: day.refs.object.clone(),
        variables,
        round: first_round(),
    })
}

/// A day's native artifact; one that does not parse (an older format) counts as absent
/// and is written anew.
async fn find_native(store: &ArtifactStore, key: &str) -> Result<Option<NativeDay>, PipelineError> {
    match store.find_json::<NativeDay>(key).await {
        Err(crate::artifacts::ArtifactError::Json { .. }) => Ok(None),
        other => Ok(other?),
    }
}
