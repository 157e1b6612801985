//! Kerchunk reference files (version 1), so fsspec/xarray users can open one granule's
//! references directly with `xr.open_dataset("reference://", ...)`.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::refs::{ChunkData, Codec, GranuleRefs, Variable};

/// Zarr v2 metadata for one variable, as kerchunk's HDF5 translator writes it.
fn zarray(var: &Variable) -> Value {
    let mut filters = Vec::new();
    let mut compressor = Value::Null;
    for codec in &var.codecs {
        match codec {
            Codec::Shuffle { element_size } => {
                filters.push(json!({"id": "shuffle", "elementsize": element_size}))
            }
            Codec::Zlib { level } => compressor = json!({"id": "zlib", "level": level}),
        }
    }
    json!({
        "chunks": var.chunk_shape,
        "compressor": compressor,
        "dtype": var.dtype.numpy_str(var.endian),
        "fill_value": var.fill_value.clone().unwrap_or(Value::Null),
        "filters": if filters.is_empty() { Value::Null } else { Value::Array(filters) },
        "order": "C",
        "shape": var.shape,
        "zarr_format": 2,
    })
}

/// The chunk key Zarr v2 uses for a chunk-grid index (`0.0.0`; `0` for a scalar).
pub(crate) fn chunk_key(index: &[u64]) -> String {
    if index.is_empty() {
        return "0".to_string();
    }
    index
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// Build the Kerchunk v1 reference document for a granule.
pub fn to_kerchunk(granule: &GranuleRefs) -> Value {
    let mut refs = Map::new();
    refs.insert(
        ".zgroup".into(),
        json!({"zarr_format": 2}).to_string().into(),
    );
    refs.insert(
        ".zattrs".into(),
        Value::Object(granule.attributes.clone()).to_string().into(),
    );
    for var in &granule.variables {
        refs.insert(
            format!("{}/.zarray", var.name),
            zarray(var).to_string().into(),
        );
        let mut attrs = var.attributes.clone();
        attrs.insert("_ARRAY_DIMENSIONS".into(), json!(var.dimensions));
        refs.insert(
            format!("{}/.zattrs", var.name),
            Value::Object(attrs).to_string().into(),
        );
        for (index, data) in &var.chunks {
            let key = format!("{}/{}", var.name, chunk_key(index));
            let value = match data {
                ChunkData::Ref(r) => json!([granule.object.url, r.offset, r.length]),
                ChunkData::Inline(bytes) => Value::from(format!(
                    "base64:{}",
                    base64::engine::general_purpose::STANDARD.encode(bytes)
                )),
            };
            refs.insert(key, value);
        }
    }
    json!({"version": 1, "refs": refs})
}
