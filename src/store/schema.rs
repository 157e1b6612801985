//! Does a granule fit the store, and how? Compared is what decoding and indexing depend
//! on. A variable chunked or encoded differently from the store's array (a changed
//! chunk shape, a missing shuffle) cannot be referenced, but can be materialized onto
//! the store's grid; a different deflate level (which decodes the same) is referenced
//! as it is. A different dtype, grid, fill value or coordinate is rejected before
//! anything is written.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;

use serde_json::Value;

use super::StoreError;
use super::layout::{ArrayMeta, CodecChain, Role, role};
use crate::refs::{ChunkData, GranuleRefs, Variable};

/// What the store holds, as far as a new granule must match it.
#[derive(Debug, Clone, Default)]
pub struct StoreSchema {
    /// Zarr metadata of every array, by name.
    pub arrays: BTreeMap<String, ArrayMeta>,
    /// Decoded values (little-endian bytes) of the static coordinates, by name.
    pub coordinates: HashMap<String, Vec<u8>>,
}

/// One field compared between a granule variable and the store's array.
struct Field<'a> {
    granule: &'a str,
    variable: &'a str,
}

impl Field<'_> {
    /// Fail naming `field` unless the granule's value equals the store's.
    fn same<T: PartialEq + Debug>(
        &self,
        field: &str,
        ours: T,
        theirs: T,
    ) -> Result<(), StoreError> {
        self.check(
            field,
            ours == theirs,
            format!("{ours:?}"),
            format!("{theirs:?}"),
        )
    }

    fn check(&self, field: &str, ok: bool, ours: String, theirs: String) -> Result<(), StoreError> {
        if ok {
            return Ok(());
        }
        Err(StoreError::schema(
            self.granule,
            self.variable,
            field,
            format!("granule has {ours}, store has {theirs}"),
        ))
    }
}

/// How a granule that fits gets into the store: the data variables to materialize
/// (with why), the others referenced virtually.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Route {
    /// Variable → why it cannot be referenced (its chunk shape or codecs).
    pub native: BTreeMap<String, String>,
}

impl Route {
    /// Whether every variable is referenced.
    pub fn is_virtual(&self) -> bool {
        self.native.is_empty()
    }
}

/// Check `granule` against the store; `coordinates` are the granule's decoded static
/// coordinate values. The first misfit is reported, naming the field; a fit says which
/// variables must be materialized.
pub fn check(
    granule: &GranuleRefs,
    coordinates: &HashMap<String, Vec<u8>>,
    store: &StoreSchema,
) -> Result<Route, StoreError> {
    let g = granule.object.url.as_str();
    let mut route = Route::default();
    for (name, meta) in &store.arrays {
        let var = granule.variable(name).ok_or_else(|| {
            StoreError::schema(g, name.clone(), "variable", "missing from the granule")
        })?;
        if let Some(why) = check_array(g, var, meta)? {
            route.native.insert(name.clone(), why);
        }
    }
    for (name, values) in &store.coordinates {
        check_coordinate(granule, name, coordinates.get(name), values)?;
    }
    Ok(route)
}

/// Dtype, dimensions and grid for every array; fill for data. A data variable whose
/// chunking or codecs differ returns why it must be materialized.
fn check_array(
    granule: &str,
    var: &Variable,
    meta: &ArrayMeta,
) -> Result<Option<String>, StoreError> {
    let field = Field {
        granule,
        variable: &var.name,
    };
    field.check(
        "data_type",
        var.dtype == meta.data_type,
        var.dtype.zarr_v3_name().into(),
        meta.data_type.zarr_v3_name().into(),
    )?;
    field.same("dimension_names", &var.dimensions, &meta.dimension_names)?;
    let role = role(var);
    let grid_matches = match role {
        Role::Data | Role::Time => var.shape.get(1..) == meta.shape.get(1..),
        Role::Coordinate => var.shape == meta.shape,
    };
    let one_step = role == Role::Coordinate || var.shape.first() == Some(&1);
    field.check(
        "shape",
        grid_matches && one_step,
        format!("{:?}", var.shape),
        format!("{:?} (one time step expected)", meta.shape),
    )?;
    if role != Role::Data {
        return Ok(None);
    }
    let fill = var.fill_value.clone().unwrap_or(Value::Null);
    field.check(
        "fill_value",
        fill == meta.fill_value,
        fill.to_string(),
        meta.fill_value.to_string(),
    )?;
    if var.chunk_shape.as_slice() != meta.chunk_shape() {
        return Ok(Some(format!(
            "chunk_shape: granule has {:?}, store has {:?}",
            var.chunk_shape,
            meta.chunk_shape()
        )));
    }
    let ours = CodecChain::new(var.dtype, var.endian, &var.codecs);
    if !ours.decodes_like(&meta.codecs) {
        return Ok(Some(format!(
            "codecs: granule has {ours}, store has {}",
            meta.codecs
        )));
    }
    if var
        .chunks
        .iter()
        .any(|(_, c)| matches!(c, ChunkData::Inline(_)))
    {
        return Ok(Some(
            "data layout: compact (inline) storage has no byte ranges".into(),
        ));
    }
    Ok(None)
}

/// A static coordinate's values equal the store's, or the first differing index is named.
fn check_coordinate(
    granule: &GranuleRefs,
    name: &str,
    values: Option<&Vec<u8>>,
    expected: &[u8],
) -> Result<(), StoreError> {
    let g = granule.object.url.as_str();
    let Some(values) = values else {
        return Err(StoreError::schema(
            g,
            name,
            "values",
            "coordinate missing from the granule",
        ));
    };
    if values == expected {
        return Ok(());
    }
    let elem = granule.variable(name).map_or(4, |v| v.dtype.size());
    let first = values
        .chunks(elem)
        .zip(expected.chunks(elem))
        .position(|(a, b)| a != b)
        .unwrap_or(values.len().min(expected.len()) / elem);
    Err(StoreError::schema(
        g,
        name,
        "values",
        format!("differ from the store's, first at index {first}"),
    ))
}
