//! The discover step: which granules are new for the store, and safe to ingest.

use std::path::PathBuf;

use chrono::NaiveDate;

use serde::{Deserialize, Serialize};

use crate::cmr::{CmrClient, CmrConfig, ResolvedDuplicate, Unusable};
use crate::error::ErrorKind;
use crate::granule::{self, Granule};
use crate::objects::S3Access;
use crate::objects::{LocalDir, ObjectStore, S3Bucket};
use crate::source::{Location, SourceError};
use crate::store::repository::SourceRoot;

/// Where granules are listed from: a local directory or an S3 prefix of MUR-named
/// files, or NASA's CMR (production: PO.DAAC's protected bucket).
#[derive(Debug, Clone)]
pub enum GranuleSource {
    Local(PathBuf),
    S3 {
        bucket: String,
        prefix: String,
        s3: S3Access,
    },
    Cmr {
        config: CmrConfig,
        /// How to reach the bucket the direct-access URLs point into.
        s3: S3Access,
    },
}

/// Why granules could not be listed: the objects could not be read, or the catalog
/// could not be searched.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Catalog(#[from] crate::cmr::CmrError),
}

impl ListError {
    /// Retryable when listing again may work (throttling, 5xx, a dropped connection).
    pub fn kind(&self) -> ErrorKind {
        match self {
            ListError::Source(e) => e.kind(),
            ListError::Catalog(e) => ErrorKind::retryable_if(e.is_retryable()),
        }
    }
}

/// What a listing found for a window of days.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// One granule per day, sorted.
    pub granules: Vec<Granule>,
    /// Days with more than one granule, and which was taken (CMR).
    pub duplicates: Vec<ResolvedDuplicate>,
    /// Granules the catalog lists but that cannot be used; their days count as missing.
    pub unusable: Vec<Unusable>,
}

/// The first day of the MUR record.
pub const FIRST_DAY: (i32, u32, u32) = (2002, 6, 1);

impl GranuleSource {
    /// Parse a directory path, `file://` URL, `s3://bucket/prefix`, or `cmr` (the
    /// collection of [`CmrConfig::from_env`]).
    pub fn parse(location: &str, s3: &S3Access) -> Result<Self, SourceError> {
        if location == "cmr" {
            return Ok(Self::Cmr {
                config: CmrConfig::from_env(),
                s3: s3.clone(),
            });
        }
        Ok(match Location::parse(location)? {
            Location::Local(dir) => Self::Local(dir),
            Location::S3 { bucket, key } => {
                let prefix = key.trim_end_matches('/');
                Self::S3 {
                    bucket,
                    prefix: if prefix.is_empty() {
                        String::new()
                    } else {
                        format!("{prefix}/")
                    },
                    s3: s3.clone(),
                }
            }
        })
    }

    /// URL prefix every granule of this source starts with (ends in `/`); the virtual
    /// chunk container of the store covers it.
    pub fn url_prefix(&self) -> String {
        match self {
            GranuleSource::Local(dir) => SourceRoot::Local(dir).url_prefix(),
            GranuleSource::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
            GranuleSource::Cmr { config, .. } => {
                let mut p = config.s3_prefix.clone();
                if !p.ends_with('/') {
                    p.push('/');
                }
                p
            }
        }
    }

    /// Where the store's references into this source point, for its repository config.
    pub fn root(&self) -> SourceRoot<'_> {
        match self {
            GranuleSource::Local(dir) => SourceRoot::Local(dir),
            GranuleSource::S3 { s3, .. } | GranuleSource::Cmr { s3, .. } => SourceRoot::S3 {
                url_prefix: self.url_prefix(),
                s3,
            },
        }
    }

    /// How granule objects are reached (S3 sources).
    pub fn s3(&self) -> Option<&S3Access> {
        match self {
            GranuleSource::Local(_) => None,
            GranuleSource::S3 { s3, .. } | GranuleSource::Cmr { s3, .. } => Some(s3),
        }
    }

    /// The granules for days `from..=to`, one per day.
    pub async fn list_between(&self, from: NaiveDate, to: NaiveDate) -> Result<Listing, ListError> {
        if let GranuleSource::Cmr { config, .. } = self {
            let search = CmrClient::new(config.clone())?.granules(from, to).await?;
            return Ok(Listing {
                granules: search.granules.iter().map(Granule::from).collect(),
                duplicates: search.duplicates,
                unusable: search.unusable,
            });
        }
        let mut granules = self.list_objects().await?;
        granules.retain(|g| g.date >= from && g.date <= to);
        Ok(Listing {
            granules,
            ..Default::default()
        })
    }

    /// All MUR-named granules in the source, sorted by date.
    pub async fn list(&self) -> Result<Vec<Granule>, ListError> {
        if let GranuleSource::Cmr { .. } = self {
            let (y, m, d) = FIRST_DAY;
            let first = NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default();
            let today = chrono::Utc::now().date_naive();
            return Ok(self.list_between(first, today).await?.granules);
        }
        Ok(self.list_objects().await?)
    }

    /// The MUR-named objects of a directory (not its subdirectories) or an S3 prefix,
    /// one per day.
    async fn list_objects(&self) -> Result<Vec<Granule>, SourceError> {
        let (objects, prefix): (Box<dyn ObjectStore>, &str) = match self {
            GranuleSource::Local(dir) => (Box::new(LocalDir::new(dir.clone())), ""),
            GranuleSource::S3 { bucket, prefix, s3 } => {
                (Box::new(S3Bucket::open(s3, bucket, "").await), prefix)
            }
            GranuleSource::Cmr { .. } => return Ok(Vec::new()),
        };
        let nested = |key: &str| matches!(self, GranuleSource::Local(_)) && key.contains('/');
        let mut found: Vec<Granule> = objects
            .list(prefix)
            .await?
            .into_iter()
            .filter(|key| !nested(key))
            .filter_map(|key| {
                Some(Granule {
                    date: granule::date_from_name(&key)?,
                    url: objects.url(&key),
                    revision: None,
                })
            })
            .collect();
        found.sort();
        found.dedup_by_key(|g| g.date);
        Ok(found)
    }
}

/// The outcome of discovery: what to ingest now, and why the list ends where it does.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Selection {
    pub granules: Vec<Granule>,
    /// The first day after the store (or the last selected day) that has no granule,
    /// if a later granule exists: a gap never enters the time axis.
    pub gap_at: Option<NaiveDate>,
    /// Granules that exist but are too recent (within the settling lag).
    pub settling: usize,
    /// Whether `limit` cut the list short.
    pub limited: bool,
}

/// Pick the consecutive days after `last_day` that are at least `lag_days` old on `today`.
///
/// Granules are replaced in place for days after their date, so only settled ones are
/// referenced; the list stops at the first missing day so the time axis stays uniform.
pub fn select_new(
    available: &[Granule],
    last_day: Option<NaiveDate>,
    today: NaiveDate,
    lag_days: u32,
    limit: Option<usize>,
) -> Selection {
    let newest_allowed = today - chrono::Days::new(u64::from(lag_days));
    let mut candidates: Vec<&Granule> = available
        .iter()
        .filter(|g| last_day.is_none_or(|d| g.date > d))
        .collect();
    candidates.sort_by_key(|g| g.date);
    let settling = candidates
        .iter()
        .filter(|g| g.date > newest_allowed)
        .count();
    let mut expected = last_day.and_then(|d| d.succ_opt());
    let mut granules = Vec::new();
    let mut gap_at = None;
    let mut limited = false;
    for g in candidates.into_iter().filter(|g| g.date <= newest_allowed) {
        if let Some(e) = expected
            && g.date != e
        {
            gap_at = Some(e);
            break;
        }
        if limit.is_some_and(|n| granules.len() >= n) {
            limited = true;
            break;
        }
        granules.push(g.clone());
        expected = g.date.succ_opt();
    }
    Selection {
        granules,
        gap_at,
        settling,
        limited,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 1, d).unwrap()
    }

    fn granules(days: &[u32]) -> Vec<Granule> {
        days.iter()
            .map(|d| Granule {
                date: day(*d),
                url: format!("file:///g/{d}"),
                revision: None,
            })
            .collect()
    }

    fn dates(s: &Selection) -> Vec<NaiveDate> {
        s.granules.iter().map(|g| g.date).collect()
    }

    #[test]
    fn stops_at_first_gap() {
        let s = select_new(&granules(&[1, 2, 3, 5, 6]), Some(day(1)), day(31), 10, None);
        assert_eq!(dates(&s), vec![day(2), day(3)]);
        assert_eq!(s.gap_at, Some(day(4)));
    }

    #[test]
    fn gap_right_after_store_adds_nothing() {
        let s = select_new(&granules(&[1, 3]), Some(day(1)), day(31), 10, None);
        assert!(s.granules.is_empty());
        assert_eq!(s.gap_at, Some(day(2)));
    }

    #[test]
    fn respects_lag_and_limit() {
        let s = select_new(&granules(&[1, 2, 3, 4, 5]), None, day(14), 10, None);
        assert_eq!(dates(&s), vec![day(1), day(2), day(3), day(4)]);
        assert_eq!(s.settling, 1);
        let s = select_new(&granules(&[1, 2, 3, 4, 5]), None, day(31), 0, Some(2));
        assert_eq!(dates(&s), vec![day(1), day(2)]);
        assert!(s.limited);
    }

    #[test]
    fn nothing_new() {
        let s = select_new(&granules(&[1, 2]), Some(day(2)), day(31), 0, None);
        assert!(s.granules.is_empty());
        assert_eq!(s.gap_at, None);
    }
}
