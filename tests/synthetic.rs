//! Reads synthetic granules back with netcdf-c and HDF5 and checks that they look like
//! real MUR v4.1 granules and hold the values the spec promises.

mod common;

use chrono::NaiveDate;
use mursst::synthetic::{
    AttrValue, ChunkLayout, DataVar, GranuleSpec, SyntheticError, TILE, granule_file_name,
    write_granule,
};
use netcdf::AttributeValue;
use netcdf::types::{FloatType, IntType, NcVariableType};

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// netCDF's attribute value in the generator's terms (panics on types MUR never uses).
fn attr(v: AttributeValue) -> AttrValue {
    match v {
        AttributeValue::Str(s) => AttrValue::Text(s),
        AttributeValue::Schar(x) => AttrValue::I8(x),
        AttributeValue::Schars(x) => AttrValue::I8s(x),
        AttributeValue::Short(x) => AttrValue::I16(x),
        AttributeValue::Int(x) => AttrValue::I32(x),
        AttributeValue::Float(x) => AttrValue::F32(x),
        AttributeValue::Double(x) => AttrValue::F64(x),
        other => panic!("unexpected attribute type {other:?}"),
    }
}

fn attrs_of<'a>(it: impl Iterator<Item = netcdf::Attribute<'a>>) -> Vec<(String, AttrValue)> {
    it.map(|a| (a.name().to_string(), attr(a.value().unwrap())))
        .collect()
}

fn expected(attrs: Vec<(&'static str, AttrValue)>) -> Vec<(String, AttrValue)> {
    attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Raw values of `var` in rows `r0..r1`, widened to i32.
fn read_rows(file: &netcdf::File, var: DataVar, r0: usize, r1: usize, n: usize) -> Vec<i32> {
    let v = file.variable(var.name()).unwrap();
    let ext = [0..1, r0..r1, 0..n];
    match var {
        DataVar::AnalysedSst | DataVar::AnalysisError | DataVar::SstAnomaly => v
            .get_values::<i16, _>(ext)
            .unwrap()
            .into_iter()
            .map(i32::from)
            .collect(),
        _ => v
            .get_values::<i8, _>(ext)
            .unwrap()
            .into_iter()
            .map(i32::from)
            .collect(),
    }
}

/// Compare two value arrays, reporting the first difference instead of both arrays.
fn assert_same(got: &[i32], want: &[i32], ctx: &str) {
    assert_eq!(got.len(), want.len(), "{ctx}: length");
    if let Some(k) = (0..got.len()).find(|&k| got[k] != want[k]) {
        let n = (0..got.len()).filter(|&k| got[k] != want[k]).count();
        panic!(
            "{ctx}: {n} values differ, first at {k}: got {} want {}",
            got[k], want[k]
        );
    }
}

#[test]
fn small_granule_looks_like_a_real_one() {
    let _g = common::hdf5_lock();
    let tmp = common::TempDir::new("synthetic");
    let spec = GranuleSpec::small(date(2025, 1, 2), 2000, 4000);
    let path = write_granule(tmp.path(), &spec).unwrap();
    assert_eq!(path, tmp.path().join(granule_file_name(spec.date)));
    assert_eq!(
        path.file_name().unwrap().to_str().unwrap(),
        "20250102090000-JPL-L4_GHRSST-SSTfnd-MUR-GLOB-v02.0-fv04.1.nc"
    );
    // Nothing else (no temporary file) is left in the directory.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);

    let file = netcdf::open(&path).unwrap();
    let dims: Vec<_> = file
        .dimensions()
        .map(|d| (d.name(), d.len(), d.is_unlimited()))
        .collect();
    assert_eq!(
        dims,
        vec![
            ("time".to_string(), 1, false),
            ("lat".to_string(), 2000, false),
            ("lon".to_string(), 4000, false),
        ]
    );
    let names: Vec<_> = file.variables().map(|v| v.name()).collect();
    assert_eq!(
        names,
        [
            "time",
            "lat",
            "lon",
            "analysed_sst",
            "analysis_error",
            "mask",
            "sea_ice_fraction",
            "dt_1km_data",
            "sst_anomaly"
        ]
    );

    // Types and chunking.
    let time = file.variable("time").unwrap();
    assert_eq!(time.vartype(), NcVariableType::Int(IntType::I32));
    assert_eq!(time.chunking().unwrap(), None, "time must be contiguous");
    for c in ["lat", "lon"] {
        let v = file.variable(c).unwrap();
        assert_eq!(v.vartype(), NcVariableType::Float(FloatType::F32));
        assert_eq!(v.chunking().unwrap(), Some(vec![v.len()]), "{c}");
    }
    for var in DataVar::ALL {
        let v = file.variable(var.name()).unwrap();
        let want = match var {
            DataVar::AnalysedSst | DataVar::AnalysisError | DataVar::SstAnomaly => {
                NcVariableType::Int(IntType::I16)
            }
            _ => NcVariableType::Int(IntType::I8),
        };
        assert_eq!(v.vartype(), want, "{var}");
        assert_eq!(v.chunking().unwrap(), Some(vec![1, 1023, 2047]), "{var}");
        let dims: Vec<_> = v.dimensions().iter().map(|d| d.name()).collect();
        assert_eq!(dims, ["time", "lat", "lon"]);
    }

    // Attributes: names, types, values and order.
    assert_eq!(
        attrs_of(file.attributes()),
        expected(spec.global_attributes())
    );
    assert_eq!(file.attributes().count(), 47);
    for c in ["time", "lat", "lon"] {
        assert_eq!(
            attrs_of(file.variable(c).unwrap().attributes()),
            expected(GranuleSpec::coordinate_attributes(c)),
            "{c}"
        );
    }
    for var in DataVar::ALL {
        let got = attrs_of(file.variable(var.name()).unwrap().attributes());
        assert_eq!(got, expected(spec.variable_attributes(var)), "{var}");
        assert_eq!(got[0].0, "_FillValue");
    }
    let sst_attrs = attrs_of(file.variable("analysed_sst").unwrap().attributes());
    assert!(sst_attrs.contains(&("valid_min".into(), AttrValue::I16(-32767))));
    assert!(sst_attrs.contains(&("scale_factor".into(), AttrValue::F64(0.001))));
    let mask_attrs = attrs_of(file.variable("mask").unwrap().attributes());
    assert!(mask_attrs.contains(&("flag_values".into(), AttrValue::I8s(vec![1, 2, 5, 9, 13]))));

    // Coordinate values.
    let t: Vec<i32> = time.get_values(..).unwrap();
    assert_eq!(t, [1_735_808_400 - 347_155_200]);
    let lat: Vec<f32> = file.variable("lat").unwrap().get_values(..).unwrap();
    let lon: Vec<f32> = file.variable("lon").unwrap().get_values(..).unwrap();
    assert_eq!(lat[0], -89.99);
    assert_eq!(lat[1999], -70.0);
    assert_eq!(lon[0], -179.99);
    assert_eq!(lon[3999], -140.0);
    assert_eq!(lat, spec.lat_values());

    // Data: whole rows against the model, on both sides of chunk and tile boundaries.
    for var in DataVar::ALL {
        for row in [0, TILE - 1, TILE, 1022, 1023, 1500, 1999] {
            let got = read_rows(&file, var, row, row + 1, 4000);
            let want: Vec<i32> = (0..4000).map(|j| spec.raw_value(var, row, j)).collect();
            assert_same(&got, &want, &format!("{var} row {row}"));
        }
    }
    // The window holds Antarctic land, open sea and sea ice.
    let mask = read_rows(&file, DataVar::Mask, 0, 2000, 4000);
    for class in [1, 2, 9] {
        assert!(mask.contains(&class), "mask class {class} missing");
    }
    let sst = read_rows(&file, DataVar::AnalysedSst, 0, 2000, 4000);
    for (m, s) in mask.iter().zip(&sst) {
        assert_eq!(*m == 2, *s == -32768, "fill exactly on land");
    }
    // Decoded values a CF reader sees.
    let k = mask.iter().position(|&m| m == 1).unwrap();
    let (i, j) = (k / 4000, k % 4000);
    let raw = spec.raw_value(DataVar::AnalysedSst, i, j);
    assert_eq!(raw, sst[k]);
    let decoded = spec.decoded_value(DataVar::AnalysedSst, i, j).unwrap();
    assert!((decoded - (raw as f64 * 0.001 + 298.15)).abs() < 1e-9);
    assert!((271.0..310.0).contains(&decoded), "{decoded}");
    drop(file);

    // Filters and chunks as HDF5 sees them.
    let h5 = libhdf5::File::open(&path).unwrap();
    let ds = h5.dataset("analysed_sst").unwrap();
    assert_eq!(ds.chunk(), Some(vec![1, 1023, 2047]));
    assert_eq!(
        ds.filters(),
        vec![
            libhdf5::filters::Filter::Shuffle,
            libhdf5::filters::Filter::Deflate(7)
        ]
    );
    let time = h5.dataset("time").unwrap();
    assert_eq!(time.chunk(), None);
    assert!(time.filters().is_empty());
    let lat = h5.dataset("lat").unwrap();
    assert_eq!(lat.chunk(), Some(vec![2000]));
    assert_eq!(
        lat.filters(),
        vec![
            libhdf5::filters::Filter::Shuffle,
            libhdf5::filters::Filter::Deflate(7)
        ]
    );
}

#[test]
fn variants_for_schema_tests() {
    let _g = common::hdf5_lock();
    let tmp = common::TempDir::new("synthetic-variants");
    let base = GranuleSpec::small(date(2021, 7, 15), 1500, 3000);

    // An older day: classic layout, deflate 6, no shuffle, without sst_anomaly.
    let old = GranuleSpec {
        chunks: ChunkLayout::classic(),
        deflate_level: 6,
        shuffle: false,
        variables: DataVar::ALL
            .into_iter()
            .filter(|v| *v != DataVar::SstAnomaly)
            .collect(),
        ..base.clone()
    };
    let path = write_granule(&tmp.path().join("old"), &old).unwrap();
    let h5 = libhdf5::File::open(&path).unwrap();
    let sst = h5.dataset("analysed_sst").unwrap();
    assert_eq!(sst.chunk(), Some(vec![1, 1023, 2047]));
    assert_eq!(sst.filters(), vec![libhdf5::filters::Filter::Deflate(6)]);
    // The int8 variables have the classic (1, 1447, 2895) chunks.
    assert_eq!(
        h5.dataset("mask").unwrap().chunk(),
        Some(vec![1, 1447, 2895])
    );
    assert!(h5.dataset("sst_anomaly").is_err());
    assert!(h5.dataset("dt_1km_data").is_ok());
    drop(h5);

    // Unfiltered, contiguous coordinates (like the files behind the reference layout).
    let plain = GranuleSpec {
        coordinate_filters: false,
        ..base.clone()
    };
    let path = write_granule(&tmp.path().join("plain"), &plain).unwrap();
    let h5 = libhdf5::File::open(&path).unwrap();
    for c in ["lat", "lon"] {
        let ds = h5.dataset(c).unwrap();
        assert_eq!(ds.chunk(), None, "{c}");
        assert!(ds.filters().is_empty(), "{c}");
    }
    assert_eq!(
        h5.dataset("mask").unwrap().filters(),
        vec![
            libhdf5::filters::Filter::Shuffle,
            libhdf5::filters::Filter::Deflate(7)
        ]
    );
    drop(h5);

    // A different chunk shape for one variable only, and a grid shifted by one row.
    let odd = GranuleSpec {
        chunks: ChunkLayout::default().with(DataVar::AnalysisError, [500, 1000]),
        lat_start: 1,
        ..base.clone()
    };
    let path = write_granule(&tmp.path().join("odd"), &odd).unwrap();
    let h5 = libhdf5::File::open(&path).unwrap();
    assert_eq!(h5.dataset("lat").unwrap().chunk(), Some(vec![1500]));
    drop(h5);
    let file = netcdf::open(&path).unwrap();
    assert_eq!(
        file.variable("analysis_error").unwrap().chunking().unwrap(),
        Some(vec![1, 500, 1000])
    );
    assert_eq!(
        file.variable("analysed_sst").unwrap().chunking().unwrap(),
        Some(vec![1, 1023, 2047])
    );
    let lat: Vec<f32> = file.variable("lat").unwrap().get_values(..).unwrap();
    assert_eq!(lat[0], -89.98);
    let row = read_rows(&file, DataVar::AnalysisError, 600, 601, 3000);
    let want: Vec<i32> = (0..3000)
        .map(|j| odd.raw_value(DataVar::AnalysisError, 600, j))
        .collect();
    assert_same(&row, &want, "analysis_error row 600");
    drop(file);

    // Same spec twice: same values; another seed: different ones. The window is moved
    // to the tropics (8000 rows north) so that it holds open sea.
    let tropics = GranuleSpec {
        lat_start: 8000,
        lat_size: 200,
        ..base.clone()
    };
    let one = write_granule(&tmp.path().join("one"), &tropics).unwrap();
    let again = write_granule(&tmp.path().join("again"), &tropics).unwrap();
    let other = write_granule(
        &tmp.path().join("seed"),
        &GranuleSpec {
            seed: 7,
            ..tropics.clone()
        },
    )
    .unwrap();
    let a = netcdf::open(&one).unwrap();
    let b = netcdf::open(&again).unwrap();
    let c = netcdf::open(&other).unwrap();
    let ra = read_rows(&a, DataVar::AnalysedSst, 0, 200, 3000);
    assert!(ra.iter().any(|&x| x > 0), "no warm water in the tropics");
    assert_same(
        &ra,
        &read_rows(&b, DataVar::AnalysedSst, 0, 200, 3000),
        "same seed",
    );
    assert!(
        ra != read_rows(&c, DataVar::AnalysedSst, 0, 200, 3000),
        "other seed"
    );
}

/// The layout netCDF-C cannot write (2021-12-24..2022-01-26): deflate listed before
/// shuffle on every data variable. Through libhdf5 and netCDF-C the granule is its
/// shuffle-first twin: the same variables in the same dimensions, attributes, fill
/// values, chunks and values; only the pipeline's order differs.
#[test]
fn deflate_before_shuffle_reads_like_its_shuffle_first_twin() {
    let _g = common::hdf5_lock();
    let tmp = common::TempDir::new("synthetic-deflate-first");
    let mut twin = GranuleSpec::small(date(2022, 1, 5), 300, 500);
    twin.chunks = ChunkLayout::uniform([128, 200]);
    let reversed = GranuleSpec {
        deflate_first: true,
        ..twin.clone()
    };
    assert!(GranuleSpec::historical(date(2022, 1, 5)).deflate_first);
    assert!(!GranuleSpec::historical(date(2022, 1, 27)).deflate_first);
    let a = write_granule(&tmp.path().join("twin"), &twin).unwrap();
    let b = write_granule(&tmp.path().join("reversed"), &reversed).unwrap();
    let h5 = libhdf5::File::open(&b).unwrap();
    for var in DataVar::ALL {
        let ds = h5.dataset(var.name()).unwrap();
        assert_eq!(
            ds.filters(),
            vec![
                libhdf5::filters::Filter::Deflate(7),
                libhdf5::filters::Filter::Shuffle
            ],
            "{var}"
        );
        assert_eq!(ds.chunk(), Some(vec![1, 128, 200]), "{var}");
    }
    assert_eq!(
        h5.dataset("lat").unwrap().filters()[0],
        libhdf5::filters::Filter::Shuffle,
        "coordinates keep shuffle first"
    );
    drop(h5);
    let (ta, tb) = (netcdf::open(&a).unwrap(), netcdf::open(&b).unwrap());
    for var in DataVar::ALL {
        let (va, vb) = (
            ta.variable(var.name()).unwrap(),
            tb.variable(var.name()).unwrap(),
        );
        let dims = |v: &netcdf::Variable| -> Vec<String> {
            v.dimensions().iter().map(|d| d.name()).collect()
        };
        assert_eq!(dims(&vb), ["time", "lat", "lon"], "{var}");
        let mut want = attrs_of(va.attributes());
        let mut got = attrs_of(vb.attributes());
        assert_eq!(got, want, "{var}: attributes in creation order");
        want.sort_by(|x, y| x.0.cmp(&y.0));
        got.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(got, want, "{var}");
        assert_eq!(vb.chunking().unwrap(), Some(vec![1, 128, 200]), "{var}");
        assert_same(
            &read_rows(&tb, var, 0, 300, 500),
            &read_rows(&ta, var, 0, 300, 500),
            var.name(),
        );
    }
}

#[test]
fn bad_specs_fail_without_leaving_files() {
    let _g = common::hdf5_lock();
    let tmp = common::TempDir::new("synthetic-bad");
    let mut spec = GranuleSpec::small(date(2025, 1, 2), 10, 10);
    spec.lon_start = 35_995;
    let err = write_granule(tmp.path(), &spec).unwrap_err();
    assert!(matches!(err, SyntheticError::InvalidSpec(_)), "{err}");
    assert!(err.to_string().contains("lon window"), "{err}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

/// A full-size granule stays small and is written in minutes. Slow (HDF5 and zlib in a
/// debug build are several times slower), so run it in release:
/// `cargo test --release --test synthetic full_size -- --ignored --nocapture`.
#[test]
#[ignore = "writes a full 17999 x 36000 granule; run in release"]
fn full_size_granule() {
    let _g = common::hdf5_lock();
    let tmp = common::TempDir::new("synthetic-full");
    let spec = GranuleSpec::new(date(2024, 7, 15));
    let start = std::time::Instant::now();
    let path = write_granule(tmp.path(), &spec).unwrap();
    let elapsed = start.elapsed();
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "full-size granule: {:.1} MB in {:.1} s",
        size as f64 / 1e6,
        elapsed.as_secs_f64()
    );
    assert!(size < 150_000_000, "{size} bytes");
    let file = netcdf::open(&path).unwrap();
    for var in DataVar::ALL {
        let v = file.variable(var.name()).unwrap();
        assert_eq!(v.len(), 17999 * 36000);
        for row in [0, 9000, 17998] {
            let got = read_rows(&file, var, row, row + 1, 36000);
            let want: Vec<i32> = (0..36000).map(|j| spec.raw_value(var, row, j)).collect();
            assert_same(&got, &want, &format!("{var} row {row}"));
        }
    }
    let h5 = libhdf5::File::open(&path).unwrap();
    assert_eq!(
        h5.dataset("analysed_sst").unwrap().num_chunks(),
        Some(18 * 18)
    );
}
