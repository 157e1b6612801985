//! Zarr v3 metadata of the store, matching what VirtualiZarr + xarray write for MUR
//! granules: data variables are virtual (the granule's codecs), `time`, `lat` and `lon`
//! are real arrays re-encoded the way xarray encodes loaded coordinates.

use chrono::NaiveDateTime;
use serde_json::{Map, Value, json};

use super::StoreError;
use crate::refs::{Codec, DataType, Endian, Variable};

/// The dimension the store grows along.
pub const TIME: &str = "time";

/// How xarray encodes a float coordinate's missing value in Zarr v3 attributes: the
/// base64 of a little-endian float64 NaN.
const XARRAY_NAN_FILL: &str = "AAAAAAAA+H8=";

/// The role a granule variable plays in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Has `time` as first dimension: referenced virtually, one time step per granule.
    Data,
    /// The `time` coordinate: written as real chunks, one per day.
    Time,
    /// A static coordinate (`lat`, `lon`): written once as a real chunk.
    Coordinate,
}

/// Classify a granule variable.
pub fn role(var: &Variable) -> Role {
    if var.name == TIME {
        Role::Time
    } else if var.dimensions.first().map(String::as_str) == Some(TIME) && var.shape.len() > 1 {
        Role::Data
    } else {
        Role::Coordinate
    }
}

/// The Zarr v3 codec chain for a variable's stored chunks.
pub fn codecs_json(dtype: DataType, endian: Endian, codecs: &[Codec]) -> Value {
    let mut out = vec![if dtype.size() == 1 {
        json!({"name": "bytes"})
    } else {
        let e = match endian {
            Endian::Little => "little",
            Endian::Big => "big",
        };
        json!({"name": "bytes", "configuration": {"endian": e}})
    }];
    for c in codecs {
        out.push(match c {
            Codec::Shuffle { element_size } => {
                json!({"name": "numcodecs.shuffle", "configuration": {"elementsize": element_size}})
            }
            Codec::Zlib { level } => {
                json!({"name": "numcodecs.zlib", "configuration": {"level": level}})
            }
        });
    }
    Value::Array(out)
}

fn array_json(
    shape: &[u64],
    dtype: DataType,
    chunk_shape: &[u64],
    fill_value: Value,
    codecs: Value,
    attributes: Map<String, Value>,
    dimensions: &[String],
) -> Value {
    json!({
        "shape": shape,
        "data_type": dtype.zarr_v3_name(),
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": chunk_shape}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": fill_value,
        "codecs": codecs,
        "attributes": attributes,
        "dimension_names": dimensions,
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    })
}

fn default_fill(dtype: DataType) -> Value {
    match dtype {
        DataType::Float32 | DataType::Float64 => json!(0.0),
        _ => json!(0),
    }
}

/// Metadata of a data variable holding `days` time steps.
pub fn data_array(var: &Variable, days: u64) -> Value {
    let mut shape = var.shape.clone();
    shape[0] = days;
    array_json(
        &shape,
        var.dtype,
        &var.chunk_shape,
        var.fill_value
            .clone()
            .unwrap_or_else(|| default_fill(var.dtype)),
        codecs_json(var.dtype, var.endian, &var.codecs),
        var.attributes.clone(),
        &var.dimensions,
    )
}

/// Metadata of a static coordinate: one real chunk encoded like the source's, with
/// xarray's NaN fill attribute.
pub fn coordinate_array(var: &Variable) -> Value {
    let mut attrs = var.attributes.clone();
    if matches!(var.dtype, DataType::Float32 | DataType::Float64)
        && !attrs.contains_key("_FillValue")
    {
        attrs.insert("_FillValue".into(), XARRAY_NAN_FILL.into());
    }
    array_json(
        &var.shape,
        var.dtype,
        &var.shape,
        var.fill_value
            .clone()
            .unwrap_or_else(|| default_fill(var.dtype)),
        codecs_json(var.dtype, Endian::Little, &var.codecs),
        attrs,
        &var.dimensions,
    )
}

/// Parse CF time units `"<unit> since <datetime>[ UTC]"` into the unit and the epoch.
pub fn parse_time_units(units: &str) -> Option<(String, NaiveDateTime)> {
    let (unit, since) = units.split_once(" since ")?;
    let since = since
        .trim()
        .trim_end_matches("UTC")
        .trim_end_matches('Z')
        .trim();
    let since = since.strip_suffix("+00:00").unwrap_or(since);
    let epoch = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(since, f).ok())
    .or_else(|| {
        chrono::NaiveDate::parse_from_str(since, "%Y-%m-%d")
            .ok()
            .map(|d| d.and_time(chrono::NaiveTime::MIN))
    })?;
    Some((unit.trim().to_string(), epoch))
}

/// Metadata of the `time` coordinate with `days` steps, one chunk per day, units
/// rewritten as xarray writes them (ISO epoch with offset, explicit calendar).
pub fn time_array(var: &Variable, days: u64) -> Result<Value, StoreError> {
    let mut attrs = var.attributes.clone();
    let units = attrs
        .remove("units")
        .and_then(|u| u.as_str().map(str::to_string))
        .ok_or_else(|| StoreError::metadata("time", "the granule's time has no units"))?;
    let (unit, epoch) = parse_time_units(&units).ok_or_else(|| {
        StoreError::metadata("time", format!("cannot parse time units {units:?}"))
    })?;
    attrs.remove("calendar");
    attrs.insert(
        "units".into(),
        format!("{unit} since {}+00:00", epoch.format("%Y-%m-%dT%H:%M:%S")).into(),
    );
    attrs.insert("calendar".into(), "proleptic_gregorian".into());
    Ok(array_json(
        &[days],
        var.dtype,
        &[1],
        var.fill_value
            .clone()
            .unwrap_or_else(|| default_fill(var.dtype)),
        codecs_json(var.dtype, Endian::Little, &var.codecs),
        attrs,
        &var.dimensions,
    ))
}

/// The root group's metadata with the store's global attributes.
pub fn group(attributes: &Map<String, Value>) -> Value {
    json!({"attributes": attributes, "zarr_format": 3, "node_type": "group"})
}

/// The Zarr v3 metadata of one array, read back from a store.
#[derive(Debug, Clone)]
pub struct ArrayMeta(pub Map<String, Value>);

impl ArrayMeta {
    /// Parse a `zarr.json` read from the store.
    pub fn parse(node: &str, bytes: &[u8]) -> Result<Self, StoreError> {
        let value = serde_json::from_slice::<Value>(bytes)
            .map_err(|e| StoreError::metadata(node, format!("invalid zarr.json: {e}")))?;
        Self::from_value(node, value)
    }

    /// Wrap metadata built by this module.
    pub fn from_value(node: &str, value: Value) -> Result<Self, StoreError> {
        match value {
            Value::Object(m) => Ok(Self(m)),
            _ => Err(StoreError::metadata(node, "zarr.json is not an object")),
        }
    }

    fn u64s(&self, v: Option<&Value>) -> Vec<u64> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default()
    }

    pub fn shape(&self) -> Vec<u64> {
        self.u64s(self.0.get("shape"))
    }

    pub fn set_shape(&mut self, shape: &[u64]) {
        self.0.insert("shape".into(), json!(shape));
    }

    pub fn chunk_shape(&self) -> Vec<u64> {
        self.u64s(
            self.0
                .get("chunk_grid")
                .and_then(|g| g.get("configuration"))
                .and_then(|c| c.get("chunk_shape")),
        )
    }

    pub fn data_type(&self) -> &str {
        self.0
            .get("data_type")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn fill_value(&self) -> Option<&Value> {
        self.0.get("fill_value")
    }

    pub fn codecs(&self) -> &[Value] {
        self.0
            .get("codecs")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub fn dimension_names(&self) -> Vec<String> {
        self.0
            .get("dimension_names")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn attributes(&self) -> Map<String, Value> {
        self.0
            .get("attributes")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).unwrap_or_default()
    }
}

/// The codec chain with what does not change decoding removed (the zlib level), so a
/// granule compressed at level 6 fits a store declared at level 7.
pub fn decode_relevant(codecs: &[Value]) -> Vec<Value> {
    codecs
        .iter()
        .map(|c| {
            let mut c = c.clone();
            if c.get("name").and_then(Value::as_str) == Some("numcodecs.zlib")
                && let Some(conf) = c.get_mut("configuration").and_then(Value::as_object_mut)
            {
                conf.remove("level");
            }
            if c.get("configuration")
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty)
                && let Some(obj) = c.as_object_mut()
            {
                obj.remove("configuration");
            }
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_units_are_rewritten_like_xarray() {
        let (unit, epoch) = parse_time_units("seconds since 1981-01-01 00:00:00 UTC").unwrap();
        assert_eq!(unit, "seconds");
        assert_eq!(epoch, crate::granule::time_epoch());
        assert_eq!(
            parse_time_units("seconds since 1981-01-01T00:00:00+00:00")
                .unwrap()
                .1,
            epoch
        );
        assert!(parse_time_units("days after 1981").is_none());
    }

    #[test]
    fn zlib_level_does_not_matter_for_decoding() {
        let a = codecs_json(
            DataType::Int16,
            Endian::Little,
            &[Codec::Shuffle { element_size: 2 }, Codec::Zlib { level: 6 }],
        );
        let b = codecs_json(
            DataType::Int16,
            Endian::Little,
            &[Codec::Shuffle { element_size: 2 }, Codec::Zlib { level: 7 }],
        );
        let c = codecs_json(DataType::Int16, Endian::Little, &[Codec::Zlib { level: 7 }]);
        let (a, b, c) = (
            a.as_array().unwrap(),
            b.as_array().unwrap(),
            c.as_array().unwrap(),
        );
        assert_ne!(a, b);
        assert_eq!(decode_relevant(a), decode_relevant(b));
        assert_ne!(decode_relevant(a), decode_relevant(c));
    }
}
