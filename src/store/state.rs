//! What a snapshot of the store holds, as far as the pipeline cares: its arrays and
//! their metadata, the static coordinates, and the extent of the time axis.

use std::collections::{BTreeMap, HashMap};

use chrono::{NaiveDate, NaiveDateTime};
use icechunk::format::SnapshotId;
use serde_json::{Map, Value};
use zarrs::array::ArraySubset;

use super::StoreError;
use super::layout::{self, ArrayMeta, TIME};
use super::schema::StoreSchema;
use super::session::SessionStores;
use super::values::{Values, range_1d};
use crate::granule;

/// The store as of one snapshot: what new days must match and where they go.
#[derive(Debug, Clone)]
pub struct StoreState {
    pub snapshot: SnapshotId,
    pub group_attributes: Map<String, Value>,
    pub schema: StoreSchema,
    /// Length of the time axis.
    pub days: u64,
    pub first_day: Option<NaiveDate>,
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
            .filter(|(name, meta)| name.as_str() != TIME && meta.along_time())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The time index of `date`, if the store holds it (the axis is daily, gap-free).
    pub fn index_of(&self, date: NaiveDate) -> Option<u64> {
        let t = u64::try_from((date - self.first_day?).num_days()).ok()?;
        (t < self.days).then_some(t)
    }

    /// Whether `date` is one of the store's days (a re-point, not an append).
    pub fn holds(&self, date: NaiveDate) -> bool {
        self.index_of(date).is_some()
    }

    /// The `time` array's metadata (every store has one).
    pub fn time_meta(&self) -> Result<&ArrayMeta, StoreError> {
        self.schema
            .arrays
            .get(TIME)
            .ok_or_else(|| StoreError::metadata(TIME, "the store has no time array"))
    }
}

/// Read the store's state through `stores` (a session at `snapshot`); `None` for an
/// empty repository.
pub(crate) async fn read_state(
    stores: &SessionStores,
    snapshot: SnapshotId,
) -> Result<Option<StoreState>, StoreError> {
    let Some((group_attributes, arrays)) = stores.nodes().await? else {
        return Ok(None);
    };
    let arrays: BTreeMap<String, ArrayMeta> = arrays.into_iter().collect();
    let time = arrays
        .get(TIME)
        .ok_or_else(|| StoreError::metadata(TIME, "the store has no time array"))?;
    let units = time
        .attributes
        .get("units")
        .and_then(Value::as_str)
        .ok_or_else(|| StoreError::metadata(TIME, "no units attribute"))?;
    let time_epoch = layout::seconds_epoch(units).ok_or_else(|| {
        StoreError::metadata(
            TIME,
            format!("units {units:?} are not seconds since a date"),
        )
    })?;
    let days = time.shape.first().copied().unwrap_or(0);
    let (first_day, last_day) = if days > 0 {
        let array = stores.array(TIME).await?;
        // One chunk each: the time axis has a chunk per day.
        let mut ends = [None, None];
        for (end, i) in ends.iter_mut().zip([0, days - 1]) {
            let v = Values::read(&array, time.data_type, &range_1d(i, i + 1)).await?;
            *end = v.as_i64().first().map(|s| granule::date_of(time_epoch, *s));
        }
        (ends[0], ends[1])
    } else {
        (None, None)
    };
    let mut coordinates = HashMap::new();
    for (name, meta) in &arrays {
        if name != TIME && !meta.along_time() {
            let array = stores.array(name).await?;
            let subset = ArraySubset::new_with_shape(meta.shape.clone());
            let values = Values::read(&array, meta.data_type, &subset).await?;
            coordinates.insert(name.clone(), values.le_bytes);
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
        first_day,
        last_day,
        time_epoch,
    }))
}
