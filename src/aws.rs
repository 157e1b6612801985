//! How this process reaches AWS (or an S3-compatible server): the settings every SDK
//! client starts from, and [`S3Access`], which builds one S3 client from them the first
//! time it is needed and shares it with every clone.

use std::sync::Arc;

use aws_credential_types::provider::SharedCredentialsProvider;
use tokio::sync::OnceCell;

use crate::credentials::{EdlSettings, PodaacCredentials, PodaacProvider};

/// Endpoint, region, addressing and credentials for one AWS account or S3-compatible
/// server; S3, Secrets Manager and Step Functions clients all start from it.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    /// Custom endpoint (e.g. a local S3 server); `None` uses AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Address buckets as `endpoint/bucket` rather than `bucket.endpoint`.
    pub force_path_style: bool,
    /// Static credentials; `None` uses the default AWS provider chain.
    pub credentials: Option<StaticCredentials>,
    /// Send unsigned requests (public buckets).
    pub anonymous: bool,
}

/// Access key, secret and optional session token (e.g. PO.DAAC temporary credentials).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl AwsSettings {
    /// Settings from the standard AWS environment, plus `MURSST_S3_FORCE_PATH_STYLE`.
    ///
    /// `AWS_ENDPOINT_URL` selects a custom endpoint, which implies path-style addressing.
    pub fn from_env() -> Self {
        let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .ok()
            .filter(|s| !s.is_empty());
        let force_path_style = match std::env::var("MURSST_S3_FORCE_PATH_STYLE") {
            Ok(v) => v == "1" || v.eq_ignore_ascii_case("true"),
            Err(_) => endpoint.is_some(),
        };
        Self {
            region: std::env::var("AWS_REGION")
                .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                .ok(),
            endpoint,
            force_path_style,
            credentials: None,
            anonymous: false,
        }
    }

    /// Settings for reading granules: [`Self::from_env`], with
    /// `MURSST_SOURCE_ENDPOINT_URL` when granules are behind another endpoint.
    pub fn source_from_env() -> Self {
        let mut s = Self::from_env();
        if let Some(e) = std::env::var("MURSST_SOURCE_ENDPOINT_URL")
            .ok()
            .filter(|e| !e.is_empty())
        {
            s.endpoint = Some(e);
            s.force_path_style = true;
        }
        s
    }

    /// The shared AWS configuration (region, endpoint, credentials) any client of these
    /// settings starts from.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        self.sdk_config_with(None).await
    }

    /// [`Self::sdk_config`], with `provider` in place of the settings' own credentials.
    async fn sdk_config_with(
        &self,
        provider: Option<SharedCredentialsProvider>,
    ) -> aws_config::SdkConfig {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = &self.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        } else {
            loader = loader.region(
                aws_config::meta::region::RegionProviderChain::default_provider()
                    .or_else(aws_config::Region::new("us-west-2")),
            );
        }
        if let Some(endpoint) = &self.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(c) = &self.credentials {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                &c.access_key_id,
                &c.secret_access_key,
                c.session_token.clone(),
                None,
                "mursst-static",
            ));
        }
        if let Some(provider) = provider {
            loader = loader.credentials_provider(provider);
        }
        if self.anonymous {
            loader = loader.no_credentials();
        }
        loader.load().await
    }
}

/// One S3 account as this process reaches it: settings, an optional Earthdata login
/// for PO.DAAC's bucket, and the client, built on first use and shared by every clone
/// (so a Lambda container builds it once, not once per object).
#[derive(Clone, Default)]
pub struct S3Access {
    settings: AwsSettings,
    earthdata: Option<EdlSettings>,
    client: Arc<OnceCell<aws_sdk_s3::Client>>,
}

impl std::fmt::Debug for S3Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Access")
            .field("settings", &self.settings)
            .field("earthdata", &self.earthdata)
            .field("client_built", &self.client.initialized())
            .finish()
    }
}

impl From<AwsSettings> for S3Access {
    fn from(settings: AwsSettings) -> Self {
        Self::new(settings)
    }
}

impl S3Access {
    pub fn new(settings: AwsSettings) -> Self {
        Self {
            settings,
            earthdata: None,
            client: Arc::default(),
        }
    }

    /// Sign with PO.DAAC's temporary credentials, obtained (and refreshed) through this
    /// Earthdata login, instead of the settings' own.
    pub fn with_earthdata(mut self, login: Option<EdlSettings>) -> Self {
        self.earthdata = login;
        self.client = Arc::default();
        self
    }

    /// What granules are read with: [`AwsSettings::source_from_env`], signed through an
    /// Earthdata login when one is configured (`MURSST_EDL_SECRET_ARN` or `EARTHDATA_*`).
    pub fn source_from_env() -> Self {
        Self::new(AwsSettings::source_from_env()).with_earthdata(EdlSettings::from_env())
    }

    pub fn settings(&self) -> &AwsSettings {
        &self.settings
    }

    /// The Earthdata login requests are signed through, if any.
    pub fn earthdata(&self) -> Option<&EdlSettings> {
        self.earthdata.as_ref()
    }

    /// The client (a cheap handle onto one connection pool), built the first time.
    pub async fn client(&self) -> aws_sdk_s3::Client {
        self.client
            .get_or_init(|| async {
                let provider = self.earthdata.as_ref().map(|login| {
                    SharedCredentialsProvider::new(PodaacProvider(PodaacCredentials::shared(login)))
                });
                let shared = self.settings.sdk_config_with(provider).await;
                let conf = aws_sdk_s3::config::Builder::from(&shared)
                    .force_path_style(self.settings.force_path_style)
                    .build();
                aws_sdk_s3::Client::from_conf(conf)
            })
            .await
            .clone()
    }
}

/// Whether an SDK error is worth another try: no answer at all, or a throttle / 5xx.
pub(crate) fn sdk_retryable<E>(err: &aws_sdk_s3::error::SdkError<E>) -> bool {
    use aws_sdk_s3::error::SdkError;
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            status == 429 || status >= 500
        }
        _ => false,
    }
}
