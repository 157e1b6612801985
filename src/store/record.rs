//! What a pipeline commit records about itself in its snapshot's properties, as one type
//! written and read the same way: a retried run finds its own commit by it, `reprocess
//! changed` finds a native day's source version by it, `store log` prints it.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use icechunk::format::manifest::{Checksum, SecondsSinceEpoch};
use icechunk::format::snapshot::SnapshotProperties;
use icechunk::storage::ETag;
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::source::ObjectInfo;

/// The key in a snapshot's properties under which the pipeline keeps its record.
pub const PROPERTIES_KEY: &str = "mursst";

/// The record layout this code writes. Records from before the field existed have the
/// same layout and read as this version; a newer one is refused, not half-read.
pub const RECORD_VERSION: u32 = 1;

/// A pipeline commit's record: the days it wrote and what a later run needs to know.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CommitRecord {
    #[serde(default = "first_version")]
    pub version: u32,
    /// The run that made the commit: a retried run recognises its own commit by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The days written (appended or re-pointed), and their granules in the same order.
    pub days: Vec<NaiveDate>,
    pub granules: Vec<String>,
    /// Of `days`, those the store already held and this commit re-pointed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reprocessed: Vec<NaiveDate>,
    pub refs_written: u64,
    pub days_before: u64,
    pub days_after: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_first_day: Option<NaiveDate>,
    /// Granules of the run that did not fit the store, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<Rejection>,
    /// Days with native (materialized) variables: variable → why it is native.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub native: BTreeMap<NaiveDate, BTreeMap<String, String>>,
    /// The source version each day of `native` was materialized from.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub native_sources: BTreeMap<NaiveDate, SourceVersion>,
}

fn first_version() -> u32 {
    1
}

impl CommitRecord {
    /// A record for `run_id`'s commit; the writer fills in the days.
    pub fn for_run(run_id: &str) -> Self {
        Self {
            version: RECORD_VERSION,
            run_id: Some(run_id.to_string()),
            ..Self::default()
        }
    }

    /// The record in `snapshot`'s properties, or `None` for a commit the pipeline did
    /// not make (icechunk's first commit, a hand edit). One that is there but does not
    /// read is an error naming the snapshot: guessing would let a retried run take its
    /// own commit for another run's.
    pub fn from_properties(
        snapshot: &str,
        properties: &SnapshotProperties,
    ) -> Result<Option<Self>, StoreError> {
        let Some(value) = properties.get(PROPERTIES_KEY) else {
            return Ok(None);
        };
        let bad = |message: String| StoreError::Record {
            snapshot: snapshot.to_string(),
            message,
        };
        let record = Self::deserialize(value).map_err(|e| bad(e.to_string()))?;
        if record.version > RECORD_VERSION {
            return Err(bad(format!(
                "record version {} is newer than this mursst reads ({RECORD_VERSION})",
                record.version
            )));
        }
        Ok(Some(record))
    }

    /// The snapshot properties that carry this record (at this code's version).
    pub fn to_properties(&self) -> Result<SnapshotProperties, StoreError> {
        let value = serde_json::to_value(Self {
            version: RECORD_VERSION,
            ..self.clone()
        })
        .map_err(|e| StoreError::metadata("/", format!("writing the commit record: {e}")))?;
        Ok(SnapshotProperties::from_iter([(
            PROPERTIES_KEY.to_string(),
            value,
        )]))
    }
}

/// A granule that does not fit the store, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub granule: String,
    pub reason: String,
}

/// The source version a day's native chunks were materialized from. Native chunks pin no
/// version (references do), so the commit records it, for `--reprocess changed` to see
/// a fully native day's granule replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceVersion {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Modification time in whole seconds, rounded up, where there is no ETag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<u32>,
}

impl SourceVersion {
    /// The version of `object` as a reference to it would pin it.
    pub fn of(object: &ObjectInfo) -> Self {
        let (etag, modified) = match checksum(object) {
            Some(Checksum::ETag(e)) => (Some(e.0), None),
            Some(Checksum::LastModified(s)) => (None, Some(s.0)),
            None => (None, None),
        };
        Self {
            url: object.url.clone(),
            etag,
            modified,
        }
    }

    /// The version as a reference's checksum, to compare with one.
    pub fn checksum(&self) -> Option<Checksum> {
        match (&self.etag, self.modified) {
            (Some(e), _) => Some(Checksum::ETag(ETag(e.clone()))),
            (None, Some(s)) => Some(Checksum::LastModified(SecondsSinceEpoch(s))),
            (None, None) => None,
        }
    }
}

/// The version a reference pins: the ETag, else the last-modified time.
pub(crate) fn checksum(object: &ObjectInfo) -> Option<Checksum> {
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

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::{Value, json};

    use super::*;

    fn properties(record: Value) -> SnapshotProperties {
        SnapshotProperties::from_iter([(PROPERTIES_KEY.to_string(), record)])
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// Records as the code before the typed record wrote them (read off a store that
    /// `mursst init`, `update` and `update --reprocess changed` made, and a backfill
    /// batch's): today's stores keep reading.
    #[test]
    fn records_written_before_the_type_read_back() {
        let update_native = json!({"native": {"2025-02-02": {"mask": "chunk_shape: granule has [1, 1023, 2047], store has [1, 1447, 2895]", "sea_ice_fraction": "chunk_shape: granule has [1, 1023, 2047], store has [1, 1447, 2895]"}}, "days_before": 1, "native_sources": {"2025-02-02": {"modified": 1796619777, "url": "file:///tmp/recdemo/src/20250202090000-JPL-L4_GHRSST-SSTfnd-MUR-GLOB-v02.0-fv04.1.nc"}}, "run_id": "20261207T050257.002121Z", "refs_written": 8, "days": ["2025-02-02"], "rejected": [], "granules": ["file:///tmp/recdemo/src/20250202090000-JPL-L4_GHRSST-SSTfnd-MUR-GLOB-v02.0-fv04.1.nc"], "store_first_day": "2025-02-01", "days_after": 2});
        let r = CommitRecord::from_properties("BTF5VEAFSXT85STT2000", &properties(update_native))
            .unwrap()
            .unwrap();
        assert_eq!(r.version, 1);
        assert_eq!(r.run_id.as_deref(), Some("20261207T050257.002121Z"));
        assert_eq!(r.days, [date("2025-02-02")]);
        assert_eq!((r.days_before, r.days_after, r.refs_written), (1, 2, 8));
        assert_eq!(r.store_first_day, Some(date("2025-02-01")));
        assert_eq!(r.native[&date("2025-02-02")].len(), 2);
        let v = &r.native_sources[&date("2025-02-02")];
        assert_eq!((v.etag.as_deref(), v.modified), (None, Some(1_796_619_777)));

        let reprocess = json!({"store_first_day": "2025-02-01", "refs_written": 16, "reprocessed": ["2025-02-01"], "days": ["2025-02-01"], "days_before": 2, "rejected": [{"granule": "s3://b/x.nc", "reason": "time: values: time is 1"}], "run_id": "20261207T050304.041585Z", "days_after": 2, "granules": ["file:///tmp/recdemo/src/20250201090000-JPL-L4_GHRSST-SSTfnd-MUR-GLOB-v02.0-fv04.1.nc"]});
        let r = CommitRecord::from_properties("0MEFNHNHWT0F8Z4NQP7G", &properties(reprocess))
            .unwrap()
            .unwrap();
        assert_eq!(r.reprocessed, [date("2025-02-01")]);
        assert_eq!(r.rejected[0].granule, "s3://b/x.nc");
        assert!(r.native.is_empty() && r.native_sources.is_empty());

        // A backfill batch recorded its run and days, no first day and no rejections.
        let backfill = json!({"days": ["2025-02-01", "2025-02-02"], "granules": ["s3://b/1.nc", "s3://b/2.nc"], "run_id": "bf", "refs_written": 40, "days_before": 0, "days_after": 2, "native": {"2025-02-01": {"mask": "chunk_shape"}}, "native_sources": {"2025-02-01": {"url": "s3://b/1.nc", "etag": "\"e\""}}});
        let r = CommitRecord::from_properties("S", &properties(backfill))
            .unwrap()
            .unwrap();
        assert_eq!((r.store_first_day, r.rejected.len()), (None, 0));
        assert_eq!(
            r.native_sources[&date("2025-02-01")].etag.as_deref(),
            Some("\"e\"")
        );
    }

    /// What is written reads back equal, with the version; icechunk's own commits have
    /// no record.
    #[test]
    fn a_record_round_trips_through_snapshot_properties() {
        let record = CommitRecord {
            days: vec![date("2025-02-01")],
            granules: vec!["s3://b/1.nc".into()],
            reprocessed: vec![date("2025-02-01")],
            refs_written: 3,
            days_before: 1,
            days_after: 1,
            store_first_day: Some(date("2025-01-31")),
            ..CommitRecord::for_run("r1")
        };
        let props = record.to_properties().unwrap();
        assert_eq!(props[PROPERTIES_KEY]["version"], json!(RECORD_VERSION));
        let back = CommitRecord::from_properties("S", &props).unwrap();
        assert_eq!(back, Some(record));
        let root = SnapshotProperties::from_iter([("__icechunk".into(), json!({"is_root": true}))]);
        assert_eq!(CommitRecord::from_properties("S", &root).unwrap(), None);
    }

    /// A record that does not read (a key renamed, a newer layout) is an error naming the
    /// snapshot, never taken for "no record".
    #[test]
    fn a_record_that_does_not_read_names_its_snapshot() {
        let renamed = json!({"run": "r1", "days": [], "granules": [], "refs_written": 0, "days_before": 0, "day_after": 0});
        let err = CommitRecord::from_properties("SNAP1", &properties(renamed)).unwrap_err();
        assert!(matches!(err, StoreError::Record { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("SNAP1") && msg.contains("days_after"), "{msg}");

        let newer = json!({"version": RECORD_VERSION + 1, "days": [], "granules": [], "refs_written": 0, "days_before": 0, "days_after": 0});
        let msg = CommitRecord::from_properties("SNAP2", &properties(newer))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("SNAP2") && msg.contains("newer"), "{msg}");
    }

    /// A recorded version reads back as the checksum a reference to the object pins.
    #[test]
    fn a_source_version_is_the_checksum_a_reference_pins() {
        let object = |etag: Option<&str>, nanos| ObjectInfo {
            url: "s3://b/k.nc".into(),
            size: 1,
            etag: etag.map(String::from),
            last_modified: Some(Utc.timestamp_opt(1_700_000_000, nanos).unwrap()),
        };
        for o in [object(Some("\"abc\""), 0), object(None, 0), object(None, 5)] {
            let v = SourceVersion::of(&o);
            let json = serde_json::to_value(&v).unwrap();
            let back: SourceVersion = serde_json::from_value(json).unwrap();
            assert_eq!(back, v);
            assert_eq!(back.checksum(), checksum(&o), "{o:?}");
            assert_eq!(back.url, o.url);
        }
        let no_version = ObjectInfo {
            last_modified: None,
            ..object(None, 0)
        };
        assert_eq!(SourceVersion::of(&no_version).checksum(), None);
    }
}
