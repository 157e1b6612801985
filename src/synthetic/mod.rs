//! Synthetic MUR SST v4.1 granules, written with netcdf-c so they look like real ones.
//!
//! No real granule is available offline, so tests, `mursst demo` and the benchmarks use
//! these instead. A granule written here has the real file name, dimensions, variable
//! set, dtypes, chunk shapes, filters, fill values, attributes (names, types and order)
//! and global attributes; its values are smooth, deterministic functions of the date and
//! a seed (SST falling with latitude plus a drifting wave, land, lakes and sea ice), so
//! deflate squeezes a full-size granule to tens of megabytes and tests can compute the
//! exact value expected at any cell ([`GranuleSpec::raw_value`],
//! [`GranuleSpec::decoded_value`]).
//!
//! The grid is a window of the real 0.01° grid: `lat_size` × `lon_size` cells starting
//! at `lat_start` / `lon_start` (default 0, i.e. the first values −89.99 and −179.99),
//! so a shrunk granule has the real coordinate values, and moving the window changes
//! them (useful to test schema rejection).

mod filter_order;

use std::f64::consts::PI;
use std::path::{Path, PathBuf};

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime};

/// Full size of the real grid.
pub const FULL_LAT: usize = 17999;
pub const FULL_LON: usize = 36000;

/// Seconds between 1970-01-01 and the MUR time origin 1981-01-01 00:00:00 UTC.
const EPOCH_1981: i64 = 347_155_200;

/// Side of the square tiles (in cells) on which values are constant: 0.02°. Rows then
/// repeat in pairs, which lets deflate shrink a full granule (5.8 GB of values) to about
/// 64 MB, near a real granule's metadata-to-data proportions at a tenth of its size.
pub const TILE: usize = 2;

/// Errors writing a synthetic granule.
#[derive(Debug, thiserror::Error)]
pub enum SyntheticError {
    #[error("invalid granule spec: {0}")]
    InvalidSpec(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: netCDF error while {action}: {source}")]
    NetCdf {
        path: PathBuf,
        action: String,
        #[source]
        source: netcdf::Error,
    },
    #[error("{path}: libhdf5 error while {action}: {message}")]
    Hdf5 {
        path: PathBuf,
        action: String,
        message: String,
    },
}

/// The six data variables of a MUR v4.1 granule, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataVar {
    AnalysedSst,
    AnalysisError,
    Mask,
    SeaIceFraction,
    Dt1kmData,
    SstAnomaly,
}

/// Storage type of a data variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    Int8,
    Int16,
}

impl DataVar {
    /// All six, in the order real files define them.
    pub const ALL: [DataVar; 6] = [
        DataVar::AnalysedSst,
        DataVar::AnalysisError,
        DataVar::Mask,
        DataVar::SeaIceFraction,
        DataVar::Dt1kmData,
        DataVar::SstAnomaly,
    ];

    /// The four the production store keeps (dt_1km_data and sst_anomaly are dropped).
    pub const STORE_DEFAULT: [DataVar; 4] = [
        DataVar::AnalysedSst,
        DataVar::AnalysisError,
        DataVar::Mask,
        DataVar::SeaIceFraction,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DataVar::AnalysedSst => "analysed_sst",
            DataVar::AnalysisError => "analysis_error",
            DataVar::Mask => "mask",
            DataVar::SeaIceFraction => "sea_ice_fraction",
            DataVar::Dt1kmData => "dt_1km_data",
            DataVar::SstAnomaly => "sst_anomaly",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }

    pub fn dtype(self) -> DType {
        match self {
            DataVar::AnalysedSst | DataVar::AnalysisError | DataVar::SstAnomaly => DType::Int16,
            DataVar::Mask | DataVar::SeaIceFraction | DataVar::Dt1kmData => DType::Int8,
        }
    }

    /// `_FillValue` as stored (−32768 for int16, −128 for int8).
    pub fn fill_value(self) -> i32 {
        match self.dtype() {
            DType::Int16 => i16::MIN as i32,
            DType::Int8 => i8::MIN as i32,
        }
    }

    /// `(scale_factor, add_offset)` of variables that are packed floats.
    pub fn scale_offset(self) -> Option<(f64, f64)> {
        match self {
            DataVar::AnalysedSst => Some((0.001, 298.15)),
            DataVar::AnalysisError => Some((0.01, 0.0)),
            DataVar::SeaIceFraction => Some((0.01, 0.0)),
            DataVar::SstAnomaly => Some((0.001, 0.0)),
            DataVar::Mask | DataVar::Dt1kmData => None,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for DataVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Per-variable `(lat, lon)` chunk shapes (the time chunk is always 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLayout {
    shapes: [[usize; 2]; 6],
}

impl Default for ChunkLayout {
    /// The layout of every granule since 2024-06-02.
    fn default() -> Self {
        Self::since_2024_06_02()
    }
}

impl ChunkLayout {
    pub const SMALL: [usize; 2] = [1023, 2047];
    pub const CLASSIC_INT8: [usize; 2] = [1447, 2895];
    pub const LARGE_INT16: [usize; 2] = [3600, 7200];
    pub const LARGE_INT8: [usize; 2] = [4500, 9000];

    /// The same `(lat, lon)` chunk shape for every variable.
    pub fn uniform(shape: [usize; 2]) -> Self {
        Self { shapes: [shape; 6] }
    }

    /// Since 2024-06-02 every variable is chunked (1, 1023, 2047).
    pub fn since_2024_06_02() -> Self {
        Self::uniform(Self::SMALL)
    }

    /// Most of 2002-06-01..2023-09-03: int16 variables (1, 1023, 2047), int8 ones (1, 1447, 2895).
    pub fn classic() -> Self {
        Self::by_dtype(Self::SMALL, Self::CLASSIC_INT8)
    }

    /// 2023-02-24..28, 2023-04-22 and 2023-09-04..2024-06-01: (1, 3600, 7200) / (1, 4500, 9000).
    pub fn large() -> Self {
        Self::by_dtype(Self::LARGE_INT16, Self::LARGE_INT8)
    }

    /// The layout a real granule of `date` has, per the DMR++ survey in the reference notes
    /// (the "small exceptions" inside the windows are not known and not reproduced).
    pub fn for_date(date: NaiveDate) -> Self {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).expect("valid date");
        if date >= d(2024, 6, 2) {
            Self::since_2024_06_02()
        } else if date == d(2024, 3, 24) {
            // Earthmover's inventory: analysed_sst (1, 1023, 2047), analysis_error not.
            Self::large().with(DataVar::AnalysedSst, Self::SMALL)
        } else if (d(2023, 2, 24)..=d(2023, 2, 28)).contains(&date)
            || date == d(2023, 4, 22)
            || date >= d(2023, 9, 4)
        {
            Self::large()
        } else if (d(2021, 2, 20)..=d(2021, 2, 21)).contains(&date) || date == d(2022, 11, 9) {
            Self::since_2024_06_02()
        } else {
            Self::classic()
        }
    }

    fn by_dtype(int16: [usize; 2], int8: [usize; 2]) -> Self {
        let mut shapes = [int16; 6];
        for v in DataVar::ALL {
            if v.dtype() == DType::Int8 {
                shapes[v.index()] = int8;
            }
        }
        Self { shapes }
    }

    /// The same layout with `var` chunked `(1, shape[0], shape[1])`.
    pub fn with(mut self, var: DataVar, shape: [usize; 2]) -> Self {
        self.shapes[var.index()] = shape;
        self
    }

    /// Nominal `(lat, lon)` chunk shape of `var` (before clamping to a small grid).
    pub fn get(&self, var: DataVar) -> [usize; 2] {
        self.shapes[var.index()]
    }
}

/// Everything that determines a synthetic granule; the same spec writes the same values.
#[derive(Debug, Clone, PartialEq)]
pub struct GranuleSpec {
    pub date: NaiveDate,
    /// Number of latitudes (rows); at most [`FULL_LAT`] − `lat_start`.
    pub lat_size: usize,
    /// Number of longitudes (columns); at most [`FULL_LON`] − `lon_start`.
    pub lon_size: usize,
    /// Index of the first latitude in the real grid (0 → −89.99).
    pub lat_start: usize,
    /// Index of the first longitude in the real grid (0 → −179.99).
    pub lon_start: usize,
    pub chunks: ChunkLayout,
    /// Deflate level 1..=9 of every filtered variable (real files: 6 before 2024-05-12, 7 after).
    pub deflate_level: u8,
    /// Shuffle before deflate (real files: always, but 2003-09-11).
    pub shuffle: bool,
    /// The data variables' pipeline lists deflate, then shuffle (real files:
    /// 2021-12-24..2022-01-26); lat/lon keep shuffle first.
    pub deflate_first: bool,
    /// Store lat/lon as one shuffle + deflate chunk, as real granules do; `false` makes them
    /// contiguous and unfiltered, like the files behind the reference store layout.
    pub coordinate_filters: bool,
    /// Data variables to include; written in file order whatever the order here.
    pub variables: Vec<DataVar>,
    /// Varies the wave phases, so two specs of the same day can differ.
    pub seed: u64,
}

impl GranuleSpec {
    /// A full-size granule of `date` with the current (since 2024-06-02) layout.
    pub fn new(date: NaiveDate) -> Self {
        Self {
            date,
            lat_size: FULL_LAT,
            lon_size: FULL_LON,
            lat_start: 0,
            lon_start: 0,
            chunks: ChunkLayout::default(),
            deflate_level: 7,
            shuffle: true,
            deflate_first: false,
            coordinate_filters: true,
            variables: DataVar::ALL.to_vec(),
            seed: 0,
        }
    }

    /// A `lat_size` × `lon_size` window at the start of the grid, for fast tests.
    pub fn small(date: NaiveDate, lat_size: usize, lon_size: usize) -> Self {
        Self {
            lat_size,
            lon_size,
            ..Self::new(date)
        }
    }

    /// A full-size granule with the chunk shapes and filters a real granule of `date` has.
    pub fn historical(date: NaiveDate) -> Self {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).expect("valid date");
        Self {
            chunks: ChunkLayout::for_date(date),
            deflate_level: if date >= d(2024, 5, 12) { 7 } else { 6 },
            shuffle: date != d(2003, 9, 11),
            deflate_first: (d(2021, 12, 24)..=d(2022, 1, 26)).contains(&date),
            ..Self::new(date)
        }
    }

    pub fn file_name(&self) -> String {
        granule_file_name(self.date)
    }

    /// Actual `(time, lat, lon)` chunk shape of `var`: netcdf-c refuses chunks larger than
    /// a fixed dimension, so on a small grid the layout's shape is clamped to the grid.
    pub fn chunk_shape(&self, var: DataVar) -> [usize; 3] {
        let [la, lo] = self.chunks.get(var);
        [1, la.min(self.lat_size), lo.min(self.lon_size)]
    }

    /// Whether the granule has `var`.
    pub fn has(&self, var: DataVar) -> bool {
        self.variables.contains(&var)
    }

    /// Value of the `time` variable: that day 09:00 UTC in seconds since 1981-01-01.
    pub fn time_value(&self) -> i32 {
        let t = self
            .date
            .and_time(NaiveTime::from_hms_opt(9, 0, 0).expect("valid time"));
        (t.and_utc().timestamp() - EPOCH_1981) as i32
    }

    /// Latitudes of the window, as stored (float32).
    pub fn lat_values(&self) -> Vec<f32> {
        (0..self.lat_size)
            .map(|i| grid_lat(self.lat_start + i) as f32)
            .collect()
    }

    /// Longitudes of the window, as stored (float32).
    pub fn lon_values(&self) -> Vec<f32> {
        (0..self.lon_size)
            .map(|j| grid_lon(self.lon_start + j) as f32)
            .collect()
    }

    /// The integer stored at `(i, j)` of the window (the fill value where there is no data).
    pub fn raw_value(&self, var: DataVar, i: usize, j: usize) -> i32 {
        let field = Field::new(self);
        let gi = self.lat_start + i;
        let gj = self.lon_start + j;
        field.tile(gi / TILE, gj / TILE).get(var)
    }

    /// The value a CF-decoding reader sees at `(i, j)`: `None` where it is the fill value,
    /// else `raw * scale_factor + add_offset` (or the raw integer for mask/dt_1km_data).
    pub fn decoded_value(&self, var: DataVar, i: usize, j: usize) -> Option<f64> {
        let raw = self.raw_value(var, i, j);
        if raw == var.fill_value() {
            return None;
        }
        Some(match var.scale_offset() {
            Some((scale, offset)) => raw as f64 * scale + offset,
            None => raw as f64,
        })
    }

    /// Check the spec before writing anything (also done by [`write_granule`]).
    pub fn validate(&self) -> Result<(), SyntheticError> {
        let bad = |msg: String| Err(SyntheticError::InvalidSpec(msg));
        if self.lat_size == 0 || self.lon_size == 0 {
            return bad(format!("empty grid {} x {}", self.lat_size, self.lon_size));
        }
        if self.lat_start + self.lat_size > FULL_LAT {
            return bad(format!(
                "lat window {}..{} exceeds the {FULL_LAT} latitudes of the grid",
                self.lat_start,
                self.lat_start + self.lat_size
            ));
        }
        if self.lon_start + self.lon_size > FULL_LON {
            return bad(format!(
                "lon window {}..{} exceeds the {FULL_LON} longitudes of the grid",
                self.lon_start,
                self.lon_start + self.lon_size
            ));
        }
        if self.deflate_first && !self.shuffle {
            return bad("deflate before shuffle needs shuffle".into());
        }
        if !(1..=9).contains(&self.deflate_level) {
            return bad(format!(
                "deflate level {} is not in 1..=9",
                self.deflate_level
            ));
        }
        for v in DataVar::ALL {
            let [la, lo] = self.chunks.get(v);
            if la == 0 || lo == 0 {
                return bad(format!("{v}: zero chunk dimension {la} x {lo}"));
            }
        }
        Ok(())
    }
}

/// `YYYYMMDD090000-JPL-L4_GHRSST-SSTfnd-MUR-GLOB-v02.0-fv04.1.nc`
pub fn granule_file_name(date: NaiveDate) -> String {
    format!(
        "{}090000-JPL-L4_GHRSST-SSTfnd-MUR-GLOB-v02.0-fv04.1.nc",
        date.format("%Y%m%d")
    )
}

/// Latitude of row `i` of the real grid, −89.99 + 0.01 i.
fn grid_lat(i: usize) -> f64 {
    (i as f64 - 8999.0) / 100.0
}

/// Longitude of column `j` of the real grid, −179.99 + 0.01 j.
fn grid_lon(j: usize) -> f64 {
    (j as f64 - 17999.0) / 100.0
}

/// The six stored integers of one tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TileValues([i32; 6]);

impl TileValues {
    fn get(&self, var: DataVar) -> i32 {
        self.0[var.index()]
    }
}

/// Static land: surface kind at a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Surface {
    Sea,
    Land,
    Lake,
}

/// Continents as wobbly ellipses `(lat, lon, lat radius, lon radius)` in degrees.
const CONTINENTS: [(f64, f64, f64, f64); 7] = [
    (48.0, -100.0, 22.0, 34.0), // North America
    (-14.0, -60.0, 26.0, 16.0), // South America
    (5.0, 20.0, 30.0, 22.0),    // Africa
    (52.0, 85.0, 22.0, 70.0),   // Eurasia
    (-25.0, 134.0, 11.0, 19.0), // Australia
    (73.0, -41.0, 10.0, 16.0),  // Greenland
    (-18.0, 47.0, 6.0, 3.0),    // Madagascar
];

/// Lakes `(lat, lon, lat radius, lon radius)`, inside continents.
const LAKES: [(f64, f64, f64, f64); 2] = [
    (45.5, -84.0, 3.0, 7.0), // Great Lakes
    (-1.0, 33.0, 1.5, 1.5),  // Lake Victoria
];

fn in_ellipse(lat: f64, lon: f64, e: (f64, f64, f64, f64), wobble: f64) -> bool {
    let (c_lat, c_lon, r_lat, r_lon) = e;
    let y = (lat - c_lat) / r_lat;
    let x = (lon - c_lon) / r_lon;
    x * x + y * y < 1.0 + wobble
}

/// Latitude of the Antarctic coast at `lon`: between about 79° S (a Ross-Sea-like bay
/// at the start of the grid, 180° W) and 67° S.
fn antarctic_coast(lon: f64) -> f64 {
    let l = lon.to_radians();
    let bay = ((lon + 172.0) / 20.0).powi(2);
    -72.0 + 3.0 * (2.0 * l).sin() + 2.0 * (5.0 * l).cos() - 6.0 * (-bay).exp()
}

fn surface(lat: f64, lon: f64) -> Surface {
    let (p, l) = (lat.to_radians(), lon.to_radians());
    if lat < antarctic_coast(lon) {
        return Surface::Land;
    }
    let wobble = 0.15 * (3.0 * l).sin() * (2.0 * p).cos() + 0.08 * (7.0 * l + 3.0 * p).sin();
    if LAKES.iter().any(|&e| in_ellipse(lat, lon, e, 0.0)) {
        return Surface::Lake;
    }
    if CONTINENTS.iter().any(|&e| in_ellipse(lat, lon, e, wobble)) {
        return Surface::Land;
    }
    Surface::Sea
}

/// The deterministic value model of one (date, seed).
struct Field {
    /// Days since 2002-06-01, the start of the record.
    day: f64,
    /// +1 in northern summer, −1 in northern winter.
    season: f64,
    phase1: f64,
    phase2: f64,
}

impl Field {
    fn new(spec: &GranuleSpec) -> Self {
        let start = NaiveDate::from_ymd_opt(2002, 6, 1).expect("valid date");
        let day = (spec.date - start).num_days() as f64;
        let doy = spec.date.ordinal0() as f64;
        let season = (2.0 * PI * (doy - 111.0) / 365.25).sin();
        let h1 = splitmix64(spec.seed);
        let h2 = splitmix64(h1);
        Self {
            day,
            season,
            phase1: (h1 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 * PI,
            phase2: (h2 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 * PI,
        }
    }

    /// Values of tile `(ti, tj)` of the global grid, taken at the tile's centre.
    fn tile(&self, ti: usize, tj: usize) -> TileValues {
        let lat = grid_lat(ti * TILE + TILE / 2);
        let lon = grid_lon(tj * TILE + TILE / 2);
        let (p, l) = (lat.to_radians(), lon.to_radians());
        let d = self.day;
        let surf = surface(lat, lon);

        // Sea ice: poleward of an edge that follows the seasons and drifts with the days;
        // around Antarctica a belt off the coast, narrow in austral summer (open water
        // remains in the bay at the start of the grid), ten degrees wide in winter.
        let edge_n = 70.0 + 6.0 * self.season + 3.0 * (2.0 * l + self.phase1 + 0.02 * d).sin();
        let belt =
            (6.0 + 5.0 * self.season + 2.0 * (3.0 * l + self.phase2 - 0.02 * d).sin()).max(0.5);
        let edge_s = antarctic_coast(lon) + belt;
        let mut ice = if lat > edge_n {
            ((lat - edge_n) / 8.0).min(1.0)
        } else if lat < edge_s {
            ((edge_s - lat) / 4.0).min(1.0)
        } else {
            0.0
        };
        if surf == Surface::Lake {
            // Lakes freeze over in the northern winter.
            ice = if lat > 30.0 {
                (-0.9 * self.season).clamp(0.0, 0.9)
            } else {
                0.0
            };
        }
        let ice_pct = (ice * 100.0).round() as i32;
        // The ice product covers high latitudes only; elsewhere its field is empty.
        let ice_domain = !(-50.0..=40.0).contains(&lat) || surf == Surface::Lake;

        // SST: warm equator, seasonal hemispheric shift, two drifting waves.
        let wave1 = (3.0 * l + 0.05 * d + self.phase1).sin();
        let wave2 = (7.0 * l - 0.03 * d + 2.0 * p + self.phase2).sin();
        let mut sst = 271.35
            + 31.0 * p.cos().powi(2)
            + 3.0 * self.season * p.sin()
            + 1.2 * p.cos() * wave1
            + 0.6 * wave2;
        if surf == Surface::Lake {
            sst -= 3.0;
        }
        let freezing = if surf == Surface::Lake {
            273.15
        } else {
            271.35
        };
        sst = sst.max(freezing);
        sst = freezing + (sst - freezing) * (1.0 - ice);
        let anomaly = 1.2 * p.cos() * wave1 + 0.4 * (2.0 * p - 0.04 * d + self.phase2).sin();
        let error = 0.37 + 0.08 * (2.0 * l + self.phase1 + 0.1 * d).sin() + 0.25 * ice;
        let cloudy = (5.0 * l + self.phase2 + 0.3 * d).sin() * (4.0 * p).cos() > 0.6;
        let dt = (-6.0 + 6.0 * (2.0 * l - 0.2 * d + self.phase1).sin() * p.cos()).round() as i32;

        let fill16 = i16::MIN as i32;
        let fill8 = i8::MIN as i32;
        let mut v = [0i32; 6];
        if surf == Surface::Land {
            v = [fill16, fill16, 2, fill8, fill8, fill16];
        } else {
            v[DataVar::AnalysedSst.index()] = ((sst - 298.15) / 0.001).round() as i32;
            v[DataVar::AnalysisError.index()] = (error / 0.01).round() as i32;
            v[DataVar::Mask.index()] = match (surf, ice_pct > 0) {
                (Surface::Lake, false) => 5,
                (Surface::Lake, true) => 13,
                (_, false) => 1,
                (_, true) => 9,
            };
            v[DataVar::SeaIceFraction.index()] = if ice_domain { ice_pct } else { fill8 };
            v[DataVar::Dt1kmData.index()] = if cloudy || ice_pct > 0 {
                fill8
            } else {
                dt.clamp(-127, 127)
            };
            v[DataVar::SstAnomaly.index()] = (anomaly / 0.001).round() as i32;
        }
        TileValues(v)
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A typed attribute value, kept separate from netCDF so tests can compare against it.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Text(String),
    I8(i8),
    I8s(Vec<i8>),
    I16(i16),
    I32(i32),
    F32(f32),
    F64(f64),
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::Text(s.to_string())
    }
}

impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::Text(s)
    }
}

impl From<AttrValue> for netcdf::AttributeValue {
    fn from(v: AttrValue) -> Self {
        match v {
            AttrValue::Text(s) => netcdf::AttributeValue::Str(s),
            AttrValue::I8(x) => netcdf::AttributeValue::Schar(x),
            AttrValue::I8s(x) => netcdf::AttributeValue::Schars(x),
            AttrValue::I16(x) => netcdf::AttributeValue::Short(x),
            AttrValue::I32(x) => netcdf::AttributeValue::Int(x),
            AttrValue::F32(x) => netcdf::AttributeValue::Float(x),
            AttrValue::F64(x) => netcdf::AttributeValue::Double(x),
        }
    }
}

/// An ordered attribute list.
pub type Attrs = Vec<(&'static str, AttrValue)>;

fn fmt_ts(t: NaiveDateTime) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// Optional inputs that come and go between days; rotating them makes the per-day
/// attributes (`source`, `platform`, `sensor`) differ on consecutive days, as real ones do.
const OPTIONAL_SOURCES: [(&str, &str, &str); 4] = [
    ("AMSR2-REMSS", "GCOM-W", "AMSR2"),
    ("AVHRRMTA_G-NAVO", "MetOp-A", "AVHRR"),
    ("AVHRRMTB_G-NAVO", "MetOp-B", "AVHRR"),
    ("VIIRS_NPP-OSPO", "Suomi-NPP", "VIIRS"),
];

impl GranuleSpec {
    fn day_index(&self) -> usize {
        let start = NaiveDate::from_ymd_opt(2002, 6, 1).expect("valid date");
        (self.date - start).num_days().rem_euclid(1 << 30) as usize
    }

    /// `(source, platform, sensor)` global attribute values of this day.
    fn inputs(&self) -> (String, String, String) {
        let skip = self.day_index() % OPTIONAL_SOURCES.len();
        let mut sources = vec!["MODIS_T-JPL", "MODIS_A-JPL"];
        let mut platforms = vec!["Terra", "Aqua"];
        let mut sensors = vec!["MODIS"];
        for (k, (s, p, n)) in OPTIONAL_SOURCES.iter().enumerate() {
            if k != skip {
                sources.push(s);
                platforms.push(p);
                if !sensors.contains(n) {
                    sensors.push(n);
                }
            }
        }
        sources.extend(["iQUAM-NOAA/NESDIS", "Ice_Conc-OSISAF"]);
        platforms.push("Buoys/Ships");
        sensors.push("in-situ");
        (sources.join(", "), platforms.join(", "), sensors.join(", "))
    }

    /// The global attributes, in the order real files have them.
    pub fn global_attributes(&self) -> Attrs {
        let mut attrs = self.product_attributes();
        attrs.extend(self.coverage_attributes());
        attrs.extend(Self::catalogue_attributes());
        attrs
    }

    /// What the product is (the first global attributes).
    fn product_attributes(&self) -> Attrs {
        vec![
            ("Conventions", "CF-1.7, ACDD-1.3".into()),
            ("title", "Daily MUR SST, Final product".into()),
            (
                "summary",
                "A merged, multi-sensor L4 Foundation SST analysis product from JPL.".into(),
            ),
            (
                "references",
                "http://podaac.jpl.nasa.gov/Multi-scale_Ultra-high_Resolution_MUR-SST".into(),
            ),
            ("institution", "Jet Propulsion Laboratory".into()),
            (
                "history",
                "created at nominal 4-day latency; replaced nrt (1-day latency) version.".into(),
            ),
            (
                "comment",
                format!(
                    "MUR = \"Multi-scale Ultra-high Resolution\"; analysis of {}",
                    self.date.format("%Y-%m-%d")
                )
                .into(),
            ),
            (
                "license",
                "These data are available free of charge under data policy of JPL PO.DAAC.".into(),
            ),
            ("id", "MUR-JPL-L4-GLOB-v04.1".into()),
            ("naming_authority", "org.ghrsst".into()),
            ("product_version", "04.1".into()),
            ("uuid", "27665bc0-d5fc-11e1-9b23-0800200c9a66".into()),
            ("gds_version_id", "2.0".into()),
            ("netcdf_version_id", "4.1".into()),
        ]
    }

    /// When the granule was made and what it covers, and from which inputs.
    fn coverage_attributes(&self) -> Attrs {
        let nine = NaiveTime::from_hms_opt(9, 0, 0).expect("valid time");
        let twenty_one = NaiveTime::from_hms_opt(21, 0, 0).expect("valid time");
        let t = self.date.and_time(nine);
        let created = (self.date + Duration::days(1))
            .and_time(NaiveTime::from_hms_opt(3, 4, 28).expect("valid time"))
            + Duration::seconds((splitmix64(self.day_index() as u64 ^ self.seed) % 3600) as i64);
        let (source, platform, sensor) = self.inputs();
        vec![
            ("date_created", fmt_ts(created).into()),
            ("start_time", fmt_ts(t).into()),
            ("stop_time", fmt_ts(t).into()),
            (
                "time_coverage_start",
                fmt_ts((self.date - Duration::days(1)).and_time(twenty_one)).into(),
            ),
            (
                "time_coverage_end",
                fmt_ts(self.date.and_time(twenty_one)).into(),
            ),
            ("file_quality_level", AttrValue::I32(3)),
            ("source", source.into()),
            ("platform", platform.into()),
            ("sensor", sensor.into()),
        ]
    }

    /// Catalogue, grid and contact attributes: the same in every granule.
    fn catalogue_attributes() -> Attrs {
        vec![
            ("Metadata_Conventions", "Unidata Observation Dataset v1.0".into()),
            (
                "metadata_link",
                "http://podaac.jpl.nasa.gov/ws/metadata/dataset/?format=iso&shortName=MUR-JPL-L4-GLOB-v04.1"
                    .into(),
            ),
            (
                "keywords",
                "Oceans > Ocean Temperature > Sea Surface Temperature".into(),
            ),
            (
                "keywords_vocabulary",
                "NASA Global Change Master Directory (GCMD) Science Keywords".into(),
            ),
            (
                "standard_name_vocabulary",
                "NetCDF Climate and Forecast (CF) Metadata Convention".into(),
            ),
            ("southernmost_latitude", AttrValue::F32(-90.0)),
            ("northernmost_latitude", AttrValue::F32(90.0)),
            ("westernmost_longitude", AttrValue::F32(-180.0)),
            ("easternmost_longitude", AttrValue::F32(180.0)),
            ("spatial_resolution", "0.01 degrees".into()),
            ("geospatial_lat_units", "degrees north".into()),
            ("geospatial_lat_resolution", AttrValue::F32(0.01)),
            ("geospatial_lon_units", "degrees east".into()),
            ("geospatial_lon_resolution", AttrValue::F32(0.01)),
            (
                "acknowledgment",
                "Please acknowledge the use of these data with the following statement:  These data were provided by JPL under support by NASA MEaSUREs program."
                    .into(),
            ),
            ("creator_name", "JPL MUR SST project".into()),
            ("creator_email", "ghrsst@podaac.jpl.nasa.gov".into()),
            ("creator_url", "http://mur.jpl.nasa.gov".into()),
            (
                "project",
                "NASA Making Earth Science Data Records for Use in Research Environments (MEaSUREs) Program"
                    .into(),
            ),
            ("publisher_name", "GHRSST Project Office".into()),
            ("publisher_url", "http://www.ghrsst.org".into()),
            ("publisher_email", "ghrsst-po@nceo.ac.uk".into()),
            ("processing_level", "L4".into()),
            ("cdm_data_type", "grid".into()),
        ]
    }

    /// Attributes of `time`, `lat` or `lon`, in file order.
    pub fn coordinate_attributes(name: &str) -> Attrs {
        match name {
            "time" => vec![
                ("long_name", "reference time of sst field".into()),
                ("standard_name", "time".into()),
                ("axis", "T".into()),
                ("units", "seconds since 1981-01-01 00:00:00 UTC".into()),
                ("comment", "Nominal time of analyzed fields".into()),
            ],
            "lat" => vec![
                ("long_name", "latitude".into()),
                ("standard_name", "latitude".into()),
                ("axis", "Y".into()),
                ("units", "degrees_north".into()),
                ("valid_min", AttrValue::F32(-90.0)),
                ("valid_max", AttrValue::F32(90.0)),
                ("comment", "none".into()),
            ],
            "lon" => vec![
                ("long_name", "longitude".into()),
                ("standard_name", "longitude".into()),
                ("axis", "X".into()),
                ("units", "degrees_east".into()),
                ("valid_min", AttrValue::F32(-180.0)),
                ("valid_max", AttrValue::F32(180.0)),
                ("comment", "none".into()),
            ],
            _ => Vec::new(),
        }
    }

    /// Attributes of a data variable in file order, `_FillValue` first (netcdf-c records it
    /// when the variable is defined with its fill value, as the reference store shows).
    pub fn variable_attributes(&self, var: DataVar) -> Attrs {
        let fill = match var.dtype() {
            DType::Int16 => AttrValue::I16(i16::MIN),
            DType::Int8 => AttrValue::I8(i8::MIN),
        };
        let mut a: Attrs = vec![("_FillValue", fill)];
        a.extend(match var {
            DataVar::AnalysedSst => self.analysed_sst_attributes(),
            DataVar::AnalysisError => self.analysis_error_attributes(),
            DataVar::Mask => self.mask_attributes(),
            DataVar::SeaIceFraction => self.sea_ice_fraction_attributes(),
            DataVar::Dt1kmData => self.dt_1km_data_attributes(),
            DataVar::SstAnomaly => self.sst_anomaly_attributes(),
        });
        a
    }

    fn analysed_sst_attributes(&self) -> Attrs {
        let (source, _, _) = self.inputs();
        vec![
            ("long_name", "analysed sea surface temperature".into()),
            ("standard_name", "sea_surface_foundation_temperature".into()),
            ("units", "kelvin".into()),
            ("add_offset", AttrValue::F64(298.15)),
            ("scale_factor", AttrValue::F64(0.001)),
            ("valid_min", AttrValue::I16(-32767)),
            ("valid_max", AttrValue::I16(32767)),
            (
                "comment",
                "\"Final\" version using Multi-Resolution Variational Analysis (MRVA) method for interpolation"
                    .into(),
            ),
            ("coordinates", "lon lat".into()),
            ("source", source.into()),
        ]
    }

    fn analysis_error_attributes(&self) -> Attrs {
        vec![
            (
                "long_name",
                "estimated error standard deviation of analysed_sst".into(),
            ),
            ("units", "kelvin".into()),
            ("add_offset", AttrValue::F64(0.0)),
            ("scale_factor", AttrValue::F64(0.01)),
            ("valid_min", AttrValue::I16(0)),
            ("valid_max", AttrValue::I16(32767)),
            ("comment", "none".into()),
            ("coordinates", "lon lat".into()),
        ]
    }

    fn mask_attributes(&self) -> Attrs {
        vec![
            ("long_name", "sea/land field composite mask".into()),
            ("valid_min", AttrValue::I8(1)),
            ("valid_max", AttrValue::I8(31)),
            ("flag_masks", AttrValue::I8s(vec![1, 2, 4, 8, 16])),
            ("flag_values", AttrValue::I8s(vec![1, 2, 5, 9, 13])),
            (
                "flag_meanings",
                "1=open-sea, 2=land, 5=open-lake, 9=open-sea with ice in the grid, 13=open-lake with ice in the grid"
                    .into(),
            ),
            ("comment", "mask can be used to further filter the data.".into()),
            ("coordinates", "lon lat".into()),
            (
                "source",
                "GMT \"grdlandmask\", ice flag from sea_ice_fraction data".into(),
            ),
        ]
    }

    fn sea_ice_fraction_attributes(&self) -> Attrs {
        let ymd = self.date.format("%Y%m%d");
        vec![
            ("long_name", "sea ice area fraction".into()),
            ("standard_name", "sea_ice_area_fraction".into()),
            ("units", "1".into()),
            ("add_offset", AttrValue::F64(0.0)),
            ("scale_factor", AttrValue::F64(0.01)),
            ("valid_min", AttrValue::I8(0)),
            ("valid_max", AttrValue::I8(100)),
            ("source", "EUMETSAT OSI-SAF, copyright EUMETSAT".into()),
            (
                "comment",
                format!(
                    "ice fraction is a dimensionless quantity between 0 and 1; it has been interpolated by a nearest neighbor approach; EUMETSAT OSI-SAF files used: ice_conc_nh_polstere-100_multi_{ymd}1200.nc, ice_conc_sh_polstere-100_multi_{ymd}1200.nc."
                )
                .into(),
            ),
            ("coordinates", "lon lat".into()),
        ]
    }

    fn dt_1km_data_attributes(&self) -> Attrs {
        vec![
            ("long_name", "time to most recent 1km data".into()),
            ("units", "hours".into()),
            ("valid_min", AttrValue::I8(-127)),
            ("valid_max", AttrValue::I8(127)),
            ("source", "MODIS and VIIRS pixels ingested by MUR".into()),
            (
                "comment",
                "The grid value is hours between the analysis time and the most recent MODIS or VIIRS 1km L2P datum within 0.01 degrees from the grid point.  \"Fill value\" indicates absence of such 1km data at the grid point."
                    .into(),
            ),
            ("coordinates", "lon lat".into()),
        ]
    }

    fn sst_anomaly_attributes(&self) -> Attrs {
        vec![
            (
                "long_name",
                "SST anomaly from a seasonal SST climatology based on the MUR data over 2003-2014 period"
                    .into(),
            ),
            ("units", "kelvin".into()),
            ("add_offset", AttrValue::F64(0.0)),
            ("scale_factor", AttrValue::F64(0.001)),
            ("valid_min", AttrValue::I16(-32767)),
            ("valid_max", AttrValue::I16(32767)),
            (
                "comment",
                "anomaly reference to the day-of-year average between 2003 and 2014".into(),
            ),
            ("coordinates", "lon lat".into()),
        ]
    }
}

/// Where `spec` is (or is written to) in a cache of granules under `cache`: one directory
/// per spec and generator version, so a changed spec or generator never reuses a file.
/// Full-size granules take about a minute each to write; benches and the rehearsal keep
/// them across runs.
pub fn write_cached(cache: &Path, spec: &GranuleSpec) -> Result<(PathBuf, bool), SyntheticError> {
    let mut key: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [
        format!("{spec:?}").as_bytes(),
        include_str!("mod.rs").as_bytes(),
        include_str!("filter_order.rs").as_bytes(),
    ] {
        for b in part.iter().chain([&0xff]) {
            key = (key ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    let dir = cache.join(format!("{key:016x}"));
    let path = dir.join(spec.file_name());
    if path.exists() {
        return Ok((path, true));
    }
    write_granule(&dir, spec).map(|p| (p, false))
}

/// Write the granule `spec` describes into `dir` and return its path.
///
/// The file is written under a temporary name and renamed at the end, so an interrupted
/// write never leaves a granule-looking file behind. Memory stays at one row block per
/// variable (a chunk row: at most ~330 MB for the largest historical chunks).
pub fn write_granule(dir: &Path, spec: &GranuleSpec) -> Result<PathBuf, SyntheticError> {
    spec.validate()?;
    std::fs::create_dir_all(dir).map_err(|source| SyntheticError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(spec.file_name());
    let tmp = dir.join(format!(".{}.partial", spec.file_name()));
    let written = {
        let _libhdf5 = crate::oracle::lock();
        write_to(&tmp, spec)
    };
    let result = written.and_then(|()| {
        std::fs::rename(&tmp, &path).map_err(|source| SyntheticError::Io {
            path: path.clone(),
            source,
        })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| path)
}

/// A netCDF error while `action`, naming the file.
fn nc(path: &Path, action: &str) -> impl FnOnce(netcdf::Error) -> SyntheticError {
    let path = path.to_path_buf();
    let action = action.to_string();
    move |source| SyntheticError::NetCdf {
        path,
        action,
        source,
    }
}

fn write_to(path: &Path, spec: &GranuleSpec) -> Result<(), SyntheticError> {
    let mut file = netcdf::create(path).map_err(nc(path, "creating the file"))?;
    define_header(&mut file, path, spec)?;
    let vars = define_data_variables(&mut file, path, spec)?;
    write_coordinates(&mut file, path, spec)?;
    write_data(&mut file, path, spec, &vars)?;
    file.close().map_err(nc(path, "closing the file"))?;
    if spec.deflate_first {
        filter_order::deflate_before_shuffle(path, spec, &vars)?;
    }
    Ok(())
}

/// Global attributes, dimensions and the coordinate variables.
fn define_header(
    file: &mut netcdf::FileMut,
    path: &Path,
    spec: &GranuleSpec,
) -> Result<(), SyntheticError> {
    for (name, value) in spec.global_attributes() {
        file.add_attribute(name, value)
            .map_err(nc(path, &format!("adding global attribute {name}")))?;
    }
    // Real granules declare `time` with a fixed length of 1, not UNLIMITED: their `time`
    // variable is contiguous, which HDF5 only allows for fixed-size datasets.
    file.add_dimension("time", 1)
        .map_err(nc(path, "adding dim time"))?;
    file.add_dimension("lat", spec.lat_size)
        .map_err(nc(path, "adding dim lat"))?;
    file.add_dimension("lon", spec.lon_size)
        .map_err(nc(path, "adding dim lon"))?;

    // Coordinates: time contiguous, lat/lon one filtered chunk each.
    {
        let mut v = file
            .add_variable::<i32>("time", &["time"])
            .map_err(nc(path, "defining time"))?;
        for (name, value) in GranuleSpec::coordinate_attributes("time") {
            v.put_attribute(name, value)
                .map_err(nc(path, &format!("adding time:{name}")))?;
        }
    }
    for (name, len) in [("lat", spec.lat_size), ("lon", spec.lon_size)] {
        let mut v = file
            .add_variable::<f32>(name, &[name])
            .map_err(nc(path, &format!("defining {name}")))?;
        if spec.coordinate_filters {
            v.set_chunking(&[len])
                .map_err(nc(path, &format!("chunking {name}")))?;
            v.set_compression(spec.deflate_level.into(), spec.shuffle)
                .map_err(nc(path, &format!("compressing {name}")))?;
        }
        for (aname, value) in GranuleSpec::coordinate_attributes(name) {
            v.put_attribute(aname, value)
                .map_err(nc(path, &format!("adding {name}:{aname}")))?;
        }
    }

    Ok(())
}

/// The data variables the spec has, with their chunking, filters and attributes.
fn define_data_variables(
    file: &mut netcdf::FileMut,
    path: &Path,
    spec: &GranuleSpec,
) -> Result<Vec<DataVar>, SyntheticError> {
    let vars: Vec<DataVar> = DataVar::ALL.into_iter().filter(|v| spec.has(*v)).collect();
    for &var in &vars {
        let name = var.name();
        let dims = ["time", "lat", "lon"];
        let mut v = match var.dtype() {
            DType::Int16 => file.add_variable::<i16>(name, &dims),
            DType::Int8 => file.add_variable::<i8>(name, &dims),
        }
        .map_err(nc(path, &format!("defining {name}")))?;
        v.set_chunking(&spec.chunk_shape(var))
            .map_err(nc(path, &format!("chunking {name}")))?;
        v.set_compression(spec.deflate_level.into(), spec.shuffle)
            .map_err(nc(path, &format!("compressing {name}")))?;
        for (aname, value) in spec.variable_attributes(var) {
            let res = match (aname, &value) {
                ("_FillValue", AttrValue::I16(x)) => v.set_fill_value(*x),
                ("_FillValue", AttrValue::I8(x)) => v.set_fill_value(*x),
                _ => v.put_attribute(aname, value).map(|_| ()),
            };
            res.map_err(nc(path, &format!("adding {name}:{aname}")))?;
        }
    }

    Ok(vars)
}

/// The values of `time`, `lat` and `lon`.
fn write_coordinates(
    file: &mut netcdf::FileMut,
    path: &Path,
    spec: &GranuleSpec,
) -> Result<(), SyntheticError> {
    file.variable_mut("time")
        .expect("time defined above")
        .put_values(&[spec.time_value()], ..)
        .map_err(nc(path, "writing time"))?;
    let lat = spec.lat_values();
    file.variable_mut("lat")
        .expect("lat defined above")
        .put_values(&lat, ..)
        .map_err(nc(path, "writing lat"))?;
    let lon = spec.lon_values();
    file.variable_mut("lon")
        .expect("lon defined above")
        .put_values(&lon, ..)
        .map_err(nc(path, "writing lon"))?;

    Ok(())
}

/// Every data variable's values, row by row: each tile row is computed once for all the
/// variables (on every core), and each variable's rows are written a block of chunk
/// rows at a time, so memory stays at one block per variable (about 1.3 GB for the
/// largest historical chunks) and the file is written chunk row by chunk row.
fn write_data(
    file: &mut netcdf::FileMut,
    path: &Path,
    spec: &GranuleSpec,
    vars: &[DataVar],
) -> Result<(), SyntheticError> {
    let field = Field::new(spec);
    let mut blocks: Vec<RowBlock> = vars.iter().map(|&var| RowBlock::new(spec, var)).collect();
    let mut tiles = TileRow::default();
    for i in 0..spec.lat_size {
        tiles.compute(&field, spec, (spec.lat_start + i) / TILE);
        for block in &mut blocks {
            block.push_row(&tiles, spec);
            if block.rows == block.height || i + 1 == spec.lat_size {
                block.flush(file, path, spec)?;
            }
        }
    }
    Ok(())
}

/// The tiles of one tile row of the window, all six variables' values each.
#[derive(Default)]
struct TileRow {
    ti: Option<usize>,
    /// Global index of the first tile.
    tj0: usize,
    values: Vec<TileValues>,
}

impl TileRow {
    /// Make this tile row `ti`, splitting its tiles over the machine's cores.
    fn compute(&mut self, field: &Field, spec: &GranuleSpec, ti: usize) {
        if self.ti == Some(ti) {
            return;
        }
        self.tj0 = spec.lon_start / TILE;
        let tj1 = (spec.lon_start + spec.lon_size).div_ceil(TILE);
        self.values.clear();
        self.values.resize(tj1 - self.tj0, TileValues([0; 6]));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per = self.values.len().div_ceil(threads).max(1);
        let tj0 = self.tj0;
        std::thread::scope(|scope| {
            for (k, part) in self.values.chunks_mut(per).enumerate() {
                scope.spawn(move || {
                    for (n, slot) in part.iter_mut().enumerate() {
                        *slot = field.tile(ti, tj0 + k * per + n);
                    }
                });
            }
        });
        self.ti = Some(ti);
    }
}

/// One variable's rows waiting to be written: a block of its chunk rows.
struct RowBlock {
    var: DataVar,
    /// Rows per block: the variable's chunk height.
    height: usize,
    /// Window row of the block's first row.
    r0: usize,
    rows: usize,
    int16: Vec<i16>,
    int8: Vec<i8>,
}

impl RowBlock {
    fn new(spec: &GranuleSpec, var: DataVar) -> Self {
        Self {
            var,
            height: spec.chunk_shape(var)[1],
            r0: 0,
            rows: 0,
            int16: Vec::new(),
            int8: Vec::new(),
        }
    }

    /// Append the window row whose tiles are `tiles`.
    fn push_row(&mut self, tiles: &TileRow, spec: &GranuleSpec) {
        let value = |j: usize| tiles.values[(spec.lon_start + j) / TILE - tiles.tj0].get(self.var);
        match self.var.dtype() {
            DType::Int16 => self
                .int16
                .extend((0..spec.lon_size).map(|j| value(j) as i16)),
            DType::Int8 => self.int8.extend((0..spec.lon_size).map(|j| value(j) as i8)),
        }
        self.rows += 1;
    }

    /// Write the block's rows and start the next block.
    fn flush(
        &mut self,
        file: &mut netcdf::FileMut,
        path: &Path,
        spec: &GranuleSpec,
    ) -> Result<(), SyntheticError> {
        if self.rows == 0 {
            return Ok(());
        }
        let (r0, r1) = (self.r0, self.r0 + self.rows);
        let ext = [0..1, r0..r1, 0..spec.lon_size];
        let mut v = file
            .variable_mut(self.var.name())
            .expect("variable defined above");
        match self.var.dtype() {
            DType::Int16 => v.put_values(&self.int16, ext),
            DType::Int8 => v.put_values(&self.int8, ext),
        }
        .map_err(nc(
            path,
            &format!("writing {} rows {r0}..{r1}", self.var.name()),
        ))?;
        self.int16.clear();
        self.int8.clear();
        (self.r0, self.rows) = (r1, 0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn file_name_and_time() {
        let spec = GranuleSpec::new(date(2025, 1, 2));
        assert_eq!(
            spec.file_name(),
            "20250102090000-JPL-L4_GHRSST-SSTfnd-MUR-GLOB-v02.0-fv04.1.nc"
        );
        // 2025-01-02T09:00Z - 1981-01-01T00:00Z, checked with `date -d ... +%s` arithmetic.
        assert_eq!(spec.time_value(), 1_735_808_400 - 347_155_200);
    }

    #[test]
    fn grid_values() {
        let spec = GranuleSpec::new(date(2025, 1, 2));
        let lat = spec.lat_values();
        let lon = spec.lon_values();
        assert_eq!(lat.len(), FULL_LAT);
        assert_eq!(lon.len(), FULL_LON);
        assert_eq!(lat[0], -89.99_f32);
        assert_eq!(lat[8999], 0.0);
        assert_eq!(lat[FULL_LAT - 1], 89.99_f32);
        assert_eq!(lon[0], -179.99_f32);
        assert_eq!(lon[FULL_LON - 1], 180.0);
        let shifted = GranuleSpec {
            lat_start: 1,
            lat_size: 10,
            ..spec
        };
        assert_eq!(shifted.lat_values()[0], -89.98_f32);
    }

    #[test]
    fn layouts_follow_the_record() {
        let l = ChunkLayout::for_date(date(2024, 6, 2));
        assert!(DataVar::ALL.iter().all(|&v| l.get(v) == [1023, 2047]));
        let l = ChunkLayout::for_date(date(2021, 7, 15));
        assert_eq!(l.get(DataVar::AnalysedSst), [1023, 2047]);
        assert_eq!(l.get(DataVar::Mask), [1447, 2895]);
        assert_eq!(l.get(DataVar::Dt1kmData), [1447, 2895]);
        let l = ChunkLayout::for_date(date(2024, 1, 1));
        assert_eq!(l.get(DataVar::AnalysisError), [3600, 7200]);
        assert_eq!(l.get(DataVar::SeaIceFraction), [4500, 9000]);
        assert_eq!(
            ChunkLayout::for_date(date(2022, 11, 9)).get(DataVar::Mask),
            [1023, 2047]
        );
        let l = ChunkLayout::for_date(date(2024, 3, 24));
        assert_eq!(l.get(DataVar::AnalysedSst), [1023, 2047]);
        assert_eq!(l.get(DataVar::AnalysisError), [3600, 7200]);
        assert_eq!(l.get(DataVar::Mask), [4500, 9000]);
        let h = GranuleSpec::historical(date(2003, 9, 11));
        assert!(!h.shuffle);
        assert_eq!(h.deflate_level, 6);
        assert_eq!(GranuleSpec::historical(date(2024, 5, 12)).deflate_level, 7);
    }

    #[test]
    fn chunks_are_clamped_to_small_grids() {
        let spec = GranuleSpec::small(date(2025, 1, 2), 100, 3000);
        assert_eq!(spec.chunk_shape(DataVar::AnalysedSst), [1, 100, 2047]);
    }

    #[test]
    fn field_has_sea_land_ice_and_fill() {
        // Full-globe tile scan: every mask class appears and encodings are in range.
        let spec = GranuleSpec::new(date(2025, 1, 15));
        let field = Field::new(&spec);
        let mut masks = std::collections::BTreeSet::new();
        for ti in 0..FULL_LAT.div_ceil(TILE) {
            for tj in (0..FULL_LON / TILE).step_by(7) {
                let t = field.tile(ti, tj);
                masks.insert(t.get(DataVar::Mask));
                let sst = t.get(DataVar::AnalysedSst);
                assert!(sst == -32768 || (-26_800..=8_000).contains(&sst), "{sst}");
                let ice = t.get(DataVar::SeaIceFraction);
                assert!(ice == -128 || (0..=100).contains(&ice), "{ice}");
                let err = t.get(DataVar::AnalysisError);
                assert!(err == -32768 || (20..=80).contains(&err), "{err}");
            }
        }
        assert_eq!(masks.into_iter().collect::<Vec<_>>(), vec![1, 2, 5, 9, 13]);
    }

    #[test]
    fn values_depend_on_day_and_seed_only() {
        let a = GranuleSpec::small(date(2025, 1, 2), 2000, 4000);
        let b = GranuleSpec {
            seed: 1,
            ..a.clone()
        };
        let c = GranuleSpec::small(date(2025, 1, 3), 2000, 4000);
        let at = |s: &GranuleSpec| s.decoded_value(DataVar::AnalysedSst, 1990, 100);
        assert_eq!(at(&a), at(&a.clone()));
        assert_ne!(at(&a), at(&b));
        assert_ne!(at(&a), at(&c));
        // Antarctic land at the south-west corner of the grid.
        assert_eq!(a.decoded_value(DataVar::AnalysedSst, 0, 0), None);
        assert_eq!(a.raw_value(DataVar::Mask, 0, 0), 2);
    }

    #[test]
    fn per_day_global_attributes() {
        let a = GranuleSpec::new(date(2025, 1, 2)).global_attributes();
        let b = GranuleSpec::new(date(2025, 1, 3)).global_attributes();
        assert_eq!(a.len(), 47);
        let get = |attrs: &Attrs, k: &str| attrs.iter().find(|(n, _)| *n == k).unwrap().1.clone();
        assert_eq!(get(&a, "start_time"), "20250102T090000Z".into());
        assert_eq!(get(&a, "time_coverage_start"), "20250101T210000Z".into());
        assert_eq!(get(&a, "time_coverage_end"), "20250102T210000Z".into());
        for k in ["comment", "source", "platform", "sensor", "date_created"] {
            assert_ne!(get(&a, k), get(&b, k), "{k}");
        }
        for k in ["title", "uuid", "publisher_name", "southernmost_latitude"] {
            assert_eq!(get(&a, k), get(&b, k), "{k}");
        }
    }

    #[test]
    fn invalid_specs_are_rejected() {
        let mut s = GranuleSpec::small(date(2025, 1, 2), 10, 10);
        s.lat_start = FULL_LAT - 5;
        assert!(matches!(s.validate(), Err(SyntheticError::InvalidSpec(_))));
        let mut s = GranuleSpec::small(date(2025, 1, 2), 10, 10);
        s.deflate_level = 0;
        assert!(s.validate().is_err());
    }
}
