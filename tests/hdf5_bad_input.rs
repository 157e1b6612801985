//! Malformed input: truncated files, random bytes, wrong magic, cycles, lengths past
//! EOF. Every case must end in a clean `Err` naming the file and the object/field —
//! never a panic or a hang — or, for a truncation that spared all metadata, in
//! exactly the metadata of the whole file.

#![allow(clippy::result_large_err)]

mod common;

use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use common::fixtures::{self, MurSpec};
use mursst::hdf5::{FileMetadata, Hdf5Error, Hdf5ErrorKind, ReadOptions, read_metadata};
use mursst::source::InMemory;

const URL: &str = "mem://bad.h5";

/// Read `data` on another thread; fail the test if it panics or takes over 20 s.
fn read_bytes(data: Vec<u8>) -> Result<FileMetadata, Hdf5Error> {
    let (tx, rx) = mpsc::channel();
    let len = data.len();
    std::thread::spawn(move || {
        let src = InMemory {
            url: URL.into(),
            data: Bytes::from(data),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let res = rt.block_on(read_metadata(&src, &ReadOptions::default()));
        let _ = tx.send(res);
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(res) => res,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("reader hung on {len} bytes"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("reader panicked on {len} bytes"),
    }
}

fn assert_named(err: &Hdf5Error) {
    assert_eq!(err.file, URL);
    assert!(
        !err.object.is_empty() && !err.field.is_empty(),
        "unnamed error: {err:?}"
    );
    assert!(err.to_string().starts_with(URL), "{err}");
}

fn fixture(write: impl FnOnce(&std::path::Path)) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.h5");
    write(&path);
    std::fs::read(&path).unwrap()
}

/// Cut the file at many offsets: errors must be clean; success must be the full answer.
fn check_truncations(full: &[u8], cuts: usize) {
    let whole = read_bytes(full.to_vec()).expect("the uncut file reads");
    let mut errors = 0;
    let step = (full.len() / cuts).max(1);
    let offsets = (0..full.len())
        .step_by(step)
        .chain([1, 7, 8, 9, 47, 48, 95, 96, 200, 511, 513]);
    for cut in offsets.filter(|&c| c < full.len()) {
        match read_bytes(full[..cut].to_vec()) {
            Err(e) => {
                assert_named(&e);
                errors += 1;
            }
            Ok(m) => assert_eq!(m, whole, "cut at {cut} read different metadata"),
        }
    }
    assert!(errors > 0);
}

#[test]
fn truncated_latest_file() {
    check_truncations(&fixture(|p| fixtures::small(p, true)), 300);
}

#[test]
fn truncated_earliest_file() {
    check_truncations(&fixture(|p| fixtures::small(p, false)), 300);
}

#[test]
fn truncated_small_netcdf_file() {
    check_truncations(&fixture(fixtures::netcdf_small), 300);
}

#[test]
fn truncated_netcdf_file() {
    check_truncations(&fixture(|p| fixtures::mur_like(p, &MurSpec::tiny())), 300);
}

#[test]
fn random_bytes_and_wrong_magic() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for len in [0usize, 1, 8, 100, 4096, 70_000] {
        let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let err = read_bytes(data.clone()).unwrap_err();
        assert_named(&err);
        // A valid signature followed by noise, for each superblock version.
        for version in 0..=4u8 {
            let mut d = data.clone();
            d.resize(len.max(64), 0);
            d[..8].copy_from_slice(b"\x89HDF\r\n\x1a\n");
            d[8] = version;
            let err = read_bytes(d).unwrap_err();
            assert_named(&err);
        }
    }
    let mut good = fixture(|p| fixtures::small(p, true));
    good[0] ^= 0xff;
    let err = read_bytes(good).unwrap_err();
    assert!(matches!(err.kind, Hdf5ErrorKind::NotHdf5), "{err}");
    assert_named(&err);
}

/// Offsets of `pat` in `data`.
fn find_all(data: &[u8], pat: &[u8]) -> Vec<usize> {
    data.windows(pat.len())
        .enumerate()
        .filter(|(_, w)| *w == pat)
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn btree_child_pointing_at_its_parent_is_a_cycle() {
    let full = fixture(|p| fixtures::earliest(p, Some(4), 0));
    // A v1 chunk B-tree node above the leaves (type 1, level >= 1).
    let node = find_all(&full, b"TREE")
        .into_iter()
        .find(|&at| full[at + 4] == 1 && full[at + 5] >= 1)
        .expect("an internal chunk B-tree node");
    // Header is 24 bytes, then key 0 (8 + 8 * (rank + 1) = 32 bytes for rank 2), then child 0.
    let child0 = node + 24 + 32;
    let mut bad = full.clone();
    bad[child0..child0 + 8].copy_from_slice(&(node as u64).to_le_bytes());
    let err = read_bytes(bad).unwrap_err();
    assert_named(&err);
    assert!(
        matches!(err.kind, Hdf5ErrorKind::Cycle(a) if a == node as u64),
        "{err}"
    );
    assert!(err.field.contains("v1 B-tree node"), "{err}");
}

#[test]
fn object_header_size_past_eof() {
    let full = fixture(|p| fixtures::small(p, false));
    // Superblock v0 with 8-byte addresses: the root symbol table entry starts at 56;
    // its object header address is the second field.
    let root = u64::from_le_bytes(full[64..72].try_into().unwrap()) as usize;
    assert_eq!(full[root], 1, "version-1 object header");
    let mut bad = full.clone();
    bad[root + 8..root + 12].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    let err = read_bytes(bad).unwrap_err();
    assert_named(&err);
    assert!(matches!(err.kind, Hdf5ErrorKind::PastEof { .. }), "{err}");
    assert!(err.field.contains("object header"), "{err}");
}

#[test]
fn global_heap_collection_size_past_eof() {
    let full = fixture(|p| fixtures::small(p, true));
    let at = *find_all(&full, b"GCOL")
        .first()
        .expect("a global heap collection");
    let mut bad = full.clone();
    bad[at + 8..at + 16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let err = read_bytes(bad).unwrap_err();
    assert_named(&err);
    assert!(err.field.contains("global heap"), "{err}");
}

#[test]
fn every_single_byte_corruption_of_metadata_is_clean() {
    // Flip bytes across the head of a small file; whatever the result, no panic or hang.
    let full = fixture(|p| fixtures::small(p, false));
    let end = full.len().min(6000);
    for at in (0..end).step_by(7) {
        let mut bad = full.clone();
        bad[at] ^= 0x5a;
        if let Err(e) = read_bytes(bad) {
            assert_named(&e);
        }
    }
}

/// Regenerates the fuzz seed corpus (small real fixtures):
/// `MURSST_FUZZ_CORPUS=fuzz/corpus/parse_metadata cargo test --test hdf5_bad_input -- --ignored`.
#[test]
#[ignore]
fn write_fuzz_corpus() {
    let Ok(dir) = std::env::var("MURSST_FUZZ_CORPUS") else {
        return;
    };
    let dir = std::path::Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();
    let seeds: [(&str, Vec<u8>); 3] = [
        ("seed-latest.h5", fixture(|p| fixtures::small(p, true))),
        ("seed-earliest.h5", fixture(|p| fixtures::small(p, false))),
        ("seed-netcdf4.nc", fixture(fixtures::netcdf_small)),
    ];
    for (name, data) in seeds {
        std::fs::write(dir.join(name), data).unwrap();
    }
}

#[test]
fn hard_link_fan_out_hits_the_object_budget() {
    // Each level links the next group twice: 2^24 paths through 24 groups. Legal HDF5,
    // but the tree we return would be exponential, so the walk stops with a limit.
    let full = fixture(|p| {
        let _g = common::libhdf5_lock();
        let f = libhdf5::File::create(p).unwrap();
        let mut path = String::new();
        for i in 0..24 {
            path = format!("{path}/l{i}");
            f.create_group(&path).unwrap();
            f.link_hard(
                &path,
                &format!("{}/twin{i}", path.rsplit_once('/').unwrap().0),
            )
            .unwrap();
        }
    });
    let err = read_bytes(full).unwrap_err();
    assert_named(&err);
    assert!(matches!(err.kind, Hdf5ErrorKind::Limit(_)), "{err}");
}
