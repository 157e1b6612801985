//! Zarr v3 metadata of the store, typed, matching what VirtualiZarr + xarray write for
//! MUR granules: data variables are virtual (the granule's codecs), `time`, `lat` and
//! `lon` are real arrays re-encoded the way xarray encodes loaded coordinates.

use chrono::NaiveDateTime;
use icechunk::format::{ChunkIndices, Path};
use serde::{Deserialize, Serialize};
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

/// Whether dimensions start with `time`: such arrays grow by one step per day.
pub fn along_time(dimensions: &[String]) -> bool {
    dimensions.first().map(String::as_str) == Some(TIME)
}

/// Classify a granule variable.
pub fn role(var: &Variable) -> Role {
    if var.name == TIME {
        Role::Time
    } else if along_time(&var.dimensions) && var.shape.len() > 1 {
        Role::Data
    } else {
        Role::Coordinate
    }
}

/// The MUR v4.1 grid, (lat, lon).
pub const MUR_GRID: [u64; 2] = [17999, 36000];

/// How PO.DAAC chunks every data variable since 2024-06-02, (lat, lon): the grid a store
/// of the full grid gets unless told otherwise, so daily appends stay virtual.
pub const PRODUCER_CHUNKS: [u64; 2] = [1023, 2047];

/// PO.DAAC's deflate level since 2024-05-12, for a first day that does not deflate.
pub const PRODUCER_DEFLATE_LEVEL: u32 = 7;

/// A Zarr v3 codec chain as the store declares it: the `bytes` codec's byte order, then
/// the granule's filters in encode order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecChain {
    /// `None` for one-byte types, whose `bytes` codec has no configuration.
    pub endian: Option<Endian>,
    pub filters: Vec<Codec>,
}

impl CodecChain {
    /// The chain for stored elements of `dtype` in `endian` order, filtered by `filters`.
    pub fn new(dtype: DataType, endian: Endian, filters: &[Codec]) -> Self {
        Self {
            endian: (dtype.size() > 1).then_some(endian),
            filters: filters.to_vec(),
        }
    }

    /// PO.DAAC's chain for data variables, shuffle then deflate at `level`: what a new
    /// store's data arrays declare whatever its first day's quirks (no shuffle, deflate
    /// listed first), so those days are materialized rather than imposed on the record.
    pub fn producer(dtype: DataType, endian: Endian, level: u32) -> Self {
        let element_size = u32::try_from(dtype.size()).unwrap_or(u32::MAX);
        Self::new(
            dtype,
            endian,
            &[Codec::Shuffle { element_size }, Codec::Zlib { level }],
        )
    }

    /// The deflate level, if the chain deflates.
    pub fn zlib_level(&self) -> Option<u32> {
        self.filters.iter().find_map(|c| match c {
            Codec::Zlib { level } => Some(*level),
            Codec::Shuffle { .. } => None,
        })
    }

    /// Whether chunks encoded with either chain decode the same: the zlib level is the
    /// one difference that does not matter, so level 6 granules fit a level 7 store.
    pub fn decodes_like(&self, other: &CodecChain) -> bool {
        fn key(c: &Codec) -> Codec {
            match c {
                Codec::Zlib { .. } => Codec::Zlib { level: 0 },
                other => *other,
            }
        }
        self.endian == other.endian
            && self.filters.len() == other.filters.len()
            && self
                .filters
                .iter()
                .zip(&other.filters)
                .all(|(a, b)| key(a) == key(b))
    }

    fn to_zarr(&self) -> Vec<ZarrCodec> {
        let bytes = ZarrCodec::Bytes {
            configuration: self.endian.map(|endian| BytesConfig { endian }),
        };
        std::iter::once(bytes)
            .chain(self.filters.iter().map(|c| match *c {
                Codec::Shuffle { element_size } => ZarrCodec::Shuffle {
                    configuration: ShuffleConfig {
                        elementsize: element_size,
                    },
                },
                Codec::Zlib { level } => ZarrCodec::Zlib {
                    configuration: ZlibConfig { level },
                },
            }))
            .collect()
    }

    fn from_zarr(codecs: Vec<ZarrCodec>) -> Result<Self, String> {
        let mut iter = codecs.into_iter();
        let endian = match iter.next() {
            Some(ZarrCodec::Bytes { configuration }) => configuration.map(|c| c.endian),
            _ => return Err("the chain does not start with the bytes codec".into()),
        };
        let filters = iter
            .map(|c| match c {
                ZarrCodec::Shuffle { configuration } => Ok(Codec::Shuffle {
                    element_size: configuration.elementsize,
                }),
                ZarrCodec::Zlib { configuration } => Ok(Codec::Zlib {
                    level: configuration.level,
                }),
                ZarrCodec::Bytes { .. } => Err("a second bytes codec".to_string()),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { endian, filters })
    }
}

impl std::fmt::Display for CodecChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let json = serde_json::to_string(&self.to_zarr()).map_err(|_| std::fmt::Error)?;
        f.write_str(&json)
    }
}

impl Serialize for CodecChain {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_zarr().serialize(s)
    }
}

impl<'de> Deserialize<'de> for CodecChain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let codecs = Vec::<ZarrCodec>::deserialize(d)?;
        CodecChain::from_zarr(codecs).map_err(serde::de::Error::custom)
    }
}

/// One codec as Zarr v3 metadata names it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "name")]
enum ZarrCodec {
    #[serde(rename = "bytes")]
    Bytes {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        configuration: Option<BytesConfig>,
    },
    #[serde(rename = "numcodecs.shuffle")]
    Shuffle { configuration: ShuffleConfig },
    #[serde(rename = "numcodecs.zlib")]
    Zlib { configuration: ZlibConfig },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct BytesConfig {
    endian: Endian,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShuffleConfig {
    elementsize: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ZlibConfig {
    level: u32,
}

/// `{"name": "regular", "configuration": {"chunk_shape": [...]}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkGrid {
    name: RegularName,
    configuration: ChunkShape,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RegularName {
    Regular,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ChunkShape {
    chunk_shape: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum NodeType {
    Array,
    Group,
}

/// The Zarr v3 metadata (`zarr.json`) of one array; keys this crate does not know are
/// kept in `extra` so a store written by Python keeps them when the array grows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArrayMeta {
    pub shape: Vec<u64>,
    pub data_type: DataType,
    chunk_grid: ChunkGrid,
    chunk_key_encoding: Value,
    pub fill_value: Value,
    pub codecs: CodecChain,
    #[serde(default)]
    pub attributes: Map<String, Value>,
    #[serde(default)]
    pub dimension_names: Vec<String>,
    zarr_format: u8,
    node_type: NodeType,
    #[serde(default)]
    storage_transformers: Vec<Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl ArrayMeta {
    fn new(
        shape: Vec<u64>,
        data_type: DataType,
        chunk_shape: Vec<u64>,
        fill_value: Value,
        codecs: CodecChain,
        attributes: Map<String, Value>,
        dimension_names: Vec<String>,
    ) -> Self {
        Self {
            shape,
            data_type,
            chunk_grid: ChunkGrid {
                name: RegularName::Regular,
                configuration: ChunkShape { chunk_shape },
            },
            chunk_key_encoding: json!({"name": "default", "configuration": {"separator": "/"}}),
            fill_value,
            codecs,
            attributes,
            dimension_names,
            zarr_format: 3,
            node_type: NodeType::Array,
            storage_transformers: Vec::new(),
            extra: Map::new(),
        }
    }

    /// Parse an array's `zarr.json` read from the store, naming the node on failure.
    pub fn parse(node: &str, bytes: &[u8]) -> Result<Self, StoreError> {
        serde_json::from_slice(bytes)
            .map_err(|e| StoreError::metadata(node, format!("invalid array zarr.json: {e}")))
    }

    pub fn chunk_shape(&self) -> &[u64] {
        &self.chunk_grid.configuration.chunk_shape
    }

    /// Chunk every dimension after the first by `chunks` (clamped to the array's size).
    pub fn set_grid_chunks(&mut self, chunks: &[u64]) {
        let shape = &self.shape;
        for (i, c) in self
            .chunk_grid
            .configuration
            .chunk_shape
            .iter_mut()
            .enumerate()
            .skip(1)
        {
            if let Some(want) = chunks.get(i - 1) {
                *c = (*want).clamp(1, shape[i].max(1));
            }
        }
    }

    /// Whether the array grows along `time` (its first dimension).
    pub fn along_time(&self) -> bool {
        along_time(&self.dimension_names)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The root group's `zarr.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMeta {
    #[serde(default)]
    pub attributes: Map<String, Value>,
    zarr_format: u8,
    node_type: NodeType,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl GroupMeta {
    /// The root group with the store's global attributes.
    pub fn new(attributes: Map<String, Value>) -> Self {
        Self {
            attributes,
            zarr_format: 3,
            node_type: NodeType::Group,
            extra: Map::new(),
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, StoreError> {
        serde_json::from_slice(bytes)
            .map_err(|e| StoreError::metadata("/", format!("invalid group zarr.json: {e}")))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Whether a `zarr.json` describes an array (rather than a group).
pub fn is_array(bytes: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Node {
        node_type: NodeType,
    }
    serde_json::from_slice::<Node>(bytes).is_ok_and(|n| n.node_type == NodeType::Array)
}

fn default_fill(dtype: DataType) -> Value {
    match dtype {
        DataType::Float32 | DataType::Float64 => json!(0.0),
        _ => json!(0),
    }
}

fn fill_of(var: &Variable) -> Value {
    var.fill_value
        .clone()
        .unwrap_or_else(|| default_fill(var.dtype))
}

/// Metadata of a data variable holding `days` time steps.
pub(crate) fn data_array(var: &Variable, days: u64) -> ArrayMeta {
    let mut shape = var.shape.clone();
    shape[0] = days;
    ArrayMeta::new(
        shape,
        var.dtype,
        var.chunk_shape.clone(),
        fill_of(var),
        CodecChain::new(var.dtype, var.endian, &var.codecs),
        var.attributes.clone(),
        var.dimensions.clone(),
    )
}

/// Metadata of a static coordinate: one real chunk encoded like the source's, with
/// xarray's NaN fill attribute.
pub(crate) fn coordinate_array(var: &Variable) -> ArrayMeta {
    let mut attrs = var.attributes.clone();
    if matches!(var.dtype, DataType::Float32 | DataType::Float64)
        && !attrs.contains_key("_FillValue")
    {
        attrs.insert("_FillValue".into(), XARRAY_NAN_FILL.into());
    }
    ArrayMeta::new(
        var.shape.clone(),
        var.dtype,
        var.shape.clone(),
        fill_of(var),
        CodecChain::new(var.dtype, Endian::Little, &var.codecs),
        attrs,
        var.dimensions.clone(),
    )
}

/// CF time units `"seconds since <datetime>[ UTC]"`: the epoch the values count from.
///
/// The store and the pipeline only handle seconds (MUR's unit); anything else is `None`.
pub(crate) fn seconds_epoch(units: &str) -> Option<NaiveDateTime> {
    let (unit, epoch) = parse_time_units(units)?;
    (unit == "seconds").then_some(epoch)
}

/// Parse CF time units `"<unit> since <datetime>[ UTC]"` into the unit and the epoch.
pub(crate) fn parse_time_units(units: &str) -> Option<(String, NaiveDateTime)> {
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
pub(crate) fn time_array(var: &Variable, days: u64) -> Result<ArrayMeta, StoreError> {
    let mut attrs = var.attributes.clone();
    let units = attrs
        .remove("units")
        .and_then(|u| u.as_str().map(str::to_string))
        .ok_or_else(|| StoreError::metadata(TIME, "the granule's time has no units"))?;
    let (unit, epoch) = parse_time_units(&units)
        .ok_or_else(|| StoreError::metadata(TIME, format!("cannot parse time units {units:?}")))?;
    attrs.remove("calendar");
    attrs.insert(
        "units".into(),
        format!("{unit} since {}+00:00", epoch.format("%Y-%m-%dT%H:%M:%S")).into(),
    );
    attrs.insert("calendar".into(), "proleptic_gregorian".into());
    Ok(ArrayMeta::new(
        vec![days],
        var.dtype,
        vec![1],
        fill_of(var),
        CodecChain::new(var.dtype, Endian::Little, &var.codecs),
        attrs,
        var.dimensions.clone(),
    ))
}

/// The store's chunk index for a granule chunk placed at time step `t`: the granule's
/// own time index is replaced by `t`.
pub(crate) fn store_chunk_index(
    variable: &str,
    t: u64,
    granule_index: &[u64],
) -> Result<ChunkIndices, StoreError> {
    std::iter::once(t)
        .chain(granule_index.iter().skip(1).copied())
        .map(|c| u32::try_from(c).ok())
        .collect::<Option<Vec<u32>>>()
        .map(ChunkIndices)
        .ok_or_else(|| {
            StoreError::metadata(
                variable,
                format!("chunk index {t}, {granule_index:?} does not fit icechunk's u32"),
            )
        })
}

/// The node path of the root group's array `name`.
pub(crate) fn array_path(name: &str) -> Result<Path, StoreError> {
    Path::new(&format!("/{name}")).map_err(|e| StoreError::metadata(name, format!("bad path: {e}")))
}

/// Every chunk index of time step `t` of array `name`.
pub(crate) fn time_step_chunks(
    meta: &ArrayMeta,
    name: &str,
    t: u64,
) -> Result<Vec<ChunkIndices>, StoreError> {
    let grid: Vec<u64> = meta
        .shape
        .iter()
        .zip(meta.chunk_shape())
        .skip(1)
        .map(|(n, c)| n.div_ceil((*c).max(1)))
        .collect();
    let mut coords = Vec::with_capacity(grid.iter().product::<u64>() as usize);
    let mut index = vec![0u64; grid.len()];
    'grid: loop {
        coords.push(store_chunk_index(
            name,
            t,
            &[&[0], index.as_slice()].concat(),
        )?);
        for axis in (0..grid.len()).rev() {
            index[axis] += 1;
            if index[axis] < grid[axis] {
                continue 'grid;
            }
            index[axis] = 0;
        }
        break;
    }
    Ok(coords)
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
        assert!(seconds_epoch("days since 1981-01-01").is_none());
    }

    #[test]
    fn zlib_level_does_not_matter_for_decoding() {
        let a = CodecChain::new(
            DataType::Int16,
            Endian::Little,
            &[Codec::Shuffle { element_size: 2 }, Codec::Zlib { level: 6 }],
        );
        let b = CodecChain::new(
            DataType::Int16,
            Endian::Little,
            &[Codec::Shuffle { element_size: 2 }, Codec::Zlib { level: 7 }],
        );
        let c = CodecChain::new(DataType::Int16, Endian::Little, &[Codec::Zlib { level: 7 }]);
        assert_ne!(a, b);
        assert!(a.decodes_like(&b));
        assert!(!a.decodes_like(&c));
    }

    #[test]
    fn metadata_round_trips_as_zarr_writes_it() {
        let text = r#"{"shape":[2,2000,4000],"data_type":"int8","chunk_grid":{"name":"regular","configuration":{"chunk_shape":[1,1447,2895]}},"chunk_key_encoding":{"name":"default","configuration":{"separator":"/"}},"fill_value":-128,"codecs":[{"name":"bytes"},{"name":"numcodecs.shuffle","configuration":{"elementsize":1}},{"name":"numcodecs.zlib","configuration":{"level":7}}],"attributes":{"units":"1"},"dimension_names":["time","lat","lon"],"zarr_format":3,"node_type":"array","storage_transformers":[],"written_by":"python"}"#;
        let meta = ArrayMeta::parse("mask", text.as_bytes()).unwrap();
        assert_eq!(meta.data_type, DataType::Int8);
        assert_eq!(meta.chunk_shape(), [1, 1447, 2895]);
        assert_eq!(meta.codecs.endian, None);
        assert!(meta.along_time());
        let back: Value = serde_json::from_slice(&meta.to_bytes()).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(text).unwrap());
        let err = ArrayMeta::parse("x", br#"{"shape":[1],"data_type":"bool"}"#).unwrap_err();
        assert!(err.to_string().contains("x"), "{err}");
    }
}
