//! How this process reaches AWS (or an S3-compatible server): the settings every SDK
//! client starts from. A leaf: credentials and object stores build on it.

use aws_credential_types::provider::SharedCredentialsProvider;

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
    pub(crate) async fn sdk_config_with(
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
