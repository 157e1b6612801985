//! The embedded default: the whole pipeline on a local repository and local granules,
//! with no AWS and no NASA access, so anyone can see it work in a minute.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;

use crate::pipeline::{self, Context, PipelineError, Progress, Report, UpdateOptions};
use crate::synthetic::{self, GranuleSpec};
use crate::validate::ValidateMode;

/// What the demo builds.
#[derive(Clone)]
pub struct DemoOptions {
    /// Working directory: `granules/` and `store/` are created inside.
    pub dir: PathBuf,
    pub first_day: NaiveDate,
    /// Days written in all.
    pub days: u32,
    /// Days the store is created with; the rest arrive with `update`.
    pub init_days: u32,
    pub lat_size: usize,
    pub lon_size: usize,
    /// Told as granules are indexed (the CLI draws a bar).
    pub progress: Option<Arc<dyn Progress>>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("mursst-demo"),
            first_day: NaiveDate::from_ymd_opt(2025, 1, 1).unwrap_or_default(),
            days: 8,
            init_days: 5,
            lat_size: 2000,
            lon_size: 4000,
            progress: None,
        }
    }
}

/// The two runs the demo made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoOutcome {
    pub init: Report,
    pub update: Report,
    pub store: PathBuf,
    pub granules: PathBuf,
}

/// Write sample granules (reusing ones already there), build a fresh store from the
/// first days with `init`, then append the rest with `update`.
pub async fn run(options: &DemoOptions) -> Result<DemoOutcome, PipelineError> {
    let dir = std::path::absolute(&options.dir).map_err(|e| io(&options.dir, e))?;
    let granules = dir.join("granules");
    let store = dir.join("store");
    let artifacts = dir.join("artifacts");
    std::fs::create_dir_all(&granules).map_err(|e| io(&granules, e))?;
    for old in [&store, &artifacts] {
        if old.exists() {
            std::fs::remove_dir_all(old).map_err(|e| io(old, e))?;
        }
    }
    let days: Vec<NaiveDate> = (0..options.days)
        .filter_map(|i| {
            options
                .first_day
                .checked_add_days(chrono::Days::new(u64::from(i)))
        })
        .collect();
    for day in &days {
        let spec = GranuleSpec::small(*day, options.lat_size, options.lon_size);
        if !granules.join(spec.file_name()).exists() {
            synthetic::write_granule(&granules, &spec)?;
        }
    }
    let ctx = Context {
        progress: options.progress.clone(),
        artifacts: artifacts.display().to_string(),
        ..Context::local(&store, &granules)
    };
    let opts = UpdateOptions {
        lag_days: 0,
        validate: ValidateMode::Sample,
        ..Default::default()
    };
    let init_end = days
        .get(options.init_days.saturating_sub(1) as usize)
        .copied()
        .unwrap_or(options.first_day);
    let variables: Vec<String> = pipeline::DEFAULT_VARIABLES
        .iter()
        .map(|s| s.to_string())
        .collect();
    let init = pipeline::init(&ctx, &opts, options.first_day, init_end, &variables).await?;
    let update = pipeline::update(&ctx, &opts).await?;
    Ok(DemoOutcome {
        init,
        update,
        store,
        granules,
    })
}

fn io(path: &Path, source: std::io::Error) -> PipelineError {
    PipelineError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A Python that has icechunk: the repository's venv (`MURSST_PYTHON`, or `.venv` here)
/// when there is one, else whatever `python3` is on PATH.
fn python_with_icechunk() -> String {
    if let Some(p) = std::env::var_os("MURSST_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).display().to_string();
    }
    let venv = Path::new(".venv/bin/python");
    match std::path::absolute(venv) {
        Ok(abs) if abs.exists() => abs.display().to_string(),
        _ => "python3".to_string(),
    }
}

/// A shell command that opens the demo store with icechunk + xarray, as printed.
pub fn python_command(outcome: &DemoOutcome) -> String {
    format!(
        "{} -c \"{}\"",
        python_with_icechunk(),
        python_snippet(outcome)
    )
}

/// A Python one-liner that opens the demo store with icechunk + xarray.
pub fn python_snippet(outcome: &DemoOutcome) -> String {
    let prefix = url::Url::from_directory_path(&outcome.granules)
        .map(|u| u.to_string())
        .unwrap_or_default();
    format!(
        "import icechunk as ic, xarray as xr; \
         repo = ic.Repository.open(ic.local_filesystem_storage('{store}'), \
         authorize_virtual_chunk_access={{'{prefix}': ic.Credentials.LocalFileSystemAccess()}}); \
         print(xr.open_zarr(repo.readonly_session('main').store, consolidated=False))",
        store = outcome.store.display(),
    )
}
