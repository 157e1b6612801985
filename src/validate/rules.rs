//! The metadata rules, one function per concern, each returning the rules it checked.

use icechunk::format::Path as NodePath;
use icechunk::format::manifest::ChunkPayload;

use super::{Branch, Rule, ValidationError, failed};
use crate::refs::DataType;
use crate::store::StoreError;
use crate::store::attributes::{DROPPED, TAKE_MAX, TAKE_MIN};
use crate::store::layout::TIME;
use crate::store::layout::store_chunk_index;
use crate::store::values::{Values, range_1d};
use crate::store::writer::chunk_refs;

/// The time axis grew by one step per granule, has a uniform daily step, and ends at
/// the new days' time values (converted to the store's epoch).
pub(super) async fn check_time_axis(branch: &Branch<'_>) -> Result<Vec<Rule>, ValidationError> {
    let (after, days) = (branch.after, branch.days);
    let days_before = branch.first;
    let added = branch.added();
    let end = days_before + added;
    let counted = if branch.whole {
        after.days == end
    } else {
        after.days >= end
    };
    if !counted {
        return Err(failed(
            Rule::NewStepsEqualGranules,
            format!(
                "{added} new granules but time grew from {days_before} to {}",
                after.days
            ),
        ));
    }
    let dtype = after.time_meta()?.data_type;
    if !matches!(dtype, DataType::Int32 | DataType::Int64) {
        return Err(failed(
            Rule::UniformTimeStep,
            format!("time is not integer: {}", dtype.zarr_v3_name()),
        ));
    }
    let array = branch.stores.array(TIME).await?;
    let times = Values::read(&array, dtype, &range_1d(0, after.days))
        .await?
        .as_i64();
    if let Some(w) = times.windows(2).find(|w| w[1] - w[0] != 86_400) {
        return Err(failed(
            Rule::UniformTimeStep,
            format!("step {} s between {} and {}", w[1] - w[0], w[0], w[1]),
        ));
    }
    for day in days {
        let t = branch.index(day)? as usize;
        let expected = day.time_seconds - (after.time_epoch - day.time_epoch).num_seconds();
        if times[t] != expected {
            return Err(failed(
                Rule::UniformTimeStep,
                format!(
                    "time[{t}] is {}, expected {expected} for {}",
                    times[t], day.granule.date
                ),
            ));
        }
    }
    Ok(vec![Rule::NewStepsEqualGranules, Rule::UniformTimeStep])
}

/// The global attributes follow the Python updater's rules.
pub(super) fn check_attributes(branch: &Branch<'_>) -> Result<Vec<Rule>, ValidationError> {
    let attrs = &branch.after.group_attributes;
    if !attrs.contains_key("publisher_name") {
        return Err(failed(Rule::PublisherNamePresent, "missing"));
    }
    if let Some(k) = DROPPED.iter().find(|k| attrs.contains_key(**k)) {
        return Err(failed(
            Rule::DroppedAttributesAbsent,
            format!("{k} is present"),
        ));
    }
    let mut checked = vec![Rule::PublisherNamePresent, Rule::DroppedAttributesAbsent];
    let Some(before) = branch.nonempty_before() else {
        return Ok(checked);
    };
    for k in TAKE_MIN {
        let (old, new) = (before.group_attributes.get(*k), attrs.get(*k));
        if old.is_some() && old != new {
            return Err(failed(
                Rule::StartAttributesUnchanged,
                format!("{k} changed from {old:?} to {new:?}"),
            ));
        }
    }
    checked.push(Rule::StartAttributesUnchanged);
    if branch.added() == 0 {
        // Only re-pointed days: the coverage stays where it was.
        return Ok(checked);
    }
    for k in TAKE_MAX {
        let (old, new) = (before.group_attributes.get(*k), attrs.get(*k));
        if old.is_some() && old == new {
            return Err(failed(
                Rule::StopAttributesChanged,
                format!("{k} is still {old:?}"),
            ));
        }
    }
    checked.push(Rule::StopAttributesChanged);
    Ok(checked)
}

/// Static coordinates equal the store's (or, for a new store, the first granule's).
pub(super) fn check_coordinates(branch: &Branch<'_>) -> Result<Vec<Rule>, ValidationError> {
    for (name, values) in &branch.after.schema.coordinates {
        let reference = match branch.nonempty_before() {
            Some(b) => b.schema.coordinates.get(name),
            None => branch.days.first().and_then(|d| d.coordinates.get(name)),
        };
        if reference != Some(values) {
            return Err(failed(
                Rule::CoordinatesUnchanged,
                format!("{name} differs"),
            ));
        }
    }
    Ok(vec![Rule::CoordinatesUnchanged])
}

/// A materialized day holds native chunks (or none, where all is fill), never a
/// reference; its values are compared with the source like any other day's.
async fn check_native(
    session: &icechunk::session::Session,
    branch: &Branch<'_>,
    name: &str,
    t: u64,
    url: &str,
) -> Result<u64, ValidationError> {
    let path = crate::store::layout::array_path(name)?;
    let meta = &branch.after.schema.arrays[name];
    let mut native = 0;
    for coords in crate::store::layout::time_step_chunks(meta, name, t)? {
        let got = session
            .get_chunk_ref(&path, &coords)
            .await
            .map_err(|e| StoreError::icechunk(format!("reading {name} {coords:?}"), e))?;
        match got {
            Some(ChunkPayload::Virtual(r)) => {
                return Err(failed(
                    Rule::GranuleReferenced,
                    format!(
                        "{name} chunk {:?} of {url} should be materialized, but references {}",
                        coords.0,
                        r.location.url()
                    ),
                ));
            }
            Some(_) => native += 1,
            None => {}
        }
    }
    Ok(native)
}

/// Every new granule is referenced by the branch's virtual chunks, exactly as indexed
/// (or, where it was materialized, holds native chunks); returns the number checked.
pub(super) async fn check_references(branch: &Branch<'_>) -> Result<u64, ValidationError> {
    let session = branch.stores.icechunk.session();
    let session = session.read().await;
    let mut checked = 0;
    for day in branch.days {
        let t = branch.index(day)?;
        let url = day.granule.url.as_str();
        let route = crate::store::schema::check(&day.refs, &day.coordinates, &branch.after.schema)
            .map_err(|e| failed(Rule::GranuleReferenced, e.to_string()))?;
        for name in branch.after.data_arrays() {
            if route.native.contains_key(&name) {
                checked += check_native(&session, branch, &name, t, url).await?;
                continue;
            }
            let var = day.refs.variable(&name).ok_or_else(|| {
                failed(
                    Rule::GranuleReferenced,
                    format!("{name} missing from {url}"),
                )
            })?;
            let path = NodePath::new(&format!("/{name}"))
                .map_err(|e| failed(Rule::GranuleReferenced, e.to_string()))?;
            for (index, expected) in chunk_refs(url, var)? {
                let coords = store_chunk_index(&name, t, index)?;
                let got = session
                    .get_chunk_ref(&path, &coords)
                    .await
                    .map_err(|e| StoreError::icechunk(format!("reading {name} {coords:?}"), e))?;
                match got {
                    Some(ChunkPayload::Virtual(r))
                        if r.location.url() == day.refs.object.url
                            && r.offset == expected.offset
                            && r.length == expected.length => {}
                    other => {
                        return Err(failed(
                            Rule::GranuleReferenced,
                            format!(
                                "{name} chunk {:?} should reference {url} at {}+{}, found {other:?}",
                                coords.0, expected.offset, expected.length
                            ),
                        ));
                    }
                }
                checked += 1;
            }
        }
    }
    Ok(checked)
}
