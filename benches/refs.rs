//! Granule → virtual chunk references: `mursst refs` against kerchunk, over S3 with
//! in-region latency.
//!
//! ```sh
//! scripts/bootstrap.sh && source scripts/env.sh
//! cargo bench --bench refs
//! ```
//!
//! Writes a full-size MUR-shaped granule (17999 × 36000, all six data variables and the
//! coordinates; cached under `target/bench-data/`, ~4 min the first time), uploads it to a
//! moto S3 server on loopback, and puts a small HTTP/1.1 proxy in front of moto that
//! waits 20 ms before answering every request (per request, keep-alive intact) and
//! counts requests by method and response body bytes. Then, through the proxy:
//!
//! - `mursst refs s3://… --stats` (the `mursst` binary cargo built for this bench), and
//! - kerchunk's `SingleHdf5ToZarr` over `s3fs` with their defaults
//!   (`benches/python/kerchunk_refs.py`, run with `MURSST_PYTHON`),
//!
//! each as a child process, measuring wall time, GETs, bytes read and the child's peak
//! RSS (`wait4`'s `ru_maxrss`, taken by a small shim: see [`rusage_shim`]); plus
//! `mursst refs` straight to moto as a reference line.
//!
//! Everything runs twice: with the proxy forwarding to moto (as the issue describes),
//! and with the proxy answering GET/HEAD of the granule itself from memory. moto serves
//! one request at a time and reads the whole object for each ranged GET, which costs
//! ~10-25 ms per request on top of the proxy's 20 ms and serialises them; S3 answers
//! requests in parallel at a roughly constant latency, which the second origin models.
//!
//! Both tools' outputs are checked: the expected chunk count per variable, and mursst's
//! chunk references against kerchunk's. Prints one table and whether the issue's targets
//! are met (≥ 10× faster than kerchunk, < 2 MB read, peak RSS < 64 MiB); it asserts none.
//!
//! Knobs: `MURSST_BENCH_RUNS` (runs per tool, default 3; medians, and the maximum peak
//! RSS, are shown), `MURSST_BENCH_LATENCY_MS` (default 20). Under `cargo test` it runs
//! once on a small granule as a smoke test.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::NaiveDate;
use serde_json::Value;

use common::proxy::{Counts, Origin, Proxy, ProxyStats, parse_range};
use common::tooling::{self, MOTO_REGION, MotoServer};
use common::{human, median, print_table, verdict};
use mursst::synthetic::{DataVar, GranuleSpec};

const BUCKET: &str = "podaac-ops-cumulus-protected";
const PREFIX: &str = "MUR-JPL-L4-GLOB-v4.1";

/// The issue's targets.
const TARGET_SPEEDUP: f64 = 10.0;
const TARGET_BYTES: u64 = 2_000_000;
const TARGET_RSS_BYTES: u64 = 64 << 20;

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------
// Children: wall time and peak RSS

struct Measured {
    wall_s: f64,
    peak_rss_bytes: u64,
    /// The shim's own peak RSS when it started the child: the least `peak_rss_bytes`
    /// can be (see [`rusage_shim`]).
    floor_bytes: u64,
    stdout: PathBuf,
    stderr: String,
}

/// Set on the bench binary re-run as [`rusage_shim`]: where to write the figures.
const SHIM_ENV: &str = "MURSST_BENCH_RUSAGE_TO";

/// Peak RSS of one child, as `wait4` reports it (`ru_maxrss`, kilobytes), and its status.
fn wait_child(pid: libc::pid_t) -> (libc::c_int, u64) {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; wait4 fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers to locals; `pid` is our own child, not yet reaped.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            return (status, usage.ru_maxrss.max(0) as u64);
        }
        let e = std::io::Error::last_os_error();
        assert_eq!(e.kind(), std::io::ErrorKind::Interrupted, "wait4: {e}");
    }
}

/// Linux keeps a process's peak RSS across `exec`, and a child starts with its parent's
/// peak (the memory it was forked from), so `wait4` on a child of this bench — hundreds
/// of MB after writing a granule — would report the bench's peak. This bench binary,
/// re-run with [`SHIM_ENV`] set (a fresh, small process: its own peak RSS is the
/// floor of the child's), starts the real command and writes the child's `ru_maxrss`
/// and that floor to the file, then exits with the child's status.
fn rusage_shim(out: &str) -> ! {
    let args: Vec<std::ffi::OsString> = std::env::args_os()
        .skip_while(|a| a != "--")
        .skip(1)
        .collect();
    let (program, args) = args.split_first().expect("shim: -- PROGRAM ARGS...");
    // The child starts from this process's memory: its peak so far is the floor.
    // (Not getrusage: that reports the peak inherited from the bench across exec.)
    let floor_kb: u64 = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0);
    let child = Command::new(program)
        .args(args)
        .env_remove(SHIM_ENV)
        .spawn()
        .unwrap_or_else(|e| panic!("shim: cannot run {program:?}: {e}"));
    let (status, maxrss_kb) = wait_child(child.id() as libc::pid_t);
    drop(child);
    std::fs::write(out, format!("{maxrss_kb} {floor_kb}"))
        .unwrap_or_else(|e| panic!("shim: write {out}: {e}"));
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    std::process::exit(code)
}

/// Run `cmd` to completion (through [`rusage_shim`]) with stdout to `stdout`. Panics
/// (with its stderr) if it fails: the figures would mean nothing.
fn run_measured(cmd: &Command, stdout: &Path) -> Measured {
    let out = std::fs::File::create(stdout).expect("create stdout file");
    let err_path = stdout.with_extension("stderr");
    let err = std::fs::File::create(&err_path).expect("create stderr file");
    let usage_path = stdout.with_extension("rusage");
    let mut shim = Command::new(std::env::current_exe().expect("bench binary"));
    shim.env(SHIM_ENV, &usage_path)
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => shim.env(k, v),
            None => shim.env_remove(k),
        };
    }
    shim.stdin(Stdio::null()).stdout(out).stderr(err);
    let start = Instant::now();
    let child = tooling::spawn(&mut shim);
    let (status, _) = wait_child(child.id() as libc::pid_t);
    let wall_s = start.elapsed().as_secs_f64();
    // The child is reaped; dropping the handle neither waits nor kills.
    drop(child);
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    assert!(ok, "{cmd:?} failed (wait status {status}):\n{stderr}");
    let usage = std::fs::read_to_string(&usage_path).unwrap_or_default();
    let kb: Vec<u64> = usage
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [child_kb, floor_kb] = kb[..] else {
        panic!("no rusage from the shim for {cmd:?}: {usage:?}");
    };
    Measured {
        wall_s,
        peak_rss_bytes: child_kb * 1024,
        floor_bytes: floor_kb * 1024,
        stdout: stdout.to_path_buf(),
        stderr,
    }
}

/// AWS settings for a client of `endpoint` (moto or the proxy).
fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", MOTO_REGION.into()),
        ("AWS_DEFAULT_REGION", MOTO_REGION.into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

/// The `mursst` binary cargo built for this bench, copied aside so another build in a
/// shared target directory cannot swap it mid-run.
fn mursst_binary(work: &Path) -> PathBuf {
    let built = PathBuf::from(env!("CARGO_BIN_EXE_mursst"));
    let copy = work.join("mursst");
    std::fs::copy(&built, &copy).unwrap_or_else(|e| panic!("copy {} aside: {e}", built.display()));
    copy
}

/// One run of one tool: what the child and the proxy saw.
struct Run {
    measured: Measured,
    counts: Counts,
    /// Time the tool reports for indexing itself (after process start and imports).
    inner_s: f64,
    /// Requests and bytes the tool reports itself (mursst's `--stats`).
    self_reported: Option<(u64, u64)>,
}

/// `requests: N  bytes read: N  wall time: X s` from `mursst refs --stats`.
fn parse_mursst_stats(stderr: &str) -> Option<(u64, u64, f64)> {
    let line = stderr.lines().rev().find(|l| l.starts_with("requests:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let req = words.get(1)?.parse().ok()?;
    let bytes = words.get(4)?.parse().ok()?;
    let wall = words.get(7)?.parse().ok()?;
    Some((req, bytes, wall))
}

fn run_mursst(bin: &Path, url: &str, endpoint: &str, out: &Path, proxy: &ProxyStats) -> Run {
    proxy.take();
    let mut cmd = Command::new(bin);
    cmd.args(["refs", url, "--stats"])
        .envs(aws_env(endpoint))
        .env_remove("AWS_ENDPOINT_URL_S3")
        .env_remove("AWS_PROFILE");
    let measured = run_measured(&cmd, out);
    let counts = proxy.take();
    let (req, bytes, inner_s) = parse_mursst_stats(&measured.stderr)
        .unwrap_or_else(|| panic!("no --stats line in:\n{}", measured.stderr));
    Run {
        measured,
        counts,
        inner_s,
        self_reported: Some((req, bytes)),
    }
}

fn run_kerchunk(url: &str, endpoint: &str, out: &Path, proxy: &ProxyStats) -> (Run, Value) {
    let script = tooling::repo_root()
        .join("benches")
        .join("python")
        .join("kerchunk_refs.py");
    let stdout = out.with_extension("stdout");
    proxy.take();
    let mut cmd = Command::new(tooling::python());
    cmd.arg(&script)
        .args([url, endpoint])
        .arg(out)
        .envs(aws_env(endpoint))
        .env_remove("AWS_ENDPOINT_URL_S3")
        .env_remove("AWS_PROFILE");
    let measured = run_measured(&cmd, &stdout);
    let counts = proxy.take();
    let info: Value = std::fs::read_to_string(&stdout)
        .ok()
        .and_then(|s| serde_json::from_str(s.trim()).ok())
        .unwrap_or_else(|| panic!("kerchunk script printed no JSON line:\n{}", measured.stderr));
    let inner_s = info["seconds"].as_f64().unwrap_or(f64::NAN);
    (
        Run {
            measured: Measured {
                stdout: out.to_path_buf(),
                ..measured
            },
            counts,
            inner_s,
            self_reported: None,
        },
        info,
    )
}

// ---------------------------------------------------------------------------------
// A batch of granules in one process

/// One `mursst step generate-refs` on a batch, as a backfill's Distributed Map hands a
/// generate-refs Lambda: what the step reported and what the proxy saw.
struct BatchRun {
    measured: Measured,
    counts: Counts,
    granules: u64,
    reused: u64,
}

/// Index every key of `keys` (one granule's bytes under each, answered from memory
/// behind the proxy) in one `mursst step generate-refs` process, into fresh artifacts
/// under `dir`. One at a time: every alias is the same day, and builds before 2026-12-07
/// raced on that day's pointer artifact when they wrote it at once.
fn run_batch(
    bin: &Path,
    spec: &GranuleSpec,
    keys: &[String],
    proxy: &Proxy,
    dir: &Path,
) -> BatchRun {
    std::fs::create_dir_all(dir).expect("batch directory");
    let source = format!("s3://{BUCKET}/{PREFIX}/");
    let artifacts = dir.join("artifacts").display().to_string();
    let items: Vec<Value> = keys
        .iter()
        .map(|k| serde_json::json!({"date": spec.date, "url": format!("s3://{BUCKET}/{k}")}))
        .collect();
    let event = serde_json::json!({
        "run": {
            "id": "bench-batch",
            "branch": "add_time_bench",
            "today": spec.date,
            "base_snapshot": "",
            "store": dir.join("store").display().to_string(),
            "source": source,
            "artifacts": artifacts,
            "options": {"lag_days": 0, "map_concurrency": 4, "batch_days": 30},
        },
        "Items": items,
    });
    let event_path = dir.join("event.json");
    std::fs::write(&event_path, event.to_string()).expect("write the event");
    let mut cmd = Command::new(bin);
    cmd.args(["step", "generate-refs", "--event"])
        .arg(&event_path)
        .args(["--store", &dir.join("store").display().to_string()])
        .args([
            "--source",
            &source,
            "--artifacts",
            &artifacts,
            "--concurrency",
            "1",
        ])
        .envs(aws_env(&proxy.endpoint()))
        .env_remove("AWS_ENDPOINT_URL_S3")
        .env_remove("AWS_PROFILE");
    proxy.stats.take();
    let measured = run_measured(&cmd, &dir.join("out.json"));
    let counts = proxy.stats.take();
    let out: Value = serde_json::from_str(
        &std::fs::read_to_string(&measured.stdout).expect("the step's output"),
    )
    .unwrap_or_else(|e| panic!("generate-refs printed no JSON ({e}):\n{}", measured.stderr));
    let granules = out["granules"].as_u64().unwrap_or(0);
    assert_eq!(granules, keys.len() as u64, "every granule indexed: {out}");
    BatchRun {
        measured,
        counts,
        granules,
        reused: out["reused"].as_u64().unwrap_or(0),
    }
}

fn print_batch(runs: &[BatchRun], bin: &Path, ms: u128) {
    let wall = median(&runs.iter().map(|r| r.measured.wall_s).collect::<Vec<_>>());
    let last = runs.last().expect("a run");
    let n = last.granules.max(1);
    println!();
    println!(
        "generate-refs batch: {} granules in one `{} step generate-refs` (one at a time), \
         +{ms} ms per request, answered from memory; median of {} run(s)",
        last.granules,
        bin.display(),
        runs.len()
    );
    print_table(
        &[
            "wall s",
            "ms per granule",
            "GETs",
            "HEADs",
            "connections",
            "bytes read",
            "reused",
            "peak RSS MiB",
        ],
        &[vec![
            format!("{wall:.2}"),
            format!("{:.0}", wall * 1e3 / n as f64),
            last.counts.method("GET").to_string(),
            last.counts.method("HEAD").to_string(),
            last.counts.connections.to_string(),
            last.counts.body_bytes.to_string(),
            last.reused.to_string(),
            format!(
                "{:.1}",
                runs.iter()
                    .map(|r| r.measured.peak_rss_bytes)
                    .max()
                    .unwrap_or(0) as f64
                    / f64::from(1 << 20)
            ),
        ]],
    );
}

// ---------------------------------------------------------------------------------
// Checking the outputs

fn read_refs(path: &Path) -> serde_json::Map<String, Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    match doc.get("refs") {
        Some(Value::Object(refs)) => refs.clone(),
        _ => panic!("{} has no \"refs\" object", path.display()),
    }
}

fn is_chunk_key(key: &str, var: &str) -> bool {
    key.strip_prefix(var)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|k| !k.starts_with('.') && k.split('.').all(|p| p.parse::<u64>().is_ok()))
}

/// Chunks per data variable the spec writes.
fn expected_chunks(spec: &GranuleSpec) -> Vec<(&'static str, usize)> {
    spec.variables
        .iter()
        .map(|v: &DataVar| {
            let [_, la, lo] = spec.chunk_shape(*v);
            (
                v.name(),
                spec.lat_size.div_ceil(la) * spec.lon_size.div_ceil(lo),
            )
        })
        .collect()
}

/// Panics unless `refs` is a Kerchunk v1 document with every chunk of every variable.
fn check_chunk_counts(refs: &serde_json::Map<String, Value>, spec: &GranuleSpec, tool: &str) {
    for (var, want) in expected_chunks(spec) {
        let got = refs.keys().filter(|k| is_chunk_key(k, var)).count();
        assert_eq!(
            got, want,
            "{tool}: {var} has {got} chunk references, expected {want}"
        );
        assert!(
            refs.contains_key(&format!("{var}/.zarray")),
            "{tool}: no {var}/.zarray"
        );
    }
}

/// Comparison of mursst's chunk references with kerchunk's.
struct Comparison {
    /// References both give as `[url, offset, length]`, and how many of them agree.
    both: usize,
    same: usize,
    /// mursst's references that kerchunk inlined (its default `inline_threshold`).
    inlined: usize,
    differ: Vec<String>,
}

fn compare_refs(
    ours: &serde_json::Map<String, Value>,
    theirs: &serde_json::Map<String, Value>,
) -> Comparison {
    let mut c = Comparison {
        both: 0,
        same: 0,
        inlined: 0,
        differ: Vec::new(),
    };
    for (key, value) in ours {
        if !value.is_array() {
            continue;
        }
        match theirs.get(key) {
            Some(Value::String(s)) if s.starts_with("base64:") => c.inlined += 1,
            Some(v) if v.is_array() => {
                c.both += 1;
                if v == value {
                    c.same += 1;
                } else if c.differ.len() < 5 {
                    c.differ.push(format!("{key}: {value} vs {v}"));
                }
            }
            other => {
                if c.differ.len() < 5 {
                    c.differ.push(format!("{key}: {value} vs {other:?}"));
                }
            }
        }
    }
    c
}

// ---------------------------------------------------------------------------------

struct Row {
    name: String,
    runs: Vec<Run>,
}

impl Row {
    fn wall(&self) -> f64 {
        median(
            &self
                .runs
                .iter()
                .map(|r| r.measured.wall_s)
                .collect::<Vec<_>>(),
        )
    }
    fn inner(&self) -> f64 {
        median(&self.runs.iter().map(|r| r.inner_s).collect::<Vec<_>>())
    }
    fn rss(&self) -> u64 {
        self.runs
            .iter()
            .map(|r| r.measured.peak_rss_bytes)
            .max()
            .unwrap_or(0)
    }
    fn last(&self) -> &Run {
        self.runs.last().expect("at least one run")
    }
}

/// One origin behind the latency proxy: mursst's and kerchunk's runs through it.
struct Pair {
    origin: &'static str,
    ours: Row,
    theirs: Row,
}

fn table_row(row: &Row, kerchunk: Option<&Row>) -> Vec<String> {
    let last = row.last();
    let via_proxy = last.counts.requests() > 0;
    let (gets, heads, bytes) = if via_proxy {
        (
            last.counts.method("GET").to_string(),
            last.counts.method("HEAD").to_string(),
            last.counts.body_bytes,
        )
    } else {
        let (req, bytes) = last.self_reported.unwrap_or_default();
        (format!("({req} req)"), "-".into(), bytes)
    };
    let speedup = |f: fn(&Row) -> f64| match kerchunk {
        Some(k) => format!("{:.1}×", f(k) / f(row)),
        None => "-".into(),
    };
    vec![
        row.name.clone(),
        format!("{:.3}", row.wall()),
        format!("{:.3}", row.inner()),
        gets,
        heads,
        human(bytes),
        if via_proxy {
            last.counts.max_in_flight.to_string()
        } else {
            "-".into()
        },
        format!("{:.1}", row.rss() as f64 / f64::from(1 << 20)),
        speedup(Row::wall),
        speedup(Row::inner),
    ]
}

fn main() {
    if let Ok(out) = std::env::var(SHIM_ENV) {
        rusage_shim(&out);
    }
    let bench = common::is_bench();
    let runs: usize = env_number("MURSST_BENCH_RUNS", if bench { 3 } else { 1 }).max(1);
    let latency = Duration::from_millis(env_number("MURSST_BENCH_LATENCY_MS", 20));
    let ms = latency.as_millis();
    let date = NaiveDate::from_ymd_opt(2025, 1, 15).expect("valid date");
    let spec = if bench {
        GranuleSpec::new(date)
    } else {
        GranuleSpec::small(date, 1000, 2000)
    };
    let granule = common::cached_granule(&spec);
    let size = common::file_size(&granule);
    let work = tooling::TempDir::new("bench-refs");
    let bin = mursst_binary(work.path());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let moto = MotoServer::start();
    let key = format!("{PREFIX}/{}", spec.file_name());
    let batch: usize = env_number("MURSST_BENCH_BATCH", if bench { 30 } else { 3 });
    let batch_keys: Vec<String> = (0..batch)
        .map(|i| format!("{PREFIX}/batch/{i:02}/{}", spec.file_name()))
        .collect();
    let url = format!("s3://{BUCKET}/{key}");
    let (to_moto, to_memory) = rt.block_on(async {
        moto.create_bucket(BUCKET).await;
        moto.put_file(BUCKET, &key, &granule).await;
        let data = Bytes::from(std::fs::read(&granule).expect("read the granule"));
        let origin = Origin::new(&moto, BUCKET, &key, data)
            .await
            .also_at(BUCKET, batch_keys.iter().map(String::as_str));
        (
            Proxy::start(moto.endpoint(), latency, None).await,
            Proxy::start(moto.endpoint(), latency, Some(Arc::new(origin))).await,
        )
    });
    eprintln!(
        "{url}: {} on moto {}; proxies (+{ms} ms per request) {} (to moto) and {} (object \
         served from memory); {runs} run(s) per tool",
        human(size),
        moto.endpoint(),
        to_moto.endpoint(),
        to_memory.endpoint(),
    );

    let bin_for_batch = std::env::var_os("MURSST_BENCH_MURSST").map_or(bin.clone(), PathBuf::from);
    let batch_runs: Vec<BatchRun> = (0..runs)
        .map(|i| {
            run_batch(
                &bin_for_batch,
                &spec,
                &batch_keys,
                &to_memory,
                &work.path().join(format!("batch-{i}")),
            )
        })
        .collect();
    print_batch(&batch_runs, &bin_for_batch, ms);
    if std::env::var_os("MURSST_BENCH_ONLY_BATCH").is_some() {
        return;
    }

    let mut pairs = [
        (
            &to_moto,
            Pair {
                origin: "moto",
                ours: Row {
                    name: format!("mursst refs, +{ms} ms → moto"),
                    runs: Vec::new(),
                },
                theirs: Row {
                    name: format!("kerchunk + s3fs, +{ms} ms → moto"),
                    runs: Vec::new(),
                },
            },
        ),
        (
            &to_memory,
            Pair {
                origin: "memory",
                ours: Row {
                    name: format!("mursst refs, +{ms} ms → memory"),
                    runs: Vec::new(),
                },
                theirs: Row {
                    name: format!("kerchunk + s3fs, +{ms} ms → memory"),
                    runs: Vec::new(),
                },
            },
        ),
    ];
    let mut direct = Row {
        name: "mursst refs, direct to moto".into(),
        runs: Vec::new(),
    };
    let mut kerchunk_info = Value::Null;
    // Interleaved, so a busy moment of the machine hurts both tools alike.
    for i in 0..runs {
        for (proxy, pair) in &mut pairs {
            let endpoint = proxy.endpoint();
            let out = work.path().join(format!("mursst-{}-{i}.json", pair.origin));
            pair.ours
                .runs
                .push(run_mursst(&bin, &url, &endpoint, &out, &proxy.stats));
            let out = work
                .path()
                .join(format!("kerchunk-{}-{i}.json", pair.origin));
            let (run, info) = run_kerchunk(&url, &endpoint, &out, &proxy.stats);
            pair.theirs.runs.push(run);
            kerchunk_info = info;
        }
        let out = work.path().join(format!("direct-{i}.json"));
        direct.runs.push(run_mursst(
            &bin,
            &url,
            &moto.endpoint(),
            &out,
            &to_moto.stats,
        ));
    }

    // The outputs: complete, and the same references.
    let mut comparisons = Vec::new();
    for (_, pair) in &pairs {
        let our_refs = read_refs(&pair.ours.last().measured.stdout);
        let their_refs = read_refs(&pair.theirs.last().measured.stdout);
        check_chunk_counts(&our_refs, &spec, "mursst");
        check_chunk_counts(&their_refs, &spec, "kerchunk");
        comparisons.push(compare_refs(&our_refs, &their_refs));
    }
    check_chunk_counts(&read_refs(&direct.last().measured.stdout), &spec, "mursst");

    println!();
    println!(
        "granule: {} × {}, {} data variables + lat/lon/time, {} ({} bytes); {}",
        spec.lat_size,
        spec.lon_size,
        spec.variables.len(),
        human(size),
        size,
        spec.file_name()
    );
    println!(
        "kerchunk {} / s3fs {} / fsspec {} / h5py {} (HDF5 {}): block size {}, cache {}",
        kerchunk_info["kerchunk"].as_str().unwrap_or("?"),
        kerchunk_info["s3fs"].as_str().unwrap_or("?"),
        kerchunk_info["fsspec"].as_str().unwrap_or("?"),
        kerchunk_info["h5py"].as_str().unwrap_or("?"),
        kerchunk_info["hdf5"].as_str().unwrap_or("?"),
        kerchunk_info["block_size"]
            .as_u64()
            .map(human)
            .unwrap_or_else(|| "?".into()),
        kerchunk_info["cache"].as_str().unwrap_or("?"),
    );
    println!(
        "median of {runs} run(s); GETs, HEADs and bytes as the proxy counted them; peak RSS \
         is the child's ru_maxrss (max over runs)"
    );
    println!(
        "→ moto: the proxy forwards to moto, which answers one request at a time and reads \
         the whole object for each ranged GET (~10-25 ms each here); → memory: the proxy \
         answers GET/HEAD of the granule itself from memory, in parallel, like S3 (same \
         headers as moto's)"
    );
    println!();
    let mut rows = Vec::new();
    for (_, pair) in &pairs {
        rows.push(table_row(&pair.ours, Some(&pair.theirs)));
        rows.push(table_row(&pair.theirs, Some(&pair.theirs)));
    }
    rows.push(table_row(&direct, None));
    print_table(
        &[
            "tool, proxy → origin",
            "wall s",
            "index s",
            "GETs",
            "HEADs",
            "bytes read",
            "max in flight",
            "peak RSS MiB",
            "speedup (wall)",
            "speedup (index)",
        ],
        &rows,
    );
    println!();
    println!(
        "wall s: the whole child process; index s: what the tool times itself (mursst \
         --stats; kerchunk from opening the file system to translate() returning, after \
         imports); speedup: kerchunk's time over mursst's through the same proxy and origin"
    );
    let floor = pairs
        .iter()
        .flat_map(|(_, p)| p.ours.runs.iter().chain(&p.theirs.runs))
        .map(|r| r.measured.floor_bytes)
        .max()
        .unwrap_or(0);
    println!(
        "peak RSS floor (the measuring shim's own RSS, which a child inherits): {:.1} MiB",
        floor as f64 / f64::from(1 << 20)
    );
    for ((_, pair), cmp) in pairs.iter().zip(&comparisons) {
        let ours = pair.ours.last();
        let theirs = pair.theirs.last();
        println!(
            "→ {}: mursst {} requests ({} GET, {} HEAD; {} answered from memory), {} bytes \
             over {} connection(s) (its --stats: {:?}); kerchunk {} requests {:?} ({} from \
             memory), {} bytes over {} connection(s)",
            pair.origin,
            ours.counts.requests(),
            ours.counts.method("GET"),
            ours.counts.method("HEAD"),
            ours.counts.from_memory,
            ours.counts.body_bytes,
            ours.counts.connections,
            ours.self_reported.unwrap_or_default(),
            theirs.counts.requests(),
            theirs.counts.by_method,
            theirs.counts.from_memory,
            theirs.counts.body_bytes,
            theirs.counts.connections,
        );
        println!(
            "  chunk references identical to kerchunk's: {} of {} ({} more inlined by \
             kerchunk){}",
            cmp.same,
            cmp.both,
            cmp.inlined,
            if cmp.differ.is_empty() {
                String::new()
            } else {
                format!("; first differences:\n  {}", cmp.differ.join("\n  "))
            }
        );
    }
    let last = pairs[1].1.ours.last();
    let rounds = last.counts.rounds(latency.as_secs_f64() * 1e3 / 2.0);
    println!(
        "mursst's requests (→ memory, last run: {:.0} ms in all) in {} round(s) of waiting \
         for an answer (a round starts {} ms or more after the previous request; times from \
         the process start):",
        last.measured.wall_s * 1e3,
        rounds.len(),
        ms / 2
    );
    for (i, round) in rounds.iter().enumerate() {
        let ranges: Vec<String> = round
            .iter()
            .map(|r| {
                let len = parse_range(&r.range, u64::MAX)
                    .map(|(a, b)| format!("{a}+{}", b - a))
                    .unwrap_or_else(|| r.method.clone());
                if r.method == "GET" {
                    len
                } else {
                    r.method.clone()
                }
            })
            .collect();
        println!(
            "  round {:>2} at {:>6.1} ms, answered by {:>6.1} ms: {:>2} request(s): {}",
            i + 1,
            round[0].arrived_ms,
            round.iter().map(|r| r.answered_ms).fold(0.0, f64::max),
            round.len(),
            ranges.join(" ")
        );
    }
    println!();
    for (_, pair) in &pairs {
        let speedup = pair.theirs.wall() / pair.ours.wall();
        println!(
            "target ≥ {TARGET_SPEEDUP}× faster than kerchunk, proxy → {}: {speedup:.1}× (wall), \
             {:.1}× (index) — {}",
            pair.origin,
            pair.theirs.inner() / pair.ours.inner(),
            verdict(speedup >= TARGET_SPEEDUP)
        );
    }
    let bytes = pairs[0].1.ours.last().counts.body_bytes;
    let rss = pairs.iter().map(|(_, p)| p.ours.rss()).max().unwrap_or(0);
    println!(
        "target < 2 MB read: {bytes} bytes — {}",
        verdict(bytes < TARGET_BYTES)
    );
    println!(
        "target peak RSS < 64 MiB: {:.1} MiB — {}",
        rss as f64 / f64::from(1 << 20),
        verdict(rss < TARGET_RSS_BYTES)
    );
    if !bench {
        println!("(smoke run on a small granule: run `cargo bench --bench refs` for figures)");
    }
    drop(pairs);
    drop(to_moto);
    drop(to_memory);
    drop(moto);
}
