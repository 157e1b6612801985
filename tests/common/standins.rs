//! The NASA-side protocol stand-ins (`tests/python/*_standin.py`) and the S3 proxy,
//! started on loopback for a test and stopped on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::tooling::{TempDir, python, python_script, spawn};

/// A Python server from `tests/python/` that prints `READY <port>` once listening.
pub struct Standin {
    child: Child,
    pub port: u16,
    /// The JSON-lines log the server writes (one line per request or issue).
    pub log: PathBuf,
    _dir: TempDir,
}

impl Standin {
    /// Start `tests/python/<script>` with `args` plus `--log <file>`.
    pub fn start(script: &str, args: &[&str]) -> Self {
        let dir = TempDir::new("standin");
        let log = dir.path().join("log.jsonl");
        std::fs::write(&log, "").unwrap();
        let mut child = spawn(
            Command::new(python())
                .arg(python_script(script))
                .args(args)
                .arg("--log")
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit()),
        );
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{script} did not start: {line:?}"));
        Self {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The log's entries so far.
    pub fn entries(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The CMR stand-in serving `catalog` (re-read on every request).
pub fn cmr(catalog: &Path) -> Standin {
    Standin::start("cmr_standin.py", &["--catalog", catalog.to_str().unwrap()])
}

/// The EDL + s3credentials stand-in issuing credentials valid for `lifetime_s`.
pub fn edl(user: &str, password: &str, token: &str, lifetime_s: f64) -> Standin {
    let lifetime = lifetime_s.to_string();
    Standin::start(
        "edl_standin.py",
        &[
            "--user",
            user,
            "--password",
            password,
            "--token",
            token,
            "--lifetime",
            &lifetime,
        ],
    )
}

/// The recording, fault-injecting proxy in front of `upstream`.
/// An S3 proxy that refuses any request for `bucket` not signed with `access_key_id`
/// (403 AccessDenied), as a bucket only its own credentials open.
pub fn s3_guard(upstream: &str, bucket: &str, access_key_id: &str) -> Standin {
    let require = format!("{bucket}={access_key_id}");
    Standin::start(
        "s3_proxy.py",
        &["--upstream", upstream, "--require-key", &require],
    )
}

pub fn s3_proxy(upstream: &str, fault_rate: f64, faults: &str, only_key: Option<&str>) -> Standin {
    let rate = fault_rate.to_string();
    let mut args = vec![
        "--upstream",
        upstream,
        "--fault-rate",
        &rate,
        "--faults",
        faults,
    ];
    if let Some(k) = only_key {
        args.extend(["--only-key", k]);
    }
    Standin::start("s3_proxy.py", &args)
}

/// A Secrets Manager secret on `moto` named `name` holding the Earthdata login, as the
/// deployment keeps it; its ARN.
pub async fn login_secret(
    moto: &super::tooling::MotoServer,
    name: &str,
    user: &str,
    password: &str,
) -> String {
    let config = moto.s3_settings().sdk_config().await;
    aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name(name)
        .secret_string(
            serde_json::json!({"EARTHDATA_USERNAME": user, "EARTHDATA_PASSWORD": password})
                .to_string(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create secret {name}: {e:?}"))
        .arn()
        .unwrap()
        .to_string()
}
