//! The production rehearsal: what production has, stood up on loopback, running what
//! production runs, measured.
//!
//! - Sources: moto S3 (the granules, the store, the run artifacts) and Secrets Manager
//!   (the Earthdata login); the CMR stand-in lists the granules; the EDL stand-in issues
//!   PO.DAAC credentials that expire during the run.
//! - Full-size granules (17999 × 36000, `mursst::synthetic`) of every layout of the
//!   record ([`Era`]), cached under `target/rehearsal/granules/`.
//! - The real definitions (`statemachine/`) run by the aws-local-stepfunctions harness,
//!   each Task served by the release handler binaries, each sandbox under its function's
//!   `MemorySize`, CPU share and `Timeout` read from the CDK app's synthesized template
//!   (`npx cdk synth`, the prod stage).
//! - Every function's S3 traffic goes through its own counting proxy, which can also
//!   inject faults.
//!
//! [`Rehearsal::report`] writes `report.md` and `report.json` under
//! `target/rehearsal/<plan>/`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{Value, json};

use super::sfn::{FUNCTIONS, FaultProxy, RunSpec, SfnEnv, SfnResult, Sizing, Traffic, runtime};
use super::standins::{self, Standin};
use super::tooling::{output, python, python_ic1, python_script, repo_root};

/// The granule layouts of the record (`../shared/reference/mur-granule.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Era {
    /// 2002-06-01..2023-09-03: int16 (1, 1023, 2047), int8 (1, 1447, 2895).
    Classic,
    /// 2003-09-11: deflate without shuffle.
    NoShuffle,
    /// 2021-12-24..2022-01-26: deflate listed before shuffle.
    DeflateFirst,
    /// 2023-09-04..2024-06-01: (1, 3600, 7200) and (1, 4500, 9000).
    Large,
    /// 2024-03-24: analysed_sst (1, 1023, 2047), analysis_error (1, 3600, 7200).
    Mixed,
    /// Since 2024-06-02: everything (1, 1023, 2047).
    Current,
}

impl Era {
    /// A real day of the record with this layout.
    pub fn exemplar(self) -> NaiveDate {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).expect("a date");
        match self {
            Era::Classic => d(2015, 6, 1),
            Era::NoShuffle => d(2003, 9, 11),
            Era::DeflateFirst => d(2022, 1, 5),
            Era::Large => d(2023, 10, 15),
            Era::Mixed => d(2024, 3, 24),
            Era::Current => d(2025, 1, 15),
        }
    }

    /// The store's variables this layout cannot reference on the producer's grid.
    pub fn native(self) -> &'static [&'static str] {
        const ALL: &[&str] = &["analysed_sst", "analysis_error", "mask", "sea_ice_fraction"];
        match self {
            Era::Classic => &["mask", "sea_ice_fraction"],
            Era::NoShuffle | Era::DeflateFirst | Era::Large => ALL,
            Era::Mixed => &["analysis_error", "mask", "sea_ice_fraction"],
            Era::Current => &[],
        }
    }
}

/// `target/rehearsal/`.
pub fn rehearsal_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    target.join("rehearsal")
}

/// Each function's size as the CDK app deploys it: `npx cdk synth` of the prod stage
/// (the real CLI, cdk.json's flags), read from the template it writes.
pub fn deployed_sizing(binaries: &BTreeMap<&'static str, PathBuf>) -> BTreeMap<String, Sizing> {
    let dir = rehearsal_dir().join("cdk");
    let assets = dir.join("assets");
    let out = dir.join("cdk.out");
    let _ = std::fs::remove_dir_all(&dir);
    for (name, path) in binaries {
        let crate_dir = assets.join(name);
        std::fs::create_dir_all(&crate_dir).unwrap();
        std::fs::copy(path, crate_dir.join("bootstrap")).unwrap();
    }
    let infra = repo_root().join("infra");
    let synth = output(
        Command::new("npx")
            .args(["cdk", "synth", "--quiet", "-c", "stage=prod", "-c"])
            .arg("allowPlaceholders=true")
            .arg("-c")
            .arg(format!("assetRoot={}", assets.display()))
            .arg("--output")
            .arg(&out)
            .current_dir(&infra),
    );
    assert!(
        synth.status.success(),
        "cdk synth of the prod stage failed:\n{}\n{}",
        String::from_utf8_lossy(&synth.stdout),
        String::from_utf8_lossy(&synth.stderr)
    );
    let template: Value =
        serde_json::from_slice(&std::fs::read(out.join("mursst-prod.template.json")).unwrap())
            .unwrap();
    let mut sizing = BTreeMap::new();
    for resource in template["Resources"].as_object().unwrap().values() {
        if resource["Type"] != "AWS::Lambda::Function" {
            continue;
        }
        let p = &resource["Properties"];
        let Some(name) = p["FunctionName"].as_str() else {
            continue;
        };
        let binary = name.replacen("mursst-prod-", "mursst-", 1);
        let number = |v: &Value, what: &str| {
            v.as_u64()
                .unwrap_or_else(|| panic!("{name}: {what} is not a number in the template: {v}"))
        };
        sizing.insert(
            binary,
            Sizing {
                memory_mb: number(&p["MemorySize"], "MemorySize"),
                timeout_s: number(&p["Timeout"], "Timeout"),
                ephemeral_mb: p["EphemeralStorage"]["Size"].as_u64().unwrap_or(512),
            },
        );
    }
    for (_, binary) in FUNCTIONS {
        assert!(
            sizing.contains_key(binary),
            "the prod template has no function for {binary}: {sizing:?}"
        );
    }
    sizing
}

/// One day's granule as published now.
#[derive(Debug, Clone)]
pub struct Published {
    pub era: Era,
    pub path: PathBuf,
    pub revision: u32,
}

/// What a run asks for beyond its input.
#[derive(Default, Clone)]
pub struct RunOptions {
    /// Share of every function's S3 requests failed by the proxies.
    pub fault_rate: f64,
    /// Kill the sandbox of the first invocation whose event contains each string.
    pub crash_first: Vec<String>,
    /// A redrive: start at this state with this input.
    pub start_at: Option<(String, Value)>,
}

/// One function's figures over the rehearsal.
#[derive(Debug, Default, Clone, Serialize)]
pub struct FunctionFigures {
    pub memory_mb: u64,
    pub timeout_s: u64,
    pub ephemeral_mb: u64,
    pub invocations: u64,
    pub cold_starts: u64,
    /// Invocations Step Functions would not have made (a failed Map's queued iterations,
    /// which the emulator still starts): left out of every other figure.
    pub abandoned: u64,
    pub errors: BTreeMap<String, u64>,
    pub peak_rss_bytes: u64,
    pub cgroup_peak_bytes: u64,
    pub tmp_peak_bytes: u64,
    pub longest_ms: u64,
    pub total_ms: u64,
    pub s3_requests: u64,
    pub s3_bytes: u64,
    pub s3_faults: u64,
    /// Bytes read from the granules' bucket.
    pub source_bytes: u64,
    /// The access keys that signed its granule reads (PO.DAAC's, from the EDL stand-in).
    pub source_keys: BTreeSet<String>,
    pub cpu_quota_vcpus: Option<f64>,
}

/// One execution's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutionFigures {
    pub name: String,
    pub definition: String,
    pub status: String,
    pub wall_s: f64,
    pub path: Vec<String>,
    pub fault_rate: f64,
    pub faults_injected: u64,
    /// Failed invocations, one row per input and error, with how often that input
    /// failed so.
    pub failures: Vec<Failure>,
}

/// An input that failed, and how many times with one error.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub error: String,
    pub function: String,
    pub state: String,
    /// The day (a materialize job's) or how many granules (a generate-refs batch's).
    pub what: String,
    pub attempts: u64,
    /// The error is one the same bytes would repeat, so it must be attempted once.
    pub deterministic: bool,
}

/// The store after the last run.
#[derive(Debug, Clone, Serialize)]
pub struct DayFigures {
    pub date: NaiveDate,
    pub era: Era,
    pub revision: u32,
    /// Variable → `virtual`, `native` or `mixed`.
    pub variables: BTreeMap<String, String>,
}

/// The whole report.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    pub plan: String,
    pub date: String,
    pub cgroup: String,
    pub functions: BTreeMap<String, FunctionFigures>,
    pub executions: Vec<ExecutionFigures>,
    pub store: Vec<DayFigures>,
    pub read_back: Vec<Value>,
    pub edl_credentials_issued: u64,
    pub source_access_keys: Vec<String>,
    pub granule_bytes: u64,
    pub wall_s: f64,
    pub notes: Vec<String>,
}

/// The rehearsal's world and what it has measured so far.
pub struct Rehearsal {
    pub env: SfnEnv,
    proxies: BTreeMap<&'static str, FaultProxy>,
    cmr: Standin,
    edl: Standin,
    catalog: PathBuf,
    secret_arn: String,
    pub sizing: BTreeMap<String, Sizing>,
    pub days: BTreeMap<NaiveDate, Published>,
    pub report: Report,
    started: Instant,
}

/// PO.DAAC credentials last this long in the rehearsal (an hour in production), and are
/// refreshed this long before they expire: several refreshes in every run.
const EDL_LIFETIME_S: f64 = 30.0;
const EDL_REFRESH_MARGIN_S: &str = "10";

impl Rehearsal {
    pub fn start(plan: &str) -> Self {
        let started = Instant::now();
        // The release handlers, whatever this driver was built as.
        let env = SfnEnv::start_with(&format!("rehearsal-{plan}"), "release");
        let sizing = deployed_sizing(&env.binaries);
        let proxies = FUNCTIONS
            .iter()
            .map(|(_, binary)| (*binary, FaultProxy::counting(env.moto.endpoint())))
            .collect();
        let catalog = env.tmp.path().join("catalog.json");
        write_catalog(&catalog, &[]);
        let cmr = standins::cmr(&catalog);
        let edl = standins::edl(
            "mursst-rehearsal",
            "rehearsal-password",
            "unused-token",
            EDL_LIFETIME_S,
        );
        let secret_arn = runtime().block_on(standins::login_secret(
            &env.moto,
            "mursst/prod/earthdata",
            "mursst-rehearsal",
            "rehearsal-password",
        ));
        let mut report = Report {
            plan: plan.to_string(),
            date: chrono::Utc::now().format("%Y-%m-%d").to_string(),
            cgroup: cgroup_note(),
            ..Default::default()
        };
        for (binary, size) in &sizing {
            report.functions.insert(
                binary.clone(),
                FunctionFigures {
                    memory_mb: size.memory_mb,
                    timeout_s: size.timeout_s,
                    ephemeral_mb: size.ephemeral_mb,
                    ..Default::default()
                },
            );
        }
        Self {
            env,
            proxies,
            cmr,
            edl,
            catalog,
            secret_arn,
            sizing,
            days: BTreeMap::new(),
            report,
            started,
        }
    }

    /// Write (or take from the cache) each day's granule in its era's layout, upload it
    /// and list it in CMR; a day published again is a replaced granule (a new revision).
    /// The release CLI writes them (`mursst sample`), as many at once as there are cores.
    pub fn publish(&mut self, days: &[(NaiveDate, Era, u64)]) {
        let cli = self.env.binaries["mursst-discover"].with_file_name("mursst");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for batch in days.chunks(cores) {
            let t = Instant::now();
            let writers: Vec<_> = batch
                .iter()
                .map(|(date, era, seed)| {
                    super::tooling::spawn(
                        Command::new(&cli)
                            .arg("sample")
                            .args(["--date", &date.to_string()])
                            .args(["--layout-of", &era.exemplar().to_string()])
                            .args(["--seed", &seed.to_string()])
                            .arg("--dir")
                            .arg(rehearsal_dir().join("granules"))
                            .stdout(std::process::Stdio::piped()),
                    )
                })
                .collect();
            for ((date, era, _), writer) in batch.iter().zip(writers) {
                let out = writer.wait_with_output().unwrap();
                assert!(
                    out.status.success(),
                    "{} sample {date} failed",
                    cli.display()
                );
                let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
                eprintln!(
                    "rehearsal: {date} ({era:?}) {} after {:.0} s",
                    path.display(),
                    t.elapsed().as_secs_f64()
                );
                self.env.put_granule(&path);
                let revision = self.days.get(date).map_or(1, |p| p.revision + 1);
                let era = *era;
                self.days.insert(
                    *date,
                    Published {
                        era,
                        path,
                        revision,
                    },
                );
            }
        }
        let listed: Vec<(NaiveDate, u32)> =
            self.days.iter().map(|(d, p)| (*d, p.revision)).collect();
        write_catalog(&self.catalog, &listed);
    }

    /// The environment every function gets on top of [`SfnEnv::lambda_env`]: granules
    /// from CMR, read with PO.DAAC keys from the EDL stand-in, every S3 request through
    /// the function's own proxy.
    fn lambda_env(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.proxies
            .iter()
            .map(|(binary, proxy)| {
                let env: BTreeMap<String, String> = [
                    ("MURSST_SOURCE", "cmr".to_string()),
                    ("MURSST_CMR_URL", self.cmr.url()),
                    ("MURSST_CMR_S3_PREFIX", super::sfn::SOURCE.to_string()),
                    (
                        "MURSST_S3_CREDENTIALS_URL",
                        format!("{}/s3credentials", self.edl.url()),
                    ),
                    ("MURSST_EDL_SECRET_ARN", self.secret_arn.clone()),
                    (
                        "MURSST_CREDENTIALS_REFRESH_MARGIN_S",
                        EDL_REFRESH_MARGIN_S.to_string(),
                    ),
                    ("MURSST_SOURCE_ENDPOINT_URL", proxy.endpoint()),
                    ("AWS_ENDPOINT_URL", proxy.endpoint()),
                    // Tags its S3 requests (User-Agent `app/…`) for the proxies' counts.
                    ("AWS_SDK_UA_APP_ID", binary.to_string()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
                (binary.to_string(), env)
            })
            .collect()
    }

    /// Run one execution of `definition` under the deployed limits; its figures join the
    /// report.
    pub fn run(
        &mut self,
        name: &str,
        definition: &str,
        input: Value,
        options: RunOptions,
    ) -> SfnResult {
        for proxy in self.proxies.values() {
            proxy.set_fault_rate(options.fault_rate);
        }
        let before = self.traffic_by_function();
        let t = Instant::now();
        let result = self.env.run(
            name,
            &RunSpec {
                definition: Some(super::sfn::definition(definition)),
                input,
                start_at: options.start_at.clone(),
                crash_first: options.crash_first.clone(),
                inline_distributed_map: definition.starts_with("backfill"),
                env: self.lambda_env(),
                limits: self.sizing.clone(),
                real_retry_intervals: true,
            },
        );
        let wall_s = t.elapsed().as_secs_f64();
        // Keep the execution's event log and every sandbox's log with the report.
        let keep = rehearsal_dir()
            .join(&self.report.plan)
            .join("executions")
            .join(format!(
                "{:02}-{}",
                self.report.executions.len(),
                name.replace(' ', "-")
            ));
        let _ = std::fs::remove_dir_all(&keep);
        std::fs::create_dir_all(keep.parent().unwrap()).unwrap();
        let copied = Command::new("cp")
            .arg("-r")
            .arg(&result.dir)
            .arg(&keep)
            .status();
        assert!(
            copied.is_ok_and(|s| s.success()),
            "copy {} to {}",
            result.dir.display(),
            keep.display()
        );
        for proxy in self.proxies.values() {
            proxy.set_fault_rate(0.0);
        }
        let mut faults = 0;
        for (binary, now) in self.traffic_by_function() {
            let was = &before[binary];
            let figures = self.report.functions.entry(binary.to_string()).or_default();
            let delta = |f: &dyn Fn(&Traffic) -> u64| {
                f(&now)
                    .checked_sub(f(was))
                    .unwrap_or_else(|| panic!("{binary}: traffic shrank: was {was:?}, now {now:?}"))
            };
            figures.s3_requests += delta(&|t| t.requests());
            figures.s3_faults += delta(&|t| t.faults());
            figures.s3_bytes += delta(&|t| t.bytes());
            figures.source_bytes += delta(&|t| t.bucket("granules").bytes);
            figures
                .source_keys
                .extend(now.bucket("granules").access_keys);
            faults += delta(&|t| t.faults());
        }
        self.note_invocations(&result);
        self.report.executions.push(ExecutionFigures {
            name: name.to_string(),
            definition: definition.to_string(),
            status: result.status().to_string(),
            wall_s,
            path: result.path_taken().iter().map(|s| s.to_string()).collect(),
            fault_rate: options.fault_rate,
            faults_injected: faults,
            failures: failures(&result),
        });
        result
    }

    /// Each function's S3 traffic so far: what carried its SDK app id, through any proxy
    /// (icechunk reads granules through the endpoint the store's config recorded when it
    /// was created, the creating function's proxy), plus what reached its own proxy
    /// without one.
    fn traffic_by_function(&self) -> BTreeMap<&'static str, Traffic> {
        let all: Vec<(&str, Traffic)> = self
            .proxies
            .iter()
            .map(|(b, p)| (*b, p.traffic()))
            .collect();
        self.proxies
            .keys()
            .map(|binary| {
                let mut mine = Traffic::default();
                for (owner, traffic) in &all {
                    for ((app, bucket), t) in &traffic.entries {
                        if app == binary || (app.is_empty() && owner == binary) {
                            mine.entries
                                .entry((binary.to_string(), bucket.clone()))
                                .or_default()
                                .add(t);
                        }
                    }
                }
                (*binary, mine)
            })
            .collect()
    }

    fn note_invocations(&mut self, result: &SfnResult) {
        for (_, binary) in FUNCTIONS {
            for inv in result.invocations(binary) {
                let f = self.report.functions.entry(binary.to_string()).or_default();
                if inv["abandoned"] == true {
                    f.abandoned += 1;
                    continue;
                }
                let n = |k: &str| inv[k].as_u64().unwrap_or(0);
                f.invocations += 1;
                f.cold_starts += u64::from(inv["cold"] == true);
                f.peak_rss_bytes = f.peak_rss_bytes.max(n("peak_rss_bytes"));
                f.cgroup_peak_bytes = f.cgroup_peak_bytes.max(n("cgroup_peak_bytes"));
                f.tmp_peak_bytes = f.tmp_peak_bytes.max(n("tmp_peak_bytes"));
                f.longest_ms = f.longest_ms.max(n("duration_ms"));
                f.total_ms += n("duration_ms");
                f.cpu_quota_vcpus = inv["cpu_quota_vcpus"].as_f64().or(f.cpu_quota_vcpus);
                if let Some(e) = inv["error"]["Error"].as_str() {
                    *f.errors.entry(e.to_string()).or_default() += 1;
                }
            }
        }
    }

    /// The store's days, each variable virtual or native, checked against what each
    /// day's layout makes it.
    pub fn check_store(&mut self) {
        let ctx = self.env.ctx();
        let contents = runtime().block_on(async {
            let repo = mursst::store::StoreRepo::open(&ctx.store, &ctx.store_s3, &ctx.source_s3)
                .await
                .unwrap();
            super::store::main_contents(&repo).await
        });
        let first = contents.state.first_day.expect("the store holds days");
        let mut kinds: BTreeMap<(u32, String), BTreeSet<bool>> = BTreeMap::new();
        for (name, coords, what) in &contents.refs {
            kinds
                .entry((coords[0], name.clone()))
                .or_default()
                .insert(what.starts_with("not virtual"));
        }
        let mut store = Vec::new();
        for (t, published) in self.days.values().enumerate() {
            let date = first + chrono::Days::new(t as u64);
            let mut variables = BTreeMap::new();
            for name in contents.state.data_arrays() {
                let kind = match kinds.get(&(t as u32, name.clone())) {
                    Some(k) if k.len() == 2 => "mixed",
                    Some(k) if k.contains(&true) => "native",
                    Some(_) => "virtual",
                    None => "missing",
                };
                let want = if published.era.native().contains(&name.as_str()) {
                    "native"
                } else {
                    "virtual"
                };
                assert_eq!(
                    kind, want,
                    "{date} {name}: {kind}, its layout ({:?}) makes it {want}",
                    published.era
                );
                variables.insert(name, kind.to_string());
            }
            store.push(DayFigures {
                date,
                era: published.era,
                revision: published.revision,
                variables,
            });
        }
        assert_eq!(
            contents.state.days as usize,
            self.days.len(),
            "days on main"
        );
        assert_eq!(contents.branches, ["main"], "no run branch left behind");
        self.report.store = store;
    }

    /// Python icechunk 2 (and 1, for a spec-v1 store) reads every value of every day
    /// back from moto; each must equal h5py's read of the day's current granule.
    pub fn read_back(&mut self, spec_v1: bool) {
        let mut args = vec![super::sfn::STORE.to_string()];
        for (date, p) in &self.days {
            args.push("--day".into());
            args.push(format!("{date}={}", p.path.display()));
        }
        let mut pythons = vec![python()];
        if spec_v1 {
            pythons.push(python_ic1());
        }
        // Both readers at once: each is mostly one core (h5py, numpy compares).
        let env = self.env.moto.env();
        let outs: Vec<_> = std::thread::scope(|scope| {
            let readers: Vec<_> = pythons
                .iter()
                .map(|py| {
                    let (args, env) = (&args, env.clone());
                    scope.spawn(move || {
                        super::tooling::run_python_env(
                            py,
                            &python_script("read_back.py"),
                            args,
                            env,
                        )
                    })
                })
                .collect();
            readers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        for (py, out) in pythons.iter().zip(outs) {
            let summary: Value = serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| {
                panic!(
                    "read_back.py ({}): {e}\n{}\n{}",
                    py.display(),
                    out.stdout,
                    out.stderr
                )
            });
            assert_eq!(
                summary["ok"],
                true,
                "read back with {}: {summary:#}",
                py.display()
            );
            self.report.read_back.push(json!({
                "icechunk": summary["icechunk"],
                "ok": summary["ok"],
                "seconds": summary["seconds"],
                "days": summary["times"].as_array().map_or(0, Vec::len),
                "values": summary["days"].as_object().map_or(0, |d| d.values()
                    .flat_map(|v| v.as_object().into_iter().flat_map(|m| m.values()))
                    .map(|v| v["values"].as_u64().unwrap_or(0)).sum::<u64>()),
            }));
        }
    }

    /// Finish the report: print it as markdown and write it (and JSON) under
    /// `target/rehearsal/<plan>/`.
    pub fn report(&mut self) -> &Report {
        let issued = self
            .edl
            .entries()
            .iter()
            .filter(|e| e["access_key_id"].is_string())
            .count();
        self.report.edl_credentials_issued = issued as u64;
        let keys: BTreeSet<String> = self
            .report
            .functions
            .values()
            .flat_map(|f| f.source_keys.iter().cloned())
            .collect();
        self.report.source_access_keys = keys.into_iter().collect();
        self.report.granule_bytes = self
            .days
            .values()
            .map(|p| std::fs::metadata(&p.path).map_or(0, |m| m.len()))
            .sum();
        self.report.wall_s = self.started.elapsed().as_secs_f64();
        let dir = rehearsal_dir().join(&self.report.plan);
        std::fs::create_dir_all(&dir).unwrap();
        let markdown = markdown(&self.report);
        std::fs::write(dir.join("report.md"), &markdown).unwrap();
        std::fs::write(
            dir.join("report.json"),
            serde_json::to_vec_pretty(&self.report).unwrap(),
        )
        .unwrap();
        println!("{markdown}");
        println!("(written to {})", dir.display());
        &self.report
    }
}

/// The CMR stand-in's catalog: each day's granule under the source prefix, at its revision.
fn write_catalog(path: &Path, days: &[(NaiveDate, u32)]) {
    let granules: Vec<Value> = days
        .iter()
        .map(|(date, revision)| {
            json!({
                "date": date.to_string(),
                "url": format!("{}{}", super::sfn::SOURCE, mursst::synthetic::granule_file_name(*date)),
                "revision_id": revision,
                "concept_id": format!("G{}-POCLOUD", date.format("%Y%m%d")),
            })
        })
        .collect();
    let doc =
        json!({"short_name": "MUR-JPL-L4-GLOB-v4.1", "provider": "POCLOUD", "granules": granules});
    std::fs::write(path, doc.to_string()).unwrap();
}

/// Which cgroup controls the harness can apply here.
fn cgroup_note() -> String {
    let v1 = Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists();
    let cpu = Path::new("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").exists();
    match (v1, cpu) {
        (true, true) => {
            "cgroup v1: memory limit and CPU quota (memory / 1769 vCPUs) per sandbox".into()
        }
        (true, false) => {
            "cgroup v1: memory limit per sandbox; no cpu controller, CPU not capped".into()
        }
        _ if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() => {
            "cgroup v2: memory.max and cpu.max per sandbox".into()
        }
        _ => "no cgroup hierarchy".into(),
    }
}

/// Failed invocations: for each input and error, how many times that input failed so.
fn failures(result: &SfnResult) -> Vec<Failure> {
    let mut counts: BTreeMap<(String, String, String, String), (u64, String)> = BTreeMap::new();
    for (_, binary) in FUNCTIONS {
        for inv in result.invocations(binary) {
            let Some(error) = inv["error"]["Error"].as_str() else {
                continue;
            };
            if inv["abandoned"] == true {
                continue;
            }
            let event = &inv["event"];
            let what = if let Some(date) = event["job"]["date"].as_str() {
                date.to_string()
            } else if let Some(items) = event["Items"].as_array() {
                format!("{} granules", items.len())
            } else {
                event["granule"]["date"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            };
            let state = inv["state"].as_str().unwrap_or_default().to_string();
            let entry = counts
                .entry((
                    error.to_string(),
                    binary.to_string(),
                    state,
                    event.to_string(),
                ))
                .or_insert((0, what));
            entry.0 += 1;
        }
    }
    counts
        .into_iter()
        .map(|((error, function, state, _), (attempts, what))| Failure {
            deterministic: !matches!(
                error.as_str(),
                "Retryable" | "Lambda.Unknown" | "Sandbox.Timedout" | "Runtime.OutOfMemory"
            ),
            error,
            function,
            state,
            what,
            attempts,
        })
        .collect()
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1 << 20) as f64)
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.2} GB", b as f64 / 1e9),
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1 << 10 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}

/// The report as markdown tables.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    // Every sandbox that reads granules logs in once when it starts.
    let logins: u64 = r
        .functions
        .values()
        .filter(|f| !f.source_keys.is_empty())
        .map(|f| f.cold_starts + f.abandoned)
        .sum();
    let _ = writeln!(
        s,
        "## Rehearsal `{}` ({}, {:.0} s in all)\n",
        r.plan, r.date, r.wall_s
    );
    let _ = writeln!(
        s,
        "Limits from the prod stage's synthesized template; {}.\n",
        r.cgroup
    );
    let _ = writeln!(
        s,
        "| function | memory | timeout | invocations (cold, abandoned) | peak RSS | RSS / limit | longest | / timeout | peak /tmp (of) | S3 requests | S3 bytes | from granules | faults | errors |"
    );
    let _ = writeln!(
        s,
        "|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|:--|"
    );
    for (name, f) in &r.functions {
        let errors: Vec<String> = f.errors.iter().map(|(e, n)| format!("{e} ×{n}")).collect();
        let _ = writeln!(
            s,
            "| {name} | {} MB{} | {} s | {} ({}, {}) | {} | {:.0} % | {:.1} s | {:.1} % | {} ({} MB) | {} | {} | {} | {} | {} |",
            f.memory_mb,
            f.cpu_quota_vcpus
                .map(|v| format!(", {v:.2} vCPU"))
                .unwrap_or_default(),
            f.timeout_s,
            f.invocations,
            f.cold_starts,
            f.abandoned,
            mib(f.peak_rss_bytes),
            100.0 * f.peak_rss_bytes as f64 / (f.memory_mb as f64 * 1048576.0),
            f.longest_ms as f64 / 1000.0,
            100.0 * f.longest_ms as f64 / (f.timeout_s as f64 * 1000.0),
            mib(f.tmp_peak_bytes),
            f.ephemeral_mb,
            f.s3_requests,
            human(f.s3_bytes),
            human(f.source_bytes),
            f.s3_faults,
            if errors.is_empty() {
                "none".into()
            } else {
                errors.join(", ")
            },
        );
    }
    let _ = writeln!(
        s,
        "\n| execution | machine | status | wall s | S3 fault rate (injected) | failed invocations: error, function (state, input) × attempts |"
    );
    let _ = writeln!(s, "|:--|:--|:--|--:|--:|:--|");
    for e in &r.executions {
        let failed: Vec<String> = e
            .failures
            .iter()
            .map(|f| {
                format!(
                    "{} {} ({} {}) ×{}",
                    f.error, f.function, f.state, f.what, f.attempts
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.1} | {:.0} % ({}) | {} |",
            e.name,
            e.definition,
            e.status,
            e.wall_s,
            e.fault_rate * 100.0,
            e.faults_injected,
            if failed.is_empty() {
                "none".into()
            } else {
                failed.join("; ")
            },
        );
    }
    let _ = writeln!(
        s,
        "\n| day | layout | revision | analysed_sst | analysis_error | mask | sea_ice_fraction |"
    );
    let _ = writeln!(s, "|:--|:--|--:|:--|:--|:--|:--|");
    for d in &r.store {
        let v = |n: &str| d.variables.get(n).cloned().unwrap_or_default();
        let _ = writeln!(
            s,
            "| {} | {:?} | {} | {} | {} | {} | {} |",
            d.date,
            d.era,
            d.revision,
            v("analysed_sst"),
            v("analysis_error"),
            v("mask"),
            v("sea_ice_fraction")
        );
    }
    let _ = writeln!(s);
    for rb in &r.read_back {
        let _ = writeln!(
            s,
            "Read back with Python icechunk {}: {} days, {} values equal to h5py's read of the granules ({} s).",
            rb["icechunk"].as_str().unwrap_or("?"),
            rb["days"],
            rb["values"],
            rb["seconds"]
        );
    }
    let _ = writeln!(
        s,
        "Granules: {} days, {} on S3. Earthdata: {} credential issues (keys last {EDL_LIFETIME_S:.0} s, refreshed {EDL_REFRESH_MARGIN_S} s before they expire): {} first logins of the sandboxes that read granules, {} refreshes while they ran; {} distinct keys signed granule reads.",
        r.store.len(),
        human(r.granule_bytes),
        r.edl_credentials_issued,
        logins,
        r.edl_credentials_issued.saturating_sub(logins),
        r.source_access_keys.len()
    );
    for (name, f) in &r.functions {
        if !f.source_keys.is_empty() {
            let keys: Vec<&str> = f.source_keys.iter().map(String::as_str).collect();
            let _ = writeln!(
                s,
                "- {name} signed its granule reads with {}",
                keys.join(", ")
            );
        }
    }
    for note in &r.notes {
        let _ = writeln!(s, "- {note}");
    }
    s
}
