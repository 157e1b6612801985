//! NASA CMR granule search: which MUR granules exist, for which day, where they are in
//! S3, and in which revision, paging with `CMR-Search-After` and retrying what CMR
//! answers with 429 / 5xx.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::granule::{self, Granule};
use crate::retry::Backoff;

/// Production CMR.
pub const DEFAULT_CMR_URL: &str = "https://cmr.earthdata.nasa.gov";
/// MUR SST v4.1's short name.
pub const DEFAULT_COLLECTION: &str = "MUR-JPL-L4-GLOB-v4.1";
/// PO.DAAC's CMR provider.
pub const DEFAULT_PROVIDER: &str = "POCLOUD";
/// Where MUR's direct-access URLs point.
pub const DEFAULT_S3_PREFIX: &str = "s3://podaac-ops-cumulus-protected/MUR-JPL-L4-GLOB-v4.1/";

/// How to reach CMR and what to ask it for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CmrConfig {
    pub url: String,
    pub collection: String,
    pub provider: String,
    /// The S3 prefix every granule's direct-access URL starts with (the store's
    /// virtual chunk container).
    pub s3_prefix: String,
    pub page_size: u32,
    /// Attempts per page for 429, 5xx, timeouts and broken connections.
    pub attempts: u32,
    /// First backoff between attempts (doubled each time, with full jitter).
    pub backoff_ms: u64,
    pub timeout_s: u64,
}

impl Default for CmrConfig {
    fn default() -> Self {
        Self {
            url: DEFAULT_CMR_URL.into(),
            collection: DEFAULT_COLLECTION.into(),
            provider: DEFAULT_PROVIDER.into(),
            s3_prefix: DEFAULT_S3_PREFIX.into(),
            page_size: 2000,
            attempts: 5,
            backoff_ms: 500,
            timeout_s: 60,
        }
    }
}

impl CmrConfig {
    /// The defaults with `MURSST_CMR_URL`, `MURSST_COLLECTION`, `MURSST_PROVIDER` and
    /// `MURSST_CMR_S3_PREFIX` applied.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let d = Self::default();
        Self {
            url: var("MURSST_CMR_URL").unwrap_or(d.url),
            collection: var("MURSST_COLLECTION").unwrap_or(d.collection),
            provider: var("MURSST_PROVIDER").unwrap_or(d.provider),
            s3_prefix: var("MURSST_CMR_S3_PREFIX").unwrap_or(d.s3_prefix),
            ..d
        }
    }
}

/// Why a search failed; each names the URL, the concept-id or the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum CmrError {
    #[error("CMR {url}: HTTP {status}: {}", .messages.join("; "))]
    Http {
        url: String,
        status: u16,
        messages: Vec<String>,
    },
    #[error("CMR {url}: gave up after {attempts} attempts: {last}")]
    GaveUp {
        url: String,
        attempts: u32,
        last: String,
    },
    #[error("CMR {url}: the page is not valid JSON (truncated?): {source}")]
    Body {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("CMR granule {}: {field}: {message}", .concept_id.as_deref().unwrap_or("(no concept-id)"))]
    Field {
        concept_id: Option<String>,
        field: String,
        message: String,
    },
    #[error("CMR client: {0}")]
    Client(#[source] reqwest::Error),
}

impl CmrError {
    /// Whether trying again may work (throttled, 5xx, unreachable).
    pub fn is_retryable(&self) -> bool {
        matches!(self, CmrError::GaveUp { .. })
            || matches!(self, CmrError::Http { status, .. } if *status == 429 || *status >= 500)
    }
}

/// One granule of the collection, as CMR describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CmrGranule {
    pub concept_id: String,
    pub revision_id: u64,
    pub revision_date: DateTime<Utc>,
    pub granule_ur: String,
    pub begin: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The day the granule is for: its temporal extent ends at 21:00 that day.
    pub day: NaiveDate,
    pub s3_url: String,
    pub size: Option<u64>,
    pub md5: Option<String>,
}

impl From<&CmrGranule> for Granule {
    fn from(g: &CmrGranule) -> Self {
        Granule {
            date: g.day,
            url: g.s3_url.clone(),
            revision: Some(format!("{} rev {}", g.concept_id, g.revision_id)),
        }
    }
}

/// A granule CMR lists but that cannot be used; its day counts as missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unusable {
    pub concept_id: String,
    pub day: Option<NaiveDate>,
    pub reason: String,
}

/// Two or more granules for one day, and the one kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedDuplicate {
    pub day: NaiveDate,
    pub kept: String,
    pub dropped: Vec<String>,
    pub reason: String,
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub hits: Option<u64>,
    pub granules: Vec<CmrGranule>,
    pub unusable: Vec<Unusable>,
    /// Items on the page (usable or not): an empty page ends the search.
    pub items: usize,
}

/// A whole search: one granule per day, sorted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CmrSearch {
    pub granules: Vec<CmrGranule>,
    pub duplicates: Vec<ResolvedDuplicate>,
    pub unusable: Vec<Unusable>,
    pub pages: u32,
    pub hits: Option<u64>,
    /// Requests that were retried (429, 5xx, connection failures).
    pub retries: u32,
}

fn field(concept_id: Option<&str>, field: &str, message: impl Into<String>) -> CmrError {
    CmrError::Field {
        concept_id: concept_id.map(str::to_string),
        field: field.into(),
        message: message.into(),
    }
}

fn time_at(item: &Value, concept_id: &str, path: &str) -> Result<DateTime<Utc>, CmrError> {
    let text = item
        .pointer(path)
        .and_then(Value::as_str)
        .ok_or_else(|| field(Some(concept_id), path, "missing"))?;
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| field(Some(concept_id), path, format!("{text:?}: {e}")))
}

/// A MUR granule's day from its temporal extent: 24 hours ending 21:00 UTC that day.
fn day_of(concept_id: &str, begin: DateTime<Utc>, end: DateTime<Utc>) -> Result<NaiveDate, String> {
    use chrono::Timelike;
    if end - begin != chrono::Duration::hours(24) || end.hour() != 21 || end.minute() != 0 {
        return Err(format!(
            "temporal extent {begin}..{end} of {concept_id} is not 21:00 the day before to 21:00 the day"
        ));
    }
    Ok(end.date_naive())
}

/// Parse one UMM-G item; `Ok(Err(..))` is a granule that exists but cannot be used.
fn parse_item(item: &Value) -> Result<Result<CmrGranule, Unusable>, CmrError> {
    let concept_id = item
        .pointer("/meta/concept-id")
        .and_then(Value::as_str)
        .ok_or_else(|| field(None, "meta/concept-id", "missing"))?;
    let cid = Some(concept_id);
    let revision_id = item
        .pointer("/meta/revision-id")
        .and_then(Value::as_u64)
        .ok_or_else(|| field(cid, "meta/revision-id", "missing or not a number"))?;
    let revision_date = time_at(item, concept_id, "/meta/revision-date")?;
    let granule_ur = item
        .pointer("/umm/GranuleUR")
        .and_then(Value::as_str)
        .ok_or_else(|| field(cid, "umm/GranuleUR", "missing"))?
        .to_string();
    let begin = time_at(
        item,
        concept_id,
        "/umm/TemporalExtent/RangeDateTime/BeginningDateTime",
    )?;
    let end = time_at(
        item,
        concept_id,
        "/umm/TemporalExtent/RangeDateTime/EndingDateTime",
    )?;
    let unusable = |day, reason: String| Unusable {
        concept_id: concept_id.into(),
        day,
        reason,
    };
    let day = match day_of(concept_id, begin, end) {
        Ok(d) => d,
        Err(reason) => return Ok(Err(unusable(None, reason))),
    };
    let urls = item
        .pointer("/umm/RelatedUrls")
        .and_then(Value::as_array)
        .ok_or_else(|| field(cid, "umm/RelatedUrls", "missing"))?;
    let direct = urls.iter().find(|u| {
        u.get("Type").and_then(Value::as_str) == Some("GET DATA VIA DIRECT ACCESS")
            && u.get("URL")
                .and_then(Value::as_str)
                .is_some_and(|s| s.starts_with("s3://") && s.ends_with(".nc"))
    });
    let Some(s3_url) = direct.and_then(|u| u.get("URL")).and_then(Value::as_str) else {
        return Ok(Err(unusable(
            Some(day),
            "umm/RelatedUrls: no GET DATA VIA DIRECT ACCESS s3:// link to the .nc file".into(),
        )));
    };
    if granule::date_from_name(s3_url) != Some(day) {
        return Ok(Err(unusable(
            Some(day),
            format!("its temporal extent says {day}, but the file name {s3_url} does not"),
        )));
    }
    let (size, md5) = archive_info(item, s3_url);
    Ok(Ok(CmrGranule {
        concept_id: concept_id.into(),
        revision_id,
        revision_date,
        granule_ur,
        begin,
        end,
        day,
        s3_url: s3_url.into(),
        size,
        md5,
    }))
}

/// The size and MD5 CMR lists for the file behind `s3_url`, where it lists them.
fn archive_info(item: &Value, s3_url: &str) -> (Option<u64>, Option<String>) {
    let file = item
        .pointer("/umm/DataGranule/ArchiveAndDistributionInformation")
        .and_then(Value::as_array)
        .and_then(|files| {
            files.iter().find(|f| {
                f.get("Name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| s3_url.ends_with(n))
            })
        });
    let size = file
        .and_then(|f| f.get("SizeInBytes"))
        .and_then(Value::as_u64);
    let md5 = file
        .and_then(|f| f.pointer("/Checksum/Value"))
        .and_then(Value::as_str)
        .map(str::to_string);
    (size, md5)
}

/// Parse a `granules.umm_json` page.
pub fn parse_page(url: &str, body: &[u8]) -> Result<Page, CmrError> {
    let value: Value = serde_json::from_slice(body).map_err(|source| CmrError::Body {
        url: url.into(),
        source,
    })?;
    let items = value
        .get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| field(None, "items", "missing from the page"))?;
    let mut page = Page {
        hits: value.get("hits").and_then(Value::as_u64),
        granules: Vec::new(),
        unusable: Vec::new(),
        items: items.len(),
    };
    for item in items {
        match parse_item(item)? {
            Ok(g) => page.granules.push(g),
            Err(u) => page.unusable.push(u),
        }
    }
    Ok(page)
}

/// One granule per day: the newest revision (by revision date, then id), each choice
/// reported.
pub fn resolve_duplicates(mut all: Vec<CmrGranule>) -> (Vec<CmrGranule>, Vec<ResolvedDuplicate>) {
    all.sort_by(|a, b| {
        (a.day, b.revision_date, b.revision_id).cmp(&(b.day, a.revision_date, a.revision_id))
    });
    let mut kept: Vec<CmrGranule> = Vec::new();
    let mut duplicates: Vec<ResolvedDuplicate> = Vec::new();
    for g in all {
        match kept.last() {
            Some(k) if k.day == g.day => {
                let label = |g: &CmrGranule| {
                    format!("{} rev {} ({})", g.concept_id, g.revision_id, g.granule_ur)
                };
                let reason = format!("newest revision date {}", k.revision_date);
                match duplicates.last_mut() {
                    Some(d) if d.day == g.day => d.dropped.push(label(&g)),
                    _ => duplicates.push(ResolvedDuplicate {
                        day: g.day,
                        kept: label(k),
                        dropped: vec![label(&g)],
                        reason,
                    }),
                }
            }
            _ => kept.push(g),
        }
    }
    (kept, duplicates)
}

/// A CMR client for one collection.
#[derive(Debug, Clone)]
pub struct CmrClient {
    http: reqwest::Client,
    pub config: CmrConfig,
}

impl CmrClient {
    pub fn new(config: CmrConfig) -> Result<Self, CmrError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_s))
            .user_agent(concat!("mursst/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(CmrError::Client)?;
        Ok(Self { http, config })
    }

    /// Every granule whose temporal extent meets `start..=end` (days), one per day.
    pub async fn granules(&self, start: NaiveDate, end: NaiveDate) -> Result<CmrSearch, CmrError> {
        let url = format!(
            "{}/search/granules.umm_json",
            self.config.url.trim_end_matches('/')
        );
        let temporal = format!(
            "{}T00:00:00Z,{}T23:59:59Z",
            start.pred_opt().unwrap_or(start),
            end
        );
        let mut search = CmrSearch::default();
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        let mut seen = 0u64;
        loop {
            let (page, next) = self
                .page(&url, &temporal, after.as_deref(), &mut search.retries)
                .await?;
            search.pages += 1;
            search.hits = search.hits.or(page.hits);
            seen += page.items as u64;
            all.extend(
                page.granules
                    .into_iter()
                    .filter(|g| g.day >= start && g.day <= end),
            );
            search.unusable.extend(page.unusable);
            // CMR may return a page shorter than asked for before the end: only an empty
            // page, or as many items as it said it has, ends the search.
            let exhausted = page.items == 0 || search.hits.is_some_and(|hits| seen >= hits);
            match next {
                Some(n) if !exhausted && after.as_deref() != Some(n.as_str()) => after = Some(n),
                Some(_) if !exhausted => {
                    tracing::warn!(pages = search.pages, seen, hits = ?search.hits,
                        "CMR returned the same search-after token twice: stopping");
                    break;
                }
                _ => break,
            }
        }
        let (granules, duplicates) = resolve_duplicates(all);
        search.granules = granules;
        search.duplicates = duplicates;
        Ok(search)
    }

    /// One page, retried on 429 / 5xx / transport failures; the next search-after token.
    async fn page(
        &self,
        url: &str,
        temporal: &str,
        after: Option<&str>,
        retries: &mut u32,
    ) -> Result<(Page, Option<String>), CmrError> {
        let backoff = Backoff {
            attempts: self.config.attempts.max(1),
            first: Duration::from_millis(self.config.backoff_ms),
        };
        let once = || self.page_once(url, temporal, after);
        let transient = |e: &PageFailure| matches!(e, PageFailure::Transient(_));
        match backoff.retry(once, transient, |_, _| *retries += 1).await {
            Ok(page) => Ok(page),
            Err(PageFailure::Final(e)) => Err(e),
            Err(PageFailure::Transient(last)) => Err(CmrError::GaveUp {
                url: url.into(),
                attempts: backoff.attempts,
                last,
            }),
        }
    }

    /// One request for a page.
    async fn page_once(
        &self,
        url: &str,
        temporal: &str,
        after: Option<&str>,
    ) -> Result<(Page, Option<String>), PageFailure> {
        let mut req = self.http.get(url).query(&[
            ("short_name", self.config.collection.as_str()),
            ("provider", self.config.provider.as_str()),
            ("temporal[]", temporal),
            ("sort_key", "start_date"),
            ("page_size", &self.config.page_size.to_string()),
        ]);
        if let Some(a) = after {
            req = req.header("CMR-Search-After", a);
        }
        let transport =
            |e: reqwest::Error| PageFailure::Transient(crate::error::error_chain(&e.without_url()));
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let next = header("CMR-Search-After");
        let hits_header = header("CMR-Hits").and_then(|h| h.trim().parse::<u64>().ok());
        let body = resp.bytes().await.map_err(transport)?;
        if status == 200 {
            let mut page = parse_page(url, &body).map_err(PageFailure::Final)?;
            page.hits = page.hits.or(hits_header);
            return Ok((page, next));
        }
        let messages = error_messages(&body);
        if status == 429 || status >= 500 {
            let last = format!("HTTP {status}: {}", messages.join("; "));
            return Err(PageFailure::Transient(last));
        }
        Err(PageFailure::Final(CmrError::Http {
            url: url.into(),
            status,
            messages,
        }))
    }
}

/// Why a page request failed: worth another try (the message is kept for the error
/// after the last), or final.
enum PageFailure {
    Transient(String),
    Final(CmrError),
}

/// CMR's own messages from an `{"errors": [...]}` body (or the body's start).
fn error_messages(body: &[u8]) -> Vec<String> {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<Value>,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(e) => e
            .errors
            .into_iter()
            .map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect(),
        Err(_) => vec![String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Value {
        serde_json::from_str(include_str!("../tests/data/cmr/granule-umm-item.json")).unwrap()
    }

    fn page(items: Vec<Value>) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"hits": items.len(), "took": 3, "items": items}))
            .unwrap()
    }

    #[test]
    fn a_recorded_item_parses_to_its_day_url_revision_and_checksum() {
        let p = parse_page("u", &page(vec![template()])).unwrap();
        let g = &p.granules[0];
        assert_eq!(g.concept_id, "G3358913476-POCLOUD");
        assert_eq!(g.day, NaiveDate::from_ymd_opt(2025, 1, 1).unwrap());
        assert!(
            g.s3_url
                .starts_with("s3://podaac-ops-cumulus-protected/MUR-JPL-L4-GLOB-v4.1/20250101")
        );
        assert_eq!((g.revision_id, g.size), (1, Some(741869337)));
        assert_eq!(g.md5.as_deref(), Some("5b4b6d0a0a3e5c1f3e0e6c1b0f2d6e55"));
    }

    #[test]
    fn broken_items_name_the_concept_id_and_field() {
        let mut t = template();
        t["umm"]["TemporalExtent"]["RangeDateTime"]
            .as_object_mut()
            .unwrap()
            .remove("EndingDateTime");
        let err = parse_page("u", &page(vec![t])).unwrap_err().to_string();
        assert!(
            err.contains("G3358913476-POCLOUD") && err.contains("EndingDateTime"),
            "{err}"
        );
        let body = page(vec![template()]);
        let err = parse_page("u", &body[..body.len() / 2])
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated"), "{err}");
        let mut t = template();
        t["umm"]["RelatedUrls"]
            .as_array_mut()
            .unwrap()
            .retain(|u| u["Type"] != "GET DATA VIA DIRECT ACCESS");
        let p = parse_page("u", &page(vec![t])).unwrap();
        assert!(p.granules.is_empty());
        assert!(
            p.unusable[0].reason.contains("RelatedUrls"),
            "{:?}",
            p.unusable
        );
    }

    #[test]
    fn the_newest_revision_of_a_day_wins() {
        let mut a = parse_page("u", &page(vec![template()]))
            .unwrap()
            .granules
            .remove(0);
        let mut b = a.clone();
        b.concept_id = "G2-POCLOUD".into();
        b.revision_date += chrono::Duration::days(3);
        a.revision_id = 4;
        let (kept, dups) = resolve_duplicates(vec![a.clone(), b.clone()]);
        assert_eq!(kept, [b]);
        assert_eq!(dups.len(), 1);
        assert!(
            dups[0].dropped[0].contains("G3358913476-POCLOUD rev 4"),
            "{dups:?}"
        );
    }
}
