//! Temporary S3 credentials for PO.DAAC's protected bucket, obtained through Earthdata
//! Login (EDL), cached and refreshed before they expire, and handed both to the S3
//! client that reads granules and to icechunk for reading virtual chunks.
//!
//! The flow ([PO.DAAC's `s3credentials`](https://archive.podaac.earthdata.nasa.gov/s3credentials)):
//! GET the endpoint without following redirects; POST `credentials=base64(user:pass)`
//! with `Origin: <endpoint>` to the EDL authorize URL it redirects to; GET the URL that
//! answers with, which sets the `accessToken` cookie; GET the endpoint with the cookie.
//! An EDL bearer token skips to the last step. Passwords, tokens, secret keys and
//! session tokens never appear in `Debug` output, errors or logs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::aws::AwsSettings;
use crate::error::BoxError;

/// PO.DAAC's endpoint for temporary in-region S3 credentials.
pub const DEFAULT_S3_CREDENTIALS_URL: &str =
    "https://archive.podaac.earthdata.nasa.gov/s3credentials";

/// Refresh this long before credentials expire (they last an hour).
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the Earthdata login comes from; holds no secret itself, so it can be written
/// into icechunk's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LoginSource {
    /// `EARTHDATA_TOKEN`, or `EARTHDATA_USERNAME` and `EARTHDATA_PASSWORD`.
    Env,
    /// A Secrets Manager secret holding `{"EARTHDATA_USERNAME", "EARTHDATA_PASSWORD"}`.
    SecretsManager { arn: String },
}

/// How to get PO.DAAC credentials: the endpoint and the login.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EdlSettings {
    pub endpoint: String,
    pub login: LoginSource,
    /// Seconds before expiry at which credentials are refreshed.
    pub refresh_margin_s: u64,
}

impl EdlSettings {
    /// From the environment: `MURSST_EDL_SECRET_ARN` (a secret) or the `EARTHDATA_*`
    /// variables, and `MURSST_S3_CREDENTIALS_URL`; `None` when no login is configured.
    pub fn from_env() -> Option<Self> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let login = match var("MURSST_EDL_SECRET_ARN") {
            Some(arn) => LoginSource::SecretsManager { arn },
            None if var("EARTHDATA_TOKEN").is_some() || var("EARTHDATA_USERNAME").is_some() => {
                LoginSource::Env
            }
            None => return None,
        };
        Some(Self {
            endpoint: var("MURSST_S3_CREDENTIALS_URL")
                .unwrap_or_else(|| DEFAULT_S3_CREDENTIALS_URL.to_string()),
            login,
            refresh_margin_s: var("MURSST_CREDENTIALS_REFRESH_MARGIN_S")
                .and_then(|v| v.parse().ok())
                .unwrap_or(DEFAULT_REFRESH_MARGIN.as_secs()),
        })
    }
}

/// Why credentials could not be had; never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("Earthdata login: {0}")]
    Login(String),
    #[error("Earthdata login secret {arn}: {}", crate::error::error_chain(.source.as_ref()))]
    Secret {
        arn: String,
        #[source]
        source: BoxError,
    },
    #[error("{step}: {url}: {}", crate::error::error_chain(.source))]
    Request {
        step: &'static str,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{step}: {url}: HTTP {status}{}", if .detail.is_empty() { String::new() } else { format!(": {}", .detail) })]
    Status {
        step: &'static str,
        url: String,
        status: u16,
        /// What the server said, when it is not the credentials themselves.
        detail: String,
    },
    #[error("{step}: {url}: {message}")]
    Flow {
        step: &'static str,
        url: String,
        message: String,
    },
    #[error("{url}: the credentials answer has no valid {field}")]
    Field { url: String, field: &'static str },
}

/// The EDL login itself.
#[derive(Debug, Clone)]
enum Login {
    Password { user: String, password: Secret },
    Token(Secret),
}

impl Login {
    async fn resolve(source: &LoginSource) -> Result<Self, CredentialsError> {
        match source {
            LoginSource::Env => {
                let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
                if let Some(token) = var("EARTHDATA_TOKEN") {
                    return Ok(Self::Token(Secret::new(token)));
                }
                match (var("EARTHDATA_USERNAME"), var("EARTHDATA_PASSWORD")) {
                    (Some(user), Some(password)) => Ok(Self::Password {
                        user,
                        password: Secret::new(password),
                    }),
                    _ => Err(CredentialsError::Login(
                        "set EARTHDATA_USERNAME and EARTHDATA_PASSWORD, or EARTHDATA_TOKEN".into(),
                    )),
                }
            }
            LoginSource::SecretsManager { arn } => from_secret(arn).await,
        }
    }
}

/// Read the login from a Secrets Manager secret (the existing deployment's keys).
async fn from_secret(arn: &str) -> Result<Login, CredentialsError> {
    let err = |e: BoxError| CredentialsError::Secret {
        arn: arn.into(),
        source: e,
    };
    let config = AwsSettings::from_env().sdk_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let value = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| err(Box::new(e)))?;
    #[derive(Deserialize)]
    struct Keys {
        #[serde(rename = "EARTHDATA_USERNAME")]
        user: String,
        #[serde(rename = "EARTHDATA_PASSWORD")]
        password: String,
    }
    let text = value.secret_string().unwrap_or_default();
    // The parse error is dropped: its message could quote the secret's text.
    let keys: Keys = serde_json::from_str(text)
        .map_err(|_| err("not JSON with EARTHDATA_USERNAME and EARTHDATA_PASSWORD".into()))?;
    Ok(Login::Password {
        user: keys.user,
        password: Secret::new(keys.password),
    })
}

/// One set of temporary credentials.
#[derive(Clone)]
pub struct TemporaryCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Secret,
    pub expiration: DateTime<Utc>,
}

impl std::fmt::Debug for TemporaryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemporaryCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// `2019-02-27 23:26:56+00:00` (PO.DAAC) or RFC 3339.
fn parse_expiration(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%:z"))
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// Parse the endpoint's JSON answer; errors name the field, never the values.
pub fn parse_credentials(url: &str, body: &[u8]) -> Result<TemporaryCredentials, CredentialsError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Answer {
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        session_token: Option<String>,
        expiration: Option<String>,
    }
    let field = |field| CredentialsError::Field {
        url: url.into(),
        field,
    };
    let a: Answer = serde_json::from_slice(body).map_err(|_| field("JSON body"))?;
    let nonempty = |v: Option<String>, name| v.filter(|s| !s.is_empty()).ok_or_else(|| field(name));
    Ok(TemporaryCredentials {
        access_key_id: nonempty(a.access_key_id, "accessKeyId")?,
        secret_access_key: Secret::new(nonempty(a.secret_access_key, "secretAccessKey")?),
        session_token: Secret::new(nonempty(a.session_token, "sessionToken")?),
        expiration: a
            .expiration
            .as_deref()
            .and_then(parse_expiration)
            .ok_or_else(|| field("expiration"))?,
    })
}

/// The PO.DAAC credentials of one endpoint and login, cached for the process and
/// refreshed by one caller at a time (the others wait for that refresh).
pub struct PodaacCredentials {
    settings: EdlSettings,
    http: reqwest::Client,
    current: Mutex<Option<TemporaryCredentials>>,
    fetches: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for PodaacCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodaacCredentials")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl PodaacCredentials {
    /// The shared instance for `settings`: every client in the process uses one cache.
    pub fn shared(settings: &EdlSettings) -> Arc<Self> {
        static ALL: OnceLock<StdMutex<HashMap<EdlSettings, Arc<PodaacCredentials>>>> =
            OnceLock::new();
        let mut all = ALL
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Arc::clone(all.entry(settings.clone()).or_insert_with(|| {
            Arc::new(Self {
                settings: settings.clone(),
                http: reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap_or_default(),
                current: Mutex::new(None),
                fetches: Default::default(),
            })
        }))
    }

    /// How many times credentials were fetched (not served from the cache).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Valid credentials: the cached ones, or fresh ones once those near expiry.
    pub async fn get(&self) -> Result<TemporaryCredentials, CredentialsError> {
        let mut current = self.current.lock().await;
        let margin = chrono::Duration::seconds(self.settings.refresh_margin_s as i64);
        if let Some(c) = current.as_ref()
            && c.expiration - margin > Utc::now()
        {
            return Ok(c.clone());
        }
        let fresh = self.fetch().await?;
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            access_key_id = %fresh.access_key_id,
            expiration = %fresh.expiration,
            "fetched PO.DAAC temporary credentials"
        );
        *current = Some(fresh.clone());
        Ok(fresh)
    }

    async fn fetch(&self) -> Result<TemporaryCredentials, CredentialsError> {
        let endpoint = self.settings.endpoint.as_str();
        match Login::resolve(&self.settings.login).await? {
            Login::Token(token) => {
                let resp = self
                    .send(
                        "s3credentials",
                        endpoint,
                        self.http.get(endpoint).bearer_auth(token.expose()),
                    )
                    .await?;
                self.credentials(endpoint, resp).await
            }
            Login::Password { user, password } => {
                let cookie = self.login_cookie(&user, &password).await?;
                let resp = self
                    .send(
                        "s3credentials",
                        endpoint,
                        self.http.get(endpoint).header("Cookie", cookie.expose()),
                    )
                    .await?;
                self.credentials(endpoint, resp).await
            }
        }
    }

    /// Steps 1–3: the redirect to EDL, the form post, the redirect back that sets the
    /// `accessToken` cookie.
    async fn login_cookie(
        &self,
        user: &str,
        password: &Secret,
    ) -> Result<Secret, CredentialsError> {
        let endpoint = self.settings.endpoint.as_str();
        let first = self
            .send("s3credentials redirect", endpoint, self.http.get(endpoint))
            .await?;
        let authorize = location(endpoint, "s3credentials redirect", &first)?;
        let form = base64::engine::general_purpose::STANDARD
            .encode(format!("{user}:{}", password.expose()));
        let origin = origin_of(endpoint);
        let posted = self
            .send(
                "Earthdata login",
                &authorize,
                self.http
                    .post(&authorize)
                    .header("Origin", origin)
                    .form(&[("credentials", form.as_str())]),
            )
            .await?;
        let back = location(&authorize, "Earthdata login", &posted)?;
        let landed = self
            .send("Earthdata redirect", &back, self.http.get(&back))
            .await?;
        landed
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| {
                c.split(';')
                    .next()
                    .filter(|kv| kv.starts_with("accessToken="))
            })
            .map(|kv| Secret::new(kv.to_string()))
            .ok_or_else(|| CredentialsError::Flow {
                step: "Earthdata redirect",
                url: strip_query(&back),
                message: "no accessToken cookie was set".into(),
            })
    }

    /// Send a request; any answer but a success or redirect is an error with its status.
    async fn send(
        &self,
        step: &'static str,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CredentialsError> {
        let resp = request
            .send()
            .await
            .map_err(|source| CredentialsError::Request {
                step,
                url: strip_query(url),
                source: source.without_url(),
            })?;
        let status = resp.status();
        if status.is_success() || status.is_redirection() {
            return Ok(resp);
        }
        // Error bodies from EDL describe the failure; none carries a credential.
        let detail: String = resp
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        Err(CredentialsError::Status {
            step,
            url: strip_query(url),
            status: status.as_u16(),
            detail: if status.as_u16() == 401 {
                "authentication failed".into()
            } else {
                detail
            },
        })
    }

    async fn credentials(
        &self,
        url: &str,
        resp: reqwest::Response,
    ) -> Result<TemporaryCredentials, CredentialsError> {
        if resp.status().is_redirection() {
            return Err(CredentialsError::Flow {
                step: "s3credentials",
                url: strip_query(url),
                message: "redirected to log in again: the login was not accepted".into(),
            });
        }
        let body = resp
            .bytes()
            .await
            .map_err(|source| CredentialsError::Request {
                step: "s3credentials",
                url: strip_query(url),
                source: source.without_url(),
            })?;
        parse_credentials(url, &body)
    }
}

/// A redirect's target, resolved against the URL that answered.
fn location(
    base: &str,
    step: &'static str,
    resp: &reqwest::Response,
) -> Result<String, CredentialsError> {
    let target = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| CredentialsError::Flow {
            step,
            url: strip_query(base),
            message: format!("expected a redirect, got HTTP {}", resp.status().as_u16()),
        })?;
    url::Url::parse(base)
        .and_then(|b| b.join(target))
        .map(String::from)
        .map_err(|e| CredentialsError::Flow {
            step,
            url: strip_query(base),
            message: format!("bad redirect: {e}"),
        })
}

/// `scheme://host[:port]` of a URL, the `Origin` EDL expects.
fn origin_of(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default()
}

/// A URL without its query (codes and states stay out of messages).
fn strip_query(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}

/// The shared credentials as an aws-sdk-s3 provider: the SDK caches them until their
/// expiry (less the margin), then asks again.
#[derive(Debug, Clone)]
pub struct PodaacProvider(pub Arc<PodaacCredentials>);

impl aws_credential_types::provider::ProvideCredentials for PodaacProvider {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            let c =
                self.0.get().await.map_err(
                    aws_credential_types::provider::error::CredentialsError::provider_error,
                )?;
            // Hand them over a margin early, so the SDK refreshes when we would.
            let margin = chrono::Duration::seconds(self.0.settings.refresh_margin_s as i64);
            let expires = std::time::SystemTime::from(c.expiration - margin);
            Ok(aws_credential_types::Credentials::new(
                c.access_key_id,
                c.secret_access_key.expose(),
                Some(c.session_token.expose().to_string()),
                Some(expires),
                "podaac-s3credentials",
            ))
        })
    }
}

/// The credentials as icechunk's refreshable S3 credentials for virtual chunks; only the
/// settings are serialized, the cache is the process's shared one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodaacFetcher(pub EdlSettings);

#[async_trait::async_trait]
#[typetag::serde(name = "mursst_podaac")]
impl icechunk::config::S3CredentialsFetcher for PodaacFetcher {
    async fn get(&self) -> Result<icechunk::config::S3StaticCredentials, String> {
        let c = PodaacCredentials::shared(&self.0)
            .get()
            .await
            .map_err(|e| e.to_string())?;
        let margin = chrono::Duration::seconds(self.0.refresh_margin_s as i64);
        Ok(icechunk::config::S3StaticCredentials {
            access_key_id: c.access_key_id,
            secret_access_key: c.secret_access_key.expose().to_string(),
            session_token: Some(c.session_token.expose().to_string()),
            expires_after: Some(c.expiration - margin),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_parses_with_podaac_dates_and_names_missing_fields() {
        let body = br#"{"accessKeyId": "ASIA1", "secretAccessKey": "s3cr3t", "sessionToken": "tok", "expiration": "2019-02-27 23:26:56+00:00"}"#;
        let c = parse_credentials("http://x/s3credentials", body).unwrap();
        assert_eq!(c.access_key_id, "ASIA1");
        assert_eq!(c.expiration.to_rfc3339(), "2019-02-27T23:26:56+00:00");
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("s3cr3t") && !debug.contains("tok\""),
            "{debug}"
        );
        let rfc = br#"{"accessKeyId": "A", "secretAccessKey": "s", "sessionToken": "t", "expiration": "2019-02-27T23:26:56Z"}"#;
        assert!(parse_credentials("u", rfc).is_ok());
        let missing = br#"{"accessKeyId": "A", "secretAccessKey": "s3cr3t", "expiration": "2019-02-27 23:26:56+00:00"}"#;
        let err = parse_credentials("u", missing).unwrap_err().to_string();
        assert!(
            err.contains("sessionToken") && !err.contains("s3cr3t"),
            "{err}"
        );
        let err = parse_credentials("u", b"{\"secretAccessKey\": \"s3cr3t\"").unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
        assert!(format!("{:?}", Secret::new("pw")).contains("redacted"));
    }
}
