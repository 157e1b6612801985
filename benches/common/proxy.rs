//! An HTTP/1.1 latency proxy for the benches: every request waits a fixed delay, as
//! in-region S3 would, and is counted; objects can be answered from memory, in
//! parallel, the way S3 answers (moto serves one request at a time).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::tooling::MotoServer;

/// What went through the proxy.
#[derive(Default)]
pub struct ProxyStats {
    pub by_method: parking_lot::Mutex<BTreeMap<String, u64>>,
    pub body_bytes: AtomicU64,
    pub connections: AtomicU64,
    /// Requests answered from memory rather than upstream.
    pub from_memory: AtomicU64,
    pub in_flight: AtomicU64,
    pub max_in_flight: AtomicU64,
    /// Every request: when it arrived (ms since the last `take`, i.e. since the run
    /// started), method and Range header.
    pub log: parking_lot::Mutex<Vec<Logged>>,
    pub epoch: parking_lot::Mutex<Option<Instant>>,
}

#[derive(Debug, Clone)]
pub struct Logged {
    pub arrived_ms: f64,
    /// When the answer's head was ready (its body follows at once from memory).
    pub answered_ms: f64,
    pub method: String,
    pub range: String,
}

/// A snapshot of [`ProxyStats`].
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub by_method: BTreeMap<String, u64>,
    pub body_bytes: u64,
    pub connections: u64,
    pub from_memory: u64,
    pub max_in_flight: u64,
    pub log: Vec<Logged>,
}

impl Counts {
    /// Requests grouped into rounds: a round starts with a request that arrived more
    /// than `gap_ms` after the previous one (the client waited for an answer first).
    pub fn rounds(&self, gap_ms: f64) -> Vec<Vec<&Logged>> {
        let mut log: Vec<&Logged> = self.log.iter().collect();
        log.sort_by(|a, b| a.arrived_ms.total_cmp(&b.arrived_ms));
        let mut rounds: Vec<Vec<&Logged>> = Vec::new();
        let mut last = f64::NEG_INFINITY;
        for r in log {
            if r.arrived_ms - last > gap_ms || rounds.is_empty() {
                rounds.push(Vec::new());
            }
            last = r.arrived_ms;
            rounds.last_mut().expect("a round").push(r);
        }
        rounds
    }

    pub fn method(&self, m: &str) -> u64 {
        self.by_method.get(m).copied().unwrap_or(0)
    }
    pub fn requests(&self) -> u64 {
        self.by_method.values().sum()
    }
}

impl ProxyStats {
    /// Take the counts so far and start again from zero.
    /// Also starts the clock of the request log (call it right before a run).
    pub fn take(&self) -> Counts {
        *self.epoch.lock() = Some(Instant::now());
        Counts {
            by_method: std::mem::take(&mut *self.by_method.lock()),
            body_bytes: self.body_bytes.swap(0, Ordering::SeqCst),
            connections: self.connections.swap(0, Ordering::SeqCst),
            from_memory: self.from_memory.swap(0, Ordering::SeqCst),
            max_in_flight: self.max_in_flight.swap(0, Ordering::SeqCst),
            log: std::mem::take(&mut *self.log.lock()),
        }
    }
}

pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Headers that describe one hop, not the message: never forwarded.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub fn strip_hop_by_hop(headers: &mut hyper::HeaderMap) {
    for h in HOP_BY_HOP {
        headers.remove(*h);
    }
}

/// One object the proxy answers itself, as S3 would: HEAD and (ranged) GET from memory,
/// with the headers the upstream gave for it. Anything else still goes upstream.
pub struct Origin {
    /// The request paths (`/bucket/key`) it answers: the object, and aliases, each
    /// with an ETag of its own (so each looks like another version of a granule).
    pub paths: HashMap<String, Option<String>>,
    pub data: Bytes,
    pub headers: hyper::HeaderMap,
}

impl Origin {
    /// `s3://bucket/key` with `data`, answering with the headers moto gives it.
    pub async fn new(moto: &MotoServer, bucket: &str, key: &str, data: Bytes) -> Self {
        let head = moto
            .client()
            .await
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .expect("HEAD the object on moto");
        let mut headers = hyper::HeaderMap::new();
        let mut set = |name: &'static str, value: Option<String>| {
            if let Some(v) = value.and_then(|v| v.parse().ok()) {
                headers.insert(name, v);
            }
        };
        set("etag", head.e_tag().map(str::to_string));
        set(
            "last-modified",
            head.last_modified()
                .and_then(|t| t.fmt(aws_sdk_s3::primitives::DateTimeFormat::HttpDate).ok()),
        );
        set(
            "content-type",
            Some(
                head.content_type()
                    .unwrap_or("binary/octet-stream")
                    .to_string(),
            ),
        );
        set("accept-ranges", Some("bytes".into()));
        Self {
            paths: HashMap::from([(format!("/{bucket}/{key}"), None)]),
            data,
            headers,
        }
    }

    /// The same bytes also under `keys` of `bucket`, each with its own ETag: many
    /// granules for one upload.
    pub fn also_at<'a>(mut self, bucket: &str, keys: impl IntoIterator<Item = &'a str>) -> Self {
        for (i, key) in keys.into_iter().enumerate() {
            let etag = format!("\"alias-{i}\"");
            self.paths.insert(format!("/{bucket}/{key}"), Some(etag));
        }
        self
    }

    /// The answer to `req` if it is a HEAD or GET of this object.
    pub fn answer<B>(&self, req: &Request<B>) -> Option<Response<ProxyBody>> {
        let method = req.method();
        // The AWS SDK adds `?x-id=GetObject`; any other parameter is a sub-resource.
        let plain = req.uri().query().is_none_or(|q| {
            q.split('&')
                .all(|p| p.is_empty() || p.split('=').next() == Some("x-id"))
        });
        let etag = self.paths.get(req.uri().path())?;
        if (method != hyper::Method::GET && method != hyper::Method::HEAD) || !plain {
            return None;
        }
        let size = self.data.len() as u64;
        let range = req
            .headers()
            .get(hyper::header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(|r| parse_range(r, size));
        let (status, start, end) = match range {
            None => (StatusCode::OK, 0, size),
            Some(Some((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b),
            Some(None) => {
                let mut r = Response::new(full(Bytes::new()));
                *r.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                return Some(r);
            }
        };
        let body = if method == hyper::Method::HEAD {
            Bytes::new()
        } else {
            self.data.slice(start as usize..end as usize)
        };
        let mut r = Response::new(full(body));
        *r.status_mut() = status;
        let h = r.headers_mut();
        h.extend(self.headers.clone());
        if let Some(v) = etag.as_deref().and_then(|e| e.parse().ok()) {
            h.insert(hyper::header::ETAG, v);
        }
        h.insert(hyper::header::CONTENT_LENGTH, (end - start).into());
        if status == StatusCode::PARTIAL_CONTENT {
            let value = format!("bytes {start}-{}/{size}", end - 1);
            h.insert(
                hyper::header::CONTENT_RANGE,
                value.parse().expect("header value"),
            );
        }
        Some(r)
    }
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` as a half-open range within `size`.
pub fn parse_range(header: &str, size: u64) -> Option<(u64, u64)> {
    let spec = header.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        (size.saturating_sub(n), size)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            size
        } else {
            (b.parse::<u64>().ok()? + 1).min(size)
        };
        (start, end)
    };
    (start < end).then_some((start, end))
}

pub fn full(bytes: Bytes) -> ProxyBody {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// An HTTP/1.1 reverse proxy on 127.0.0.1 that sleeps `delay` before forwarding each
/// request to `upstream` (or answering it from `origin`) and streams the answer back.
pub struct Proxy {
    pub addr: SocketAddr,
    pub stats: Arc<ProxyStats>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: String, delay: Duration, origin: Option<Arc<Origin>>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let stats = Arc::new(ProxyStats::default());
        let client: Client<HttpConnector, Incoming> =
            Client::builder(TokioExecutor::new()).build_http();
        let upstream: Arc<str> = upstream.into();
        let task = {
            let stats = Arc::clone(&stats);
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    stats.connections.fetch_add(1, Ordering::Relaxed);
                    let (client, upstream, stats, origin) = (
                        client.clone(),
                        Arc::clone(&upstream),
                        Arc::clone(&stats),
                        origin.clone(),
                    );
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            forward(
                                req,
                                client.clone(),
                                Arc::clone(&upstream),
                                delay,
                                Arc::clone(&stats),
                                origin.clone(),
                            )
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        Self { addr, stats, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn forward(
    req: Request<Incoming>,
    client: Client<HttpConnector, Incoming>,
    upstream: Arc<str>,
    delay: Duration,
    stats: Arc<ProxyStats>,
    origin: Option<Arc<Origin>>,
) -> Result<Response<ProxyBody>, Infallible> {
    let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
    *stats
        .by_method
        .lock()
        .entry(req.method().to_string())
        .or_default() += 1;
    let epoch = *stats.epoch.lock().get_or_insert_with(Instant::now);
    let arrived_ms = epoch.elapsed().as_secs_f64() * 1e3;
    let method = req.method().to_string();
    let range = req
        .headers()
        .get(hyper::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let log = |answered: Instant| {
        stats.log.lock().push(Logged {
            arrived_ms,
            answered_ms: answered.duration_since(epoch).as_secs_f64() * 1e3,
            method: method.clone(),
            range: range.clone(),
        });
    };
    tokio::time::sleep(delay).await;
    if let Some(answer) = origin.as_deref().and_then(|o| o.answer(&req)) {
        log(Instant::now());
        stats.from_memory.fetch_add(1, Ordering::Relaxed);
        stats.in_flight.fetch_sub(1, Ordering::SeqCst);
        let bytes = hyper::body::Body::size_hint(answer.body())
            .exact()
            .unwrap_or(0);
        stats.body_bytes.fetch_add(bytes, Ordering::Relaxed);
        return Ok(answer);
    }
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    parts.uri = format!("{upstream}{path}")
        .parse()
        .expect("upstream URI from a valid path");
    // The Host header stays the proxy's: it is part of what the client signed.
    strip_hop_by_hop(&mut parts.headers);
    let result = client.request(Request::from_parts(parts, body)).await;
    log(Instant::now());
    stats.in_flight.fetch_sub(1, Ordering::SeqCst);
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            let mut r = Response::new(full(Bytes::from(format!("proxy: {e}"))));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            return Ok(r);
        }
    };
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let body = body
        .map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                stats
                    .body_bytes
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            frame
        })
        .boxed();
    Ok(Response::from_parts(parts, body))
}
