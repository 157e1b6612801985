//! Data equality: chunks read through the branch (zarrs resolving icechunk's virtual
//! references, which checks each granule's recorded version) against the same region
//! of the source read by libhdf5.

use std::path::Path;

use futures::{StreamExt, TryStreamExt};
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use zarrs::array::{Array, ArraySubset};
use zarrs_icechunk::AsyncIcechunkStore;

use super::sparse::{OpenError, SparseCopy, Window};
use super::{Branch, Rule, SAMPLE_CHUNKS, ValidateMode, ValidationError, failed};
use crate::error::BoxError;
use crate::objects;
use crate::objects::S3Access;
use crate::refs::DataType;
use crate::source::{Location, SourceError};
use crate::store::StoreError;
use crate::store::values::{Element, with_element_type};

/// How much data was compared.
#[derive(Debug, Default)]
pub(super) struct Compared {
    pub chunks: u64,
    pub values: u64,
    pub source_bytes: u64,
    pub fetched_on_demand: u64,
}

/// Compare the chosen chunks of every new day and data variable with the source.
pub(super) async fn compare_data(
    branch: &Branch<'_>,
    mode: ValidateMode,
    seed: u64,
    s3: &S3Access,
) -> Result<Compared, ValidationError> {
    let mut compared = Compared::default();
    for day in branch.days {
        let t = branch.index(day)?;
        let url = day.granule.url.as_str();
        let tmp = tempfile::tempdir().map_err(|e| oracle_error(url, "", e))?;
        let oracle = OracleFile::open(url, tmp.path(), s3).await?;
        for name in branch.after.data_arrays() {
            let array = branch.stores.array(&name).await?;
            let dtype = branch.after.schema.arrays[&name].data_type;
            let chunks = chunks_to_compare(array.chunk_grid_shape(), mode, seed, t, &name);
            let windows = granule_windows(&array, &chunks, &name)?;
            let dataset = oracle.dataset(&name, &windows).await?;
            let values: Vec<u64> = futures::stream::iter(chunks.into_iter().map(|chunk| {
                let job = Chunk {
                    array: &array,
                    dtype,
                    index: chunk,
                    source: dataset.clone(),
                    oracle: &oracle,
                    variable: &name,
                    granule: url,
                };
                job.compare()
            }))
            .buffer_unordered(4)
            .try_collect()
            .await?;
            compared.chunks += values.len() as u64;
            compared.values += values.iter().sum::<u64>();
        }
        compared.source_bytes += oracle.bytes_read();
        compared.fetched_on_demand += oracle.fetched_on_demand();
    }
    Ok(compared)
}

/// The granule as libhdf5 opens it: the file itself, or a sparse copy of a remote one
/// that holds what the comparison reads and fetches anything else libhdf5 asks for.
enum OracleFile {
    Local { file: libhdf5::File, url: String },
    Sparse { copy: SparseCopy, url: String },
}

impl OracleFile {
    async fn open(url: &str, tmp: &Path, s3: &S3Access) -> Result<Self, ValidationError> {
        let location = Location::parse(url).map_err(|e| oracle_error(url, "", e))?;
        if let Location::Local(path) = location {
            let file = tokio::task::spawn_blocking(move || {
                let _libhdf5 = crate::oracle::lock();
                // Read-only: no need for HDF5's advisory lock, which another process that
                // inherited a descriptor of the file may hold.
                libhdf5::FileBuilder::new()
                    .with_fapl(|p| p.file_locking(false))
                    .open(&path)
            })
            .await
            .map_err(|e| oracle_error(url, "", e))?
            .map_err(|e| oracle_error(url, "", e))?;
            return Ok(Self::Local {
                file,
                url: url.to_string(),
            });
        }
        let reader = objects::open(url, s3)
            .await
            .map_err(|e| fetch_error(url, "", e))?;
        let copy = SparseCopy::open(reader, tmp)
            .await
            .map_err(|e| explained(url, "", e))?;
        Ok(Self::Sparse {
            copy,
            url: url.to_string(),
        })
    }

    fn bytes_read(&self) -> u64 {
        match self {
            Self::Local { .. } => 0,
            Self::Sparse { copy, .. } => copy.bytes_read(),
        }
    }

    fn fetched_on_demand(&self) -> u64 {
        match self {
            Self::Local { .. } => 0,
            Self::Sparse { copy, .. } => copy.fetched_on_demand(),
        }
    }

    /// `variable` opened by libhdf5, with every source chunk meeting `windows` at hand.
    async fn dataset(
        &self,
        variable: &str,
        windows: &[Window],
    ) -> Result<libhdf5::Dataset, ValidationError> {
        let (file, url) = match self {
            Self::Local { file, url } => (file.clone(), url),
            Self::Sparse { copy, url } => (copy.file().clone(), url),
        };
        let var = variable.to_string();
        let dataset = tokio::task::spawn_blocking(move || {
            let _libhdf5 = crate::oracle::lock();
            file.dataset(&var)
        })
        .await
        .map_err(|e| oracle_error(url, variable, e))?
        .map_err(|e| self.failed(variable, e))?;
        if let Self::Sparse { copy, .. } = self {
            copy.fill_windows(&dataset, windows)
                .await
                .map_err(|e| explained(url, variable, e))?;
        }
        Ok(dataset)
    }

    /// What a failed libhdf5 call on this file means: a fetch inside it failed, or
    /// libhdf5 cannot read these bytes.
    fn failed(&self, variable: &str, e: impl Into<BoxError>) -> ValidationError {
        match self {
            Self::Local { url, .. } => oracle_error(url, variable, e),
            Self::Sparse { copy, url } => explained(url, variable, copy.explain(e)),
        }
    }
}

/// Where each chunk in `chunks` lies in the one-step granule (time index 0).
fn granule_windows(
    array: &Array<AsyncIcechunkStore>,
    chunks: &[Vec<u64>],
    variable: &str,
) -> Result<Vec<Window>, ValidationError> {
    chunks
        .iter()
        .map(|index| {
            let subset = array
                .chunk_subset_bounded(index)
                .map_err(|e| StoreError::zarr(format!("{variable} chunk {index:?}"), e))?;
            let mut start = subset.start().to_vec();
            let mut shape = subset.shape().to_vec();
            if let (Some(t), Some(n)) = (start.first_mut(), shape.first_mut()) {
                (*t, *n) = (0, 1);
            }
            Ok(Window { start, shape })
        })
        .collect()
}

/// The chunks of time step `t` to compare: all of them, or in `sample` mode a seeded
/// choice that always includes the last (partial) chunk.
fn chunks_to_compare(
    grid: &[u64],
    mode: ValidateMode,
    seed: u64,
    t: u64,
    name: &str,
) -> Vec<Vec<u64>> {
    let mut chunks = all_indices(&grid[1..]);
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
    chunks
        .into_iter()
        .map(|c| std::iter::once(t).chain(c).collect())
        .collect()
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

fn oracle_error(granule: &str, variable: &str, err: impl Into<BoxError>) -> ValidationError {
    ValidationError::Oracle {
        granule: granule.into(),
        variable: variable.into(),
        source: err.into(),
    }
}

fn fetch_error(granule: &str, variable: &str, err: SourceError) -> ValidationError {
    ValidationError::Fetch {
        granule: granule.into(),
        variable: variable.into(),
        retryable: err.is_retryable(),
        source: err.into(),
    }
}

fn explained(granule: &str, variable: &str, err: OpenError) -> ValidationError {
    match err {
        OpenError::Fetch(e) => fetch_error(granule, variable, e),
        OpenError::Oracle(e) => oracle_error(granule, variable, e),
    }
}

/// Tries to fetch a chunk through the branch.
const FETCH_ATTEMPTS: u32 = 5;

/// Wait before the next try, times the attempt.
const FETCH_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// Whether reading through the branch failed to get the bytes at all (icechunk's
/// `FetchError`, which reaches us through zarrs as text), rather than getting bytes that
/// are wrong: a granule changed since it was indexed, too few bytes, a failed decode.
fn is_fetch_error(e: &zarrs::array::ArrayError) -> bool {
    use zarrs::array::{ArrayError, CodecError};
    matches!(
        e,
        ArrayError::StorageError(_) | ArrayError::CodecError(CodecError::StorageError(_))
    ) && e.to_string().contains("error fetching virtual reference")
}

/// One chunk of one array to compare with the source.
struct Chunk<'a> {
    array: &'a Array<AsyncIcechunkStore>,
    dtype: DataType,
    index: Vec<u64>,
    source: libhdf5::Dataset,
    oracle: &'a OracleFile,
    variable: &'a str,
    granule: &'a str,
}

impl Chunk<'_> {
    /// Compare the part of the chunk inside the array; returns the values compared.
    async fn compare(self) -> Result<u64, ValidationError> {
        with_element_type!(self.dtype, T => self.compare_typed::<T>().await)
    }

    async fn compare_typed<T: Element + libhdf5::H5Type>(self) -> Result<u64, ValidationError> {
        let subset = self.array.chunk_subset_bounded(&self.index).map_err(|e| {
            StoreError::zarr(format!("{} chunk {:?}", self.variable, self.index), e)
        })?;
        let through_branch: Vec<T> = self.read_through_branch(&subset).await?;
        let from_source = read_source::<T>(self.source.clone(), &subset)
            .await
            .map_err(|e| self.oracle.failed(self.variable, e))?;
        self.check_equal(&through_branch, &from_source)?;
        Ok(through_branch.len() as u64)
    }

    /// The chunk as a reader of the store gets it. Fetching the granule's bytes is
    /// tried again after a failure (S3 drops connections now and then); what arrives must
    /// decode, or the data rule fails.
    async fn read_through_branch<T: Element>(
        &self,
        subset: &ArraySubset,
    ) -> Result<Vec<T>, ValidationError> {
        let mut attempt = 1;
        loop {
            match self.array.async_retrieve_array_subset(subset).await {
                Ok(values) => return Ok(values),
                Err(e) if is_fetch_error(&e) && attempt < FETCH_ATTEMPTS => {
                    tracing::debug!(variable = self.variable, chunk = ?self.index, attempt, error = %e,
                        "fetching through the branch failed: trying again");
                    tokio::time::sleep(FETCH_BACKOFF * attempt).await;
                    attempt += 1;
                }
                Err(e) if is_fetch_error(&e) => {
                    return Err(ValidationError::Fetch {
                        granule: self.granule.into(),
                        variable: self.variable.into(),
                        retryable: true,
                        source: format!(
                            "chunk {:?} through the branch: {}",
                            self.index,
                            crate::error::error_chain(&e)
                        )
                        .into(),
                    });
                }
                Err(e) => {
                    return Err(failed(
                        Rule::DataEqualToSource,
                        format!(
                            "{} chunk {:?} through the branch: {}",
                            self.variable,
                            self.index,
                            crate::error::error_chain(&e)
                        ),
                    ));
                }
            }
        }
    }

    fn check_equal<T: Element>(&self, ours: &[T], theirs: &[T]) -> Result<(), ValidationError> {
        let (granule, variable, chunk) = (self.granule, self.variable, &self.index);
        if ours.len() != theirs.len() {
            return Err(failed(
                Rule::DataEqualToSource,
                format!(
                    "{granule}: {variable} chunk {chunk:?}: {} values through the branch, {} in the source",
                    ours.len(),
                    theirs.len()
                ),
            ));
        }
        match ours.iter().zip(theirs).position(|(a, b)| !a.same(b)) {
            None => Ok(()),
            Some(i) => Err(failed(
                Rule::DataEqualToSource,
                format!(
                    "{granule}: {variable} chunk {chunk:?}: value {i} is {:?} through the branch, {:?} in the source",
                    ours[i], theirs[i]
                ),
            )),
        }
    }
}

/// The region of `subset` (in store coordinates) read from the one-step granule.
async fn read_source<T: Element + libhdf5::H5Type>(
    dataset: libhdf5::Dataset,
    subset: &ArraySubset,
) -> Result<Vec<T>, BoxError> {
    let start = subset.start().to_vec();
    let shape = subset.shape().to_vec();
    tokio::task::spawn_blocking(move || -> Result<Vec<T>, BoxError> {
        let _libhdf5 = crate::oracle::lock();
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
        let data = dataset.read_slice::<T, _, ndarray::IxDyn>(sel)?;
        // A fresh read is in C order: take its buffer (iterating an `IxDyn` array
        // element by element took most of a full validation's time).
        let len = data.len();
        if !data.is_standard_layout() {
            return Ok(data.iter().cloned().collect());
        }
        let (mut values, offset) = data.into_raw_vec_and_offset();
        let start = offset.unwrap_or(0);
        if start != 0 || values.len() != len {
            values = values[start..start + len].to_vec();
        }
        Ok(values)
    })
    .await?
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
    fn a_sample_always_holds_the_last_chunk() {
        let picked = chunks_to_compare(&[1, 3, 3], ValidateMode::Sample, 7, 5, "sst");
        assert_eq!(picked.len(), SAMPLE_CHUNKS);
        assert_eq!(picked.last(), Some(&vec![5, 2, 2]));
        assert!(picked.iter().all(|c| c[0] == 5));
        let all = chunks_to_compare(&[1, 3, 3], ValidateMode::Full, 7, 5, "sst");
        assert_eq!(all.len(), 9);
    }
}
