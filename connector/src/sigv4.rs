//! AWS Signature Version 4 for requests to a Lambda Function URL whose
//! `AuthType` is `AWS_IAM`.
//!
//! Whether to sign and in which region is decided once from the options
//! and the URL ([`RequestSigner::for_post_url`]). Credentials come from the
//! AWS SDK's default chain (environment, profile, SSO, web identity, ECS,
//! EC2 instance metadata), loaded on the first request and kept until
//! shortly before they expire. The signature itself is computed by the
//! `aws-sigv4` crate and covers the method, path, query, host, content
//! type, date, session token and a hash of the body.
//!
//! Finding credentials and signing happen within the request's own
//! timeout: a provider that never answers (a container-credentials
//! endpoint that accepts and stays silent) costs each request at most its
//! timeout, and the user gets the no-response error. The lookup itself
//! runs in a task of its own, shared by every request waiting for it, so a
//! request that gives up does not cancel it for the next one.

use crate::options::{OptionDoc, OptionError, Sources, invalid};
use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use reqwest::Url;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tracing::{debug, error, info};

/// The signing name of Lambda, Function URLs included.
pub const LAMBDA_SERVICE: &str = "lambda";

/// Credentials this close to their expiry are fetched again, so a request
/// never leaves with credentials that expire in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Credentials without an expiry (environment, static profile keys) are
/// looked up again after this long, so a rotated profile is picked up;
/// the SDK's own cache uses the same default.
const NO_EXPIRY_REFRESH: Duration = Duration::from_secs(15 * 60);
/// After a failed lookup, requests fail at once for this long instead of
/// each walking the whole chain again (instance metadata can take seconds
/// to time out off EC2).
const FAILURE_BACKOFF: Duration = Duration::from_secs(5);

/// The signing options.
pub const OPTIONS: &[OptionDoc] = &[
    OptionDoc {
        name: "COMPONENT_POST_SIGV4",
        aliases: &[],
        meaning: "sign requests with AWS SigV4 (for a Function URL with AuthType AWS_IAM): auto, \
                  on or off; auto signs when the URL is <id>.lambda-url.<region>.on.aws",
        default: "auto",
    },
    OptionDoc {
        name: "COMPONENT_POST_SIGV4_REGION",
        aliases: &[],
        meaning: "the region to sign for",
        default: "the Function URL's, else the AWS SDK's (AWS_REGION, profile)",
    },
];

/// When requests are signed (`COMPONENT_POST_SIGV4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningMode {
    /// Sign when the URL is a Lambda Function URL.
    Auto,
    /// Always sign.
    On,
    /// Never sign.
    Off,
}

/// The signing options as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningOptions {
    /// When to sign.
    pub mode: SigningMode,
    /// The region to sign for, overriding the one in the URL and the SDK's.
    pub region: Option<String>,
}

impl SigningOptions {
    pub fn from_sources(sources: &Sources<'_>) -> Result<SigningOptions, OptionError> {
        let mode = match sources.get("COMPONENT_POST_SIGV4").as_deref() {
            None | Some("auto") => SigningMode::Auto,
            Some("on") => SigningMode::On,
            Some("off") => SigningMode::Off,
            Some(other) => return Err(invalid("COMPONENT_POST_SIGV4", other, "auto, on or off")),
        };
        let region = match sources.get("COMPONENT_POST_SIGV4_REGION") {
            Some(region) if !is_region_name(&region) => {
                return Err(invalid(
                    "COMPONENT_POST_SIGV4_REGION",
                    &region,
                    "an AWS region such as eu-west-1",
                ));
            }
            region => region,
        };
        Ok(SigningOptions { mode, region })
    }
}

impl Default for SigningOptions {
    fn default() -> Self {
        SigningOptions {
            mode: SigningMode::Auto,
            region: None,
        }
    }
}

/// The region of a Lambda Function URL host
/// (`<url-id>.lambda-url.<region>.on.aws`), or `None` for any other host.
pub fn function_url_region(url: &Url) -> Option<&str> {
    let host = url.host_str()?;
    let labels = host.strip_suffix(".on.aws")?;
    let mut parts = labels.split('.');
    let (Some(id), Some("lambda-url"), Some(region), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    (!id.is_empty() && is_region_name(region)).then_some(region)
}

/// Region names are lower-case letters, digits and dashes (`eu-west-1`).
pub fn is_region_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
}

/// Why a request could not be signed. The request is then not sent and
/// the user gets the no-response error.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("no AWS credentials: {0}")]
    NoCredentials(String),
    #[error(
        "no AWS region to sign for: set COMPONENT_POST_SIGV4_REGION or AWS_REGION, \
         or use a Function URL (<id>.lambda-url.<region>.on.aws)"
    )]
    NoRegion,
    #[error("cannot sign the request: {0}")]
    Signing(String),
    #[error(
        "no AWS credentials within the request's timeout: a credential provider \
         did not answer in time"
    )]
    Timeout,
}

/// Signs requests to one URL with SigV4 for Lambda.
#[derive(Debug)]
pub struct RequestSigner {
    /// The region from the options or the URL; `None` means the SDK's
    /// region chain (AWS_REGION, profile, instance metadata) decides.
    region: Option<String>,
    /// The SDK's credentials provider and region, found on first use so a
    /// connector that never sends a request never looks for them.
    aws: OnceCell<AwsSource>,
    /// The last credentials found, and the lookup under way, shared by
    /// every request. Never held across an await.
    cache: Mutex<CredentialsCache>,
    /// Set once the failure to sign has been logged, so a connector without
    /// credentials logs it once instead of for every stanza; cleared when
    /// signing works again.
    failure_reported: AtomicBool,
}

/// What the AWS SDK's default chains found.
#[derive(Debug)]
struct AwsSource {
    /// The default credentials chain; `None` only if the SDK has none.
    credentials: Option<SharedCredentialsProvider>,
    /// The region the SDK's chain found, used when neither the options nor
    /// the URL name one.
    region: Option<String>,
}

/// Credentials and when to look again.
#[derive(Default)]
struct CredentialsCache {
    /// The credentials and when they must be fetched again.
    current: Option<(Credentials, SystemTime)>,
    /// The last failed lookup, its message and when it happened.
    last_failure: Option<(String, Instant)>,
    /// The lookup under way, if any: requests arriving meanwhile wait for
    /// its result instead of starting their own.
    lookup: Option<Lookup>,
}

impl std::fmt::Debug for CredentialsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialsCache")
            .field("current", &self.current)
            .field("last_failure", &self.last_failure)
            .field("looking_up", &self.lookup.is_some())
            .finish()
    }
}

/// One credentials lookup, running in a task of its own; every request
/// waiting for it gets the same result (credentials, or why there are
/// none).
type Lookup = Shared<BoxFuture<'static, Result<Credentials, String>>>;

impl RequestSigner {
    /// The signer for requests to `url`, or `None` when they are not signed:
    /// `off`, or `auto` with a URL that is not a Function URL.
    pub fn for_post_url(url: &Url, options: &SigningOptions) -> Option<RequestSigner> {
        let url_region = function_url_region(url);
        let sign = match options.mode {
            SigningMode::Off => false,
            SigningMode::On => true,
            SigningMode::Auto => url_region.is_some(),
        };
        sign.then(|| RequestSigner {
            region: options
                .region
                .clone()
                .or_else(|| url_region.map(str::to_owned)),
            aws: OnceCell::new(),
            cache: Mutex::new(CredentialsCache::default()),
            failure_reported: AtomicBool::new(false),
        })
    }

    /// The region from the options or the URL; `None` until the SDK's
    /// chain is asked.
    pub fn configured_region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The headers that sign a POST of `body` with this `content_type` to
    /// `url`: `authorization`, `x-amz-date` and, with temporary
    /// credentials, `x-amz-security-token`. Gives up at `deadline` (the
    /// request's own timeout) with [`SignError::Timeout`].
    ///
    /// A failure is logged here, once until signing works again.
    pub async fn signing_headers(
        &self,
        url: &Url,
        content_type: &str,
        body: &[u8],
        deadline: Instant,
    ) -> Result<Vec<(&'static str, String)>, SignError> {
        let signing = self.try_signing_headers(url, content_type, body);
        let result = match tokio::time::timeout_at(deadline, signing).await {
            Ok(result) => result,
            Err(_) => Err(SignError::Timeout),
        };
        match &result {
            Ok(_) => {
                if self.failure_reported.swap(false, Ordering::Relaxed) {
                    info!("requests to the bot are signed again");
                }
            }
            Err(e) => {
                if self.failure_reported.swap(true, Ordering::Relaxed) {
                    debug!(error = %e, "request to the bot not sent: cannot sign it");
                } else {
                    error!(
                        error = %e,
                        "cannot sign requests to the bot (SigV4): they are not sent and \
                         users get the no-response error until this is fixed; logged once"
                    );
                }
            }
        }
        result
    }

    async fn try_signing_headers(
        &self,
        url: &Url,
        content_type: &str,
        body: &[u8],
    ) -> Result<Vec<(&'static str, String)>, SignError> {
        let aws = self
            .aws
            .get_or_init(|| AwsSource::load(self.region.clone()))
            .await;
        let region = self
            .region
            .as_deref()
            .or(aws.region.as_deref())
            .ok_or(SignError::NoRegion)?;
        let credentials = self.credentials(aws).await?;
        sign_request(
            &SigningInput {
                method: "POST",
                url: url.as_str(),
                headers: &[("content-type", content_type)],
                body,
            },
            &credentials,
            region,
            LAMBDA_SERVICE,
            SystemTime::now(),
        )
        .map_err(|e| SignError::Signing(e.to_string()))
    }

    fn cache(&self) -> MutexGuard<'_, CredentialsCache> {
        // A poisoned cache is still a cache: at worst it looks again.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Cached credentials, or fresh ones from the chain when they are
    /// missing or about to expire. One lookup at a time: requests arriving
    /// meanwhile wait for its result instead of starting their own, and a
    /// request that stops waiting leaves the lookup running.
    async fn credentials(&self, aws: &AwsSource) -> Result<Credentials, SignError> {
        let provider = aws.credentials.as_ref().ok_or_else(|| {
            SignError::NoCredentials("the AWS SDK has no credentials provider".into())
        })?;
        let lookup = {
            let mut cache = self.cache();
            if let Some((credentials, refresh_at)) = &cache.current
                && SystemTime::now() < *refresh_at
            {
                return Ok(credentials.clone());
            }
            if let Some((message, at)) = &cache.last_failure
                && at.elapsed() < FAILURE_BACKOFF
            {
                return Err(SignError::NoCredentials(message.clone()));
            }
            cache
                .lookup
                .get_or_insert_with(|| start_lookup(provider.clone()))
                .clone()
        };
        let result = lookup.clone().await;
        let mut cache = self.cache();
        // The first request to see the result keeps it.
        if cache.lookup.as_ref().is_some_and(|l| l.ptr_eq(&lookup)) {
            cache.lookup = None;
            match &result {
                Ok(credentials) => {
                    let now = SystemTime::now();
                    let refresh_at = match credentials.expiry() {
                        Some(expiry) => expiry.checked_sub(EXPIRY_MARGIN).unwrap_or(expiry),
                        None => now + NO_EXPIRY_REFRESH,
                    };
                    debug!(
                        refresh_in_s = refresh_at.duration_since(now).unwrap_or_default().as_secs(),
                        "AWS credentials loaded"
                    );
                    cache.current = Some((credentials.clone(), refresh_at));
                    cache.last_failure = None;
                }
                Err(message) => {
                    cache.current = None;
                    cache.last_failure = Some((message.clone(), Instant::now()));
                }
            }
        }
        result.map_err(SignError::NoCredentials)
    }
}

/// Asks `provider` for credentials in a task of its own.
fn start_lookup(provider: SharedCredentialsProvider) -> Lookup {
    let task = tokio::spawn(async move {
        provider.provide_credentials().await.map_err(|e| {
            // The error's own text is terse; its source says which
            // providers were tried and why each failed.
            match std::error::Error::source(&e) {
                Some(source) => format!("{e}: {source}"),
                None => e.to_string(),
            }
        })
    });
    async move {
        task.await
            .unwrap_or_else(|e| Err(format!("the credentials lookup failed: {e}")))
    }
    .boxed()
    .shared()
}

impl AwsSource {
    /// Asks the SDK's default chains; `region`, when known, is handed to
    /// them so they do not look for one.
    async fn load(region: Option<String>) -> AwsSource {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = region {
            loader = loader.region(aws_config::Region::new(region));
        }
        // Without a region given, this runs the SDK's region chain.
        let sdk = loader.load().await;
        AwsSource {
            credentials: sdk.credentials_provider(),
            region: sdk.region().map(|region| region.as_ref().to_owned()),
        }
    }
}

/// One HTTP request to sign.
#[derive(Debug, Clone, Copy)]
pub struct SigningInput<'a> {
    /// `POST`, `GET`, …
    pub method: &'a str,
    /// The full URL, already percent-encoded as it goes on the wire.
    pub url: &'a str,
    /// Headers to sign besides `host` (taken from the URL) and the ones the
    /// signature adds; lower-case names.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body, hashed into the signature.
    pub body: &'a [u8],
}

/// The headers to add so the request carries a SigV4 signature made at
/// `time`: `authorization`, `x-amz-date` and, when the credentials have a
/// session token, `x-amz-security-token` (signed too).
pub fn sign_request(
    input: &SigningInput<'_>,
    credentials: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<Vec<(&'static str, String)>, Box<dyn std::error::Error + Send + Sync>> {
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()?
        .into();
    let request = SignableRequest::new(
        input.method,
        input.url,
        input.headers.iter().copied(),
        SignableBody::Bytes(input.body),
    )?;
    let (instructions, _signature) = sign(request, &params)?.into_parts();
    let (headers, _query) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|header| (header.name(), header.value().to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    /// The credentials of AWS's published SigV4 test suite.
    fn example_credentials(session_token: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session_token.map(str::to_owned),
            None,
            "sigv4-test-suite",
        )
    }

    /// 2015-08-30T12:36:00Z, the test suite's fixed time.
    fn example_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn header<'a>(headers: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn sign_example(input: &SigningInput<'_>, token: Option<&str>) -> Vec<(&'static str, String)> {
        sign_request(
            input,
            &example_credentials(token),
            "us-east-1",
            "service",
            example_time(),
        )
        .expect("the example signs")
    }

    /// The published `post-vanilla` case: POST / with no body.
    #[test]
    fn known_answer_post_vanilla() {
        let headers = sign_example(
            &SigningInput {
                method: "POST",
                url: "https://example.amazonaws.com/",
                headers: &[],
                body: b"",
            },
            None,
        );
        assert_eq!(header(&headers, "x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(
            header(&headers, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
            )
        );
        assert_eq!(header(&headers, "x-amz-security-token"), None);
    }

    /// The published `get-vanilla-with-session-token` case: the token is
    /// sent and signed.
    #[test]
    fn known_answer_session_token() {
        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
        let headers = sign_example(
            &SigningInput {
                method: "GET",
                url: "https://example.amazonaws.com/",
                headers: &[],
                body: b"",
            },
            Some(token),
        );
        assert_eq!(header(&headers, "x-amz-security-token"), Some(token));
        assert_eq!(
            header(&headers, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date;x-amz-security-token, \
                 Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
            )
        );
    }

    /// The published `post-x-www-form-urlencoded` case: the body
    /// `Param1=value1` is hashed into the signature.
    #[test]
    fn known_answer_signed_body() {
        let input = SigningInput {
            method: "POST",
            url: "https://example.amazonaws.com/",
            headers: &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("content-length", "13"),
                (
                    "x-amz-content-sha256",
                    "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
                ),
            ],
            body: b"Param1=value1",
        };
        let headers = sign_example(&input, None);
        assert_eq!(
            header(&headers, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, \
                 Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"
            )
        );
        // A different body must give a different signature.
        let tampered = sign_example(
            &SigningInput {
                body: b"Param1=value2",
                ..input
            },
            None,
        );
        assert_ne!(
            header(&tampered, "authorization"),
            header(&headers, "authorization")
        );
    }

    fn url(text: &str) -> Url {
        Url::parse(text).expect("test URL")
    }

    /// A credentials provider that answers after `delay` (never, for
    /// `None`), counting how often it is asked.
    #[derive(Debug)]
    struct SlowProvider {
        delay: Option<Duration>,
        calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl ProvideCredentials for SlowProvider {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let delay = self.delay;
            aws_credential_types::provider::future::ProvideCredentials::new(async move {
                match delay {
                    Some(delay) => tokio::time::sleep(delay).await,
                    None => std::future::pending().await,
                }
                Ok(example_credentials(None))
            })
        }
    }

    /// A signer for a Function URL whose credentials come from `provider`,
    /// and the count of lookups.
    fn signer_asking(
        delay: Option<Duration>,
    ) -> (
        RequestSigner,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) {
        let calls = std::sync::Arc::default();
        let signer = RequestSigner::for_post_url(&function_url(), &SigningOptions::default())
            .expect("a Function URL is signed");
        let provider = SlowProvider {
            delay,
            calls: std::sync::Arc::clone(&calls),
        };
        let source = AwsSource {
            credentials: Some(SharedCredentialsProvider::new(provider)),
            region: None,
        };
        signer.aws.set(source).expect("not looked up yet");
        (signer, calls)
    }

    fn function_url() -> Url {
        url("https://abc123.lambda-url.eu-west-1.on.aws/")
    }

    /// A provider that never answers (a container-credentials endpoint
    /// that accepts and stays silent): each request gives up at its own
    /// deadline, and the one lookup is shared, not started again.
    #[tokio::test(start_paused = true)]
    async fn a_provider_that_never_answers_costs_each_request_its_timeout() {
        let (signer, calls) = signer_asking(None);
        for _ in 0..3 {
            let started = Instant::now();
            let deadline = started + Duration::from_millis(1500);
            let error = signer
                .signing_headers(&function_url(), "application/json", b"{}", deadline)
                .await
                .expect_err("no credentials");
            assert!(matches!(error, SignError::Timeout), "{error}");
            assert_eq!(started.elapsed(), Duration::from_millis(1500));
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "one lookup, still waited on"
        );
        assert_eq!(
            SignError::Timeout.to_string(),
            "no AWS credentials within the request's timeout: a credential provider \
             did not answer in time"
        );
    }

    /// A slow provider: the request that gave up leaves the lookup running,
    /// and the next request gets its credentials at once.
    #[tokio::test(start_paused = true)]
    async fn a_slow_lookup_goes_on_after_a_request_gives_up() {
        let (signer, calls) = signer_asking(Some(Duration::from_secs(3)));
        let started = Instant::now();
        let error = signer
            .signing_headers(
                &function_url(),
                "application/json",
                b"{}",
                started + Duration::from_millis(1500),
            )
            .await
            .expect_err("not yet");
        assert!(matches!(error, SignError::Timeout), "{error}");
        tokio::time::sleep_until(started + Duration::from_secs(4)).await;
        let asked = Instant::now();
        let headers = signer
            .signing_headers(
                &function_url(),
                "application/json",
                b"{}",
                asked + Duration::from_millis(1500),
            )
            .await
            .expect("signed");
        assert_eq!(asked.elapsed(), Duration::ZERO, "the lookup had finished");
        assert!(
            header(&headers, "authorization").is_some_and(|v| v.contains("/eu-west-1/lambda/"))
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn function_url_hosts_give_their_region() {
        let cases = [
            (
                "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws/",
                Some("eu-west-1"),
            ),
            (
                "https://x1.lambda-url.us-gov-west-1.on.aws",
                Some("us-gov-west-1"),
            ),
            (
                "https://x1.LAMBDA-URL.ap-south-2.ON.AWS/path?q=1",
                Some("ap-south-2"),
            ),
            ("https://lambda-url.eu-west-1.on.aws/", None),
            ("https://a.b.lambda-url.eu-west-1.on.aws/", None),
            ("https://x1.lambda-url.on.aws/", None),
            ("https://x1.lambda-url.eu-west-1.on.aws.example.com/", None),
            ("https://x1.execute-api.eu-west-1.amazonaws.com/", None),
            ("http://127.0.0.1:8080/bot", None),
        ];
        for (text, region) in cases {
            assert_eq!(function_url_region(&url(text)), region, "{text}");
        }
    }

    #[test]
    fn auto_signs_function_urls_only() {
        let auto = SigningOptions::default();
        let function_url = url("https://abc123.lambda-url.eu-central-1.on.aws/");
        let signer = RequestSigner::for_post_url(&function_url, &auto).expect("signed");
        assert_eq!(signer.configured_region(), Some("eu-central-1"));

        for other in [
            "http://127.0.0.1:8080/bot",
            "https://bot.example.com/hook",
            "https://abc.execute-api.eu-central-1.amazonaws.com/prod",
        ] {
            assert!(
                RequestSigner::for_post_url(&url(other), &auto).is_none(),
                "{other} must not be signed"
            );
        }
    }

    #[test]
    fn on_off_and_explicit_region() {
        let function_url = url("https://abc123.lambda-url.eu-central-1.on.aws/");
        let plain = url("http://127.0.0.1:8080/bot");
        let off = SigningOptions {
            mode: SigningMode::Off,
            region: None,
        };
        assert!(RequestSigner::for_post_url(&function_url, &off).is_none());

        let on = SigningOptions {
            mode: SigningMode::On,
            region: None,
        };
        let signer = RequestSigner::for_post_url(&plain, &on).expect("signed");
        assert_eq!(signer.configured_region(), None, "left to the SDK's chain");

        let explicit = SigningOptions {
            mode: SigningMode::Auto,
            region: Some("us-west-2".into()),
        };
        let signer = RequestSigner::for_post_url(&function_url, &explicit).expect("signed");
        assert_eq!(
            signer.configured_region(),
            Some("us-west-2"),
            "the option wins"
        );
        assert!(RequestSigner::for_post_url(&plain, &explicit).is_none());
    }
}
