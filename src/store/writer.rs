//! Writing prepared days to a session: create the layout of a new store, grow `time`,
//! write the new time values, set (or re-point) the virtual references, combine global
//! attributes, and commit with the days recorded in the snapshot properties.

use icechunk::format::manifest::{VirtualChunkLocation, VirtualChunkRef};
use icechunk::store::SetVirtualRefsResult;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::StoreError;
use super::attributes;
use super::create::{NewStore, create_layout};
use super::layout::{TIME, array_path, store_chunk_index, time_step_chunks};
use super::materialize::{Materialized, NativeVariable};
use super::prepared::PreparedGranule;
use super::record::{CommitRecord, SourceVersion, checksum};
use super::session::SessionStores;
use super::state::StoreState;
use super::values::{Values, range_1d};
use crate::refs::{ChunkData, ChunkRef, Variable};

/// What a write did: the commit, what it records, and what materializing took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteSummary {
    pub snapshot: String,
    /// The record the commit carries (days, counts, native days and their sources).
    pub record: CommitRecord,
    /// What materializing the native variables took (all zero if there were none).
    pub materialized: Materialized,
}

/// A variable's chunks as byte ranges; compact (inline) storage has none to point at.
pub(crate) fn chunk_refs<'a>(
    granule: &str,
    var: &'a Variable,
) -> Result<Vec<(&'a [u64], ChunkRef)>, StoreError> {
    var.chunks
        .iter()
        .map(|(index, data)| match data {
            ChunkData::Ref(r) => Ok((index.as_slice(), *r)),
            ChunkData::Inline(_) => Err(StoreError::schema(
                granule,
                var.name.clone(),
                "data layout",
                "compact (inline) storage cannot be referenced virtually",
            )),
        })
        .collect()
}

/// Write `days` to the session and commit: a day the store already holds is re-pointed
/// at its granule (a source replaced since ingest), the others (consecutive, after the
/// store's last day) are appended. Variables a day's route names get the native chunks
/// attached to the day (written by the materialize step), the rest are referenced.
///
/// With `state` `None` the store is empty and its layout is created from the first day
/// as `new_store` says. Every day must already have passed the schema check. `record`
/// carries what the caller knows of the run (its id, so a retried step can find its own
/// commit); the days, counts and native sources are filled in here.
pub async fn write_days(
    stores: &SessionStores,
    state: Option<&StoreState>,
    days: &[PreparedGranule],
    new_store: &NewStore,
    message: &str,
    record: CommitRecord,
) -> Result<WriteSummary, StoreError> {
    let Some(first) = days.first() else {
        return Err(StoreError::metadata("/", "no days to write"));
    };
    let created;
    let (state, existing) = match state {
        Some(s) => (s, Some(&s.group_attributes)),
        None => {
            created = create_layout(
                stores,
                first,
                &new_store.variables,
                new_store.chunks.as_ref(),
            )
            .await?;
            (&created, None)
        }
    };
    // Global attributes first: a disagreement fails before anything else is written.
    let named: Vec<(&str, &Map<String, Value>)> = days
        .iter()
        .map(|d| (d.refs.object.url.as_str(), &d.refs.attributes))
        .collect();
    stores
        .set_group(attributes::combine(existing, &named)?)
        .await?;
    let (repointed, appended): (Vec<&PreparedGranule>, Vec<&PreparedGranule>) =
        days.iter().partition(|d| state.holds(d.granule.date));
    let n0 = state.days;
    let n1 = n0 + appended.len() as u64;
    if !appended.is_empty() {
        grow_time_arrays(stores, state, n1).await?;
        write_times(stores, state, &appended, n0).await?;
    }
    let placed = repointed
        .iter()
        .map(|d| (state.index_of(d.granule.date).unwrap_or(0), *d, true))
        .chain((n0..).zip(&appended).map(|(t, d)| (t, *d, false)));
    let mut refs_written = 0;
    let mut materialized = Materialized::default();
    for (t, day, replaces) in placed {
        let (refs, m) = write_day(stores, state, t, day, replaces).await?;
        refs_written += refs;
        materialized += m;
    }
    let record = CommitRecord {
        days: days.iter().map(|d| d.granule.date).collect(),
        granules: days.iter().map(|d| d.refs.object.url.clone()).collect(),
        reprocessed: repointed.iter().map(|d| d.granule.date).collect(),
        refs_written,
        days_before: n0,
        days_after: n1,
        native: days
            .iter()
            .filter(|d| !d.route.is_virtual())
            .map(|d| (d.granule.date, d.route.native.clone()))
            .collect(),
        native_sources: days
            .iter()
            .filter(|d| !d.route.is_virtual())
            .map(|d| (d.granule.date, SourceVersion::of(&d.refs.object)))
            .collect(),
        ..record
    };
    let snapshot = stores.commit(message, record.to_properties()?).await?;
    Ok(WriteSummary {
        snapshot: snapshot.to_string(),
        record,
        materialized,
    })
}

/// Time step `t` of every data array from `day`: referenced, or set to its native
/// chunks where its route says so; a re-pointed day (`replaces`) is cleared first.
/// Returns the references set and what materializing took.
async fn write_day(
    stores: &SessionStores,
    state: &StoreState,
    t: u64,
    day: &PreparedGranule,
    replaces: bool,
) -> Result<(u64, Materialized), StoreError> {
    let (mut refs, mut materialized) = (0, Materialized::default());
    for name in state.data_arrays() {
        if replaces {
            clear_time_step(stores, state, &name, t).await?;
        }
        if !day.route.native.contains_key(&name) {
            refs += set_references(stores, &name, day, t).await?;
            continue;
        }
        let native = day.native.get(&name).ok_or_else(|| {
            StoreError::schema(
                day.refs.object.url.clone(),
                name.clone(),
                "native chunks",
                "the variable must be materialized, but no native chunks were attached",
            )
        })?;
        set_native_chunks(stores, &name, t, native).await?;
        materialized += native.materialized;
    }
    Ok((refs, materialized))
}

/// Point time step `t` of array `name` at the native chunks materialized for it.
async fn set_native_chunks(
    stores: &SessionStores,
    name: &str,
    t: u64,
    native: &NativeVariable,
) -> Result<(), StoreError> {
    let path = array_path(name)?;
    let session = stores.icechunk.session();
    let mut session = session.write().await;
    for chunk in &native.chunks {
        let index = [
            &[0u64][..],
            &chunk
                .index
                .iter()
                .map(|&i| u64::from(i))
                .collect::<Vec<_>>(),
        ]
        .concat();
        session
            .set_chunk_ref(
                path.clone(),
                store_chunk_index(name, t, &index)?,
                Some(chunk.payload.clone()),
            )
            .await
            .map_err(|e| {
                StoreError::icechunk(
                    format!("setting native chunk {:?} of {name}", chunk.index),
                    e,
                )
            })?;
    }
    Ok(())
}

/// Delete every chunk of time step `t` of array `name`, so a re-pointed day keeps none
/// of its old granule's chunks (the new one may leave some unallocated).
async fn clear_time_step(
    stores: &SessionStores,
    state: &StoreState,
    name: &str,
    t: u64,
) -> Result<(), StoreError> {
    let coords = time_step_chunks(&state.schema.arrays[name], name, t)?;
    let path = array_path(name)?;
    let session = stores.icechunk.session();
    let mut session = session.write().await;
    session
        .delete_chunks(&path, coords)
        .await
        .map_err(|e| StoreError::icechunk(format!("clearing {name} time step {t}"), e))
}

/// Set every time-dimensioned array's length to `days`.
async fn grow_time_arrays(
    stores: &SessionStores,
    state: &StoreState,
    days: u64,
) -> Result<(), StoreError> {
    for (name, meta) in &state.schema.arrays {
        if meta.along_time() {
            let mut meta = meta.clone();
            meta.shape[0] = days;
            stores.set_array(name, &meta).await?;
        }
    }
    Ok(())
}

/// Write the new days' time values from `n0` on, converted to the store's epoch.
async fn write_times(
    stores: &SessionStores,
    state: &StoreState,
    days: &[&PreparedGranule],
    n0: u64,
) -> Result<(), StoreError> {
    let times: Vec<i64> = days
        .iter()
        .map(|d| d.time_seconds - (state.time_epoch - d.time_epoch).num_seconds())
        .collect();
    let dtype = state.time_meta()?.data_type;
    let values = Values::times(dtype, &times).ok_or_else(|| {
        StoreError::metadata(
            TIME,
            format!("time values {times:?} do not fit {}", dtype.zarr_v3_name()),
        )
    })?;
    let array = stores.array(TIME).await?;
    values
        .write(&array, &range_1d(n0, n0 + days.len() as u64))
        .await
}

/// Point time step `t` of array `name` at the day's chunks; returns how many.
async fn set_references(
    stores: &SessionStores,
    name: &str,
    day: &PreparedGranule,
    t: u64,
) -> Result<u64, StoreError> {
    let url = day.refs.object.url.as_str();
    let var = day
        .refs
        .variable(name)
        .ok_or_else(|| StoreError::schema(url, name, "variable", "missing from the granule"))?;
    let path = array_path(name)?;
    let location = VirtualChunkLocation::from_url(url)
        .map_err(|e| StoreError::icechunk(format!("location of {url}"), e))?;
    let checksum = checksum(&day.refs.object);
    let refs = chunk_refs(url, var)?
        .into_iter()
        .map(|(index, r)| {
            Ok((
                store_chunk_index(name, t, index)?,
                VirtualChunkRef {
                    location: location.clone(),
                    offset: r.offset,
                    length: r.length,
                    checksum: checksum.clone(),
                },
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let count = refs.len() as u64;
    let result = stores
        .icechunk
        .set_virtual_refs(&path, true, refs)
        .await
        .map_err(|e| StoreError::icechunk(format!("setting references of {name}"), e))?;
    if let SetVirtualRefsResult::FailedRefs(_) = result {
        return Err(StoreError::schema(
            url,
            name,
            "location",
            "not under any virtual chunk container of the store",
        ));
    }
    Ok(count)
}
