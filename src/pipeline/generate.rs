//! The generate-refs step, one granule per invocation: read only the HDF5 metadata
//! (ranged reads), and leave the references with what the schema check and the writer
//! need as an artifact for the commit step.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::{Context, PipelineError, Run};
use crate::artifacts::{self, ArtifactStore};
use crate::codec;
use crate::granule::Granule;
use crate::hdf5::ReadOptions;
use crate::objects;
use crate::objects::S3Access;
use crate::refs::{self, DataType, GranuleRefs};
use crate::source::{Counted, RangeRead};
use crate::store::StoreError;
use crate::store::layout::{self, Role, TIME};
use crate::store::prepared::{self, PreparedGranule};
use crate::store::values::Values;

/// One Map iteration's input: the run and the granule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerateRefsInput {
    pub run: Run,
    pub granule: Granule,
}

/// What one iteration left for the commit step (small: the references are in the
/// artifact).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerateRefsOutput {
    pub date: NaiveDate,
    pub url: String,
    /// Key of the [`PreparedGranule`] in the run's artifact store.
    pub artifact: String,
    pub refs: u64,
    pub requests: u64,
    pub bytes_read: u64,
    /// Whether an earlier attempt's artifact for the same granule version was reused.
    pub reused: bool,
}

/// A batch of granules for one invocation, as a Distributed Map's `ItemBatcher` hands
/// them over (`Items`, plus the run from `BatchInput`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerateRefsBatch {
    pub run: Run,
    #[serde(rename = "Items")]
    pub items: Vec<Granule>,
}

/// What a batch left: totals only (the per-day pointers are artifacts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerateRefsBatchOutput {
    pub granules: u64,
    pub reused: u64,
    pub requests: u64,
    pub bytes_read: u64,
}

/// Generate-refs step: index the granule, or reuse an earlier attempt's artifact.
pub async fn generate_refs(
    ctx: &Context,
    input: GenerateRefsInput,
) -> Result<GenerateRefsOutput, PipelineError> {
    let GenerateRefsInput { run, granule } = input;
    let store = ArtifactStore::open(&run.artifacts, &ctx.artifacts_s3).await?;
    let out = match reuse(ctx, &store, &run, &granule).await? {
        Some(done) => done,
        None => {
            let (prepared, requests, bytes_read) =
                prepare_granule(&granule, &ctx.source_s3, &ctx.read_options).await?;
            let artifact = artifacts::refs_key(&run.id, granule.date, &prepared.refs.object);
            store.put_json(&artifact, &prepared).await?;
            super::crash_point("refs-artifact");
            GenerateRefsOutput {
                date: granule.date,
                url: granule.url,
                artifact,
                refs: ref_count(&prepared.refs),
                requests,
                bytes_read,
                reused: false,
            }
        }
    };
    // The day's current version, for steps that find artifacts by day (backfill commits).
    store
        .put_json(&artifacts::day_pointer_key(&run.id, out.date), &out)
        .await?;
    Ok(out)
}

/// Generate-refs for a batch of granules, a few at a time.
pub async fn generate_refs_batch(
    ctx: &Context,
    input: GenerateRefsBatch,
) -> Result<GenerateRefsBatchOutput, PipelineError> {
    let GenerateRefsBatch { run, items } = input;
    let outs: Vec<GenerateRefsOutput> = futures::stream::iter(items.into_iter().map(|granule| {
        generate_refs(
            ctx,
            GenerateRefsInput {
                run: run.clone(),
                granule,
            },
        )
    }))
    .buffered(ctx.concurrency.max(1))
    .try_collect()
    .await?;
    Ok(GenerateRefsBatchOutput {
        granules: outs.len() as u64,
        reused: outs.iter().filter(|o| o.reused).count() as u64,
        requests: outs.iter().map(|o| o.requests).sum(),
        bytes_read: outs.iter().map(|o| o.bytes_read).sum(),
    })
}

fn ref_count(refs: &GranuleRefs) -> u64 {
    refs.variables.iter().map(|v| v.chunks.len() as u64).sum()
}

/// An earlier attempt's artifact for this granule, if the granule has not changed since
/// (one HEAD to compare versions; none when there is no earlier artifact).
async fn reuse(
    ctx: &Context,
    store: &ArtifactStore,
    run: &Run,
    granule: &Granule,
) -> Result<Option<GenerateRefsOutput>, PipelineError> {
    let existing = store
        .list(&artifacts::refs_day_prefix(&run.id, granule.date))
        .await?;
    if existing.is_empty() {
        return Ok(None);
    }
    let object = objects::open(&granule.url, &ctx.source_s3)
        .await?
        .info()
        .await?;
    let key = artifacts::refs_key(&run.id, granule.date, &object);
    if !existing.contains(&key) {
        return Ok(None);
    }
    let prepared: PreparedGranule = store.get_json(&key).await?;
    Ok(Some(GenerateRefsOutput {
        date: granule.date,
        url: granule.url.clone(),
        artifact: key,
        refs: ref_count(&prepared.refs),
        requests: 1,
        bytes_read: 0,
        reused: true,
    }))
}

/// Index one granule: its references, time value and coordinates. Returns the requests
/// and bytes it took.
pub async fn prepare_granule(
    granule: &Granule,
    s3: &S3Access,
    options: &ReadOptions,
) -> Result<(PreparedGranule, u64, u64), PipelineError> {
    let reader = objects::open(&granule.url, s3).await?;
    let counted = Arc::new(Counted::new(reader));
    let reader: &dyn RangeRead = counted.as_ref();
    let refs = refs::index_granule(reader, options)
        .await
        .map_err(Box::new)?;
    let (time_seconds, time_epoch) = time_value(reader, &refs).await?;
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
        route: Default::default(),
        native: Default::default(),
    };
    prepared::check_time(&prepared)?;
    Ok((prepared, counted.stats.requests(), counted.stats.bytes()))
}

/// The granule's one time value and the epoch its units count from.
async fn time_value(
    reader: &dyn RangeRead,
    refs: &GranuleRefs,
) -> Result<(i64, chrono::NaiveDateTime), PipelineError> {
    let url = refs.object.url.as_str();
    let time = refs
        .variable(TIME)
        .ok_or_else(|| StoreError::schema(url, TIME, "variable", "missing from the granule"))?;
    let units = time
        .attributes
        .get("units")
        .and_then(|u| u.as_str())
        .unwrap_or_default();
    let epoch = layout::seconds_epoch(units).ok_or_else(|| {
        StoreError::schema(
            url,
            TIME,
            "units",
            format!("{units:?} is not seconds since a date"),
        )
    })?;
    let raw = codec::read_1d(reader, time).await?;
    let len = raw.len();
    let values = Values::from_le_bytes(time.dtype, raw).filter(|v| v.len() == 1);
    let seconds = match (time.dtype, values) {
        (DataType::Int32 | DataType::Int64, Some(v)) => v.as_i64().first().copied(),
        (DataType::Float64, Some(v)) => {
            let f = f64::from_le_bytes(v.le_bytes[..8].try_into().unwrap_or_default());
            (f.fract() == 0.0).then_some(f as i64)
        }
        _ => None,
    };
    let seconds = seconds.ok_or_else(|| {
        StoreError::schema(
            url,
            TIME,
            "values",
            format!(
                "expected one integer time value, found {len} bytes of {}",
                time.dtype.zarr_v3_name()
            ),
        )
    })?;
    Ok((seconds, epoch))
}
