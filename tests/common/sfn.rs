//! The state machines run for real: `tests/sfn/run.mjs` executes a definition with
//! aws-local-stepfunctions, every Lambda Task served by the handler binaries
//! (`target/debug/mursst-*`) through a Lambda Runtime API emulator, against a moto
//! server for S3 and SNS. [`SfnEnv`] is one such world: moto with the buckets, the
//! notification topic and an SQS queue subscribed to it.
//!
//! Nothing skips: a missing Node.js, npm package or handler binary fails the test with
//! how to get it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

use super::tooling::{MOTO_REGION, MotoServer, TempDir, output, python, python_script};

/// The account the ARNs name (moto's default).
pub const ACCOUNT: &str = "123456789012";

/// The four handlers: (the step's name, the binary's name).
pub const FUNCTIONS: [(&str, &str); 5] = [
    ("discover", "mursst-discover"),
    ("generate-refs", "mursst-generate-refs"),
    ("commit", "mursst-commit"),
    ("validate", "mursst-validate"),
    ("materialize", "mursst-materialize"),
];

/// Where the tests keep the store, the granules and the run artifacts on moto.
pub const STORE: &str = "s3://stores/mur/virtual";
pub const SOURCE: &str = "s3://granules/MUR-JPL-L4-GLOB-v4.1/";
pub const ARTIFACTS: &str = "s3://artifacts/mursst";

/// The function ARN a definition's `${…FunctionArn}` becomes for `binary`.
pub fn function_arn(binary: &str) -> String {
    format!("arn:aws:lambda:{MOTO_REGION}:{ACCOUNT}:function:{binary}")
}

/// `statemachine/<name>`.
pub fn definition(name: &str) -> PathBuf {
    super::tooling::repo_root().join("statemachine").join(name)
}

fn harness_dir() -> PathBuf {
    super::tooling::repo_root().join("tests").join("sfn")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::tooling::repo_root().join("target"))
}

fn newest_source(dir: &Path, newest: &mut SystemTime) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // The CLI (src/bin) is not part of any handler.
        if path.is_dir() && !path.ends_with("src/bin") {
            newest_source(&path, newest);
        } else if path.extension().is_some_and(|e| e == "rs")
            && let Ok(m) = entry.metadata().and_then(|m| m.modified())
        {
            *newest = (*newest).max(m);
        }
    }
}

/// The build profile this test binary was built with, whose handlers it runs.
pub fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// The handler binaries of build `profile`, built and not older than the sources they
/// are built from.
pub fn binaries(profile: &str) -> BTreeMap<&'static str, PathBuf> {
    let root = super::tooling::repo_root();
    let mut newest = SystemTime::UNIX_EPOCH;
    newest_source(&root.join("src"), &mut newest);
    newest_source(&root.join("functions"), &mut newest);
    let mut out = BTreeMap::new();
    for (_, name) in FUNCTIONS {
        let path = target_dir().join(profile).join(name);
        let build = if profile == "release" {
            "cargo build --release --workspace --bins"
        } else {
            "cargo build --workspace --bins"
        };
        let built = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e}: build the Lambda handlers first: `{build}`",
                    path.display()
                )
            });
        assert!(
            built >= newest,
            "{} is older than the sources: rebuild it with `{build}`",
            path.display()
        );
        out.insert(name, path);
    }
    out
}

/// Node.js ≥ 20 on PATH and the harness's npm packages installed.
pub fn check_node() {
    let out = Command::new("node")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!("node not found ({e}): the state-machine tests need Node.js >= 20 and npm")
        });
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "node {version}: the harness needs Node.js >= 20"
    );
    let package = harness_dir().join("node_modules/aws-local-stepfunctions/package.json");
    assert!(
        package.exists(),
        "{} missing: run scripts/bootstrap.sh (it runs `npm ci` in tests/sfn)",
        package.display()
    );
}

/// What went through a [`FaultProxy`], by the client's SDK app id (`AWS_SDK_UA_APP_ID`,
/// in the User-Agent; `""` without one) and bucket (the first path segment; `""` for
/// requests to no bucket, such as Secrets Manager's).
#[derive(Debug, Default, Clone)]
pub struct Traffic {
    pub entries: BTreeMap<(String, String), BucketTraffic>,
}

#[derive(Debug, Default, Clone)]
pub struct BucketTraffic {
    pub requests: u64,
    /// Response body bytes (Content-Length) of the requests forwarded, HEADs aside.
    pub bytes: u64,
    /// Requests answered with an injected fault instead.
    pub faults: u64,
    /// The access key ids that signed requests (SigV4 `Credential=`).
    pub access_keys: BTreeSet<String>,
}

impl BucketTraffic {
    pub fn add(&mut self, other: &BucketTraffic) {
        self.requests += other.requests;
        self.bytes += other.bytes;
        self.faults += other.faults;
        self.access_keys.extend(other.access_keys.iter().cloned());
    }
}

impl Traffic {
    /// Everything for bucket `name`, whichever client.
    pub fn bucket(&self, name: &str) -> BucketTraffic {
        let mut out = BucketTraffic::default();
        for ((_, bucket), t) in &self.entries {
            if bucket == name {
                out.add(t);
            }
        }
        out
    }

    /// What clients with SDK app id `app` sent.
    pub fn of_app(&self, app: &str) -> Traffic {
        Traffic {
            entries: self
                .entries
                .iter()
                .filter(|((a, _), _)| a == app)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    pub fn requests(&self) -> u64 {
        self.entries.values().map(|b| b.requests).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.entries.values().map(|b| b.bytes).sum()
    }

    pub fn faults(&self) -> u64 {
        self.entries.values().map(|b| b.faults).sum()
    }
}

/// A reverse proxy in front of moto that counts what passes by bucket and can fail
/// requests: `503 SlowDown` to the first `count` requests whose path contains a string
/// (S3 throttling one object), and, at a rate set any time, random S3 faults (503
/// SlowDown, 500 InternalError, a connection reset, a body cut short).
pub struct FaultProxy {
    addr: SocketAddr,
    pub injected: Arc<AtomicUsize>,
    pub forwarded: Arc<AtomicUsize>,
    rate_ppm: Arc<AtomicU32>,
    traffic: Arc<Mutex<Traffic>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, BoxError>;

/// What one proxy does with a request, shared by its connections.
struct ProxyRules {
    client: Client<HttpConnector, Incoming>,
    upstream: String,
    throttle: String,
    remaining: AtomicUsize,
    rate_ppm: Arc<AtomicU32>,
    traffic: Arc<Mutex<Traffic>>,
    injected: Arc<AtomicUsize>,
    forwarded: Arc<AtomicUsize>,
}

/// A random fault in place of S3's answer.
enum Fault {
    SlowDown,
    Internal,
    Reset,
    CutBody,
}

impl ProxyRules {
    fn note(&self, req: &Request<Incoming>, f: impl FnOnce(&mut BucketTraffic)) {
        let origin = origin_of(req);
        let key = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').next())
            .map(str::to_string);
        let mut traffic = self.traffic.lock().unwrap();
        let entry = traffic.entries.entry(origin).or_default();
        entry.access_keys.extend(key);
        f(entry);
    }

    fn pick_fault(&self, req: &Request<Incoming>) -> Option<Fault> {
        let throttled = !self.throttle.is_empty()
            && req.uri().path().contains(&self.throttle)
            && self
                .remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if throttled {
            return Some(Fault::SlowDown);
        }
        let rate = self.rate_ppm.load(Ordering::Relaxed);
        if rate == 0 || rand::random_range(0..1_000_000) >= rate {
            return None;
        }
        Some(match rand::random_range(0..4) {
            0 => Fault::SlowDown,
            1 => Fault::Internal,
            2 => Fault::Reset,
            _ => Fault::CutBody,
        })
    }

    async fn handle(&self, req: Request<Incoming>) -> Result<Response<ProxyBody>, std::io::Error> {
        let fault = self.pick_fault(&req);
        if fault.is_some() {
            self.injected.fetch_add(1, Ordering::SeqCst);
            self.note(&req, |b| b.faults += 1);
        } else {
            self.forwarded.fetch_add(1, Ordering::SeqCst);
        }
        match fault {
            Some(Fault::SlowDown) => {
                return Ok(s3_error(
                    503,
                    "SlowDown",
                    "Please reduce your request rate.",
                ));
            }
            Some(Fault::Internal) => {
                return Ok(s3_error(
                    500,
                    "InternalError",
                    "We encountered an internal error.",
                ));
            }
            Some(Fault::Reset) => return Err(std::io::Error::other("injected connection reset")),
            Some(Fault::CutBody) => {
                // Half the body under the full Content-Length: the client sees it cut short.
                let (parts, body) = forward(req, &self.client, &self.upstream)
                    .await
                    .into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let half = bytes.slice(..bytes.len() / 2);
                let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
                    Ok(Frame::data(half)),
                    Err("injected: body cut short".into()),
                ];
                let body = StreamBody::new(futures::stream::iter(frames)).boxed();
                return Ok(Response::from_parts(parts, body));
            }
            None => {}
        }
        Ok(forward_counted(req, self).await)
    }
}

/// Who sent a request and to which bucket: the SDK app id in its User-Agent (`""`
/// without one) and the bucket of a path-style S3 request (`""` for none).
fn origin_of(req: &Request<Incoming>) -> (String, String) {
    let app = ["x-amz-user-agent", "user-agent"]
        .iter()
        .filter_map(|h| req.headers().get(*h)?.to_str().ok())
        .flat_map(|ua| ua.split(' '))
        .find_map(|token| token.strip_prefix("app/"))
        .unwrap_or_default()
        .to_string();
    let bucket = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    (app, bucket)
}

/// Forward `req`, noting it and its response's Content-Length against its bucket.
async fn forward_counted(req: Request<Incoming>, rules: &ProxyRules) -> Response<ProxyBody> {
    rules.note(&req, |b| b.requests += 1);
    let origin = origin_of(&req);
    // A HEAD's Content-Length is the object's size, not bytes sent.
    let head = req.method() == hyper::Method::HEAD;
    let resp = forward(req, &rules.client, &rules.upstream).await;
    if head {
        return resp;
    }
    let length: u64 = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut traffic = rules.traffic.lock().unwrap();
    traffic.entries.entry(origin).or_default().bytes += length;
    resp
}

impl FaultProxy {
    /// Throttle the first `count` requests whose path contains `path_contains`.
    pub fn start(upstream: String, path_contains: String, count: usize) -> Self {
        Self::spawn(upstream, path_contains, count)
    }

    /// Count and forward everything (random faults only once [`Self::set_fault_rate`]).
    pub fn counting(upstream: String) -> Self {
        Self::spawn(upstream, String::new(), 0)
    }

    /// Fail this share (0..=1) of the requests from now on.
    pub fn set_fault_rate(&self, rate: f64) {
        self.rate_ppm
            .store((rate.clamp(0.0, 1.0) * 1e6) as u32, Ordering::Relaxed);
    }

    /// What went through so far.
    pub fn traffic(&self) -> Traffic {
        self.traffic.lock().unwrap().clone()
    }

    fn spawn(upstream: String, throttle: String, count: usize) -> Self {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("proxy address");
        let injected = Arc::new(AtomicUsize::new(0));
        let forwarded = Arc::new(AtomicUsize::new(0));
        let rate_ppm = Arc::new(AtomicU32::new(0));
        let traffic = Arc::new(Mutex::new(Traffic::default()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let rules = (
            upstream,
            throttle,
            count,
            Arc::clone(&rate_ppm),
            Arc::clone(&traffic),
            Arc::clone(&injected),
            Arc::clone(&forwarded),
        );
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                let (upstream, throttle, count, rate_ppm, traffic, injected, forwarded) = rules;
                let rules = Arc::new(ProxyRules {
                    client: Client::builder(TokioExecutor::new()).build_http(),
                    upstream,
                    throttle,
                    remaining: AtomicUsize::new(count),
                    rate_ppm,
                    traffic,
                    injected,
                    forwarded,
                });
                loop {
                    let stream = tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => match accepted {
                            Ok((s, _)) => s,
                            Err(_) => continue,
                        },
                    };
                    let rules = Arc::clone(&rules);
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let rules = Arc::clone(&rules);
                            async move { rules.handle(req).await }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        Self {
            addr,
            injected,
            forwarded,
            rate_ppm,
            traffic,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn boxed_incoming(body: Incoming) -> ProxyBody {
    body.map_err(|e| -> BoxError { Box::new(e) }).boxed()
}

fn s3_error(status: u16, code: &str, message: &str) -> Response<ProxyBody> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>{message}</Message></Error>"
    );
    Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(full(body))
        .expect("an S3 error")
}

async fn forward(
    req: Request<Incoming>,
    client: &Client<HttpConnector, Incoming>,
    upstream: &str,
) -> Response<ProxyBody> {
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    parts.uri = format!("{upstream}{path}").parse().expect("upstream URI");
    for h in ["connection", "keep-alive", "te", "trailer", "upgrade"] {
        parts.headers.remove(h);
    }
    match client.request(Request::from_parts(parts, body)).await {
        Ok(resp) => resp.map(boxed_incoming),
        Err(e) => Response::builder()
            .status(502)
            .body(full(format!("proxy: {e}")))
            .expect("a 502"),
    }
}

/// One world the state machines run in: moto (S3 and SNS), the buckets, the topic the
/// definitions notify and the queue subscribed to it.
pub struct SfnEnv {
    pub moto: MotoServer,
    pub tmp: TempDir,
    pub topic_arn: String,
    pub queue_url: String,
    pub binaries: BTreeMap<&'static str, PathBuf>,
    runs: AtomicUsize,
}

/// How to run one execution.
#[derive(Default, Clone)]
pub struct RunSpec {
    /// `statemachine/<definition>`; `update.asl.json` when empty.
    pub definition: Option<PathBuf>,
    pub input: Value,
    /// Start at this top-level state with this input (a redrive).
    pub start_at: Option<(String, Value)>,
    /// Kill the sandbox of the first invocation whose event contains each string.
    pub crash_first: Vec<String>,
    pub inline_distributed_map: bool,
    /// Extra environment per binary name (e.g. another `AWS_ENDPOINT_URL`).
    pub env: BTreeMap<String, BTreeMap<String, String>>,
    /// Run these binaries' sandboxes under Lambda's limits: memory (a cgroup), CPU in
    /// proportion, their own /tmp, and the timeout.
    pub limits: BTreeMap<String, Sizing>,
    /// Wait the definition's own Retry intervals (with backoff and jitter) instead of
    /// 50 ms.
    pub real_retry_intervals: bool,
}

/// A function's size as deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    pub memory_mb: u64,
    pub timeout_s: u64,
    pub ephemeral_mb: u64,
}

impl SfnEnv {
    /// A world whose Lambdas are the handlers of this test's own build profile.
    pub fn start(tag: &str) -> Self {
        Self::start_with(tag, profile())
    }

    /// A world whose Lambdas are the handlers of build `profile` (`release`, `debug`).
    pub fn start_with(tag: &str, profile: &str) -> Self {
        check_node();
        let binaries = binaries(profile);
        let moto = MotoServer::start();
        let tmp = TempDir::new(&format!("sfn-{tag}"));
        let rt = runtime();
        rt.block_on(async {
            for bucket in ["granules", "stores", "artifacts"] {
                moto.create_bucket(bucket).await;
            }
        });
        let out = super::tooling::run_python_env(
            &python(),
            &python_script("sns_queue.py"),
            ["create", "mursst-notify"],
            moto.env(),
        );
        let created: Value = serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("sns_queue.py create: {e}: {}", out.stdout));
        Self {
            topic_arn: created["topic_arn"].as_str().unwrap().to_string(),
            queue_url: created["queue_url"].as_str().unwrap().to_string(),
            moto,
            tmp,
            binaries,
            runs: AtomicUsize::new(0),
        }
    }

    /// The library's view of the same store, granules and artifacts.
    pub fn ctx(&self) -> mursst::pipeline::Context {
        let s3 = self.moto.s3_settings();
        mursst::pipeline::Context {
            store: mursst::store::RepoLocation::parse(STORE).unwrap(),
            store_s3: s3.clone(),
            source: mursst::discover::GranuleSource::parse(SOURCE, &s3.clone().into()).unwrap(),
            source_s3: s3.clone().into(),
            artifacts: ARTIFACTS.into(),
            artifacts_s3: s3.into(),
            read_options: Default::default(),
            concurrency: 2,
            progress: None,
            defaults: Default::default(),
        }
    }

    /// The environment every Lambda gets, as the infra sets it (the moto endpoint for
    /// every AWS client).
    pub fn lambda_env(&self) -> BTreeMap<String, String> {
        [
            ("MURSST_STORE", STORE.to_string()),
            ("MURSST_SOURCE", SOURCE.to_string()),
            ("MURSST_ARTIFACTS", ARTIFACTS.to_string()),
            // The infra's default: every run re-points days replaced since ingest.
            ("MURSST_REPROCESS", "changed".to_string()),
            ("AWS_ENDPOINT_URL", self.moto.endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", MOTO_REGION.into()),
            ("AWS_DEFAULT_REGION", MOTO_REGION.into()),
            (
                "RUST_LOG",
                std::env::var("MURSST_SFN_RUST_LOG").unwrap_or_else(|_| "info".into()),
            ),
            ("HDF5_USE_FILE_LOCKING", "FALSE".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Upload a granule file to the source prefix.
    pub fn put_granule(&self, path: &Path) {
        let name = path.file_name().unwrap().to_str().unwrap();
        let key = format!("MUR-JPL-L4-GLOB-v4.1/{name}");
        runtime().block_on(self.moto.put_file("granules", &key, path));
    }

    /// Upload raw bytes as a granule (a corrupt one, say).
    pub fn put_granule_bytes(&self, name: &str, bytes: Vec<u8>) {
        let key = format!("MUR-JPL-L4-GLOB-v4.1/{name}");
        runtime().block_on(async {
            self.moto
                .client()
                .await
                .put_object()
                .bucket("granules")
                .key(&key)
                .body(bytes.into())
                .send()
                .await
                .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
        });
    }

    /// Keys under `s3://bucket/prefix`.
    pub fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        runtime().block_on(async {
            let client = self.moto.client().await;
            let mut keys = Vec::new();
            let mut token = None;
            loop {
                let out = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(prefix)
                    .set_continuation_token(token)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("list s3://{bucket}/{prefix}: {e:?}"));
                keys.extend(
                    out.contents()
                        .iter()
                        .filter_map(|o| o.key().map(String::from)),
                );
                token = out.next_continuation_token().map(String::from);
                if token.is_none() {
                    return keys;
                }
            }
        })
    }

    /// What the definition's `${…}` placeholders become.
    pub fn substitutions(&self) -> Value {
        let mut s = serde_json::Map::new();
        for (step, binary) in FUNCTIONS {
            let key = match step {
                "discover" => "DiscoverFunctionArn",
                "generate-refs" => "GenerateRefsFunctionArn",
                "commit" => "CommitFunctionArn",
                "materialize" => "MaterializeFunctionArn",
                _ => "ValidateFunctionArn",
            };
            s.insert(key.into(), function_arn(binary).into());
        }
        s.insert("NotifyTopicArn".into(), self.topic_arn.clone().into());
        let (bucket, prefix) = ARTIFACTS
            .trim_start_matches("s3://")
            .split_once('/')
            .unwrap();
        s.insert("ArtifactBucket".into(), bucket.into());
        s.insert("ArtifactPrefix".into(), format!("{prefix}/").into());
        Value::Object(s)
    }

    /// Run one execution through the harness; the parsed result.
    pub fn run(&self, name: &str, spec: &RunSpec) -> SfnResult {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let dir = self.tmp.path().join(format!("{n:02}-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |file: &str, value: &Value| {
            let path = dir.join(file);
            std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
            path
        };
        let mut lambdas = serde_json::Map::new();
        for (_, binary) in FUNCTIONS {
            let mut env = self.lambda_env();
            if let Some(extra) = spec.env.get(binary) {
                env.extend(extra.clone());
            }
            // A hung handler is killed, as Lambda ends an invocation at its timeout.
            let config = match spec.limits.get(binary) {
                Some(size) => json!({
                    "command": self.binaries[binary], "env": env, "limits": true,
                    "timeout_s": size.timeout_s, "memory_mb": size.memory_mb,
                }),
                None => json!({ "command": self.binaries[binary], "env": env, "timeout_s": 300 }),
            };
            lambdas.insert(function_arn(binary), config);
        }
        let definition = spec
            .definition
            .clone()
            .unwrap_or_else(|| definition("update.asl.json"));
        let out = dir.join("result.json");
        let mut cmd = Command::new("node");
        cmd.arg(harness_dir().join("run.mjs"))
            .arg("--definition")
            .arg(&definition)
            .arg("--substitutions")
            .arg(write("substitutions.json", &self.substitutions()))
            .arg("--lambdas")
            .arg(write("lambdas.json", &Value::Object(lambdas)))
            .arg("--input")
            .arg(write("input.json", &spec.input))
            .arg("--out")
            .arg(&out)
            .arg("--sns-endpoint")
            .arg(self.moto.endpoint())
            .arg("--s3-endpoint")
            .arg(self.moto.endpoint())
            .args([
                "--retry-interval-ms",
                if spec.real_retry_intervals {
                    "definition"
                } else {
                    "50"
                },
            ])
            .envs(self.moto.env());
        if let Some((state, input)) = &spec.start_at {
            cmd.arg("--start-at")
                .arg(state)
                .arg("--state-input")
                .arg(write("state-input.json", input));
        }
        for m in &spec.crash_first {
            cmd.arg("--crash-first").arg(m);
        }
        if spec.inline_distributed_map {
            cmd.arg("--inline-distributed-map");
        }
        let started = Instant::now();
        let done = output(&mut cmd);
        let elapsed = started.elapsed();
        assert!(
            done.status.success(),
            "the harness failed ({}) for {name}:\n--- stderr ---\n{}\n--- stdout ---\n{}",
            done.status,
            String::from_utf8_lossy(&done.stderr),
            String::from_utf8_lossy(&done.stdout)
        );
        let json: Value = serde_json::from_slice(&std::fs::read(&out).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", out.display()));
        let result = SfnResult { json, dir };
        eprintln!(
            "sfn {name}: {} in {:.1} s ({})",
            result.status(),
            elapsed.as_secs_f64(),
            result.path_taken().join(" → ")
        );
        result
    }

    /// Notifications the queue received (drained): (subject, message as JSON).
    pub fn notifications(&self, at_least: usize) -> Vec<(String, Value)> {
        let out = super::tooling::run_python_env(
            &python(),
            &python_script("sns_queue.py"),
            [
                "receive",
                self.queue_url.as_str(),
                "--wait",
                if at_least > 0 { "10" } else { "1" },
                "--at-least",
                &at_least.to_string(),
            ],
            self.moto.env(),
        );
        let got: Vec<Value> = serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("sns_queue.py receive: {e}: {}", out.stdout));
        got.into_iter()
            .map(|m| {
                let subject = m["subject"].as_str().unwrap_or_default().to_string();
                let text = m["message"].as_str().unwrap_or_default();
                let message = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("notification is not JSON ({e}): {text}"));
                (subject, message)
            })
            .collect()
    }
}

/// A tokio runtime for the library calls of a synchronous test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// What the harness wrote: status, output, the event log, and where the logs are.
pub struct SfnResult {
    pub json: Value,
    pub dir: PathBuf,
}

impl SfnResult {
    pub fn status(&self) -> &str {
        self.json["status"].as_str().unwrap_or("?")
    }
    pub fn output(&self) -> &Value {
        &self.json["output"]
    }
    pub fn error(&self) -> Option<&str> {
        self.json["error"].as_str()
    }
    pub fn events(&self) -> &[Value] {
        self.json["events"].as_array().map_or(&[], |v| v.as_slice())
    }

    fn top_level(&self, kind: &str) -> impl Iterator<Item = &Value> {
        self.events()
            .iter()
            .filter(move |e| e["type"] == kind && e.get("index").is_none())
    }

    /// The top-level states in the order they were entered.
    pub fn path_taken(&self) -> Vec<&str> {
        self.top_level("StateEntered")
            .filter_map(|e| e["state"]["name"].as_str())
            .collect()
    }

    /// The input of the top-level state `name` (its first entry).
    pub fn state_input(&self, name: &str) -> Option<&Value> {
        self.top_level("StateEntered")
            .find(|e| e["state"]["name"] == name)
            .map(|e| &e["state"]["input"])
    }

    /// The top-level state whose failure a Catch took last, with its input: where a
    /// redrive starts.
    pub fn caught(&self) -> Option<(String, Value)> {
        self.top_level("StateCaught").last().map(|e| {
            (
                e["state"]["name"].as_str().unwrap_or_default().to_string(),
                e["state"]["input"].clone(),
            )
        })
    }

    /// The output of the top-level state `name` (its last exit).
    pub fn state_output(&self, name: &str) -> Option<&Value> {
        self.top_level("StateExited")
            .filter(|e| e["state"]["name"] == name)
            .last()
            .map(|e| &e["state"]["output"])
    }

    /// Events of `kind` for state `name`, nested ones (Map iterations) included.
    pub fn state_events(&self, kind: &str, name: &str) -> Vec<&Value> {
        self.events()
            .iter()
            .filter(|e| e["type"] == kind && e["state"]["name"] == name)
            .collect()
    }

    /// Every invocation of the function `binary`, in the order they started.
    pub fn invocations(&self, binary: &str) -> Vec<&Value> {
        self.events()
            .iter()
            .filter(|e| e["type"] == "LambdaInvocation" && e["function"] == binary)
            .collect()
    }

    /// What the SNS tasks published: (state, message as JSON).
    pub fn published(&self) -> Vec<(String, Value)> {
        self.events()
            .iter()
            .filter(|e| e["type"] == "SnsPublish")
            .map(|e| {
                (
                    e["state"].as_str().unwrap_or_default().to_string(),
                    serde_json::from_str(e["message"].as_str().unwrap_or("null")).unwrap(),
                )
            })
            .collect()
    }

    /// For assertion messages: the path, every failed invocation, where the logs are.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "status {} error {:?} cause {:?}\npath: {}\n",
            self.status(),
            self.json["error"],
            self.json["cause"],
            self.path_taken().join(" → ")
        );
        for e in self.events() {
            if e["type"] == "LambdaInvocation" && e.get("error").is_some() {
                s.push_str(&format!(
                    "  {} in {}: {} {}\n",
                    e["function"], e["state"], e["error"]["Error"], e["error"]["Cause"]
                ));
            }
        }
        s.push_str(&format!(
            "result: {}\nlogs: {}\n",
            self.dir.join("result.json").display(),
            self.json["logs_dir"].as_str().unwrap_or("?")
        ));
        s
    }
}
