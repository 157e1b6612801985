//! The artifact the generate-refs step hands the commit step: one granule's references
//! and the values the store copies from it, checked for the one invariant that needs
//! no store (its time value is its date's).

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::StoreError;
use super::layout::TIME;
use super::materialize::NativeVariable;
use super::schema::Route;
use crate::granule::{self, Granule};
use crate::refs::GranuleRefs;

/// A granule ready to be written: its references and the values the store copies from
/// it. This is what the generate-refs step hands the commit step, as an artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreparedGranule {
    pub granule: Granule,
    pub refs: GranuleRefs,
    /// The granule's `time` value, in seconds since `time_epoch`.
    pub time_seconds: i64,
    pub time_epoch: NaiveDateTime,
    /// Decoded static coordinates (little-endian bytes), by name.
    #[serde(with = "base64_values")]
    pub coordinates: HashMap<String, Vec<u8>>,
    /// Which variables are materialized rather than referenced (set by the schema
    /// check of the write step).
    #[serde(default, skip_serializing_if = "Route::is_virtual")]
    pub route: Route,
    /// The route's native variables, materialized (attached by the write step from the
    /// materialize step's artifact).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub native: BTreeMap<String, NativeVariable>,
}

/// Coordinates as base64 strings: a third of the size of JSON number arrays.
mod base64_values {
    use std::collections::HashMap;

    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &HashMap<String, Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        let encoded: std::collections::BTreeMap<&String, String> =
            v.iter().map(|(k, b)| (k, STANDARD.encode(b))).collect();
        encoded.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<HashMap<String, Vec<u8>>, D::Error> {
        HashMap::<String, String>::deserialize(d)?
            .into_iter()
            .map(|(k, v)| {
                STANDARD
                    .decode(v)
                    .map(|b| (k, b))
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

/// Check a prepared day's time value is 09:00 UTC of its file name's date.
pub(crate) fn check_time(day: &PreparedGranule) -> Result<(), StoreError> {
    let expected = granule::time_value(day.granule.date)
        - (day.time_epoch - granule::time_epoch()).num_seconds();
    if day.time_seconds != expected {
        return Err(StoreError::schema(
            day.refs.object.url.clone(),
            TIME,
            "values",
            format!(
                "time is {} ({}), but the file name says {}",
                day.time_seconds,
                granule::date_of(day.time_epoch, day.time_seconds),
                day.granule.date
            ),
        ));
    }
    Ok(())
}
