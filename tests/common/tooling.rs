//! Helpers shared by the integration tests (`mod common;`): the project's Python, a
//! loopback S3 server (moto), temporary directories, and a lock around the HDF5 library.
//!
//! Nothing here skips: a missing tool is a test failure that says how to install it.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Root of the repository (where Cargo.toml is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/python/<name>`.
pub fn python_script(name: &str) -> PathBuf {
    repo_root().join("tests").join("python").join(name)
}

fn interpreter(var: &str, venv: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(venv).join("bin").join("python"));
    assert!(
        path.exists(),
        "Python interpreter {} not found ({var} or {venv}/bin/python): run scripts/bootstrap.sh",
        path.display()
    );
    path
}

/// The test Python (icechunk 2, VirtualiZarr 2.8, moto): `MURSST_PYTHON` or `.venv/bin/python`.
pub fn python() -> PathBuf {
    interpreter("MURSST_PYTHON", ".venv")
}

/// The Python with icechunk 1.x, for spec-v1 stores: `MURSST_PYTHON_IC1` or `.venv-ic1/bin/python`.
pub fn python_ic1() -> PathBuf {
    interpreter("MURSST_PYTHON_IC1", ".venv-ic1")
}

/// What a finished Python script printed.
#[derive(Debug)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// Start `cmd` while no HDF5 file is open in this process.
///
/// HDF5 opens files without close-on-exec and locks them with `flock`, so a child forked
/// while another test thread writes a granule inherits that lock and keeps the file
/// locked for its whole life; a later reader then fails with "HDF error". Every test
/// process is spawned through here (never while holding [`hdf5_lock`]). Children also get
/// `HDF5_USE_FILE_LOCKING=FALSE`, so they take no locks of their own.
pub fn spawn(cmd: &mut Command) -> Child {
    let _g = hdf5_lock();
    cmd.env("HDF5_USE_FILE_LOCKING", "FALSE")
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Run `cmd` to completion (stdin closed), capturing both streams.
pub fn output(cmd: &mut Command) -> std::process::Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    spawn(cmd)
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {cmd:?}: {e}"))
}

/// Run `interpreter script args...`, panicking with both streams if it exits non-zero.
pub fn run_python_with<I, S>(interpreter: &Path, script: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_python_env(interpreter, script, args, Vec::<(&str, String)>::new())
}

/// [`run_python_with`] with extra environment variables (e.g. [`MotoServer::env`]).
pub fn run_python_env<I, S, E, K, V>(interpreter: &Path, script: &Path, args: I, env: E) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
    E: IntoIterator<Item = (K, V)>,
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = output(Command::new(interpreter).arg(script).args(&args).envs(env));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{} {} {:?} failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        interpreter.display(),
        script.display(),
        args,
        out.status
    );
    Output { stdout, stderr }
}

/// Run a script with [`python()`].
pub fn run_python<I, S>(script: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_python_with(&python(), script, args)
}

/// A fresh directory under the system temp dir, removed on drop (kept if
/// `MURSST_KEEP_TMP` is set, to look at after a failure).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mursst-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("MURSST_KEEP_TMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The HDF5 C library is not thread-safe and the `netcdf` and `hdf5` crates each hold
/// their own lock; tests in one binary take this one around any use of either (and
/// [`spawn`] takes it, so do not start processes while holding it).
pub fn hdf5_lock() -> mursst::oracle::Guard {
    super::libhdf5_lock()
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Region the moto buckets are created in (the production one).
pub const MOTO_REGION: &str = "us-west-2";

/// A moto server (S3, Secrets Manager, ...) on loopback, killed on drop.
pub struct MotoServer {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: TempDir,
}

impl MotoServer {
    /// Start moto's server (`tests/python/moto_server.py`: ranged GETs read only their
    /// bytes) on a free port and wait until it answers HTTP.
    pub fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// [`Self::start`] with extra environment for the server (moto's own settings).
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        let dir = TempDir::new("moto");
        let log = dir.path().join("moto.log");
        let mut last_err = String::new();
        // A port can be taken between probing and binding: retry a few times.
        for _ in 0..3 {
            let port = free_port();
            let log_file = std::fs::File::create(&log).expect("create moto log");
            let mut child = spawn(
                Command::new(python())
                    .arg(python_script("moto_server.py"))
                    .args(["-H", "127.0.0.1", "-p"])
                    .arg(port.to_string())
                    .envs(env.iter().copied())
                    .stdin(Stdio::null())
                    .stdout(log_file.try_clone().expect("clone log handle"))
                    .stderr(log_file),
            );
            match wait_ready(&mut child, port, Duration::from_secs(60)) {
                Ok(()) => {
                    return Self {
                        child,
                        port,
                        log,
                        _dir: dir,
                    };
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = e;
                }
            }
        }
        panic!(
            "moto server did not start: {last_err}\n--- moto log ---\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the server logged so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Settings for a client of this server: path-style, static dummy credentials.
    pub fn s3_settings(&self) -> mursst::aws::AwsSettings {
        mursst::aws::AwsSettings {
            endpoint: Some(self.endpoint()),
            region: Some(MOTO_REGION.to_string()),
            force_path_style: true,
            credentials: Some(mursst::aws::StaticCredentials {
                access_key_id: "testing".into(),
                secret_access_key: "testing".into(),
                session_token: None,
            }),
            anonymous: false,
        }
    }

    /// [`Self::s3_settings`] with a client of its own (built on first use).
    pub fn s3_access(&self) -> mursst::objects::S3Access {
        self.s3_settings().into()
    }

    /// An S3 client for this server.
    pub async fn client(&self) -> aws_sdk_s3::Client {
        self.s3_access().client().await
    }

    /// Create `bucket` in [`MOTO_REGION`].
    pub async fn create_bucket(&self, bucket: &str) {
        use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
        self.client()
            .await
            .create_bucket()
            .bucket(bucket)
            .create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(MOTO_REGION))
                    .build(),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}\n{}", self.log()));
    }

    /// Upload a local file to `s3://bucket/key`.
    pub async fn put_file(&self, bucket: &str, key: &str, path: &Path) {
        let body = aws_sdk_s3::primitives::ByteStream::from_path(path)
            .await
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        self.client()
            .await
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("put s3://{bucket}/{key}: {e:?}\n{}", self.log()));
    }

    /// Environment for a Python client of this server (boto3, s3fs, obstore read these).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", MOTO_REGION.into()),
            ("AWS_DEFAULT_REGION", MOTO_REGION.into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll until the server on `port` answers, or `child` exits, or `timeout` passes.
fn wait_ready(child: &mut Child, port: u16, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("moto exited with {status}"));
        }
        if http_get_ok(port) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("no answer on port {port} after {timeout:?}"))
}

/// Whether `GET /` on 127.0.0.1:port gets an HTTP answer.
fn http_get_ok(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    matches!(s.read(&mut buf), Ok(n) if n >= 8 && buf.starts_with(b"HTTP/1."))
}
