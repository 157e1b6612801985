//! The validate-against-source step: read the temporary branch back and check it
//! before `main` may move. Metadata rules come from the Python updater; data equality
//! compares values read through the branch by zarrs (resolving the virtual references)
//! with values libhdf5 reads from the source granule itself.

use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};
use icechunk::format::manifest::ChunkPayload;
use icechunk::format::{ChunkIndices, Path as NodePath};
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use zarrs::array::{Array, ArraySubset};
use zarrs_icechunk::AsyncIcechunkStore;

use crate::refs::ChunkData;
use crate::source::{self, S3Settings};
use crate::store::StoreError;
use crate::store::attributes::{DROPPED, TAKE_MAX, TAKE_MIN};
use crate::store::layout::TIME;
use crate::store::writer::{self, PreparedGranule, SessionStores, StoreState, Values, range_1d};

/// How much of the new data to compare with the source.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ValidateMode {
    /// No validation (the branch is still written and promoted).
    Off,
    /// Metadata rules only.
    Metadata,
    /// Rules plus a seeded random sample of chunks per day and variable.
    #[default]
    Sample,
    /// Rules plus every chunk of every new day.
    Full,
}

/// Chunks compared per day and variable in `sample` mode (the last, partial chunk is
/// always one of them).
pub const SAMPLE_CHUNKS: usize = 4;

/// A failed check, naming the rule and what was found.
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    #[error("validation failed: {rule}: {detail}")]
    Failed { rule: &'static str, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading the source with libhdf5: {granule}: {variable}: {message}")]
    Source {
        granule: String,
        variable: String,
        message: String,
    },
}

fn failed(rule: &'static str, detail: impl Into<String>) -> ValidationError {
    ValidationError::Failed {
        rule,
        detail: detail.into(),
    }
}

/// What validation checked.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ValidationReport {
    pub mode: ValidateMode,
    pub rules: Vec<&'static str>,
    pub references_checked: u64,
    pub chunks_compared: u64,
    pub values_compared: u64,
}

/// Validate the branch behind `stores` (already committed) against `before` (the store
/// the branch started from; `None` when it was empty) and the granules it added.
pub async fn validate(
    stores: &SessionStores,
    before: Option<&StoreState>,
    after: &StoreState,
    days: &[PreparedGranule],
    mode: ValidateMode,
    seed: u64,
    s3: &S3Settings,
) -> Result<ValidationReport, ValidationError> {
    let mut report = ValidationReport {
        mode,
        ..Default::default()
    };
    if mode == ValidateMode::Off {
        return Ok(report);
    }
    let days_before = before.map_or(0, |b| b.days);

    // The number of new time steps equals the number of granules.
    if after.days != days_before + days.len() as u64 {
        return Err(failed(
            "new time steps equal new granules",
            format!(
                "{} granules but time grew from {days_before} to {}",
                days.len(),
                after.days
            ),
        ));
    }
    report.rules.push("new time steps equal new granules");

    // The time axis has a uniform step and ends at the new days.
    let time = stores.array(TIME).await?;
    let times = Values::read(&time, &range_1d(0, after.days)).await?;
    let times = match times {
        Values::I32(_) | Values::I64(_) => times.as_i64(),
        other => {
            return Err(failed(
                "uniform time step",
                format!("time is not integer: {other:?}"),
            ));
        }
    };
    if let Some(w) = times.windows(2).find(|w| w[1] - w[0] != 86_400) {
        return Err(failed(
            "uniform time step",
            format!("step {} s between {} and {}", w[1] - w[0], w[0], w[1]),
        ));
    }
    for (i, day) in days.iter().enumerate() {
        let stored = times[days_before as usize + i];
        let expected = day.time_seconds - (after.time_epoch - day.time_epoch).num_seconds();
        if stored != expected {
            return Err(failed(
                "uniform time step",
                format!(
                    "time[{}] is {stored}, expected {expected} for {}",
                    days_before as usize + i,
                    day.granule.date
                ),
            ));
        }
    }
    report.rules.push("uniform time step");

    // Global attributes.
    let attrs = &after.group_attributes;
    if !attrs.contains_key("publisher_name") {
        return Err(failed("publisher_name present", "missing"));
    }
    report.rules.push("publisher_name present");
    if let Some(k) = DROPPED.iter().find(|k| attrs.contains_key(**k)) {
        return Err(failed(
            "dropped attributes absent",
            format!("{k} is present"),
        ));
    }
    report.rules.push("dropped attributes absent");
    if let Some(before) = before.filter(|b| b.days > 0) {
        for k in TAKE_MIN {
            let (old, new) = (before.group_attributes.get(*k), attrs.get(*k));
            if old.is_some() && old != new {
                return Err(failed(
                    "start attributes unchanged",
                    format!("{k} changed from {old:?} to {new:?}"),
                ));
            }
        }
        report.rules.push("start attributes unchanged");
        for k in TAKE_MAX {
            let (old, new) = (before.group_attributes.get(*k), attrs.get(*k));
            if old.is_some() && old == new {
                return Err(failed(
                    "stop attributes changed",
                    format!("{k} is still {old:?}"),
                ));
            }
        }
        report.rules.push("stop attributes changed");
    }

    // Static coordinates equal the store's (or, for a new store, the granule's).
    for (name, values) in &after.schema.coordinates {
        let reference = match before.filter(|b| b.days > 0) {
            Some(b) => b.schema.coordinates.get(name),
            None => days.first().and_then(|d| d.coordinates.get(name)),
        };
        if reference != Some(values) {
            return Err(failed("coordinates unchanged", format!("{name} differs")));
        }
    }
    report.rules.push("coordinates unchanged");

    // Every new granule is referenced by the branch's virtual chunks, exactly as indexed.
    let data_arrays = after.data_arrays();
    {
        let session = stores.icechunk.session();
        let session = session.read().await;
        for (i, day) in days.iter().enumerate() {
            let t = days_before + i as u64;
            for name in &data_arrays {
                let var = day.refs.variable(name).ok_or_else(|| {
                    failed(
                        "granule referenced",
                        format!("{name} missing from {}", day.granule.url),
                    )
                })?;
                let path = NodePath::new(&format!("/{name}"))
                    .map_err(|e| failed("granule referenced", e.to_string()))?;
                for (index, data) in &var.chunks {
                    let ChunkData::Ref(expected) = data else {
                        continue;
                    };
                    let coords: Vec<u32> = std::iter::once(t)
                        .chain(index.iter().skip(1).copied())
                        .map(|c| c as u32)
                        .collect();
                    let got = session
                        .get_chunk_ref(&path, &ChunkIndices(coords.clone()))
                        .await
                        .map_err(|e| {
                            StoreError::icechunk(format!("reading {name} {coords:?}"), e)
                        })?;
                    match got {
                        Some(ChunkPayload::Virtual(r))
                            if r.location.url() == day.refs.object.url
                                && r.offset == expected.offset
                                && r.length == expected.length => {}
                        other => {
                            return Err(failed(
                                "granule referenced",
                                format!(
                                    "{name} chunk {coords:?} should reference {} at {}+{}, found {other:?}",
                                    day.granule.url, expected.offset, expected.length
                                ),
                            ));
                        }
                    }
                    report.references_checked += 1;
                }
            }
        }
    }
    report.rules.push("granule referenced");

    if mode == ValidateMode::Metadata {
        return Ok(report);
    }

    // Data equality through the branch against libhdf5 on the source.
    let tmp = tempfile::tempdir().map_err(|e| failed("data equality", e.to_string()))?;
    for (i, day) in days.iter().enumerate() {
        let t = days_before + i as u64;
        let local = local_copy(&day.granule.url, tmp.path(), s3).await?;
        for name in &data_arrays {
            let array = stores.array(name).await?;
            let dataset = open_dataset(local.clone(), name, &day.granule.url).await?;
            let grid = array.chunk_grid_shape().to_vec();
            let mut chunks: Vec<Vec<u64>> = all_indices(&grid[1..]);
            if mode == ValidateMode::Sample && chunks.len() > SAMPLE_CHUNKS {
                let last = chunks.pop().unwrap_or_default();
                let mut rng = rand::rngs::StdRng::seed_from_u64(
                    seed ^ (t.wrapping_mul(0x9e37_79b9_7f4a_7c15)) ^ fxhash(name),
                );
                let mut picked: Vec<Vec<u64>> = chunks
                    .choose_multiple(&mut rng, SAMPLE_CHUNKS - 1)
                    .cloned()
                    .collect();
                picked.push(last);
                chunks = picked;
            }
            let results: Vec<u64> = futures::stream::iter(chunks.into_iter().map(|c| {
                let mut idx = vec![t];
                idx.extend(c);
                compare_chunk(
                    &array,
                    idx,
                    dataset.clone(),
                    name.clone(),
                    day.granule.url.clone(),
                )
            }))
            .buffer_unordered(4)
            .try_collect()
            .await?;
            report.chunks_compared += results.len() as u64;
            report.values_compared += results.iter().sum::<u64>();
        }
    }
    report.rules.push("data equal to source");
    Ok(report)
}

fn fxhash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Every index of a grid, in C order.
fn all_indices(grid: &[u64]) -> Vec<Vec<u64>> {
    let mut out = vec![Vec::new()];
    for &n in grid {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                (0..n).map(move |i| {
                    let mut p = prefix.clone();
                    p.push(i);
                    p
                })
            })
            .collect();
    }
    out
}

/// A local path for libhdf5 to open: the file itself, or a download of an S3 object.
async fn local_copy(url: &str, tmp: &Path, s3: &S3Settings) -> Result<PathBuf, ValidationError> {
    let err = |message: String| ValidationError::Source {
        granule: url.into(),
        variable: String::new(),
        message,
    };
    if url.starts_with("file://") {
        return url::Url::parse(url)
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .ok_or_else(|| err("not a file URL".into()));
    }
    let reader = source::open(url, s3)
        .await
        .map_err(|e| err(e.to_string()))?;
    let size = reader.info().await.map_err(|e| err(e.to_string()))?.size;
    let path = tmp.join(url.rsplit('/').next().unwrap_or("granule.nc"));
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| err(e.to_string()))?;
    const PART: u64 = 16 << 20;
    let mut pos = 0;
    while pos < size {
        let end = (pos + PART).min(size);
        let bytes = reader
            .read_range(pos..end)
            .await
            .map_err(|e| err(e.to_string()))?;
        tokio::io::AsyncWriteExt::write_all(&mut file, &bytes)
            .await
            .map_err(|e| err(e.to_string()))?;
        pos = end;
    }
    Ok(path)
}

/// Open a variable of the source granule with libhdf5, once for all its chunks.
async fn open_dataset(
    path: PathBuf,
    variable: &str,
    granule: &str,
) -> Result<libhdf5::Dataset, ValidationError> {
    let var = variable.to_string();
    tokio::task::spawn_blocking(move || -> Result<libhdf5::Dataset, String> {
        let _libhdf5 = crate::oracle::lock();
        // Read-only: no need for HDF5's advisory lock, which another process that
        // inherited a descriptor of the file may hold.
        let file = libhdf5::FileBuilder::new()
            .with_fapl(|p| p.file_locking(false))
            .open(&path)
            .map_err(|e| e.to_string())?;
        file.dataset(&var).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r)
    .map_err(|message| ValidationError::Source {
        granule: granule.into(),
        variable: variable.into(),
        message,
    })
}

trait SameValue {
    fn same(&self, other: &Self) -> bool;
}

macro_rules! same_int {
    ($($t:ty),*) => {$(impl SameValue for $t { fn same(&self, o: &Self) -> bool { self == o } })*};
}
same_int!(i8, i16, i32, i64, u8, u16, u32, u64);
impl SameValue for f32 {
    fn same(&self, o: &Self) -> bool {
        self.to_bits() == o.to_bits() || (self.is_nan() && o.is_nan())
    }
}
impl SameValue for f64 {
    fn same(&self, o: &Self) -> bool {
        self.to_bits() == o.to_bits() || (self.is_nan() && o.is_nan())
    }
}

/// Compare one chunk (the part inside the array) read through the branch with the same
/// region read from the source by libhdf5; returns the number of values compared.
async fn compare_chunk(
    array: &Array<AsyncIcechunkStore>,
    chunk: Vec<u64>,
    source: libhdf5::Dataset,
    variable: String,
    granule: String,
) -> Result<u64, ValidationError> {
    let subset = array
        .chunk_subset_bounded(&chunk)
        .map_err(|e| StoreError::zarr(format!("{variable} chunk {chunk:?}"), e))?;
    match writer::zarr_data_type(array).as_str() {
        "int8" => compare_typed::<i8>(array, &subset, chunk, source, variable, granule).await,
        "int16" => compare_typed::<i16>(array, &subset, chunk, source, variable, granule).await,
        "int32" => compare_typed::<i32>(array, &subset, chunk, source, variable, granule).await,
        "int64" => compare_typed::<i64>(array, &subset, chunk, source, variable, granule).await,
        "uint8" => compare_typed::<u8>(array, &subset, chunk, source, variable, granule).await,
        "uint16" => compare_typed::<u16>(array, &subset, chunk, source, variable, granule).await,
        "float32" => compare_typed::<f32>(array, &subset, chunk, source, variable, granule).await,
        "float64" => compare_typed::<f64>(array, &subset, chunk, source, variable, granule).await,
        other => Err(failed(
            "data equal to source",
            format!("{variable}: unsupported type {other}"),
        )),
    }
}

async fn compare_typed<T>(
    array: &Array<AsyncIcechunkStore>,
    subset: &ArraySubset,
    chunk: Vec<u64>,
    source: libhdf5::Dataset,
    variable: String,
    granule: String,
) -> Result<u64, ValidationError>
where
    T: libhdf5::H5Type
        + zarrs::array::ElementOwned
        + SameValue
        + Copy
        + Send
        + Sync
        + std::fmt::Debug
        + 'static,
{
    let through_branch: Vec<T> = array
        .async_retrieve_array_subset(subset)
        .await
        .map_err(|e| {
            failed(
                "data equal to source",
                format!(
                    "{variable} chunk {chunk:?} through the branch: {}",
                    crate::store::concise(&e)
                ),
            )
        })?;
    let start = subset.start().to_vec();
    let shape = subset.shape().to_vec();
    let from_source: Vec<T> = tokio::task::spawn_blocking(move || -> Result<Vec<T>, String> {
        let _libhdf5 = crate::oracle::lock();
        let ds = source;
        // The granule holds one time step: the store's time index maps to 0.
        let mut slices = vec![libhdf5::SliceOrIndex::SliceCount {
            start: 0,
            step: 1,
            count: 1,
            block: 1,
        }];
        for (s, n) in start.iter().zip(&shape).skip(1) {
            slices.push(libhdf5::SliceOrIndex::SliceCount {
                start: *s as usize,
                step: 1,
                count: *n as usize,
                block: 1,
            });
        }
        let sel = libhdf5::Selection::from(libhdf5::Hyperslab::from(slices));
        let data = ds
            .read_slice::<T, _, ndarray::IxDyn>(sel)
            .map_err(|e| e.to_string())?;
        Ok(data.into_iter().collect())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r)
    .map_err(|message| ValidationError::Source {
        granule: granule.clone(),
        variable: variable.clone(),
        message,
    })?;
    if through_branch.len() != from_source.len() {
        return Err(failed(
            "data equal to source",
            format!(
                "{granule}: {variable} chunk {chunk:?}: {} values through the branch, {} in the source",
                through_branch.len(),
                from_source.len()
            ),
        ));
    }
    if let Some(i) = through_branch
        .iter()
        .zip(&from_source)
        .position(|(a, b)| !a.same(b))
    {
        return Err(failed(
            "data equal to source",
            format!(
                "{granule}: {variable} chunk {chunk:?}: value {i} is {:?} through the branch, {:?} in the source",
                through_branch[i], from_source[i]
            ),
        ));
    }
    Ok(through_branch.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_cover_the_grid_in_c_order() {
        assert_eq!(
            all_indices(&[2, 3]),
            vec![
                vec![0, 0],
                vec![0, 1],
                vec![0, 2],
                vec![1, 0],
                vec![1, 1],
                vec![1, 2]
            ]
        );
        assert_eq!(all_indices(&[]), vec![Vec::<u64>::new()]);
    }

    #[test]
    fn nan_equals_nan_but_bits_matter_otherwise() {
        assert!(f32::NAN.same(&f32::NAN));
        assert!(!1.0f32.same(&2.0));
        assert!(3i16.same(&3));
    }
}
