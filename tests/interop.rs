//! A real client: Python icechunk 2.x + xarray open stores that `mursst` built or
//! appended to, and see what the source granules hold and what VirtualiZarr writes.

mod common;

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use common::{TempDir, python_ic1, python_script, run_python, run_python_with};
use mursst::pipeline::{self, Context, UpdateOptions};
use mursst::store::attributes::{DROPPED, STORE_COORDINATES};
use mursst::synthetic::{self, ChunkLayout, DataVar, GranuleSpec};
use mursst::validate::ValidateMode;
use serde_json::{Map, Value};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 12, d).unwrap()
}

/// A granule with partial edge chunks, in open ocean, int8 variables chunked differently.
fn spec(d: u32) -> GranuleSpec {
    let mut s = GranuleSpec::small(day(d), 150, 260);
    s.lat_start = 9000;
    s.lon_start = 20000;
    s.chunks = ChunkLayout::uniform([64, 100])
        .with(DataVar::Mask, [70, 120])
        .with(DataVar::SeaIceFraction, [70, 120]);
    s
}

fn write_granules(dir: &Path, days: impl IntoIterator<Item = u32>) -> Vec<PathBuf> {
    days.into_iter()
        .map(|d| synthetic::write_granule(dir, &spec(d)).expect("write granule"))
        .collect()
}

/// The production store's way: icechunk 1.x + VirtualiZarr, spec v1, four variables.
fn python_v1_store(store: &Path, files: &[PathBuf]) {
    let mut args = vec![
        store.as_os_str().to_owned(),
        "--spec".into(),
        "1".into(),
        "--drop-variables".into(),
        "dt_1km_data,sst_anomaly".into(),
    ];
    args.extend(files.iter().map(|f| f.as_os_str().to_owned()));
    run_python_with(&python_ic1(), &python_script("virtualizarr_store.py"), args);
}

/// Python icechunk 2 and 1 both read `store` (spec v1) with `days` time steps, every
/// value equal to netCDF4's read of `files`.
fn check_in_icechunk_1_and_2(store: &Path, files: &[PathBuf], days: usize) {
    for python in [common::python(), python_ic1()] {
        let mut args = vec![store.as_os_str().to_owned()];
        args.extend(files.iter().map(|f| f.as_os_str().to_owned()));
        let out = run_python_with(&python, &python_script("check_store.py"), args);
        let check: Value = serde_json::from_str(&out.stdout).expect("check JSON");
        assert_eq!(
            check["ok"],
            Value::Bool(true),
            "{}: {check:#}",
            python.display()
        );
        assert_eq!(check["time"]["store"].as_array().unwrap().len(), days);
    }
}

fn ctx(store: &Path, granules: &Path) -> Context {
    Context::local(store, granules)
}

fn options() -> UpdateOptions {
    UpdateOptions {
        lag_days: 0,
        validate: ValidateMode::Sample,
        ..Default::default()
    }
}

fn layout(store: &Path) -> Map<String, Value> {
    let out = run_python(&python_script("dump_store_layout.py"), [store.as_os_str()]);
    match serde_json::from_str(&out.stdout).expect("layout JSON") {
        Value::Object(m) => m,
        other => panic!("layout is not an object: {other}"),
    }
}

fn check_store(store: &Path, files: &[PathBuf]) -> Value {
    let mut args = vec![store.as_os_str().to_owned()];
    args.extend(files.iter().map(|f| f.as_os_str().to_owned()));
    let out = run_python(&python_script("check_store.py"), args);
    serde_json::from_str(&out.stdout).expect("check JSON")
}

#[tokio::test]
async fn python_reads_our_store_and_its_arrays_match_virtualizarr() {
    let tmp = TempDir::new("interop");
    let granules = tmp.path().join("granules");
    let files = write_granules(&granules, 1..=4);
    let ours = tmp.path().join("ours");
    let ctx = ctx(&ours, &granules);
    let vars: Vec<String> = pipeline::DEFAULT_VARIABLES
        .iter()
        .map(|s| s.to_string())
        .collect();
    pipeline::init(&ctx, &options(), day(1), day(2), &vars)
        .await
        .expect("init");
    let report = pipeline::update(&ctx, &options()).await.expect("update");
    assert_eq!(report.days_added, vec![day(3), day(4)]);

    // Decoded time and every variable equal what netCDF4 reads from the granules.
    let check = check_store(&ours, &files);
    assert_eq!(check["ok"], Value::Bool(true), "{check:#}");
    assert_eq!(
        check["time"]["store"].as_array().unwrap().len(),
        4,
        "{check:#}"
    );

    // The same files through VirtualiZarr.
    let theirs = tmp.path().join("virtualizarr");
    let mut args = vec![
        theirs.as_os_str().to_owned(),
        "--drop-variables".into(),
        "dt_1km_data,sst_anomaly".into(),
    ];
    args.extend(files.iter().map(|f| f.as_os_str().to_owned()));
    run_python(&python_script("virtualizarr_store.py"), args);

    let (ours, theirs) = (layout(&ours), layout(&theirs));
    let names = |m: &Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&ours), names(&theirs));
    for (node, meta) in &theirs {
        if node == "group" {
            continue;
        }
        assert_eq!(
            &ours[node], meta,
            "{node}: ours (left) differs from VirtualiZarr's (right)"
        );
    }

    // Global attributes: VirtualiZarr keeps the last file's; the store combines days.
    let group = |m: &Map<String, Value>| m["group"]["attributes"].as_object().unwrap().clone();
    let (ours_attrs, theirs_attrs) = (group(&ours), group(&theirs));
    for (k, v) in &theirs_attrs {
        match k.as_str() {
            k if DROPPED.contains(&k) => assert!(!ours_attrs.contains_key(k), "{k}"),
            "start_time" => assert_eq!(ours_attrs[k], "20241201T090000Z"),
            "time_coverage_start" => assert_eq!(ours_attrs[k], "20241130T210000Z"),
            _ => assert_eq!(&ours_attrs[k], v, "{k}"),
        }
    }
    assert_eq!(ours_attrs["coordinates"], STORE_COORDINATES);
    assert_eq!(
        ours_attrs.len() + DROPPED.len(),
        theirs_attrs.len(),
        "{ours_attrs:?}"
    );
}

#[tokio::test]
async fn appends_to_a_spec_v1_store_written_by_python_icechunk_1() {
    let tmp = TempDir::new("v1");
    let granules = tmp.path().join("granules");
    let files = write_granules(&granules, 1..=5);
    let store = tmp.path().join("store");
    python_v1_store(&store, &files[..3]);
    let before = layout(&store);

    let report = pipeline::update(&ctx(&store, &granules), &options())
        .await
        .expect("update a spec v1 store");
    assert_eq!(report.days_added, vec![day(4), day(5)]);
    assert!(report.main_moved);

    // Still spec v1, readable by icechunk 2 and xarray, values equal to the sources.
    let spec = std::fs::read_dir(&store)
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name() == "repo");
    assert!(
        !spec,
        "a spec v2 repo info file appeared: the store was migrated"
    );
    let check = check_store(&store, &files);
    assert_eq!(check["ok"], Value::Bool(true), "{check:#}");
    assert_eq!(
        check["time"]["store"].as_array().unwrap().len(),
        5,
        "{check:#}"
    );
    // Arrays kept their Python-written metadata, only longer.
    let after = layout(&store);
    for (node, meta) in &before {
        if node == "group" {
            continue;
        }
        let mut expected = meta.clone();
        if expected["dimension_names"][0] == "time" {
            expected["shape"][0] = Value::from(5);
        }
        assert_eq!(after[node], expected, "{node}");
    }
}

/// Days of other layouts appended to a spec v1 store that Python icechunk 1 wrote:
/// materialized onto its grid (day 3's analysed_sst chunked otherwise, day 4 without
/// shuffle, day 5 with deflate listed before shuffle), so both icechunk 1 and 2 readers
/// open one store with uniform chunks, and every value equals netCDF4's read of its
/// granule.
#[tokio::test]
async fn native_and_virtual_days_read_in_python_icechunk_1_and_2() {
    let tmp = TempDir::new("native-interop");
    let granules = tmp.path().join("granules");
    let mut files = write_granules(&granules, 1..=2);
    let other = |d: u32, tweak: fn(&mut GranuleSpec)| {
        let mut s = spec(d);
        tweak(&mut s);
        synthetic::write_granule(&granules, &s).expect("write granule")
    };
    files.push(other(3, |s| {
        s.chunks = s.chunks.with(DataVar::AnalysedSst, [100, 260])
    }));
    files.push(other(4, |s| s.shuffle = false));
    files.push(other(5, |s| s.deflate_first = true));
    let store = tmp.path().join("store");
    python_v1_store(&store, &files[..2]);
    let before = layout(&store);

    let report = pipeline::update(&ctx(&store, &granules), &options())
        .await
        .expect("update with other layouts");
    assert_eq!(report.days_added, vec![day(3), day(4), day(5)]);
    assert_eq!(report.native[&day(3)].len(), 1, "{:?}", report.native);
    assert_eq!(report.native[&day(4)].len(), 4, "{:?}", report.native);
    assert_eq!(report.native[&day(5)].len(), 4, "{:?}", report.native);
    for why in report.native[&day(5)].values() {
        assert!(why.contains("codecs"), "{why}");
    }

    // One chunk grid per array, whatever the days' own layouts were.
    let after = layout(&store);
    for (node, meta) in &before {
        if node != "group" {
            assert_eq!(after[node]["chunk_grid"], meta["chunk_grid"], "{node}");
        }
    }
    check_in_icechunk_1_and_2(&store, &files, 5);
}

/// The full record's way, in little: one `init` (spec v1, the store's grid by variable)
/// over days of every era's layout: the producer's today, the int8 variables chunked as
/// 2002–2023, deflate without shuffle (2003-09-11), deflate listed before shuffle
/// (2021-12-24..2022-01-26), every variable chunked otherwise (2023-09..2024-05). One
/// store, read by Python icechunk 1 and 2 with uniform chunks, every value equal to
/// netCDF4's read of its granule.
#[tokio::test]
async fn one_init_over_every_era_reads_in_python_icechunk_1_and_2() {
    let tmp = TempDir::new("eras-interop");
    let granules = tmp.path().join("granules");
    let era = |d: u32, tweak: fn(&mut GranuleSpec)| {
        let mut s = spec(d);
        s.chunks = ChunkLayout::uniform([64, 100]);
        tweak(&mut s);
        synthetic::write_granule(&granules, &s).expect("write granule")
    };
    let files = [
        era(1, |_| {}),
        era(2, |s| {
            s.chunks = ChunkLayout::uniform([64, 100])
                .with(DataVar::Mask, [70, 120])
                .with(DataVar::SeaIceFraction, [70, 120])
        }),
        era(3, |s| s.shuffle = false),
        era(4, |s| s.deflate_first = true),
        era(5, |s| s.chunks = ChunkLayout::uniform([100, 200])),
        era(6, |_| {}),
    ];
    let store = tmp.path().join("store");
    let grid = serde_json::json!({"*": [64, 100], "mask": [64, 130]});
    let options = UpdateOptions {
        chunks: Some(serde_json::from_value(grid).unwrap()),
        spec_version: Some(1),
        validate: ValidateMode::Full,
        ..options()
    };
    let variables: Vec<String> = pipeline::DEFAULT_VARIABLES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let report = pipeline::init(
        &ctx(&store, &granules),
        &options,
        day(1),
        day(6),
        &variables,
    )
    .await
    .expect("init over every era");
    assert_eq!(report.days_added.len(), 6);
    let native: Vec<(u32, usize)> = report
        .native
        .iter()
        .map(|(d, vars)| (chrono::Datelike::day(d), vars.len()))
        .collect();
    // mask is chunked (64, 130) in the store, so every day's mask is native.
    assert_eq!(
        native,
        [(1, 1), (2, 2), (3, 4), (4, 4), (5, 4), (6, 1)],
        "{:?}",
        report.native
    );
    let layout = layout(&store);
    assert_eq!(
        layout["mask"]["chunk_grid"]["configuration"]["chunk_shape"],
        serde_json::json!([1, 64, 130])
    );
    check_in_icechunk_1_and_2(&store, &files, 6);
}
