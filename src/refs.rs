//! The netCDF-4 view of a granule as virtual chunk references: variables with their
//! dimensions, Zarr-compatible dtype and codecs, CF attributes, and the byte range of
//! every stored chunk. This is what the store writer and the Kerchunk output consume.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::hdf5::{
    self, Attribute, AttributeValue, ByteOrder, Dataset, Datatype, FileMetadata, Layout,
};
use crate::source::{ObjectInfo, RangeRead};

/// Attributes netCDF-4 and HDF5 dimension scales use for bookkeeping; users never see them.
pub const HIDDEN_ATTRIBUTES: &[&str] = &[
    "_Netcdf4Dimid",
    "_Netcdf4Coordinates",
    "_NCProperties",
    "_nc3_strict",
    "_IsNetcdf4",
    "_SuperblockVersion",
    "DIMENSION_LIST",
    "REFERENCE_LIST",
    "CLASS",
    "NAME",
];

/// netcdf-c's `NAME` for a dimension scale that is not also a variable.
const DIM_WITHOUT_VARIABLE: &str = "This is a netCDF dimension but not a netCDF variable";

/// Why a granule cannot be expressed as virtual references.
#[derive(Debug, thiserror::Error)]
pub enum RefsError {
    #[error(transparent)]
    Hdf5(Box<hdf5::Hdf5Error>),
    #[error("{granule}: variable {variable}: {field}: {message}")]
    Unsupported {
        granule: String,
        variable: String,
        field: &'static str,
        message: String,
    },
}

impl RefsError {
    /// A layout this store cannot reference rejects the granule; a read of it may pass
    /// next time; anything else about its bytes is final.
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            RefsError::Hdf5(h) => match &h.kind {
                hdf5::Hdf5ErrorKind::Source(s) => s.kind(),
                _ => crate::error::ErrorKind::Failed,
            },
            RefsError::Unsupported { .. } => crate::error::ErrorKind::SchemaRejected,
        }
    }
}

/// Numeric element types a virtual Zarr array can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Float32,
    Float64,
}

impl DataType {
    /// Element size in bytes.
    pub fn size(self) -> usize {
        match self {
            DataType::Int8 | DataType::UInt8 => 1,
            DataType::Int16 | DataType::UInt16 => 2,
            DataType::Int32 | DataType::UInt32 | DataType::Float32 => 4,
            DataType::Int64 | DataType::UInt64 | DataType::Float64 => 8,
        }
    }

    /// The Zarr v3 `data_type` name.
    pub fn zarr_v3_name(self) -> &'static str {
        match self {
            DataType::Int8 => "int8",
            DataType::Int16 => "int16",
            DataType::Int32 => "int32",
            DataType::Int64 => "int64",
            DataType::UInt8 => "uint8",
            DataType::UInt16 => "uint16",
            DataType::UInt32 => "uint32",
            DataType::UInt64 => "uint64",
            DataType::Float32 => "float32",
            DataType::Float64 => "float64",
        }
    }

    /// The NumPy type string Zarr v2 / Kerchunk use (`<i2`, `|i1`, ...).
    pub fn numpy_str(self, order: Endian) -> String {
        let kind = match self {
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => 'i',
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => 'u',
            DataType::Float32 | DataType::Float64 => 'f',
        };
        let prefix = match (self.size(), order) {
            (1, _) => '|',
            (_, Endian::Little) => '<',
            (_, Endian::Big) => '>',
        };
        format!("{prefix}{kind}{}", self.size())
    }

    /// Decode one element at the start of `bytes` into a JSON number (NaN/inf as strings,
    /// the Zarr v3 convention).
    pub fn decode_json(self, bytes: &[u8], order: Endian) -> Option<Value> {
        let raw: [u8; 8] = {
            let n = self.size();
            let mut b = [0u8; 8];
            let src = bytes.get(..n)?;
            match order {
                Endian::Little => b[..n].copy_from_slice(src),
                Endian::Big => {
                    for (i, v) in src.iter().rev().enumerate() {
                        b[i] = *v;
                    }
                }
            }
            b
        };
        let v = match self {
            DataType::Int8 => Value::from(raw[0] as i8),
            DataType::Int16 => Value::from(i16::from_le_bytes([raw[0], raw[1]])),
            DataType::Int32 => Value::from(i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])),
            DataType::Int64 => Value::from(i64::from_le_bytes(raw)),
            DataType::UInt8 => Value::from(raw[0]),
            DataType::UInt16 => Value::from(u16::from_le_bytes([raw[0], raw[1]])),
            DataType::UInt32 => Value::from(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])),
            DataType::UInt64 => Value::from(u64::from_le_bytes(raw)),
            DataType::Float32 => float_json(f64::from(f32::from_le_bytes([
                raw[0], raw[1], raw[2], raw[3],
            ]))),
            DataType::Float64 => float_json(f64::from_le_bytes(raw)),
        };
        Some(v)
    }
}

/// A float as Zarr v3 JSON: a number, or "NaN" / "Infinity" / "-Infinity".
pub fn float_json(v: f64) -> Value {
    if v.is_nan() {
        Value::from("NaN")
    } else if v == f64::INFINITY {
        Value::from("Infinity")
    } else if v == f64::NEG_INFINITY {
        Value::from("-Infinity")
    } else {
        Value::from(v)
    }
}

/// Byte order of stored elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Endian {
    Little,
    Big,
}

/// One step of the decode pipeline, as Zarr names it; order is encode order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Codec {
    /// HDF5 filter 2 / `numcodecs.shuffle`.
    Shuffle { element_size: u32 },
    /// HDF5 filter 1 / `numcodecs.zlib`; the level never changes how data decodes.
    Zlib { level: u32 },
}

/// A stored chunk: where its bytes are in the granule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ChunkRef {
    pub offset: u64,
    pub length: u64,
}

/// Chunk data stored inline (HDF5 compact layout) or by reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum ChunkData {
    Ref(ChunkRef),
    Inline(Vec<u8>),
}

/// One netCDF variable with the references to all its stored chunks.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Variable {
    pub name: String,
    pub dtype: DataType,
    pub endian: Endian,
    pub shape: Vec<u64>,
    pub dimensions: Vec<String>,
    /// Chunk shape; a contiguous or compact variable is one chunk of its whole shape.
    pub chunk_shape: Vec<u64>,
    pub codecs: Vec<Codec>,
    /// Value of never-written elements, from the HDF5 fill value message.
    pub fill_value: Option<Value>,
    /// CF attributes as stored, in file order, bookkeeping hidden.
    pub attributes: Map<String, Value>,
    /// Stored chunks keyed by chunk-grid index, in index order; absent chunks are fill.
    pub chunks: Vec<(Vec<u64>, ChunkData)>,
}

impl Variable {
    /// Number of chunks along each dimension.
    pub fn chunk_grid(&self) -> Vec<u64> {
        self.shape
            .iter()
            .zip(&self.chunk_shape)
            .map(|(s, c)| if *c == 0 { 0 } else { s.div_ceil(*c) })
            .collect()
    }
}

/// Everything needed to reference one granule virtually.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct GranuleRefs {
    /// The source object, with the version the references are valid for.
    pub object: ObjectInfo,
    /// Global attributes in file order, bookkeeping hidden.
    pub attributes: Map<String, Value>,
    /// Variables in file order.
    pub variables: Vec<Variable>,
}

impl GranuleRefs {
    /// A variable by name; granules differ in which variables they have.
    pub fn variable(&self, name: &str) -> Option<&Variable> {
        self.variables.iter().find(|v| v.name == name)
    }
}

/// Read a granule's metadata and build its references.
pub async fn index_granule(
    reader: &dyn RangeRead,
    options: &hdf5::ReadOptions,
) -> Result<GranuleRefs, RefsError> {
    // The head read-ahead also returns the version the references pin.
    let (meta, object) = hdf5::read_metadata_and_info(reader, options)
        .await
        .map_err(|e| RefsError::Hdf5(Box::new(e)))?;
    from_metadata(object, &meta)
}

/// Interpret an HDF5 metadata tree with netCDF-4 conventions.
pub(crate) fn from_metadata(
    object: ObjectInfo,
    meta: &FileMetadata,
) -> Result<GranuleRefs, RefsError> {
    let root = &meta.root;
    let by_address: HashMap<u64, &Dataset> = root.datasets.iter().map(|d| (d.address, d)).collect();
    let granule = object.url.clone();
    let mut variables = Vec::new();
    for ds in &root.datasets {
        if is_dimension_without_variable(ds) {
            continue;
        }
        variables.push(variable(&granule, ds, &by_address)?);
    }
    Ok(GranuleRefs {
        attributes: visible_attributes(&granule, "/", &root.attributes)?,
        object,
        variables,
    })
}

fn string_attr<'a>(attrs: &'a [Attribute], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|a| a.name == name)
        .and_then(|a| match &a.value {
            AttributeValue::Strings(s) => s.first().map(String::as_str),
            _ => None,
        })
}

fn is_dimension_scale(ds: &Dataset) -> bool {
    string_attr(&ds.attributes, "CLASS") == Some("DIMENSION_SCALE")
}

fn is_dimension_without_variable(ds: &Dataset) -> bool {
    is_dimension_scale(ds)
        && string_attr(&ds.attributes, "NAME").is_some_and(|n| n.starts_with(DIM_WITHOUT_VARIABLE))
}

fn unsupported(granule: &str, variable: &str, field: &'static str, message: String) -> RefsError {
    RefsError::Unsupported {
        granule: granule.to_string(),
        variable: variable.to_string(),
        field,
        message,
    }
}

fn data_type(granule: &str, var: &str, dt: &Datatype) -> Result<(DataType, Endian), RefsError> {
    let endian = |o: &ByteOrder| match o {
        ByteOrder::Little => Endian::Little,
        ByteOrder::Big => Endian::Big,
    };
    match dt {
        Datatype::Integer {
            size,
            signed,
            order,
        } => {
            let t = match (size, signed) {
                (1, true) => DataType::Int8,
                (2, true) => DataType::Int16,
                (4, true) => DataType::Int32,
                (8, true) => DataType::Int64,
                (1, false) => DataType::UInt8,
                (2, false) => DataType::UInt16,
                (4, false) => DataType::UInt32,
                (8, false) => DataType::UInt64,
                _ => {
                    return Err(unsupported(
                        granule,
                        var,
                        "datatype",
                        format!("{size}-byte integer"),
                    ));
                }
            };
            Ok((t, endian(order)))
        }
        Datatype::Float { size: 4, order } => Ok((DataType::Float32, endian(order))),
        Datatype::Float { size: 8, order } => Ok((DataType::Float64, endian(order))),
        other => Err(unsupported(
            granule,
            var,
            "datatype",
            format!("{other:?} cannot be a virtual Zarr array"),
        )),
    }
}

fn codecs(granule: &str, ds: &Dataset, dtype: DataType) -> Result<Vec<Codec>, RefsError> {
    ds.filters
        .iter()
        .map(|f| match f.id {
            1 => Ok(Codec::Zlib {
                level: f.client_data.first().copied().unwrap_or(6),
            }),
            2 => Ok(Codec::Shuffle {
                element_size: f
                    .client_data
                    .first()
                    .copied()
                    .unwrap_or(dtype.size() as u32),
            }),
            3 => Err(unsupported(
                granule,
                &ds.name,
                "filter pipeline",
                "fletcher32 checksums are not supported by Zarr readers".into(),
            )),
            id => Err(unsupported(
                granule,
                &ds.name,
                "filter pipeline",
                format!(
                    "filter {id}{} is not supported (only shuffle and deflate)",
                    f.name
                        .as_deref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default()
                ),
            )),
        })
        .collect()
}

fn dimension_names(
    granule: &str,
    ds: &Dataset,
    by_address: &HashMap<u64, &Dataset>,
) -> Result<Vec<String>, RefsError> {
    if is_dimension_scale(ds) && ds.shape.len() == 1 {
        return Ok(vec![ds.name.clone()]);
    }
    let Some(list) = ds.attributes.iter().find(|a| a.name == "DIMENSION_LIST") else {
        return Ok((0..ds.shape.len())
            .map(|i| format!("phony_dim_{i}"))
            .collect());
    };
    let AttributeValue::ReferenceLists(lists) = &list.value else {
        return Err(unsupported(
            granule,
            &ds.name,
            "DIMENSION_LIST",
            "not a list of object references".into(),
        ));
    };
    if lists.len() != ds.shape.len() {
        return Err(unsupported(
            granule,
            &ds.name,
            "DIMENSION_LIST",
            format!("{} entries for {} dimensions", lists.len(), ds.shape.len()),
        ));
    }
    lists
        .iter()
        .enumerate()
        .map(|(i, refs)| {
            let scale = refs
                .first()
                .and_then(|addr| by_address.get(addr))
                .ok_or_else(|| {
                    unsupported(
                        granule,
                        &ds.name,
                        "DIMENSION_LIST",
                        format!("dimension {i} refers to no dataset in the root group"),
                    )
                })?;
            Ok(scale.name.clone())
        })
        .collect()
}

fn variable(
    granule: &str,
    ds: &Dataset,
    by_address: &HashMap<u64, &Dataset>,
) -> Result<Variable, RefsError> {
    let (dtype, endian) = data_type(granule, &ds.name, &ds.datatype)?;
    let codecs = codecs(granule, ds, dtype)?;
    let dimensions = dimension_names(granule, ds, by_address)?;
    let (chunk_shape, chunks) = chunk_layout(granule, ds)?;
    let fill_value = ds
        .fill_value
        .as_deref()
        .and_then(|b| dtype.decode_json(b, endian));
    Ok(Variable {
        name: ds.name.clone(),
        dtype,
        endian,
        shape: ds.shape.clone(),
        dimensions,
        chunk_shape,
        codecs,
        fill_value,
        attributes: visible_attributes(granule, &ds.name, &ds.attributes)?,
        chunks,
    })
}

/// A variable's stored chunks by chunk-grid index, as [`Variable::chunks`] holds them.
type StoredChunks = Vec<(Vec<u64>, ChunkData)>;

/// The chunk shape and every stored chunk of a dataset, whatever its HDF5 layout.
fn chunk_layout(granule: &str, ds: &Dataset) -> Result<(Vec<u64>, StoredChunks), RefsError> {
    Ok(match &ds.layout {
        Layout::Chunked {
            chunk_shape,
            chunks,
            ..
        } => {
            if chunk_shape.len() != ds.shape.len() {
                return Err(unsupported(
                    granule,
                    &ds.name,
                    "data layout",
                    format!(
                        "chunk rank {} differs from dataset rank {}",
                        chunk_shape.len(),
                        ds.shape.len()
                    ),
                ));
            }
            let mut refs = Vec::with_capacity(chunks.len());
            for c in chunks {
                if c.filter_mask != 0 {
                    return Err(unsupported(
                        granule,
                        &ds.name,
                        "chunk filter mask",
                        format!(
                            "chunk {:?} skips filters (mask {:#x}); Zarr cannot express that",
                            c.index, c.filter_mask
                        ),
                    ));
                }
                refs.push((
                    c.index.clone(),
                    ChunkData::Ref(ChunkRef {
                        offset: c.address,
                        length: c.size,
                    }),
                ));
            }
            (chunk_shape.clone(), refs)
        }
        Layout::Contiguous { address, size } => {
            let whole = ds.shape.clone();
            let index = vec![0; ds.shape.len()];
            let refs = match address {
                Some(a) if *size > 0 => vec![(
                    index,
                    ChunkData::Ref(ChunkRef {
                        offset: *a,
                        length: *size,
                    }),
                )],
                _ => Vec::new(),
            };
            (whole, refs)
        }
        Layout::Compact { data } => (
            ds.shape.clone(),
            vec![(vec![0; ds.shape.len()], ChunkData::Inline(data.clone()))],
        ),
    })
}

/// Attributes as JSON values, bookkeeping removed. One-element arrays become scalars, as
/// netCDF readers present them.
pub(crate) fn visible_attributes(
    granule: &str,
    object: &str,
    attrs: &[Attribute],
) -> Result<Map<String, Value>, RefsError> {
    let mut out = Map::new();
    for a in attrs {
        if HIDDEN_ATTRIBUTES.contains(&a.name.as_str()) {
            continue;
        }
        let values: Vec<Value> = match &a.value {
            AttributeValue::Int { values, .. } => values.iter().map(|v| Value::from(*v)).collect(),
            AttributeValue::UInt { values, .. } => values.iter().map(|v| Value::from(*v)).collect(),
            AttributeValue::Float { values, .. } => values.iter().map(|v| float_json(*v)).collect(),
            AttributeValue::Strings(s) => s.iter().map(|v| Value::from(v.as_str())).collect(),
            AttributeValue::ReferenceLists(_)
            | AttributeValue::References(_)
            | AttributeValue::Unsupported(_) => {
                return Err(unsupported(
                    granule,
                    object,
                    "attribute",
                    format!("{}: {:?} cannot be a Zarr attribute", a.name, a.value),
                ));
            }
        };
        let value = if values.len() == 1 && a.shape.iter().product::<u64>() <= 1 {
            values.into_iter().next().unwrap_or(Value::Null)
        } else {
            Value::Array(values)
        };
        out.insert(a.name.clone(), value);
    }
    Ok(out)
}
