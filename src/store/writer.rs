//! Reading the store's state and appending prepared days to a session: grow `time`,
//! write the new time values, set the virtual references and combine global attributes.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{NaiveDate, NaiveDateTime};
use futures::TryStreamExt;
use icechunk::format::manifest::{
    Checksum, SecondsSinceEpoch, VirtualChunkLocation, VirtualChunkRef,
};
use icechunk::format::{ChunkIndices, Path, SnapshotId};
use icechunk::session::Session;
use icechunk::storage::ETag;
use icechunk::store::{ListDirItem, SetVirtualRefsResult};
use icechunk::{Store, format::ByteRange};
use serde_json::{Map, Value};
use tokio::sync::RwLock;
use zarrs::array::{Array, ArraySubset};
use zarrs_icechunk::AsyncIcechunkStore;

use super::StoreError;
use super::attributes;
use super::layout::{self, ArrayMeta, Role, TIME};
use super::schema::StoreSchema;
use crate::granule::{self, Granule};
use crate::refs::{ChunkData, GranuleRefs};
use crate::source::ObjectInfo;

/// The store as of one snapshot: what new days must match and where they go.
#[derive(Debug, Clone)]
pub struct StoreState {
    pub snapshot: SnapshotId,
    pub group_attributes: Map<String, Value>,
    pub schema: StoreSchema,
    /// Length of the time axis.
    pub days: u64,
    pub last_day: Option<NaiveDate>,
    /// Epoch of the stored `time` values.
    pub time_epoch: NaiveDateTime,
}

impl StoreState {
    /// Names of the arrays holding one virtual time step per granule.
    pub fn data_arrays(&self) -> Vec<String> {
        self.schema
            .arrays
            .iter()
            .filter(|(name, meta)| {
                name.as_str() != TIME
                    && meta.dimension_names().first().map(String::as_str) == Some(TIME)
            })
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// A granule ready to be written: its references and the values the store copies from it.
#[derive(Debug, Clone)]
pub struct PreparedGranule {
    pub granule: Granule,
    pub refs: GranuleRefs,
    /// The granule's `time` value, in seconds since `time_epoch`.
    pub time_seconds: i64,
    pub time_epoch: NaiveDateTime,
    /// Decoded static coordinates (little-endian bytes), by name.
    pub coordinates: HashMap<String, Vec<u8>>,
}

/// Typed element buffers for the real (non-virtual) arrays the store writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Values {
    /// Interpret little-endian bytes as elements of a Zarr `data_type`.
    pub fn from_le_bytes(data_type: &str, bytes: &[u8]) -> Option<Self> {
        fn conv<const N: usize, T>(b: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
            b.chunks_exact(N)
                .map(|c| f(c.try_into().unwrap_or([0; N])))
                .collect()
        }
        Some(match data_type {
            "int8" => Values::I8(conv(bytes, i8::from_le_bytes)),
            "int16" => Values::I16(conv(bytes, i16::from_le_bytes)),
            "int32" => Values::I32(conv(bytes, i32::from_le_bytes)),
            "int64" => Values::I64(conv(bytes, i64::from_le_bytes)),
            "float32" => Values::F32(conv(bytes, f32::from_le_bytes)),
            "float64" => Values::F64(conv(bytes, f64::from_le_bytes)),
            _ => return None,
        })
    }

    pub fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            Values::I8(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::I16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Values::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    /// Integer time values for an array of `data_type`; fails if they do not fit.
    fn times(data_type: &str, values: &[i64]) -> Option<Self> {
        match data_type {
            "int32" => values
                .iter()
                .map(|v| i32::try_from(*v).ok())
                .collect::<Option<Vec<_>>>()
                .map(Values::I32),
            "int64" => Some(Values::I64(values.to_vec())),
            _ => None,
        }
    }

    /// Read a subset of a Zarr array through zarrs.
    pub async fn read(
        array: &Array<AsyncIcechunkStore>,
        subset: &ArraySubset,
    ) -> Result<Self, StoreError> {
        let ctx = || format!("reading {}", array.path());
        let dt = zarr_data_type(array);
        let err = |e: zarrs::array::ArrayError| StoreError::zarr(ctx(), e);
        Ok(match dt.as_str() {
            "int8" => Values::I8(
                array
                    .async_retrieve_array_subset(subset)
                    .await
                    .map_err(err)?,
            ),
            "int16" => Values::I16(
                array
                    .async_retrieve_array_subset(subset)
                    .await
                    .map_err(err)?,
            ),
            "int32" => Values::I32(
                array
                    .async_retrieve_array_subset(subset)
                    .await
                    .map_err(err)?,
            ),
            "int64" => Values::I64(
                array
                    .async_retrieve_array_subset(subset)
                    .await
                    .map_err(err)?,
            ),
            "float32" => Values::F32(
                array
                    .async_retrieve_array_subset(subset)
                    .await
                    .map_err(err)?,
            ),
            "float64" => Values::F64(
                array
                    .async_retrieve_array_subset(subset)
                    .await
                    .map_err(err)?,
            ),
            other => {
                return Err(StoreError::metadata(
                    array.path().as_str(),
                    format!("unsupported data type {other} for a real array"),
                ));
            }
        })
    }

    async fn write(
        &self,
        array: &Array<AsyncIcechunkStore>,
        subset: &ArraySubset,
    ) -> Result<(), StoreError> {
        let r = match self {
            Values::I8(v) => array.async_store_array_subset(subset, v.as_slice()).await,
            Values::I16(v) => array.async_store_array_subset(subset, v.as_slice()).await,
            Values::I32(v) => array.async_store_array_subset(subset, v.as_slice()).await,
            Values::I64(v) => array.async_store_array_subset(subset, v.as_slice()).await,
            Values::F32(v) => array.async_store_array_subset(subset, v.as_slice()).await,
            Values::F64(v) => array.async_store_array_subset(subset, v.as_slice()).await,
        };
        r.map_err(|e| StoreError::zarr(format!("writing {}", array.path()), e))
    }

    /// The values as integers (floats truncated), e.g. time values of any stored type.
    pub fn as_i64(&self) -> Vec<i64> {
        match self {
            Values::I8(v) => v.iter().map(|x| i64::from(*x)).collect(),
            Values::I16(v) => v.iter().map(|x| i64::from(*x)).collect(),
            Values::I32(v) => v.iter().map(|x| i64::from(*x)).collect(),
            Values::I64(v) => v.clone(),
            Values::F32(v) => v.iter().map(|x| *x as i64).collect(),
            Values::F64(v) => v.iter().map(|x| *x as i64).collect(),
        }
    }
}

/// The array's Zarr `data_type` name as written in its metadata (e.g. `int16`).
pub fn zarr_data_type<S: ?Sized>(array: &Array<S>) -> String {
    serde_json::to_value(array.metadata())
        .ok()
        .and_then(|m| m.get("data_type")?.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A session shared by the icechunk Zarr store API and zarrs.
pub struct SessionStores {
    pub icechunk: Store,
    pub zarrs: Arc<AsyncIcechunkStore>,
}

impl SessionStores {
    /// Both APIs over one session, so zarrs' chunk writes land in the same commit.
    pub async fn new(session: Session) -> Self {
        let shared = Arc::new(RwLock::new(session));
        Self {
            icechunk: Store::from_session(Arc::clone(&shared)).await,
            zarrs: Arc::new(AsyncIcechunkStore::from(shared)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self.icechunk.get(key, &ByteRange::ALL).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if matches!(e.kind, icechunk::store::StoreErrorKind::NotFound(_)) => Ok(None),
            Err(e) => Err(StoreError::icechunk(format!("reading {key}"), e)),
        }
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.icechunk
            .set(key, Bytes::from(value))
            .await
            .map_err(|e| StoreError::icechunk(format!("writing {key}"), e))
    }

    /// Open an array with zarrs, for reading and writing real chunks.
    pub async fn array(&self, name: &str) -> Result<Array<AsyncIcechunkStore>, StoreError> {
        Array::async_open(Arc::clone(&self.zarrs), &format!("/{name}"))
            .await
            .map_err(|e| StoreError::zarr(format!("opening array {name}"), e))
    }

    /// The root group's attributes and every child array's metadata, or `None` if the
    /// repository has no root group yet.
    pub async fn nodes(
        &self,
    ) -> Result<Option<(Map<String, Value>, Vec<(String, ArrayMeta)>)>, StoreError> {
        let Some(group) = self.get("zarr.json").await? else {
            return Ok(None);
        };
        let group = ArrayMeta::parse("/", &group)?;
        let children: Vec<ListDirItem> = self
            .icechunk
            .list_dir_items("")
            .await
            .map_err(|e| StoreError::icechunk("listing the root group", e))?
            .try_collect()
            .await
            .map_err(|e| StoreError::icechunk("listing the root group", e))?;
        let mut arrays = Vec::new();
        for item in children {
            let ListDirItem::Prefix(name) = item else {
                continue;
            };
            let Some(bytes) = self.get(&format!("{name}/zarr.json")).await? else {
                continue;
            };
            let meta = ArrayMeta::parse(&name, &bytes)?;
            if meta.0.get("node_type").and_then(Value::as_str) == Some("array") {
                arrays.push((name, meta));
            }
        }
        Ok(Some((group.attributes(), arrays)))
    }

    /// Commit the session, returning the new snapshot.
    pub async fn commit(
        &self,
        message: &str,
        properties: Map<String, Value>,
    ) -> Result<SnapshotId, StoreError> {
        let session = self.icechunk.session();
        let mut session = session.write().await;
        session
            .commit(message)
            .properties(properties.into_iter().collect())
            .execute()
            .await
            .map_err(|e| StoreError::icechunk(format!("committing {message:?}"), e))
    }
}

/// Read the store's state through `stores` (a session at `snapshot`); `None` for an
/// empty repository.
pub async fn read_state(
    stores: &SessionStores,
    snapshot: SnapshotId,
) -> Result<Option<StoreState>, StoreError> {
    let Some((group_attributes, arrays)) = stores.nodes().await? else {
        return Ok(None);
    };
    let arrays: std::collections::BTreeMap<String, ArrayMeta> = arrays.into_iter().collect();
    let time = arrays
        .get(TIME)
        .ok_or_else(|| StoreError::metadata(TIME, "the store has no time array"))?;
    let units = time
        .attributes()
        .get("units")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| StoreError::metadata(TIME, "no units attribute"))?;
    let (unit, time_epoch) = layout::parse_time_units(&units)
        .filter(|(u, _)| u == "seconds")
        .ok_or_else(|| {
            StoreError::metadata(
                TIME,
                format!("units {units:?} are not seconds since a date"),
            )
        })?;
    debug_assert_eq!(unit, "seconds");
    let days = time.shape().first().copied().unwrap_or(0);
    let last_day = if days > 0 {
        let array = stores.array(TIME).await?;
        let last = Values::read(&array, &range_1d(days - 1, days)).await?;
        let secs = last.as_i64().first().copied().unwrap_or_default();
        Some((time_epoch + chrono::Duration::seconds(secs)).date())
    } else {
        None
    };
    let mut coordinates = HashMap::new();
    for (name, meta) in &arrays {
        if name != TIME && meta.dimension_names().first().map(String::as_str) != Some(TIME) {
            let array = stores.array(name).await?;
            let subset = ArraySubset::new_with_shape(meta.shape());
            coordinates.insert(
                name.clone(),
                Values::read(&array, &subset).await?.to_le_bytes(),
            );
        }
    }
    Ok(Some(StoreState {
        snapshot,
        group_attributes,
        schema: StoreSchema {
            arrays,
            coordinates,
        },
        days,
        last_day,
        time_epoch,
    }))
}

/// The one-dimensional subset `start..end`.
pub fn range_1d(start: u64, end: u64) -> ArraySubset {
    ArraySubset::new_with_ranges(std::slice::from_ref(&(start..end)))
}

/// What a write did, for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WriteSummary {
    pub snapshot: String,
    pub refs_written: u64,
    pub days_before: u64,
    pub days_after: u64,
}

fn checksum(object: &ObjectInfo) -> Option<Checksum> {
    if let Some(etag) = &object.etag {
        return Some(Checksum::ETag(ETag(etag.clone())));
    }
    // Seconds are rounded up: a reader compares the object's precise modification time
    // with this bound, which must not be earlier than it.
    object.last_modified.map(|t| {
        let secs = t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0);
        Checksum::LastModified(SecondsSinceEpoch(
            u32::try_from(secs.max(0)).unwrap_or(u32::MAX),
        ))
    })
}

/// Create the group and arrays of a new store from its first granule.
async fn create_layout(
    stores: &SessionStores,
    first: &PreparedGranule,
    variables: &[String],
) -> Result<StoreState, StoreError> {
    let refs = &first.refs;
    let g = refs.object.url.as_str();
    let mut arrays = std::collections::BTreeMap::new();
    let mut coordinate_names: Vec<String> = Vec::new();
    let time_var = refs
        .variable(TIME)
        .ok_or_else(|| StoreError::schema(g, TIME, "variable", "missing from the granule"))?;
    arrays.insert(
        TIME.to_string(),
        ArrayMeta::from_value(TIME, layout::time_array(time_var, 0)?)?,
    );
    for name in variables {
        let var = refs.variable(name).ok_or_else(|| {
            StoreError::schema(
                g,
                name.clone(),
                "variable",
                "requested but missing from the granule",
            )
        })?;
        if layout::role(var) != Role::Data {
            return Err(StoreError::schema(
                g,
                name.clone(),
                "dimension_names",
                format!("{:?} does not start with time", var.dimensions),
            ));
        }
        if var
            .chunks
            .iter()
            .any(|(_, c)| matches!(c, ChunkData::Inline(_)))
        {
            return Err(StoreError::schema(
                g,
                name.clone(),
                "data layout",
                "compact (inline) storage cannot be referenced virtually",
            ));
        }
        arrays.insert(
            name.clone(),
            ArrayMeta::from_value(name, layout::data_array(var, 0))?,
        );
        for dim in var.dimensions.iter().skip(1) {
            if !coordinate_names.contains(dim) && refs.variable(dim).is_some() {
                coordinate_names.push(dim.clone());
            }
        }
    }
    stores
        .set(
            "zarr.json",
            layout::group(&Map::new()).to_string().into_bytes(),
        )
        .await?;
    for (name, meta) in &arrays {
        stores
            .set(&format!("{name}/zarr.json"), meta.to_bytes())
            .await?;
    }
    let mut coordinates = HashMap::new();
    for name in coordinate_names {
        let var = refs
            .variable(&name)
            .ok_or_else(|| StoreError::metadata(&name, "missing"))?;
        let meta = ArrayMeta::from_value(&name, layout::coordinate_array(var))?;
        stores
            .set(&format!("{name}/zarr.json"), meta.to_bytes())
            .await?;
        let values = first.coordinates.get(&name).ok_or_else(|| {
            StoreError::metadata(&name, "coordinate values were not read from the granule")
        })?;
        let typed = Values::from_le_bytes(meta.data_type(), values).ok_or_else(|| {
            StoreError::metadata(&name, format!("unsupported data type {}", meta.data_type()))
        })?;
        let array = stores.array(&name).await?;
        typed
            .write(&array, &ArraySubset::new_with_shape(meta.shape()))
            .await?;
        coordinates.insert(name.clone(), values.clone());
        arrays.insert(name, meta);
    }
    Ok(StoreState {
        snapshot: SnapshotId::random(),
        group_attributes: Map::new(),
        schema: StoreSchema {
            arrays,
            coordinates,
        },
        days: 0,
        last_day: None,
        time_epoch: first.time_epoch,
    })
}

/// Append `days` (consecutive, after the store's last day) to the session and commit.
///
/// With `state` `None` the store is empty and its layout is created from the first day,
/// keeping `variables`. Every day must already have passed the schema check.
pub async fn append_days(
    stores: &SessionStores,
    state: Option<&StoreState>,
    days: &[PreparedGranule],
    variables: &[String],
    message: &str,
) -> Result<WriteSummary, StoreError> {
    let Some(first) = days.first() else {
        return Err(StoreError::metadata("/", "no days to append"));
    };
    let created;
    let (state, existing_attrs) = match state {
        Some(s) => (s, Some(&s.group_attributes)),
        None => {
            created = create_layout(stores, first, variables).await?;
            (&created, None)
        }
    };
    let n0 = state.days;
    let n1 = n0 + days.len() as u64;

    // Global attributes first: a disagreement fails before anything else is written.
    let named: Vec<(&str, &Map<String, Value>)> = days
        .iter()
        .map(|d| (d.refs.object.url.as_str(), &d.refs.attributes))
        .collect();
    let attrs = attributes::combine(existing_attrs, &named)?;
    stores
        .set("zarr.json", layout::group(&attrs).to_string().into_bytes())
        .await?;

    // Grow every time-dimensioned array.
    for (name, meta) in &state.schema.arrays {
        if meta.dimension_names().first().map(String::as_str) != Some(TIME) {
            continue;
        }
        let mut meta = meta.clone();
        let mut shape = meta.shape();
        shape[0] = n1;
        meta.set_shape(&shape);
        stores
            .set(&format!("{name}/zarr.json"), meta.to_bytes())
            .await?;
    }

    // Time values, converted to the store's epoch.
    let offset = (state.time_epoch - first.time_epoch).num_seconds();
    let times: Vec<i64> = days.iter().map(|d| d.time_seconds - offset).collect();
    let time_meta = state
        .schema
        .arrays
        .get(TIME)
        .ok_or_else(|| StoreError::metadata(TIME, "missing"))?;
    let time_values = Values::times(time_meta.data_type(), &times).ok_or_else(|| {
        StoreError::metadata(
            TIME,
            format!("time values {times:?} do not fit {}", time_meta.data_type()),
        )
    })?;
    let time_array = stores.array(TIME).await?;
    time_values.write(&time_array, &range_1d(n0, n1)).await?;

    // Virtual references.
    let mut refs_written = 0u64;
    for name in state.data_arrays() {
        let path = Path::new(&format!("/{name}"))
            .map_err(|e| StoreError::metadata(&name, format!("bad path: {e}")))?;
        for (i, day) in days.iter().enumerate() {
            let t = n0 + i as u64;
            let var = day.refs.variable(&name).ok_or_else(|| {
                StoreError::schema(
                    day.refs.object.url.clone(),
                    name.clone(),
                    "variable",
                    "missing from the granule",
                )
            })?;
            let location = VirtualChunkLocation::from_url(&day.refs.object.url).map_err(|e| {
                StoreError::icechunk(format!("location of {}", day.refs.object.url), e)
            })?;
            let checksum = checksum(&day.refs.object);
            let mut refs = Vec::with_capacity(var.chunks.len());
            for (index, data) in &var.chunks {
                let ChunkData::Ref(r) = data else {
                    return Err(StoreError::schema(
                        day.refs.object.url.clone(),
                        name.clone(),
                        "data layout",
                        "compact (inline) storage cannot be referenced virtually",
                    ));
                };
                let coords = std::iter::once(t)
                    .chain(index.iter().skip(1).copied())
                    .map(|c| u32::try_from(c).unwrap_or(u32::MAX))
                    .collect();
                refs.push((
                    ChunkIndices(coords),
                    VirtualChunkRef {
                        location: location.clone(),
                        offset: r.offset,
                        length: r.length,
                        checksum: checksum.clone(),
                    },
                ));
            }
            refs_written += refs.len() as u64;
            let result = stores
                .icechunk
                .set_virtual_refs(&path, true, refs)
                .await
                .map_err(|e| StoreError::icechunk(format!("setting references of {name}"), e))?;
            if let SetVirtualRefsResult::FailedRefs(_) = result {
                return Err(StoreError::schema(
                    day.refs.object.url.clone(),
                    name.clone(),
                    "location",
                    "not under any virtual chunk container of the store",
                ));
            }
        }
    }

    let mut properties = Map::new();
    properties.insert(
        "mursst".into(),
        serde_json::json!({
            "days": days.iter().map(|d| d.granule.date.to_string()).collect::<Vec<_>>(),
            "granules": days.iter().map(|d| d.refs.object.url.clone()).collect::<Vec<_>>(),
        }),
    );
    let snapshot = stores.commit(message, properties).await?;
    Ok(WriteSummary {
        snapshot: snapshot.to_string(),
        refs_written,
        days_before: n0,
        days_after: n1,
    })
}

/// The date `time` seconds (since `epoch`) fall on.
pub fn date_of(epoch: NaiveDateTime, seconds: i64) -> NaiveDate {
    (epoch + chrono::Duration::seconds(seconds)).date()
}

/// Check a prepared day's time value is 09:00 UTC of its file name's date.
pub fn check_time(day: &PreparedGranule) -> Result<(), StoreError> {
    let expected = granule::time_value(day.granule.date)
        - (day.time_epoch - granule::time_epoch()).num_seconds();
    if day.time_seconds != expected {
        return Err(StoreError::Schema {
            granule: day.refs.object.url.clone(),
            variable: TIME.into(),
            field: "values".into(),
            message: format!(
                "time is {} ({}), but the file name says {}",
                day.time_seconds,
                date_of(day.time_epoch, day.time_seconds),
                day.granule.date
            ),
        });
    }
    Ok(())
}
