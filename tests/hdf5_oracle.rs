//! Our HDF5 metadata reader against libhdf5 on files written by libhdf5 and netCDF-C:
//! every chunk's (index, address, size, filter mask), shapes, types, filters, fill
//! values, attributes and link order must match what libhdf5 reports.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fixtures::{self, MurSpec};
use common::{Latency, all_datasets, oracle, read_file, read_ok};
use mursst::hdf5::{Dataset, Layout, ReadOptions, read_metadata};
use mursst::objects::Object;
use mursst::source::Counted;

fn assert_matches(path: &Path, base: u64) -> mursst::hdf5::FileMetadata {
    let ours = read_ok(path);
    let report = oracle::compare(path, &ours, base);
    eprintln!(
        "{}: compared {} datasets, {} chunks, {} attributes",
        path.display(),
        report.datasets,
        report.chunks,
        report.attributes
    );
    assert!(
        report.errors.is_empty(),
        "{} mismatches:\n{}",
        report.errors.len(),
        report.errors.join("\n")
    );
    assert!(report.datasets > 0);
    ours
}

fn dataset<'a>(m: &'a mursst::hdf5::FileMetadata, path: &str) -> &'a Dataset {
    all_datasets(m)
        .into_iter()
        .find(|d| d.path == path)
        .unwrap_or_else(|| panic!("no dataset {path}"))
}

fn index_kind(d: &Dataset) -> &'static str {
    match &d.layout {
        Layout::Chunked { index_kind, .. } => index_kind,
        Layout::Contiguous { .. } => "contiguous",
        Layout::Compact { .. } => "compact",
    }
}

#[test]
fn libver_latest_chunk_indexes_match_libhdf5() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latest.h5");
    fixtures::latest_indexes(&path);
    let m = assert_matches(&path, 0);
    assert_eq!(m.superblock_version, 3);
    for (ds, kind) in [
        ("/single_filtered", "single"),
        ("/single_plain", "single"),
        ("/implicit", "implicit"),
        ("/fixed_array", "fixed-array"),
        ("/fixed_array_paged", "fixed-array"),
        ("/fixed_array_paged_full", "fixed-array"),
        ("/earray", "extensible-array"),
        ("/earray_paged", "extensible-array"),
        ("/btree2_filtered", "btree-v2"),
        ("/btree2_plain", "btree-v2"),
        ("/btree2_deep", "btree-v2"),
        ("/contiguous", "contiguous"),
        ("/compact", "compact"),
    ] {
        assert_eq!(index_kind(dataset(&m, ds)), kind, "{ds}");
    }
    let fl = dataset(&m, "/fletcher32");
    assert!(
        fl.filters.iter().any(|f| f.id == 3),
        "fletcher32 reported: {:?}",
        fl.filters
    );
}

#[test]
fn libver_earliest_matches_libhdf5() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("earliest.h5");
    fixtures::earliest(&path, None, 0);
    let m = assert_matches(&path, 0);
    assert_eq!(m.superblock_version, 0);
    assert_eq!(index_kind(dataset(&m, "/btree_deep")), "btree-v1");
}

#[test]
fn superblock_v1_and_small_btree_nodes_match_libhdf5() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.h5");
    fixtures::earliest(&path, Some(4), 0);
    let m = assert_matches(&path, 0);
    assert_eq!(m.superblock_version, 1);
}

#[test]
fn userblock_addresses_are_absolute() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("userblock.h5");
    fixtures::earliest(&path, None, 1024);
    assert_matches(&path, 1024);
}

#[test]
fn mur_like_netcdf_matches_libhdf5() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mur.nc");
    fixtures::mur_like(&path, &MurSpec::tenth());
    let m = assert_matches(&path, 0);
    assert_eq!(m.superblock_version, 2);
    let sst = dataset(&m, "/analysed_sst");
    assert_eq!(index_kind(sst), "btree-v1");
    let Layout::Chunked { chunks, .. } = &sst.layout else {
        panic!()
    };
    assert_eq!(chunks.len(), 324);
    assert_eq!(index_kind(dataset(&m, "/time")), "contiguous");
    assert_eq!(
        m.root.attributes.len(),
        47 + 1,
        "47 global attributes plus _NCProperties"
    );
}

#[test]
fn mur_like_with_unlimited_time_matches_libhdf5() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mur_unlimited.nc");
    let spec = MurSpec {
        unlimited_time: true,
        nlat: 300,
        nlon: 500,
        ..MurSpec::tenth()
    };
    fixtures::mur_like(&path, &spec);
    assert_matches(&path, 0);
}

/// Requests, bytes and sequential round trips for a MUR-shaped granule, measured by
/// giving every request 50 ms of latency.
#[test]
fn mur_like_reads_few_bytes_in_few_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mur.nc");
    fixtures::mur_like(&path, &MurSpec::tenth());
    let size = std::fs::metadata(&path).unwrap().len();
    let (res, stats) = read_file(&path, &ReadOptions::default());
    res.unwrap();
    let delay = Duration::from_millis(50);
    let src = Arc::new(Counted::new(Arc::new(Latency {
        inner: Object::local(&path).unwrap(),
        delay,
    })));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    rt.block_on(read_metadata(src.as_ref(), &ReadOptions::default()))
        .unwrap();
    let rounds = start.elapsed().as_secs_f64() / delay.as_secs_f64();
    eprintln!(
        "MUR-like file of {size} bytes: {} requests (incl. 1 info), {} bytes read, ~{rounds:.1} sequential round trips",
        stats.requests(),
        stats.bytes()
    );
    assert!(stats.bytes() < 2_000_000, "read {} bytes", stats.bytes());
    assert!(rounds < 8.0, "{rounds:.1} round trips");
}

/// Decode chunks at the locations we report (with the filters we report) and compare
/// the values with libhdf5 reading the same hyperslab; edge chunks are partial.
fn assert_chunks_decode(path: &Path, datasets: &[&str], max_per_dataset: usize) {
    let m = read_ok(path);
    let bytes = std::fs::read(path).unwrap();
    let _g = common::libhdf5_lock();
    let file = libhdf5::File::open(path).unwrap();
    let mut checked = 0;
    for &name in datasets {
        let d = dataset(&m, name);
        let Layout::Chunked {
            chunk_shape,
            chunks,
            ..
        } = &d.layout
        else {
            panic!("{name} not chunked")
        };
        let elem = d.datatype.element_size().unwrap() as usize;
        let h5ds = file.dataset(name).unwrap();
        // First, last and a spread of chunks in between.
        let step = (chunks.len() / max_per_dataset.max(1)).max(1);
        let picks = chunks.iter().step_by(step).chain(chunks.last());
        for c in picks {
            let start: Vec<u64> = c
                .index
                .iter()
                .zip(chunk_shape)
                .map(|(i, s)| i * s)
                .collect();
            let count: Vec<u64> = start
                .iter()
                .zip(chunk_shape)
                .zip(&d.shape)
                .map(|((st, cs), sh)| (*cs).min(sh - st))
                .collect();
            let full = common::decode::decode_chunk(&bytes, d, c);
            assert_eq!(
                full.len() as u64,
                chunk_shape.iter().product::<u64>() * elem as u64,
                "{name} chunk {:?}",
                c.index
            );
            let ours = common::decode::clip(&full, chunk_shape, &count, elem);
            let theirs = oracle::read_hyperslab(&h5ds, &start, &count);
            assert!(
                ours == theirs,
                "{name}: chunk {:?} decodes to different values than libhdf5 reads",
                c.index
            );
            checked += 1;
        }
    }
    eprintln!("decoded and compared {checked} chunks");
}

#[test]
fn mur_like_chunks_decode_to_libhdf5_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mur.nc");
    let spec = MurSpec {
        nlat: 450,
        nlon: 900,
        ..MurSpec::tenth()
    };
    fixtures::mur_like(&path, &spec);
    assert_chunks_decode(
        &path,
        &[
            "/analysed_sst",
            "/mask",
            "/lat",
            "/lon",
            "/sea_ice_fraction",
        ],
        12,
    );
}

#[test]
fn latest_chunks_decode_to_libhdf5_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latest.h5");
    fixtures::latest_indexes(&path);
    assert_chunks_decode(
        &path,
        &[
            "/single_filtered",
            "/single_plain",
            "/implicit",
            "/fixed_array",
            "/fixed_array_paged",
            "/fixed_array_paged_full",
            "/fixed_array_maxdims",
            "/earray",
            "/earray_paged",
            "/btree2_filtered",
            "/btree2_plain",
            "/btree2_deep",
            "/fletcher32",
        ],
        10,
    );
    // Every chunk where libhdf5's chunk-info calls disagree with its data (see oracle.rs).
    assert_chunks_decode(&path, &["/earray_unlim_dim1"], usize::MAX);
}

#[test]
fn earliest_chunks_decode_to_libhdf5_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("earliest.h5");
    fixtures::earliest(&path, Some(4), 512);
    assert_chunks_decode(&path, &["/btree_deep", "/sparse", "/records"], 20);
}

/// With read-ahead and rounding off, no request touches a chunk's or a contiguous
/// dataset's bytes: the reader reads metadata only.
#[test]
fn reads_metadata_only() {
    let dir = tempfile::tempdir().unwrap();
    for (name, write) in [
        (
            "mur.nc",
            Box::new(|p: &Path| {
                fixtures::mur_like(
                    p,
                    &MurSpec {
                        nlat: 300,
                        nlon: 600,
                        ..MurSpec::tenth()
                    },
                )
            }) as Box<dyn Fn(&Path)>,
        ),
        ("latest.h5", Box::new(fixtures::latest_indexes)),
        (
            "earliest.h5",
            Box::new(|p: &Path| fixtures::earliest(p, None, 0)),
        ),
    ] {
        let path = dir.path().join(name);
        write(&path);
        let src = common::Recording {
            inner: Object::local(&path).unwrap(),
            ranges: Default::default(),
        };
        let options = ReadOptions {
            head_read_ahead: 0,
            min_read: 1,
            ..ReadOptions::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let m = rt.block_on(read_metadata(&src, &options)).unwrap();
        let ranges = src.ranges.into_inner().unwrap();
        let mut data = Vec::new();
        for d in all_datasets(&m) {
            match &d.layout {
                Layout::Chunked { chunks, .. } => {
                    data.extend(chunks.iter().map(|c| (c.address, c.address + c.size)))
                }
                Layout::Contiguous {
                    address: Some(a),
                    size,
                } => data.push((*a, a + size)),
                _ => {}
            }
        }
        for r in &ranges {
            for &(s, e) in &data {
                assert!(
                    r.end <= s || r.start >= e,
                    "{name}: read {r:?} overlaps data {s}..{e}"
                );
            }
        }
        eprintln!("{name}: {} metadata-only requests", ranges.len());
    }
}
