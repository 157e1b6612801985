//! Does a granule fit the store? Compared is what decoding and indexing depend on, so
//! a changed chunk shape or a missing shuffle is rejected before anything is written,
//! while a different deflate level (which decodes the same) is accepted.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::StoreError;
use super::layout::{self, ArrayMeta, Role};
use crate::refs::GranuleRefs;

/// What the store holds, as far as a new granule must match it.
#[derive(Debug, Clone, Default)]
pub struct StoreSchema {
    /// Zarr metadata of every array, by name.
    pub arrays: BTreeMap<String, ArrayMeta>,
    /// Decoded values (little-endian bytes) of the static coordinates, by name.
    pub coordinates: HashMap<String, Vec<u8>>,
}

fn mismatch(granule: &str, variable: &str, field: &str, message: String) -> StoreError {
    StoreError::Schema {
        granule: granule.into(),
        variable: variable.into(),
        field: field.into(),
        message,
    }
}

fn show(values: &[Value]) -> String {
    serde_json::to_string(values).unwrap_or_default()
}

/// Check `granule` against the store; `coordinates` are the granule's decoded static
/// coordinate values. The first difference is reported, naming the field.
pub fn check(
    granule: &GranuleRefs,
    coordinates: &HashMap<String, Vec<u8>>,
    store: &StoreSchema,
) -> Result<(), StoreError> {
    let g = granule.object.url.as_str();
    for (name, meta) in &store.arrays {
        let var = granule
            .variable(name)
            .ok_or_else(|| mismatch(g, name, "variable", "missing from the granule".into()))?;
        let dtype = var.dtype.zarr_v3_name();
        if dtype != meta.data_type() {
            return Err(mismatch(
                g,
                name,
                "data_type",
                format!("granule has {dtype}, store has {}", meta.data_type()),
            ));
        }
        if var.dimensions != meta.dimension_names() {
            return Err(mismatch(
                g,
                name,
                "dimension_names",
                format!(
                    "granule has {:?}, store has {:?}",
                    var.dimensions,
                    meta.dimension_names()
                ),
            ));
        }
        let role = layout::role(var);
        let store_shape = meta.shape();
        let grid_matches = match role {
            Role::Data | Role::Time => var.shape.get(1..) == store_shape.get(1..),
            Role::Coordinate => var.shape == store_shape,
        };
        if !grid_matches || (role != Role::Coordinate && var.shape.first() != Some(&1)) {
            return Err(mismatch(
                g,
                name,
                "shape",
                format!(
                    "granule has {:?}, store has {:?} (one time step expected)",
                    var.shape, store_shape
                ),
            ));
        }
        if role == Role::Data {
            if var.chunk_shape != meta.chunk_shape() {
                return Err(mismatch(
                    g,
                    name,
                    "chunk_shape",
                    format!(
                        "granule has {:?}, store has {:?}",
                        var.chunk_shape,
                        meta.chunk_shape()
                    ),
                ));
            }
            let ours = layout::decode_relevant(
                layout::codecs_json(var.dtype, var.endian, &var.codecs)
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
            );
            let theirs = layout::decode_relevant(meta.codecs());
            if ours != theirs {
                return Err(mismatch(
                    g,
                    name,
                    "codecs",
                    format!("granule has {}, store has {}", show(&ours), show(&theirs)),
                ));
            }
            if var.fill_value.as_ref() != meta.fill_value() {
                return Err(mismatch(
                    g,
                    name,
                    "fill_value",
                    format!(
                        "granule has {}, store has {}",
                        var.fill_value.clone().unwrap_or(Value::Null),
                        meta.fill_value().cloned().unwrap_or(Value::Null)
                    ),
                ));
            }
        }
    }
    for (name, values) in &store.coordinates {
        match coordinates.get(name) {
            Some(v) if v == values => {}
            Some(v) => {
                let elem = granule.variable(name).map_or(4, |v| v.dtype.size());
                let first = v
                    .chunks(elem)
                    .zip(values.chunks(elem))
                    .position(|(a, b)| a != b)
                    .unwrap_or(v.len().min(values.len()) / elem);
                return Err(mismatch(
                    g,
                    name,
                    "values",
                    format!("differ from the store's, first at index {first}"),
                ));
            }
            None => {
                return Err(mismatch(
                    g,
                    name,
                    "values",
                    "coordinate missing from the granule".into(),
                ));
            }
        }
    }
    Ok(())
}
