//! Smoke tests of the test tooling itself: the moto server and ranged S3 reads, and the
//! Python helpers (VirtualiZarr store building, layout dump, value check) on synthetic
//! granules, for icechunk spec 1 (icechunk 1.x, like production) and spec 2.

mod common;

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use common::{MotoServer, TempDir};
use mursst::objects::Object;
use mursst::source::{RangeRead, SourceError};
use mursst::synthetic::{ChunkLayout, GranuleSpec, write_granule};
use serde_json::Value;

/// Two consecutive 2000 x 4000 days with the layout of the files behind the reference
/// store (classic chunks; `coordinate_filters` false gives its unfiltered lat/lon).
fn two_granules(dir: &Path, coordinate_filters: bool) -> Vec<PathBuf> {
    let _g = common::hdf5_lock();
    [2, 3]
        .into_iter()
        .map(|d| {
            let spec = GranuleSpec {
                chunks: ChunkLayout::classic(),
                coordinate_filters,
                ..GranuleSpec::small(NaiveDate::from_ymd_opt(2025, 1, d).unwrap(), 2000, 4000)
            };
            write_granule(dir, &spec).unwrap()
        })
        .collect()
}

fn reference_layout() -> Value {
    let path = common::repo_root().join("tests/data/virtualizarr-store-layout.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// JSON kind of a value, distinguishing integers from floats (types must match Python's).
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Attribute names, in order, with their JSON kinds.
fn attr_kinds(node: &Value) -> Vec<(String, &'static str)> {
    node["attributes"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), kind(v)))
        .collect()
}

/// Compare a store layout with the reference. Arrays must match in everything but
/// attribute values (names, order and types must match); lat/lon codecs are compared
/// only when `exact_coords`. The group must have the reference's attributes (ours are a
/// superset: real granules have 47 global attributes, the reference's files fewer), in
/// the same relative order and with the same types.
fn assert_layout_matches(got: &Value, want: &Value, exact_coords: bool) {
    let got_nodes: Vec<_> = got.as_object().unwrap().keys().collect();
    let want_nodes: Vec<_> = want.as_object().unwrap().keys().collect();
    assert_eq!(got_nodes, want_nodes, "store nodes");
    for (node, w) in want.as_object().unwrap() {
        let g = &got[node];
        if node == "group" {
            assert_eq!(g["zarr_format"], w["zarr_format"]);
            assert_eq!(g["node_type"], w["node_type"]);
            let ours = attr_kinds(g);
            let theirs = attr_kinds(w);
            let common: Vec<_> = ours
                .iter()
                .filter(|(k, _)| theirs.iter().any(|(t, _)| t == k))
                .cloned()
                .collect();
            assert_eq!(common, theirs, "group attributes (names, order, types)");
            continue;
        }
        for (key, wv) in w.as_object().unwrap() {
            if key == "attributes" || (key == "codecs" && !exact_coords && is_coord(node)) {
                continue;
            }
            assert_eq!(&g[key], wv, "{node}.{key}");
        }
        assert_eq!(
            g.as_object().unwrap().len(),
            w.as_object().unwrap().len(),
            "{node}: metadata keys"
        );
        assert_eq!(attr_kinds(g), attr_kinds(w), "{node}: attributes");
    }
}

fn is_coord(node: &str) -> bool {
    node == "lat" || node == "lon"
}

/// Build a store with `virtualizarr_store.py`, dump its layout, check its values.
fn build_dump_check(python: &Path, spec: u8, files: &[PathBuf], store: &Path) -> Value {
    let build: Vec<String> = [store.display().to_string()]
        .into_iter()
        .chain(files.iter().map(|f| f.display().to_string()))
        .chain(["--spec".into(), spec.to_string()])
        .collect();
    let out = common::run_python_with(
        python,
        &common::python_script("virtualizarr_store.py"),
        &build,
    );
    let summary: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("bad JSON from virtualizarr_store.py: {e}\n{}", out.stdout));
    assert_eq!(summary["spec_version"], spec);
    let layout = common::run_python_with(
        python,
        &common::python_script("dump_store_layout.py"),
        [store],
    );
    let layout: Value = serde_json::from_str(&layout.stdout).unwrap();

    let check: Vec<String> = [store.display().to_string()]
        .into_iter()
        .chain(files.iter().map(|f| f.display().to_string()))
        .collect();
    let out = common::run_python(&common::python_script("check_store.py"), &check);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["ok"], true, "{}", out.stdout);
    assert_eq!(report["variables"].as_object().unwrap().len(), 6);
    layout
}

fn layouts_for_spec(spec: u8) {
    let python = if spec == 1 {
        common::python_ic1()
    } else {
        common::python()
    };
    let want = reference_layout();
    let tmp = TempDir::new(&format!("tooling-spec{spec}"));

    // Files like the reference's: the layout must match it exactly.
    let files = two_granules(&tmp.path().join("plain"), false);
    let got = build_dump_check(&python, spec, &files, &tmp.path().join("store-plain"));
    assert_layout_matches(&got, &want, true);

    // Real-like files (lat/lon one shuffle + deflate chunk): VirtualiZarr keeps those
    // codecs on the lat/lon arrays it writes.
    let files = two_granules(&tmp.path().join("real"), true);
    let got = build_dump_check(&python, spec, &files, &tmp.path().join("store-real"));
    assert_layout_matches(&got, &want, false);
    for c in ["lat", "lon"] {
        let names: Vec<_> = got[c]["codecs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["bytes", "numcodecs.shuffle", "numcodecs.zlib"],
            "{c}"
        );
        assert_eq!(got[c]["codecs"][2]["configuration"]["level"], 7);
    }

    // The layout checker itself must notice a difference.
    let mut broken = want.clone();
    broken["mask"]["chunk_grid"]["configuration"]["chunk_shape"] =
        serde_json::json!([1, 1023, 2047]);
    let caught = std::panic::catch_unwind(|| assert_layout_matches(&got, &broken, false));
    assert!(caught.is_err(), "a wrong chunk shape went unnoticed");
}

#[test]
fn virtualizarr_layout_spec2() {
    layouts_for_spec(2);
}

#[test]
fn virtualizarr_layout_spec1_icechunk1() {
    layouts_for_spec(1);
}

#[test]
fn check_store_detects_wrong_values() {
    let tmp = TempDir::new("tooling-mismatch");
    let files = two_granules(tmp.path(), true);
    let store = tmp.path().join("store");
    let mut args = vec![store.display().to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    common::run_python(&common::python_script("virtualizarr_store.py"), &args);
    // Swapping the days must fail the value check, with exit status 1 and a report.
    let out = common::output(
        std::process::Command::new(common::python())
            .arg(common::python_script("check_store.py"))
            .arg(&store)
            .arg(&files[1])
            .arg(&files[0]),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["time"]["ok"], false);
    assert_eq!(report["variables"]["analysed_sst"]["ok"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_s3_ranged_reads_and_s3_granules() {
    let moto = MotoServer::start();
    let tmp = TempDir::new("tooling-s3");
    let files = two_granules(tmp.path(), true);
    let bucket = "podaac-test";
    moto.create_bucket(bucket).await;
    let mut keys = Vec::new();
    for f in &files {
        let key = format!(
            "MUR-JPL-L4-GLOB-v4.1/{}",
            f.file_name().unwrap().to_str().unwrap()
        );
        moto.put_file(bucket, &key, f).await;
        keys.push(key);
    }

    // Ranged reads through the crate's S3 source.
    let local = std::fs::read(&files[0]).unwrap();
    let obj = Object::s3(moto.client().await, bucket, &keys[0]);
    let info = obj.info().await.unwrap();
    assert_eq!(info.size, local.len() as u64);
    assert_eq!(info.url, format!("s3://{bucket}/{}", keys[0]));
    assert!(info.etag.is_some() && info.last_modified.is_some());
    let head = obj.read_range(0..8).await.unwrap();
    assert_eq!(&head[..], b"\x89HDF\r\n\x1a\n");
    let mid = obj.read_range(1000..5096).await.unwrap();
    assert_eq!(&mid[..], &local[1000..5096]);
    let tail_start = local.len() as u64 - 10;
    let tail = obj
        .read_range(tail_start..local.len() as u64)
        .await
        .unwrap();
    assert_eq!(&tail[..], &local[local.len() - 10..]);
    let past_end = obj.read_range(tail_start..local.len() as u64 + 10).await;
    assert!(
        matches!(past_end, Err(SourceError::OutOfBounds { .. })),
        "{past_end:?}"
    );

    // The Python helpers read granules from S3 too (the store stays local).
    let store = tmp.path().join("store");
    let urls: Vec<String> = keys.iter().map(|k| format!("s3://{bucket}/{k}")).collect();
    let mut args = vec![store.display().to_string()];
    args.extend(urls.iter().cloned());
    for script in ["virtualizarr_store.py", "check_store.py"] {
        let out = common::output(
            std::process::Command::new(common::python())
                .arg(common::python_script(script))
                .args(&args)
                .envs(moto.env()),
        );
        assert!(
            out.status.success(),
            "{script}: {}\n{}\n--- moto ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            moto.log()
        );
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        if script == "check_store.py" {
            assert_eq!(summary["ok"], true);
        } else {
            assert_eq!(
                summary["container_prefix"],
                format!("s3://{bucket}/MUR-JPL-L4-GLOB-v4.1/")
            );
        }
    }
}
