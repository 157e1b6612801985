//! `mursst refs`: the Kerchunk reference file opens in fsspec/xarray and reads the same
//! values and attributes as netCDF4 reading the granule; bad input fails naming it.

mod common;

use std::process::{Command, Stdio};

use chrono::NaiveDate;
use common::{TempDir, python_script, run_python};
use mursst::synthetic::{self, ChunkLayout, DataVar, GranuleSpec};
use serde_json::Value;

fn mursst(args: &[&std::ffi::OsStr]) -> std::process::Output {
    common::output(
        Command::new(env!("CARGO_BIN_EXE_mursst"))
            .args(args)
            .stdin(Stdio::null()),
    )
}

#[test]
fn kerchunk_output_opens_in_xarray_with_the_granules_values() {
    let tmp = TempDir::new("refs-cli");
    let mut spec = GranuleSpec::small(NaiveDate::from_ymd_opt(2025, 2, 3).unwrap(), 90, 170);
    spec.lat_start = 9000;
    spec.chunks = ChunkLayout::uniform([40, 64]).with(DataVar::Mask, [50, 100]);
    let granule = synthetic::write_granule(tmp.path(), &spec).unwrap();

    let out = mursst(&["refs".as_ref(), granule.as_os_str(), "--stats".as_ref()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats = String::from_utf8_lossy(&out.stderr);
    assert!(
        stats.contains("requests:") && stats.contains("bytes read:"),
        "{stats}"
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["version"], 1);
    let refs = doc["refs"].as_object().unwrap();
    // 3 × 3 chunks of analysed_sst, each [url, offset, length] into the granule.
    let sst: Vec<_> = refs
        .keys()
        .filter(|k| k.starts_with("analysed_sst/") && !k.contains(".z"))
        .collect();
    assert_eq!(sst.len(), 9, "{sst:?}");
    let url = url::Url::from_file_path(&granule).unwrap().to_string();
    assert_eq!(refs["analysed_sst/0.2.1"][0], Value::from(url));

    let refs_path = tmp.path().join("refs.json");
    std::fs::write(&refs_path, &out.stdout).unwrap();
    let check = run_python(
        &python_script("check_kerchunk.py"),
        [refs_path.as_os_str(), granule.as_os_str()],
    );
    let summary: Value = serde_json::from_str(&check.stdout).unwrap();
    assert_eq!(summary["ok"], true, "{summary:#}");
    assert_eq!(
        summary["variables"].as_object().unwrap().len(),
        9,
        "{summary:#}"
    );
}

#[test]
fn a_truncated_granule_fails_naming_the_file() {
    let tmp = TempDir::new("refs-bad");
    let spec = GranuleSpec::small(NaiveDate::from_ymd_opt(2025, 2, 3).unwrap(), 30, 40);
    let granule = synthetic::write_granule(tmp.path(), &spec).unwrap();
    let bytes = std::fs::read(&granule).unwrap();
    std::fs::write(&granule, &bytes[..bytes.len() / 2]).unwrap();
    let out = mursst(&["refs".as_ref(), granule.as_os_str()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&spec.file_name()), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let out = mursst(&["refs".as_ref(), "s3:/not-a-url".as_ref()]);
    assert!(!out.status.success());
}
