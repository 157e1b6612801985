//! MUR granule identity: one file per day, named after its date.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

/// Everything after the date in a MUR v4.1 granule's file name.
pub const FILE_SUFFIX: &str = "090000-JPL-L4_GHRSST-SSTfnd-MUR-GLOB-v02.0-fv04.1.nc";

/// The epoch of the `time` variable: `seconds since 1981-01-01 00:00:00 UTC`.
pub fn time_epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(1981, 1, 1)
        .unwrap_or_default()
        .and_time(NaiveTime::MIN)
}

/// The file name of the granule for `date`.
pub fn file_name(date: NaiveDate) -> String {
    format!("{}{FILE_SUFFIX}", date.format("%Y%m%d"))
}

/// The date of a granule from its file name (or a URL/path ending in it).
pub fn date_from_name(name: &str) -> Option<NaiveDate> {
    let base = name.rsplit('/').next()?;
    let date = base.strip_suffix(FILE_SUFFIX)?;
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(date, "%Y%m%d").ok()
}

/// The value of `time` in the granule for `date` (09:00 UTC), in seconds since 1981.
pub fn time_value(date: NaiveDate) -> i64 {
    let t = date.and_hms_opt(9, 0, 0).unwrap_or_default();
    (t - time_epoch()).num_seconds()
}

/// The day a `time` value (`seconds` since `epoch`) falls on.
pub fn date_of(epoch: NaiveDateTime, seconds: i64) -> NaiveDate {
    (epoch + chrono::Duration::seconds(seconds)).date()
}

/// A granule found in a source: its day and where it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Granule {
    pub date: NaiveDate,
    /// `file:///...` or `s3://bucket/key`.
    pub url: String,
    /// The catalog's revision (CMR concept-id and revision id), when listed from CMR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let d = NaiveDate::from_ymd_opt(2025, 1, 2).unwrap();
        let name = file_name(d);
        assert_eq!(
            name,
            "20250102090000-JPL-L4_GHRSST-SSTfnd-MUR-GLOB-v02.0-fv04.1.nc"
        );
        assert_eq!(date_from_name(&format!("s3://b/p/{name}")), Some(d));
        assert_eq!(date_from_name("20250102-other.nc"), None);
        assert_eq!(date_from_name(&format!("2025010x{FILE_SUFFIX}")), None);
    }

    #[test]
    fn time_values_are_nine_utc() {
        let d = NaiveDate::from_ymd_opt(1981, 1, 2).unwrap();
        assert_eq!(time_value(d), 86400 + 9 * 3600);
        assert_eq!(date_of(time_epoch(), time_value(d)), d);
    }
}
