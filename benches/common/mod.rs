//! Helpers shared by the benchmarks: whether this is a real run or a smoke run, cached
//! synthetic granules, the test tooling (moto, spawning children), figures and tables.

#![allow(dead_code)]

pub mod proxy;
#[path = "../../tests/common/tooling.rs"]
pub mod tooling;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use mursst::synthetic::{self, GranuleSpec};

/// What `tooling` locks around spawning children (libhdf5 and netCDF-C are not thread
/// safe, and a child must not inherit an open HDF5 file).
pub fn libhdf5_lock() -> mursst::oracle::Guard {
    mursst::oracle::lock()
}

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs the same binary
/// without it, and then the benches run a small, fast smoke version instead.
pub fn is_bench() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Runs per case: `MURSST_BENCH_RUNS`, else 3 (1 for the smoke version under `cargo test`).
pub fn runs(bench: bool) -> usize {
    std::env::var("MURSST_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 3 } else { 1 })
}

/// `target/bench-data/`, next to the profile directory holding this bench binary
/// (so it follows `CARGO_TARGET_DIR`).
pub fn bench_data_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the bench binary");
    // target/<profile>/deps/<bench>-<hash>
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("bench binary under target/<profile>/deps");
    let dir = target.join("bench-data");
    std::fs::create_dir_all(&dir).expect("create target/bench-data");
    dir
}

/// A granule written by [`synthetic::write_granule`], cached under
/// `target/bench-data/granules/<key>/`; the key covers the spec and the writer's source,
/// so a changed writer writes a new file.
pub fn cached_granule(spec: &GranuleSpec) -> PathBuf {
    let cache = bench_data_dir().join("granules");
    let start = Instant::now();
    let (path, cached) = synthetic::write_cached(&cache, spec).expect("write synthetic granule");
    if cached {
        eprintln!("granule {} (cached)", path.display());
    } else {
        eprintln!(
            "wrote {} × {} granule for {} to {}: {} in {:.0} s",
            spec.lat_size,
            spec.lon_size,
            spec.date,
            path.display(),
            mb(file_size(&path)),
            start.elapsed().as_secs_f64()
        );
    }
    path
}

pub fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Median of some figures (mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Bytes in decimal megabytes, for tables.
pub fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

/// Bytes with a unit that keeps a few significant digits.
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

/// Size and modification time of every file under a directory, by relative path.
pub fn dir_files(root: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (u64, SystemTime)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
                let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                out.insert(rel, (meta.len(), mtime));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Files that are new or changed between two [`dir_files`] listings.
pub struct Written {
    pub files: u64,
    pub bytes: u64,
    /// Net growth of the directory (files rewritten in place count only their growth).
    pub growth: i64,
    /// Bytes written by top-level entry (`manifests`, `snapshots`, ...).
    pub by_kind: BTreeMap<String, (u64, u64)>,
}

pub fn written(
    before: &BTreeMap<PathBuf, (u64, SystemTime)>,
    after: &BTreeMap<PathBuf, (u64, SystemTime)>,
) -> Written {
    let mut w = Written {
        files: 0,
        bytes: 0,
        growth: 0,
        by_kind: BTreeMap::new(),
    };
    let total = |m: &BTreeMap<PathBuf, (u64, SystemTime)>| m.values().map(|v| v.0).sum::<u64>();
    w.growth = total(after) as i64 - total(before) as i64;
    for (path, meta) in after {
        if before.get(path) == Some(meta) {
            continue;
        }
        w.files += 1;
        w.bytes += meta.0;
        let kind = path
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let e = w.by_kind.entry(kind).or_default();
        e.0 += 1;
        e.1 += meta.0;
    }
    w
}

/// Print rows as a Markdown table: figures right-aligned, the first column and any
/// column headed `what` left-aligned.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let n = header.len();
    let left = |i: usize| i == 0 || header[i] == "what";
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(n) {
            width[i] = width[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if left(i) {
                    format!("{c:<w$}", w = width[i])
                } else {
                    format!("{c:>w$}", w = width[i])
                }
            })
            .collect();
        println!("| {} |", parts.join(" | "));
    };
    line(header.iter().map(|s| s.to_string()).collect());
    println!(
        "|{}|",
        width
            .iter()
            .enumerate()
            .map(|(i, w)| if left(i) {
                format!(":{}-", "-".repeat(*w))
            } else {
                format!("-{}:", "-".repeat(*w))
            })
            .collect::<Vec<_>>()
            .join("|")
    );
    for row in rows {
        line(row.clone());
    }
}

/// `met` / `NOT met` for a target line.
pub fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}
