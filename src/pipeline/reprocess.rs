//! Sources that change after ingest: PO.DAAC rewrites granules in place for days after
//! their date, so a stored day can point at a version that no longer exists. These are
//! the days discover hands back to the pipeline to re-point, through the same branch →
//! validate → merge path as new days.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};
use icechunk::format::manifest::{Checksum, ChunkPayload};
use serde::{Deserialize, Serialize};

use super::PipelineError;
use crate::granule::Granule;
use crate::objects;
use crate::objects::S3Access;
use crate::store::layout::{array_path, store_chunk_index};
use crate::store::record;
use crate::store::{SessionStores, StoreError, StoreRepo, StoreState};

/// Which stored days a run re-points: the execution input's `"reprocess"`, either
/// `"changed"` or a list of dates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reprocess {
    /// Days whose source is no longer the version their references pin.
    Changed(ReprocessKeyword),
    /// These days, whatever their source (an operator's repair).
    Dates(Vec<NaiveDate>),
}

/// The keyword of [`Reprocess::Changed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReprocessKeyword {
    Changed,
}

impl std::str::FromStr for Reprocess {
    type Err = String;

    /// `changed`, or dates and ranges: `2025-01-02,2025-01-05..2025-01-07`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "changed" {
            return Ok(Self::Changed(ReprocessKeyword::Changed));
        }
        let date = |d: &str| {
            NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
                .map_err(|e| format!("{d:?} is not a YYYY-MM-DD date: {e}"))
        };
        let mut dates = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            match part.split_once("..") {
                Some((a, b)) => {
                    let (a, b) = (date(a)?, date(b)?);
                    if b < a {
                        return Err(format!("{part}: the range ends before it starts"));
                    }
                    dates.extend(a.iter_days().take_while(|d| *d <= b));
                }
                None => dates.push(date(part)?),
            }
        }
        if dates.is_empty() {
            return Err("expected `changed` or dates".into());
        }
        Ok(Self::Dates(dates))
    }
}

/// Days back from the store's last day that `changed` looks at by default: PO.DAAC
/// replaces granules for about nine days after their date.
pub const DEFAULT_WINDOW_DAYS: u32 = 30;

/// A stored day the run re-points, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repoint {
    pub date: NaiveDate,
    pub url: String,
    pub reason: String,
}

/// The source version a stored day's references pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub url: String,
    pub checksum: Option<Checksum>,
}

/// The version day `date` of the store references: the first virtual chunk of its
/// first data array that has one. `None` if the day holds no virtual chunk.
pub async fn recorded(
    stores: &SessionStores,
    state: &StoreState,
    date: NaiveDate,
) -> Result<Option<Recorded>, StoreError> {
    let Some(t) = state.index_of(date) else {
        return Ok(None);
    };
    let session = stores.icechunk.session();
    let session = session.read().await;
    for name in state.data_arrays() {
        let rank = state.schema.arrays[&name].shape.len();
        let zeros = vec![0; rank];
        let coords = store_chunk_index(&name, t, &zeros)?;
        let path = array_path(&name)?;
        let got = session
            .get_chunk_ref(&path, &coords)
            .await
            .map_err(|e| StoreError::icechunk(format!("reading {name} {:?}", coords.0), e))?;
        if let Some(ChunkPayload::Virtual(r)) = got {
            return Ok(Some(Recorded {
                url: r.location.url().to_string(),
                checksum: r.checksum,
            }));
        }
    }
    Ok(None)
}

/// The listed granules of stored days whose source differs from what the store
/// pins: another URL, or the same object at another version (ETag or, for local files,
/// modification time). A day's references pin its version; a fully native day has
/// none, so the version its materializing commit recorded stands in. One HEAD per day,
/// a few at a time.
pub async fn changed(
    repo: &StoreRepo,
    stores: &SessionStores,
    state: &StoreState,
    listed: &[Granule],
    s3: &S3Access,
) -> Result<Vec<(Granule, Repoint)>, PipelineError> {
    let stored = listed.iter().filter(|g| state.holds(g.date));
    let pinned: Vec<(&Granule, Option<Recorded>)> = futures::stream::iter(stored)
        .map(|g| async move { Ok::<_, StoreError>((g, recorded(stores, state, g.date).await?)) })
        .buffered(16)
        .try_collect()
        .await?;
    let fully_native: BTreeMap<NaiveDate, u64> = pinned
        .iter()
        .filter(|(_, r)| r.is_none())
        .filter_map(|(g, _)| Some((g.date, state.index_of(g.date)?)))
        .collect();
    let mut materialized_from = if fully_native.is_empty() {
        BTreeMap::new()
    } else {
        repo.native_sources(&state.snapshot, &fully_native).await?
    };
    let checks = pinned.into_iter().filter_map(|(g, pinned)| {
        let recorded = pinned.or_else(|| {
            let v = materialized_from.remove(&g.date);
            if v.is_none() {
                tracing::warn!(date = %g.date, "a fully native day with no recorded source version: not checked");
            }
            v.map(|v| Recorded {
                checksum: v.checksum(),
                url: v.url,
            })
        })?;
        Some(async move {
            let current = objects::open(&g.url, s3).await?.info().await?;
            let now = record::checksum(&current);
            let reason = if recorded.url != current.url {
                format!(
                    "the catalog's granule is now {}, not {}",
                    current.url, recorded.url
                )
            } else if recorded.checksum != now {
                format!(
                    "the source changed: {} then, {} now",
                    describe(recorded.checksum.as_ref()),
                    describe(now.as_ref())
                )
            } else {
                return Ok(None);
            };
            let repoint = Repoint {
                date: g.date,
                url: g.url.clone(),
                reason,
            };
            Ok::<_, PipelineError>(Some((g.clone(), repoint)))
        })
    });
    let found: Vec<Option<(Granule, Repoint)>> = futures::stream::iter(checks)
        .buffered(16)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

fn describe(checksum: Option<&Checksum>) -> String {
    match checksum {
        Some(Checksum::ETag(e)) => format!("ETag {}", e.0),
        Some(Checksum::LastModified(s)) => format!("modified at {} s", s.0),
        None => "no version".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_keyword_dates_and_ranges() {
        assert_eq!(
            "changed".parse::<Reprocess>(),
            Ok(Reprocess::Changed(ReprocessKeyword::Changed))
        );
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            "2025-01-02,2025-01-05..2025-01-07".parse::<Reprocess>(),
            Ok(Reprocess::Dates(vec![
                d("2025-01-02"),
                d("2025-01-05"),
                d("2025-01-06"),
                d("2025-01-07")
            ]))
        );
        assert!("2025-01-07..2025-01-05".parse::<Reprocess>().is_err());
        assert!("yesterday".parse::<Reprocess>().is_err());
        let json: Reprocess = serde_json::from_str("\"changed\"").unwrap();
        assert_eq!(json, Reprocess::Changed(ReprocessKeyword::Changed));
        let json: Reprocess = serde_json::from_str("[\"2025-01-02\"]").unwrap();
        assert_eq!(json, Reprocess::Dates(vec![d("2025-01-02")]));
        assert!(serde_json::from_str::<Reprocess>("\"everything\"").is_err());
    }
}
