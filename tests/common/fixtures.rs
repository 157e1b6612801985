//! Fixture files written by libhdf5 (through `hdf5`) and netCDF-C (through `netcdf`).

use std::path::Path;

use libhdf5::File;
use libhdf5::dataset::{AllocTime, ChunkOpts};
use libhdf5::types::VarLenUnicode;
use ndarray::{Array1, Array2, s};

use super::libhdf5_lock;

/// Shape of a MUR-like granule.
#[derive(Debug, Clone)]
pub struct MurSpec {
    pub nlat: usize,
    pub nlon: usize,
    /// Chunks of analysed_sst, analysis_error, sst_anomaly (lat, lon).
    pub sst_chunk: (usize, usize),
    /// Chunks of mask, sea_ice_fraction, dt_1km_data (lat, lon).
    pub mask_chunk: (usize, usize),
    /// Make `time` unlimited (then the `time` variable is chunked, not contiguous).
    pub unlimited_time: bool,
    /// Write data (false leaves every chunk unwritten).
    pub write_data: bool,
}

impl MurSpec {
    /// 1/10 of a real granule per axis: 18 × 18 chunks with partial edges, like the real 324.
    pub fn tenth() -> Self {
        Self {
            nlat: 1799,
            nlon: 3599,
            sst_chunk: (102, 204),
            mask_chunk: (144, 289),
            unlimited_time: false,
            write_data: true,
        }
    }

    /// A few KB: for the fuzz corpus and quick tests.
    pub fn tiny() -> Self {
        Self {
            nlat: 9,
            nlon: 18,
            sst_chunk: (4, 8),
            mask_chunk: (5, 10),
            unlimited_time: true,
            write_data: true,
        }
    }
}

fn global_attributes() -> Vec<(&'static str, netcdf::AttributeValue)> {
    use netcdf::AttributeValue as V;
    let s = |x: &str| V::Str(x.to_string());
    vec![
        ("Conventions", s("CF-1.7, ACDD-1.3")),
        ("title", s("Daily MUR SST, Final product")),
        (
            "summary",
            s("A merged, multi-sensor L4 Foundation SST analysis product from JPL."),
        ),
        (
            "references",
            s("http://podaac.jpl.nasa.gov/Multi-scale_Ultra-high_Resolution_MUR-SST"),
        ),
        ("institution", s("Jet Propulsion Laboratory")),
        (
            "history",
            s("created at nominal 4-day latency; replaced nrt (1-day latency) version."),
        ),
        ("comment", s("MUR = \"Multi-scale Ultra-high Resolution\"")),
        (
            "license",
            s("These data are available free of charge under data policy of JPL PO.DAAC."),
        ),
        ("id", s("MUR-JPL-L4-GLOB-v04.1")),
        ("naming_authority", s("org.ghrsst")),
        ("product_version", s("04.1")),
        ("uuid", s("27665bc0-d5fc-11e1-9b23-0800200c9a66")),
        ("gds_version_id", s("2.0")),
        ("netcdf_version_id", s("4.1")),
        ("date_created", s("20210724T012533Z")),
        ("start_time", s("20210715T090000Z")),
        ("stop_time", s("20210715T090000Z")),
        ("time_coverage_start", s("20210714T210000Z")),
        ("time_coverage_end", s("20210715T210000Z")),
        ("file_quality_level", V::Short(3)),
        (
            "source",
            s(
                "MODIS_T-JPL, MODIS_A-JPL, AMSR2-REMSS, AVHRRMTA_G-NAVO, iQUAM-NOAA/NESDIS, Ice_Conc-OSISAF",
            ),
        ),
        (
            "platform",
            s("Terra, Aqua, GCOM-W, MetOp-A, MetOp-B, Buoys/Ships"),
        ),
        ("sensor", s("MODIS, AMSR2, AVHRR, in-situ")),
        (
            "Metadata_Conventions",
            s("Unidata Observation Dataset v1.0"),
        ),
        (
            "metadata_link",
            s(
                "http://podaac.jpl.nasa.gov/ws/metadata/dataset/?format=iso&shortName=MUR-JPL-L4-GLOB-v04.1",
            ),
        ),
        (
            "keywords",
            s("Oceans > Ocean Temperature > Sea Surface Temperature"),
        ),
        (
            "keywords_vocabulary",
            s("NASA Global Change Master Directory (GCMD) Science Keywords"),
        ),
        (
            "standard_name_vocabulary",
            s("NetCDF Climate and Forecast (CF) Metadata Convention"),
        ),
        ("southernmost_latitude", V::Float(-90.0)),
        ("northernmost_latitude", V::Float(90.0)),
        ("westernmost_longitude", V::Float(-180.0)),
        ("easternmost_longitude", V::Float(180.0)),
        ("spatial_resolution", s("0.01 degrees")),
        ("geospatial_lat_units", s("degrees north")),
        ("geospatial_lat_resolution", V::Float(0.01)),
        ("geospatial_lon_units", s("degrees east")),
        ("geospatial_lon_resolution", V::Float(0.01)),
        (
            "acknowledgment",
            s("Please acknowledge the use of these data with the following statement: ..."),
        ),
        ("creator_name", s("JPL MUR SST project")),
        ("creator_email", s("ghrsst@podaac.jpl.nasa.gov")),
        ("creator_url", s("http://mur.jpl.nasa.gov")),
        (
            "project",
            s(
                "NASA Making Earth Science Data Records for Use in Research Environments (MEaSUREs) Program",
            ),
        ),
        ("publisher_name", s("GHRSST Project Office")),
        ("publisher_url", s("http://www.ghrsst.org")),
        ("publisher_email", s("ghrsst-po@nceo.ac.uk")),
        ("processing_level", s("L4")),
        ("cdm_data_type", s("grid")),
    ]
}

/// A MUR-shaped NetCDF-4 file, written by netCDF-C as mur-granule.md describes.
pub fn mur_like(path: &Path, spec: &MurSpec) {
    let _g = libhdf5_lock();
    let (nlat, nlon) = (spec.nlat, spec.nlon);
    let mut file = netcdf::create(path).unwrap();
    if spec.unlimited_time {
        file.add_unlimited_dimension("time").unwrap();
    } else {
        file.add_dimension("time", 1).unwrap();
    }
    file.add_dimension("lat", nlat).unwrap();
    file.add_dimension("lon", nlon).unwrap();
    for (name, value) in global_attributes() {
        file.add_attribute(name, value).unwrap();
    }

    let mut time = file.add_variable::<i32>("time", &["time"]).unwrap();
    time.put_attribute("long_name", "reference time of sst field")
        .unwrap();
    time.put_attribute("standard_name", "time").unwrap();
    time.put_attribute("axis", "T").unwrap();
    time.put_attribute("units", "seconds since 1981-01-01 00:00:00 UTC")
        .unwrap();
    time.put_attribute("comment", "Nominal time of analyzed fields")
        .unwrap();

    for (name, n, lo, hi, axis) in [
        ("lat", nlat, -89.99f32, 89.99f32, "Y"),
        ("lon", nlon, -179.99f32, 180.0f32, "X"),
    ] {
        let mut v = file.add_variable::<f32>(name, &[name]).unwrap();
        v.set_chunking(&[n]).unwrap();
        v.set_compression(7, true).unwrap();
        let long = if name == "lat" {
            "latitude"
        } else {
            "longitude"
        };
        v.put_attribute("long_name", long).unwrap();
        v.put_attribute("standard_name", long).unwrap();
        v.put_attribute("axis", axis).unwrap();
        v.put_attribute(
            "units",
            if name == "lat" {
                "degrees_north"
            } else {
                "degrees_east"
            },
        )
        .unwrap();
        v.put_attribute("valid_min", lo).unwrap();
        v.put_attribute("valid_max", hi).unwrap();
        v.put_attribute(
            "comment",
            "geolocations inherited from the input data without correction",
        )
        .unwrap();
    }

    let dims = ["time", "lat", "lon"];
    let int16_vars = [
        (
            "analysed_sst",
            "analysed sea surface temperature",
            "sea_surface_foundation_temperature",
            0.001f32,
            298.15f32,
        ),
        (
            "analysis_error",
            "estimated error standard deviation of analysed_sst",
            "",
            0.01,
            0.0,
        ),
        (
            "sst_anomaly",
            "SST anomaly from a seasonal SST climatology",
            "",
            0.001,
            0.0,
        ),
    ];
    for (name, long, standard, scale, offset) in int16_vars {
        let mut v = file.add_variable::<i16>(name, &dims).unwrap();
        v.set_chunking(&[1, spec.sst_chunk.0, spec.sst_chunk.1])
            .unwrap();
        v.set_compression(7, true).unwrap();
        v.set_fill_value(-32768i16).unwrap();
        v.put_attribute("long_name", long).unwrap();
        if !standard.is_empty() {
            v.put_attribute("standard_name", standard).unwrap();
        }
        v.put_attribute("units", "kelvin").unwrap();
        v.put_attribute("add_offset", offset).unwrap();
        v.put_attribute("scale_factor", scale).unwrap();
        v.put_attribute("valid_min", -32767i16).unwrap();
        v.put_attribute("valid_max", 32767i16).unwrap();
        v.put_attribute("comment", "\"Final\" version using Multi-Resolution Variational Analysis (MRVA) method for interpolation").unwrap();
        v.put_attribute("coordinates", "lon lat").unwrap();
        v.put_attribute("source", "MODIS_T-JPL, MODIS_A-JPL, AMSR2-REMSS")
            .unwrap();
    }
    let int8_vars = [
        ("mask", "sea/land field composite mask", 0.0f32),
        ("sea_ice_fraction", "sea ice area fraction", 0.01),
        ("dt_1km_data", "time to most recent 1km data", 0.0),
    ];
    for (name, long, scale) in int8_vars {
        let mut v = file.add_variable::<i8>(name, &dims).unwrap();
        v.set_chunking(&[1, spec.mask_chunk.0, spec.mask_chunk.1])
            .unwrap();
        v.set_compression(7, true).unwrap();
        v.set_fill_value(-128i8).unwrap();
        v.put_attribute("long_name", long).unwrap();
        v.put_attribute("coordinates", "lon lat").unwrap();
        v.put_attribute(
            "comment",
            "a comment long enough to look like the real thing",
        )
        .unwrap();
        v.put_attribute("source", "NAVO, OSISAF").unwrap();
        v.put_attribute("valid_min", 0i8).unwrap();
        v.put_attribute("valid_max", 100i8).unwrap();
        if scale > 0.0 {
            v.put_attribute("scale_factor", scale).unwrap();
            v.put_attribute("add_offset", 0.0f32).unwrap();
            v.put_attribute("units", "fraction (between 0 and 1)")
                .unwrap();
        } else if name == "mask" {
            v.put_attribute("flag_masks", vec![1i8, 2, 4, 8, 16])
                .unwrap();
            v.put_attribute("flag_values", vec![1i8, 2, 5, 9, 13])
                .unwrap();
            v.put_attribute("flag_meanings", "open_sea land open_lake open_sea_with_ice_in_the_grid open_lake_with_ice_in_the_grid").unwrap();
        } else {
            v.put_attribute("units", "hours").unwrap();
            v.put_attribute("standard_name", "time").unwrap();
        }
    }

    file.variable_mut("time")
        .unwrap()
        .put_value(1_279_184_400i32, [0])
        .unwrap();
    let lat: Vec<f32> = (0..nlat)
        .map(|i| -89.99 + 179.98 * i as f32 / (nlat.max(2) - 1) as f32)
        .collect();
    let lon: Vec<f32> = (0..nlon)
        .map(|i| -179.99 + 359.99 * i as f32 / (nlon.max(2) - 1) as f32)
        .collect();
    file.variable_mut("lat")
        .unwrap()
        .put_values(&lat, ..)
        .unwrap();
    file.variable_mut("lon")
        .unwrap()
        .put_values(&lon, ..)
        .unwrap();
    if spec.write_data {
        let extent = [0..1, 0..nlat, 0..nlon];
        for (k, (name, ..)) in int16_vars.iter().enumerate() {
            let data: Vec<i16> = (0..nlat * nlon)
                .map(|i| {
                    let (y, x) = (i / nlon, i % nlon);
                    if (x + y) % 97 == 0 {
                        -32768
                    } else {
                        // Smooth field plus a few bits of noise: compresses about as
                        // poorly as real SST, so chunks (and B-tree nodes) spread out.
                        (((y * 3 + x * 7 + k * 11) % 4000) as i16) - 2000 + noise(i, 6) as i16
                    }
                })
                .collect();
            file.variable_mut(name)
                .unwrap()
                .put_values(&data, extent.clone())
                .unwrap();
        }
        for (k, (name, ..)) in int8_vars.iter().enumerate() {
            let data: Vec<i8> = (0..nlat * nlon)
                .map(|i| ((i / nlon + i % nlon + k) % 100) as i8)
                .collect();
            file.variable_mut(name)
                .unwrap()
                .put_values(&data, extent.clone())
                .unwrap();
        }
    }
    file.close().unwrap();
}

/// `bits` pseudo-random bits derived from `i`.
fn noise(i: usize, bits: u32) -> u64 {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (x >> 40) & ((1 << bits) - 1)
}

fn vlen(s: &str) -> VarLenUnicode {
    s.parse().unwrap()
}

/// Datasets of every kind of chunk index, written with `libver_latest()`.
pub fn latest_indexes(path: &Path) {
    let _g = libhdf5_lock();
    let f = File::with_options()
        .with_fapl(|p| p.libver_latest())
        .create(path)
        .unwrap();
    let grid = |h: usize, w: usize| Array2::from_shape_fn((h, w), |(y, x)| (y * 1000 + x) as i32);

    // Single chunk, filtered and not.
    let d = f
        .new_dataset::<i32>()
        .chunk((50, 60))
        .shuffle()
        .deflate(5)
        .shape((50, 60))
        .create("single_filtered")
        .unwrap();
    d.write(&grid(50, 60)).unwrap();
    let d = f
        .new_dataset::<i32>()
        .chunk((20, 30))
        .shape((20, 30))
        .create("single_plain")
        .unwrap();
    d.write(&grid(20, 30)).unwrap();
    // Implicit: early allocation, no filters; partial edge chunks.
    let d = f
        .new_dataset::<i16>()
        .chunk((30, 40))
        .alloc_time(Some(AllocTime::Early))
        .shape((100, 90))
        .create("implicit")
        .unwrap();
    d.write(&Array2::from_shape_fn((100, 90), |(y, x)| (y + x) as i16))
        .unwrap();
    // Fixed array, filtered, sparse (some chunks never written).
    let d = f
        .new_dataset::<i32>()
        .chunk((10, 20))
        .shuffle()
        .deflate(4)
        .fill_value(-7)
        .shape((95, 190))
        .create("fixed_array")
        .unwrap();
    d.write_slice(&grid(40, 190), s![0..40, ..]).unwrap();
    d.write_slice(&grid(15, 60), s![80..95, 100..160]).unwrap();
    // Fixed array, paged (1320 chunks > 1024 per page), unfiltered, sparse: page 2 never written.
    let d = f
        .new_dataset::<u8>()
        .chunk((10, 10))
        .shape((330, 400))
        .create("fixed_array_paged")
        .unwrap();
    d.write_slice(&Array2::from_elem((100, 400), 3u8), s![0..100, ..])
        .unwrap();
    // Fixed array, paged and filtered, every chunk written.
    let d = f
        .new_dataset::<i16>()
        .chunk((4, 4))
        .deflate(1)
        .shape((150, 130))
        .create("fixed_array_paged_full")
        .unwrap();
    d.write(&Array2::from_shape_fn((150, 130), |(y, x)| {
        (y * 7 + x) as i16
    }))
    .unwrap();
    // Fixed array whose maximum shape exceeds its current shape.
    let d = f
        .new_dataset::<i32>()
        .chunk((10, 10))
        .shape([(35, Some(60)), (25, Some(80))])
        .create("fixed_array_maxdims")
        .unwrap();
    d.write(&grid(35, 25)).unwrap();

    // Extensible array: unlimited first dimension, filtered, partial edges, spills into super blocks.
    let d = f
        .new_dataset::<i32>()
        .chunk((2, 16))
        .shuffle()
        .deflate(3)
        .shape([(0, None), (50, Some(50))])
        .create("earray")
        .unwrap();
    d.resize((801, 50)).unwrap();
    d.write(&grid(801, 50)).unwrap();
    // Extensible array, unfiltered and sparse, large enough for paged data blocks.
    let d = f
        .new_dataset::<u8>()
        .chunk((1, 1))
        .shape([(0, None), (1, Some(1))])
        .create("earray_paged")
        .unwrap();
    d.resize((140_000, 1)).unwrap();
    d.write_slice(&Array2::from_elem((10, 1), 1u8), s![0..10, ..])
        .unwrap();
    d.write_slice(&Array2::from_elem((20, 1), 2u8), s![135_000..135_020, ..])
        .unwrap();
    // Extensible array with the unlimited dimension second.
    let d = f
        .new_dataset::<i16>()
        .chunk((8, 3))
        .shape([(20, Some(20)), (0, None)])
        .create("earray_unlim_dim1")
        .unwrap();
    d.resize((20, 31)).unwrap();
    d.write(&Array2::from_shape_fn((20, 31), |(y, x)| {
        (y * 31 + x) as i16
    }))
    .unwrap();

    // v2 B-trees: two unlimited dimensions, filtered (type 11) and not (type 10).
    let d = f
        .new_dataset::<i32>()
        .chunk((5, 5))
        .deflate(6)
        .shape([(0, None), (0, None)])
        .create("btree2_filtered")
        .unwrap();
    d.resize((100, 103)).unwrap();
    d.write(&grid(100, 103)).unwrap();
    let d = f
        .new_dataset::<i32>()
        .chunk((7, 9))
        .shape([(0, None), (0, None)])
        .create("btree2_plain")
        .unwrap();
    d.resize((30, 40)).unwrap();
    d.write_slice(&grid(14, 40), s![0..14, ..]).unwrap();

    // A v2 B-tree of depth 2 (3844 filtered records; a depth-1 tree holds at most 3603).
    let d = f
        .new_dataset::<u8>()
        .chunk((1, 1))
        .deflate(1)
        .shape([(0, None), (0, None)])
        .create("btree2_deep")
        .unwrap();
    d.resize((62, 62)).unwrap();
    d.write(&Array2::from_shape_fn((62, 62), |(y, x)| (y + x) as u8))
        .unwrap();

    // Contiguous and compact.
    f.new_dataset_builder()
        .with_data(&grid(12, 13))
        .create("contiguous")
        .unwrap();
    f.new_dataset::<i32>()
        .no_chunk()
        .shape((7, 9))
        .create("contiguous_unwritten")
        .unwrap();
    f.new_dataset_builder()
        .with_data(&Array1::from_iter(0..20i16))
        .layout(libhdf5::dataset::Layout::Compact)
        .create("compact")
        .unwrap();
    // An unsupported-by-netCDF filter, reported as is.
    let d = f
        .new_dataset::<i32>()
        .chunk((8, 8))
        .fletcher32()
        .shape((16, 16))
        .create("fletcher32")
        .unwrap();
    d.write(&grid(16, 16)).unwrap();
    // A scalar dataset.
    f.new_dataset_builder()
        .with_data(&ndarray::arr0(42.5f64))
        .create("scalar")
        .unwrap();
    attributes_and_groups(&f);
}

/// Groups with compact and dense links; objects with compact, dense, creation-ordered,
/// huge and variable-length attributes.
fn attributes_and_groups(f: &libhdf5::Group) {
    let g = f.create_group("dense_group").unwrap();
    for i in (0..12).rev() {
        if i % 3 == 0 {
            g.create_group(&format!("sub{i:02}")).unwrap();
        } else {
            g.new_dataset_builder()
                .with_data(&Array1::from_iter(0..(i + 1)))
                .create(format!("ds{i:02}").as_str())
                .unwrap();
        }
    }
    let nested = g.group("sub03").unwrap().create_group("deeper").unwrap();
    nested
        .new_dataset_builder()
        .with_data(&Array1::from(vec![1.5f32, 2.5]))
        .create("leaf")
        .unwrap();

    let few = f
        .new_dataset_builder()
        .with_data(&Array1::from(vec![1u16, 2, 3]))
        .create("few_attrs")
        .unwrap();
    few.new_attr::<i32>()
        .create("zeta")
        .unwrap()
        .write_scalar(&7)
        .unwrap();
    few.new_attr::<f64>()
        .shape(3)
        .create("alpha")
        .unwrap()
        .write(&Array1::from(vec![0.5, 1.5, -2.0]))
        .unwrap();
    few.new_attr::<VarLenUnicode>()
        .create("units")
        .unwrap()
        .write_scalar(&vlen("kelvin"))
        .unwrap();

    let many = f
        .new_dataset_builder()
        .with_data(&Array1::from(vec![1i8, 2, 3]))
        .create("many_attrs")
        .unwrap();
    add_many_attributes(&many);

    let ordered = f
        .new_dataset_builder()
        .with_data(&Array1::from(vec![1i64, 2]))
        .attr_creation_order(
            libhdf5::dataset::AttrCreationOrder::TRACKED
                | libhdf5::dataset::AttrCreationOrder::INDEXED,
        )
        .create("ordered_attrs")
        .unwrap();
    add_many_attributes(&ordered);
    // Object header v2 without times, with non-default attribute phase change values
    // (stored in the header): three attributes are already "dense".
    let phase = f
        .new_dataset_builder()
        .with_data(&Array1::from(vec![1u32]))
        .obj_track_times(false)
        .attr_phase_change(2, 1)
        .create("phase_change_attrs")
        .unwrap();
    for name in ["p", "q", "r"] {
        phase
            .new_attr::<u8>()
            .create(name)
            .unwrap()
            .write_scalar(&2u8)
            .unwrap();
    }
    // Object header v2 with access/modification/change/birth times.
    let timed = f
        .new_dataset_builder()
        .with_data(&Array1::from(vec![1u32, 2]))
        .obj_track_times(true)
        .create("timed")
        .unwrap();
    timed
        .new_attr::<u8>()
        .create("t")
        .unwrap()
        .write_scalar(&3u8)
        .unwrap();
    let ordered_compact = f
        .new_dataset_builder()
        .with_data(&Array1::from(vec![1i64, 2]))
        .attr_creation_order(libhdf5::dataset::AttrCreationOrder::TRACKED)
        .create("ordered_compact_attrs")
        .unwrap();
    for name in ["c", "b", "a"] {
        ordered_compact
            .new_attr::<u8>()
            .create(name)
            .unwrap()
            .write_scalar(&1u8)
            .unwrap();
    }
    f.new_attr::<VarLenUnicode>()
        .shape(3)
        .create("root_strings")
        .unwrap()
        .write(&Array1::from(vec![vlen("a"), vlen("bee"), vlen("")]))
        .unwrap();
}

fn add_many_attributes(obj: &libhdf5::Location) {
    for i in (0..20).rev() {
        let name = format!("attr_{i:02}_{}", ["x", "y", "z"][i % 3]);
        match i % 4 {
            0 => obj
                .new_attr::<i16>()
                .shape(2)
                .create(name.as_str())
                .unwrap()
                .write(&Array1::from(vec![i as i16, -(i as i16)]))
                .unwrap(),
            1 => obj
                .new_attr::<f32>()
                .create(name.as_str())
                .unwrap()
                .write_scalar(&(i as f32 / 3.0))
                .unwrap(),
            2 => obj
                .new_attr::<VarLenUnicode>()
                .create(name.as_str())
                .unwrap()
                .write_scalar(&vlen(&format!("value {i}")))
                .unwrap(),
            _ => obj
                .new_attr::<u64>()
                .create(name.as_str())
                .unwrap()
                .write_scalar(&(u64::MAX - i as u64))
                .unwrap(),
        }
    }
    // Larger than the fractal heap's largest managed object: stored as a "huge" object.
    obj.new_attr::<u8>()
        .shape(10_000)
        .create("huge")
        .unwrap()
        .write(&Array1::from_iter((0..10_000).map(|i| (i % 256) as u8)))
        .unwrap();
}

/// Old-format file: superblock v0 (or v1 with a non-default chunk B-tree K), object
/// header v1, symbol-table groups, v1 B-tree chunk indexes.
pub fn earliest(path: &Path, istore_k: Option<u32>, userblock: u64) {
    let _g = libhdf5_lock();
    let f = File::with_options()
        .with_fapl(|p| p.libver_earliest())
        .with_fcpl(|p| {
            if let Some(k) = istore_k {
                p.istore_k(k);
            }
            p.userblock(userblock)
        })
        .create(path)
        .unwrap();
    let grid = |h: usize, w: usize| Array2::from_shape_fn((h, w), |(y, x)| (y * 1000 + x) as i32);
    // 30 × 30 = 900 chunks: several levels of v1 B-tree nodes; partial edges; shuffle+deflate.
    let d = f
        .new_dataset::<i32>()
        .chunk((4, 4))
        .shuffle()
        .deflate(6)
        .shape((117, 119))
        .create("btree_deep")
        .unwrap();
    d.write(&grid(117, 119)).unwrap();
    // Sparse: most chunks never written.
    let d = f
        .new_dataset::<f32>()
        .chunk((10, 10))
        .fill_value(f32::NAN)
        .shape((100, 100))
        .create("sparse")
        .unwrap();
    d.write_slice(&Array2::from_elem((10, 30), 1.0f32), s![20..30, 40..70])
        .unwrap();
    d.write_slice(&Array2::from_elem((5, 5), 2.0f32), s![95..100, 95..100])
        .unwrap();
    // Unlimited dimension, like netCDF-3 style record variables.
    let d = f
        .new_dataset::<i16>()
        .chunk((1, 50))
        .shape([(0, None), (50, Some(50))])
        .create("records")
        .unwrap();
    d.resize((5, 50)).unwrap();
    d.write(&Array2::from_shape_fn((5, 50), |(y, x)| {
        (y * 50 + x) as i16
    }))
    .unwrap();
    f.new_dataset_builder()
        .with_data(&grid(3, 4))
        .create("contiguous")
        .unwrap();
    // Old-style group with more members than one symbol table node holds.
    let g = f.create_group("many").unwrap();
    for i in (0..20).rev() {
        g.new_dataset_builder()
            .with_data(&Array1::from(vec![i as u8]))
            .create(format!("m{i:02}").as_str())
            .unwrap();
    }
    g.create_group("inner")
        .unwrap()
        .create_group("innermost")
        .unwrap();
    d.new_attr::<VarLenUnicode>()
        .create("units")
        .unwrap()
        .write_scalar(&vlen("days"))
        .unwrap();
    d.new_attr::<i32>()
        .shape(4)
        .create("ints")
        .unwrap()
        .write(&Array1::from(vec![1, -2, 3, -4]))
        .unwrap();
    f.new_attr::<f64>()
        .create("version")
        .unwrap()
        .write_scalar(&1.5)
        .unwrap();
}

/// A file whose partial edge chunks are stored unfiltered: reported as unsupported.
pub fn dont_filter_partial_chunks(path: &Path) {
    let _g = libhdf5_lock();
    let f = File::with_options()
        .with_fapl(|p| p.libver_latest())
        .create(path)
        .unwrap();
    let d = f
        .new_dataset::<i32>()
        .chunk((4, 4))
        .deflate(1)
        .chunk_opts(ChunkOpts::DONT_FILTER_PARTIAL_CHUNKS)
        .shape((10, 10))
        .create("partial")
        .unwrap();
    d.write(&Array2::from_elem((10, 10), 1i32)).unwrap();
}

/// A small file for the fuzz corpus: a few datasets, dense attributes, old or new format.
pub fn small(path: &Path, latest: bool) {
    let _g = libhdf5_lock();
    let f = File::with_options()
        .with_fapl(|p| {
            if latest {
                p.libver_latest()
            } else {
                p.libver_earliest()
            }
        })
        .create(path)
        .unwrap();
    let d = f
        .new_dataset::<i16>()
        .chunk((3, 4))
        .shuffle()
        .deflate(1)
        .shape((7, 9))
        .create("chunked")
        .unwrap();
    d.write(&Array2::from_shape_fn((7, 9), |(y, x)| (y * 9 + x) as i16))
        .unwrap();
    if latest {
        let d = f
            .new_dataset::<i16>()
            .chunk((2, 2))
            .shape([(0, None), (3, Some(3))])
            .create("ea")
            .unwrap();
        d.resize((9, 3)).unwrap();
        d.write(&Array2::from_elem((9, 3), 5i16)).unwrap();
        let d = f
            .new_dataset::<u8>()
            .chunk((2, 2))
            .shape([(0, None), (0, None)])
            .create("bt2")
            .unwrap();
        d.resize((5, 5)).unwrap();
        d.write(&Array2::from_elem((5, 5), 5u8)).unwrap();
        f.new_dataset::<u8>()
            .chunk((2, 2))
            .shape((4, 4))
            .create("fa")
            .unwrap()
            .write(&Array2::from_elem((4, 4), 1u8))
            .unwrap();
    }
    f.new_dataset_builder()
        .with_data(&Array1::from(vec![1.0f32, 2.0]))
        .create("contiguous")
        .unwrap();
    for i in 0..10 {
        d.new_attr::<i32>()
            .create(format!("a{i}").as_str())
            .unwrap()
            .write_scalar(&i)
            .unwrap();
    }
    d.new_attr::<VarLenUnicode>()
        .create("s")
        .unwrap()
        .write_scalar(&vlen("text"))
        .unwrap();
    f.create_group("g").unwrap().create_group("h").unwrap();
}

/// A very small NetCDF-4 file (dense attributes, dimension scales, `DIMENSION_LIST`),
/// for the fuzz corpus.
pub fn netcdf_small(path: &Path) {
    let _g = libhdf5_lock();
    let mut file = netcdf::create(path).unwrap();
    file.add_unlimited_dimension("time").unwrap();
    file.add_dimension("lat", 3).unwrap();
    file.add_dimension("lon", 4).unwrap();
    for i in 0..9 {
        file.add_attribute(&format!("g{i}"), format!("global {i}"))
            .unwrap();
    }
    let mut v = file
        .add_variable::<i16>("sst", &["time", "lat", "lon"])
        .unwrap();
    v.set_chunking(&[1, 2, 2]).unwrap();
    v.set_compression(1, true).unwrap();
    v.set_fill_value(-1i16).unwrap();
    for i in 0..8 {
        v.put_attribute(&format!("a{i}"), i as f32).unwrap();
    }
    v.put_attribute("flags", vec![1i8, 2, 4]).unwrap();
    v.put_values(&(0..12).collect::<Vec<i16>>(), [0..1, 0..3, 0..4])
        .unwrap();
    file.close().unwrap();
}
