//! Global attributes across days, by the rules the Python updater established: per-file
//! attributes are dropped, the coverage bounds widen, everything else must agree.

use serde_json::{Map, Value};

use super::StoreError;

/// File-specific attributes that do not describe the whole store.
pub const DROPPED: &[&str] = &["date_created", "comment", "source", "platform", "sensor"];
/// Attributes that take the earliest value over all days.
pub const TAKE_MIN: &[&str] = &["start_time", "time_coverage_start"];
/// Attributes that take the latest value over all days.
pub const TAKE_MAX: &[&str] = &["stop_time", "time_coverage_end"];
/// Attributes the store itself sets; they are not compared with granules.
pub const STORE_OWNED: &[&str] = &["coordinates"];
/// The coordinates xarray records on the root group of a VirtualiZarr-built store.
pub const STORE_COORDINATES: &str = "time lat lon";

fn compare_key(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Fold the global attributes of new days (in date order) into the store's.
///
/// `existing` is `None` for an empty store. Fails, naming the attribute and day, when an
/// attribute that must be constant differs or is missing on one side.
pub(crate) fn combine(
    existing: Option<&Map<String, Value>>,
    new_days: &[(&str, &Map<String, Value>)],
) -> Result<Map<String, Value>, StoreError> {
    let mut out = Map::new();
    let mut base: Option<(&str, Map<String, Value>)> = existing.map(|e| {
        let mut e = e.clone();
        for k in DROPPED.iter().chain(STORE_OWNED) {
            e.remove(*k);
        }
        ("the store", e)
    });
    for (granule, attrs) in new_days {
        let Some((base_name, current)) = base.as_mut() else {
            let mut first = (*attrs).clone();
            for k in DROPPED {
                first.remove(*k);
            }
            base = Some((granule, first));
            continue;
        };
        for (key, value) in attrs.iter() {
            if DROPPED.contains(&key.as_str()) {
                continue;
            }
            match current.get_mut(key) {
                Some(cur) if TAKE_MIN.contains(&key.as_str()) => {
                    if compare_key(value) < compare_key(cur) {
                        *cur = value.clone();
                    }
                }
                Some(cur) if TAKE_MAX.contains(&key.as_str()) => {
                    if compare_key(value) > compare_key(cur) {
                        *cur = value.clone();
                    }
                }
                Some(cur) if cur != value => {
                    return Err(StoreError::Attributes {
                        attribute: key.clone(),
                        message: format!(
                            "{granule} has {value} but {base_name} has {cur}; it must be equal \
                             across days"
                        ),
                    });
                }
                Some(_) => {}
                None => {
                    return Err(StoreError::Attributes {
                        attribute: key.clone(),
                        message: format!("{granule} has it but {base_name} does not"),
                    });
                }
            }
        }
        if let Some(missing) = current
            .keys()
            .find(|k| !attrs.contains_key(k.as_str()))
            .cloned()
        {
            return Err(StoreError::Attributes {
                attribute: missing,
                message: format!("{base_name} has it but {granule} does not"),
            });
        }
    }
    if let Some((_, combined)) = base {
        out = combined;
    }
    out.insert("coordinates".into(), STORE_COORDINATES.into());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn day(d: u32) -> Map<String, Value> {
        json!({
            "title": "MUR",
            "start_time": format!("202501{d:02}T090000Z"),
            "stop_time": format!("202501{d:02}T090000Z"),
            "time_coverage_start": format!("202501{:02}T210000Z", d - 1),
            "time_coverage_end": format!("202501{d:02}T210000Z"),
            "date_created": format!("202501{:02}T030000Z", d + 1),
            "comment": format!("day {d}"),
            "publisher_name": "GHRSST Project Office",
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn widens_bounds_and_drops_file_specific() {
        let (a, b, c) = (day(2), day(3), day(4));
        let first = combine(None, &[("a", &a), ("b", &b)]).unwrap();
        assert_eq!(first["start_time"], "20250102T090000Z");
        assert_eq!(first["stop_time"], "20250103T090000Z");
        assert_eq!(first["time_coverage_start"], "20250101T210000Z");
        assert!(!first.contains_key("date_created") && !first.contains_key("comment"));
        assert_eq!(first["coordinates"], STORE_COORDINATES);
        let next = combine(Some(&first), &[("c", &c)]).unwrap();
        assert_eq!(next["start_time"], "20250102T090000Z");
        assert_eq!(next["time_coverage_end"], "20250104T210000Z");
    }

    #[test]
    fn differing_constant_fails_naming_it() {
        let a = day(2);
        let mut b = day(3);
        b.insert("title".into(), "other".into());
        let err = combine(None, &[("a", &a), ("b", &b)]).unwrap_err();
        assert!(err.to_string().contains("title"), "{err}");
        let mut c = day(3);
        c.remove("publisher_name");
        let err = combine(None, &[("a", &a), ("c", &c)]).unwrap_err();
        assert!(err.to_string().contains("publisher_name"), "{err}");
    }
}
