//! A new store's layout, taken from its first granule: which variables it keeps, how
//! its data arrays are chunked and encoded, and the group and arrays written for it.

use std::collections::{BTreeMap, HashMap};

use icechunk::format::SnapshotId;
use serde::{Deserialize, Serialize};
use serde_json::Map;
use zarrs::array::ArraySubset;

use super::StoreError;
use super::layout::{self, Role, TIME};
use super::prepared::PreparedGranule;
use super::schema::StoreSchema;
use super::session::SessionStores;
use super::state::StoreState;
use super::values::Values;
use crate::refs::Variable;

/// The layout a new store takes from its first granule, keeping `variables`, with each
/// data array chunked `(1, lat, lon)` as `chunks` says for it (clamped to the grid), else
/// today's producer layout on the full MUR grid, else as the first granule is, and
/// encoded with the producer's codecs (shuffle, then deflate at the first granule's
/// level): what every later day of the same `init` must fit or be materialized onto,
/// checked before anything is written.
pub fn new_schema(
    first: &PreparedGranule,
    variables: &[String],
    chunks: Option<&GridChunks>,
) -> Result<StoreSchema, StoreError> {
    let refs = &first.refs;
    let g = refs.object.url.as_str();
    if let Some(GridChunks::ByVariable(by)) = chunks
        && let Some(unknown) = by.keys().find(|k| *k != "*" && !variables.contains(k))
    {
        return Err(StoreError::metadata(
            unknown,
            format!("chunks are given for it, but the store keeps only {variables:?}"),
        ));
    }
    let mut arrays = std::collections::BTreeMap::new();
    let time_var = refs
        .variable(TIME)
        .ok_or_else(|| StoreError::schema(g, TIME, "variable", "missing from the granule"))?;
    arrays.insert(TIME.to_string(), layout::time_array(time_var, 0)?);
    let mut coordinate_names: Vec<String> = Vec::new();
    for name in variables {
        let var = refs.variable(name).ok_or_else(|| {
            StoreError::schema(
                g,
                name.clone(),
                "variable",
                "requested but missing from the granule",
            )
        })?;
        arrays.insert(name.clone(), new_data_array(g, var, chunks)?);
        for dim in var.dimensions.iter().skip(1) {
            if !coordinate_names.contains(dim) && refs.variable(dim).is_some() {
                coordinate_names.push(dim.clone());
            }
        }
    }
    let mut coordinates = HashMap::new();
    for name in coordinate_names {
        let var = refs
            .variable(&name)
            .ok_or_else(|| StoreError::metadata(&name, "missing"))?;
        let meta = layout::coordinate_array(var);
        let bytes = first.coordinates.get(&name).ok_or_else(|| {
            StoreError::metadata(&name, "coordinate values were not read from the granule")
        })?;
        if Values::from_le_bytes(meta.data_type, bytes.clone()).is_none() {
            return Err(StoreError::metadata(
                &name,
                format!(
                    "{} bytes are not {} values",
                    bytes.len(),
                    meta.data_type.zarr_v3_name()
                ),
            ));
        }
        coordinates.insert(name.clone(), bytes.clone());
        arrays.insert(name, meta);
    }
    Ok(StoreSchema {
        arrays,
        coordinates,
    })
}

/// A new store's array for data variable `var` of granule `g`: the producer's codecs,
/// chunked as `chunks` says for it, else as the producer chunks the full MUR grid, else
/// as the granule is.
fn new_data_array(
    g: &str,
    var: &Variable,
    chunks: Option<&GridChunks>,
) -> Result<layout::ArrayMeta, StoreError> {
    let name = &var.name;
    if layout::role(var) != Role::Data {
        return Err(StoreError::schema(
            g,
            name.clone(),
            "dimension_names",
            format!("{:?} does not start with time", var.dimensions),
        ));
    }
    let mut meta = layout::data_array(var, 0);
    let level = meta.codecs.zlib_level();
    meta.codecs = layout::CodecChain::producer(
        var.dtype,
        var.endian,
        level.unwrap_or(layout::PRODUCER_DEFLATE_LEVEL),
    );
    let producer =
        (var.shape.get(1..) == Some(&layout::MUR_GRID[..])).then_some(&layout::PRODUCER_CHUNKS[..]);
    match (chunks.and_then(|c| c.for_variable(name)), producer) {
        (Some(target), _) if target.len() != 2 || target.contains(&0) => {
            return Err(StoreError::metadata(
                name,
                format!("chunks {target:?}: expected two positive sizes, (lat, lon)"),
            ));
        }
        (Some(target), _) | (None, Some(target)) => meta.set_grid_chunks(target),
        (None, None) => {}
    }
    Ok(meta)
}

/// Create the group and arrays of a new store from its first granule, with the static
/// coordinates written as real chunks.
pub(super) async fn create_layout(
    stores: &SessionStores,
    first: &PreparedGranule,
    variables: &[String],
    chunks: Option<&GridChunks>,
) -> Result<StoreState, StoreError> {
    let schema = new_schema(first, variables, chunks)?;
    stores.set_group(Map::new()).await?;
    for (name, meta) in &schema.arrays {
        stores.set_array(name, meta).await?;
    }
    for (name, bytes) in &schema.coordinates {
        let meta = &schema.arrays[name];
        let values = Values::from_le_bytes(meta.data_type, bytes.clone())
            .ok_or_else(|| StoreError::metadata(name, "coordinate values"))?;
        let array = stores.array(name).await?;
        values
            .write(&array, &ArraySubset::new_with_shape(meta.shape.clone()))
            .await?;
    }
    Ok(StoreState {
        snapshot: SnapshotId::random(),
        group_attributes: Map::new(),
        schema,
        days: 0,
        first_day: None,
        last_day: None,
        time_epoch: first.time_epoch,
    })
}

/// What a store created by a write keeps, and how its data arrays are chunked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewStore {
    pub variables: Vec<String>,
    /// `(lat, lon)` chunk shapes of the data arrays; `None`: see [`new_schema`].
    pub chunks: Option<GridChunks>,
}

/// The `(lat, lon)` chunk shape a new store gives its data arrays: one for all (JSON
/// `[1023, 2047]`), or by variable, `"*"` for the rest (JSON `{"mask": [1447, 2895],
/// "*": [1023, 2047]}`). A variable it does not name gets the default of
/// [`new_schema`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GridChunks {
    All(Vec<u64>),
    ByVariable(BTreeMap<String, Vec<u64>>),
}

/// One `--chunks` value: `LAT,LON` for every data array, or `VAR=LAT,LON` for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkFlag {
    /// The variable, or `*` for the rest.
    pub variable: String,
    pub shape: [u64; 2],
}

/// A `--chunks` value that is not two positive sizes.
#[derive(Debug, thiserror::Error)]
#[error("{text:?}: expected LAT,LON or VAR=LAT,LON, two positive sizes")]
pub struct BadChunkFlag {
    text: String,
}

impl std::str::FromStr for ChunkFlag {
    type Err = BadChunkFlag;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (variable, shape) = text.split_once('=').unwrap_or(("*", text));
        let sizes: Option<Vec<u64>> = shape
            .split(',')
            .map(|n| n.trim().parse::<u64>().ok().filter(|n| *n > 0))
            .collect();
        match sizes.as_deref() {
            Some(&[lat, lon]) if !variable.is_empty() => Ok(ChunkFlag {
                variable: variable.into(),
                shape: [lat, lon],
            }),
            _ => Err(BadChunkFlag { text: text.into() }),
        }
    }
}

impl GridChunks {
    /// The shapes `flags` give, later flags winning; `None` for no flag.
    pub fn from_flags(flags: &[ChunkFlag]) -> Option<Self> {
        let by: BTreeMap<String, Vec<u64>> = flags
            .iter()
            .map(|f| (f.variable.clone(), f.shape.to_vec()))
            .collect();
        (!by.is_empty()).then_some(GridChunks::ByVariable(by))
    }

    /// The shape for data array `name`, if this names one.
    pub fn for_variable(&self, name: &str) -> Option<&[u64]> {
        match self {
            GridChunks::All(shape) => Some(shape),
            GridChunks::ByVariable(by) => by.get(name).or_else(|| by.get("*")).map(Vec::as_slice),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_flags_give_one_shape_for_all_or_by_variable() {
        let parse = |v: &[&str]| -> Result<Option<GridChunks>, BadChunkFlag> {
            let flags = v.iter().map(|s| s.parse()).collect::<Result<Vec<_>, _>>()?;
            Ok(GridChunks::from_flags(&flags))
        };
        assert_eq!(parse(&[]).unwrap(), None);
        let all = parse(&["1023,2047"]).unwrap().unwrap();
        assert_eq!(all.for_variable("mask"), Some(&[1023, 2047][..]));
        let by = parse(&["1023,2047", "mask=1447,2895"]).unwrap().unwrap();
        assert_eq!(by.for_variable("mask"), Some(&[1447, 2895][..]));
        assert_eq!(by.for_variable("analysed_sst"), Some(&[1023, 2047][..]));
        for bad in ["1023", "0,2047", "mask=a,b", "1,2,3", "=1,2"] {
            let err = parse(&[bad]).unwrap_err().to_string();
            assert!(err.contains(bad) && err.contains("LAT,LON"), "{bad}: {err}");
        }
    }
}
