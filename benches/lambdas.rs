//! The five Lambda bootstraps: their size (for arm64, what is deployed, and x86-64) and
//! their init time, from process start to the first `GET /runtime/invocation/next` on
//! a Lambda Runtime API stand-in (the part of a cold start the code controls).
//!
//! `cargo bench --bench lambdas` builds each with `cargo lambda build --profile deploy`
//! (what is deployed: stripped, fat LTO, one codegen unit; one package at a time, so only
//! `mursst-validate` links libhdf5) and prints a table. `MURSST_LAMBDA_PROFILE=release`
//! measures the plain release profile instead, for comparison;
//! `MURSST_LAMBDA_FUNCTIONS=mursst-commit,…` measures only those. Under `cargo test` it
//! times the debug binaries instead.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const FUNCTIONS: [&str; 5] = [
    "mursst-discover",
    "mursst-generate-refs",
    "mursst-commit",
    "mursst-validate",
    "mursst-materialize",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Seconds from spawning `binary` to its first request to the Runtime API.
fn init_time(binary: &Path) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let start = Instant::now();
    let mut child = Command::new(binary)
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .env("AWS_REGION", "us-west-2")
        .env("MURSST_STORE", "s3://bench-store/mursst")
        .env("MURSST_SOURCE", "s3://bench-granules/MUR-JPL-L4-GLOB-v4.1/")
        .env("MURSST_ARTIFACTS", "s3://bench-artifacts/mursst")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", binary.display()));
    let (mut conn, _) = listener.accept().expect("the runtime asks for an event");
    let mut line = String::new();
    BufReader::new(&conn)
        .read_line(&mut line)
        .expect("request line");
    let elapsed = start.elapsed().as_secs_f64();
    assert!(
        line.starts_with("GET /2018-06-01/runtime/invocation/next"),
        "{}: first request was {line:?}",
        binary.display()
    );
    let _ = conn.write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n");
    let _ = child.kill();
    let _ = child.wait();
    elapsed
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn size_mb(path: &Path) -> f64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .len() as f64
        / 1e6
}

/// `cargo lambda build --profile <profile>` for one package and architecture; the
/// bootstrap.
fn lambda_build(package: &str, arch: &str, profile: &str) -> PathBuf {
    let target_dir = root().join("target").join(format!("lambda-{arch}"));
    let status = Command::new("cargo")
        .args([
            "lambda",
            "build",
            "--profile",
            profile,
            arch,
            "-p",
            package,
            "--lambda-dir",
        ])
        .arg(&target_dir)
        .current_dir(root())
        .status()
        .expect("cargo lambda (scripts/bootstrap.sh installs it; source scripts/env.sh)");
    assert!(
        status.success(),
        "cargo lambda build --profile {profile} {arch} -p {package}"
    );
    target_dir.join(package).join("bootstrap")
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let profile = std::env::var("MURSST_LAMBDA_PROFILE").unwrap_or_else(|_| "deploy".into());
    if smoke {
        println!("| function (debug) | x86-64 MB | init ms (median of 3) |");
        println!("|:--|--:|--:|");
    } else {
        println!("| function ({profile}) | arm64 MB | x86-64 MB | init ms (median of 5) |");
        println!("|:--|--:|--:|--:|");
    }
    let only = std::env::var("MURSST_LAMBDA_FUNCTIONS").ok();
    let chosen = FUNCTIONS.into_iter().filter(|f| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|x| x == *f))
    });
    for f in chosen {
        if smoke {
            let debug = root().join("target/debug").join(f);
            assert!(
                debug.exists(),
                "{} missing: build the workspace first (cargo build --workspace)",
                debug.display()
            );
            let t = median((0..3).map(|_| init_time(&debug)).collect());
            println!("| {f} | {:.1} | {:.1} |", size_mb(&debug), t * 1e3);
            continue;
        }
        let arm = lambda_build(f, "--arm64", &profile);
        let x86 = lambda_build(f, "--x86-64", &profile);
        let t = median((0..5).map(|_| init_time(&x86)).collect());
        println!(
            "| {f} | {:.1} | {:.1} | {:.1} |",
            size_mb(&arm),
            size_mb(&x86),
            t * 1e3
        );
    }
}
