//! The http transport's side: SigV4 credentials when requests are signed,
//! then one probe request to the bot, signed like a real one.
//!
//! **The probe** is a request the bot sees in normal use and must already
//! take in its stride: for the first forwarded kind, a chat message without
//! a body carrying only a chat-state notification (XEP-0085 `<active/>`,
//! which clients send all the time), or an XEP-0199 ping (`iq`), or a
//! presence probe. It is marked so a bot can recognise it: its `id` starts
//! with [`PROBE_ID_PREFIX`] and it comes from [`PROBE_LOCALPART`]`@<the
//! component's domain>/check`. Whatever the bot answers goes nowhere: the
//! check holds no XMPP link while it probes.
//!
//! **Pass**: any HTTP answer below 500 except 401, 403, 404, 405, 407 and
//! 410, and except a redirect that was not followed: the bot is up, the
//! connector may call it and the URL leads to something that takes the
//! request. Each failure names its fix.

use std::time::{Duration, Instant};

use minidom::Element;
use reqwest::Url;
use reqwest::header::{CONTENT_TYPE, LOCATION};
use xmpp_lambda_shared::{
    COMPONENT_NS, Request, StanzaKind, attribute_name as name, error_for_status, stanza_to_request,
};

use super::report::{Outcome, Report, error_chain, human, masked_key, root_cause, shown_url};
use crate::config::Config;
use crate::sigv4::{RequestSigner, SignError, SigningMode};
// What the http transport sends, so the probe is the same request.
use crate::transport::{JSON, USER_AGENT};

/// The `id` of every probe starts with this.
pub const PROBE_ID_PREFIX: &str = "xmpp-lambda-check-";
/// The probe comes from this local part at the component's own domain.
pub const PROBE_LOCALPART: &str = "xmpp-lambda-check";

const CHAT_STATES_NS: &str = "http://jabber.org/protocol/chatstates";
const PING_NS: &str = "urn:xmpp:ping";

/// Checks SigV4 signing (when requests are signed) and probes the bot.
pub async fn check(config: &Config, url: &Url, report: &mut Report) {
    let (probe, what) = probe_request(&config.component_domain, &config.forwarded_kinds);
    let body = match serde_json::to_vec(&probe) {
        Ok(body) => body,
        Err(e) => {
            report.record(
                "bot",
                &Outcome::fail(format!("cannot encode the probe: {e}"), "report this bug"),
            );
            return;
        }
    };
    let mut signing_headers = Vec::new();
    match RequestSigner::for_post_url(url, &config.post_signing) {
        None => {
            let reason = match config.post_signing.mode {
                SigningMode::Off => "requests are not signed (COMPONENT_POST_SIGV4=off)".to_owned(),
                _ => format!(
                    "requests are not signed: {} is not a Lambda Function URL \
                     (COMPONENT_POST_SIGV4=auto; set it to on for one behind another name)",
                    url.host_str().unwrap_or("the URL")
                ),
            };
            report.skip("sigv4", &reason);
        }
        Some(signer) => match signer
            .signing_headers(
                url,
                JSON,
                &body,
                tokio::time::Instant::now() + config.post_timeout,
            )
            .await
        {
            Ok(headers) => {
                report.record("sigv4", &Outcome::Pass(describe_signature(&headers)));
                signing_headers = headers;
            }
            Err(error) => {
                report.record("sigv4", &signing_failure(&error));
                report.skip(
                    "bot",
                    "the probe cannot be signed, and unsigned it proves nothing",
                );
                return;
            }
        },
    }
    let signed = !signing_headers.is_empty();
    let outcome = probe_bot(
        url,
        config.post_timeout,
        body,
        signing_headers,
        signed,
        what,
    )
    .await;
    report.record("bot", &outcome);
}

/// The probe and a few words saying what it is. See the module docs.
fn probe_request(
    domain: &str,
    forwarded: &std::collections::HashSet<StanzaKind>,
) -> (Request, &'static str) {
    let kind = [StanzaKind::Message, StanzaKind::Iq, StanzaKind::Presence]
        .into_iter()
        .find(|kind| forwarded.contains(kind))
        .unwrap_or(StanzaKind::Message);
    let (builder, what) = match kind {
        StanzaKind::Message => (
            Element::builder("message", COMPONENT_NS)
                .attr(name("type"), "chat")
                .append(Element::bare("active", CHAT_STATES_NS)),
            "a chat message without body, only a chat state",
        ),
        StanzaKind::Iq => (
            Element::builder("iq", COMPONENT_NS)
                .attr(name("type"), "get")
                .append(Element::bare("ping", PING_NS)),
            "an XMPP ping",
        ),
        StanzaKind::Presence => (
            Element::builder("presence", COMPONENT_NS).attr(name("type"), "probe"),
            "a presence probe",
        ),
    };
    let stanza = builder
        .attr(
            name("id"),
            format!("{PROBE_ID_PREFIX}{}", uuid::Uuid::new_v4()),
        )
        .attr(name("from"), format!("{PROBE_LOCALPART}@{domain}/check"))
        .attr(name("to"), domain)
        .build();
    let request =
        stanza_to_request(&stanza).expect("the probe is a stanza with both addresses set");
    (request, what)
}

/// POSTs the probe and judges the answer.
async fn probe_bot(
    url: &Url,
    timeout: Duration,
    body: Vec<u8>,
    signing_headers: Vec<(&'static str, String)>,
    signed: bool,
    what: &str,
) -> Outcome {
    let client = match reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(USER_AGENT)
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            return Outcome::fail(
                format!("cannot build the HTTP client: {}", error_chain(&e)),
                "report this bug",
            );
        }
    };
    let mut post = client.post(url.clone()).header(CONTENT_TYPE, JSON);
    for (header, value) in signing_headers {
        post = post.header(header, value);
    }
    let started = Instant::now();
    match post.body(body).send().await {
        Ok(response) => {
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
            let location = response
                .headers()
                .get(LOCATION)
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
            judge_answer(&Answer {
                status: response.status().as_u16(),
                content_type,
                location,
                elapsed: started.elapsed(),
                signed,
                probe: what,
            })
        }
        // The URL may carry a token: keep it out of the text.
        Err(error) => judge_failure(&error.without_url(), url, timeout),
    }
}

/// What came back from the bot.
#[derive(Debug)]
struct Answer<'a> {
    /// The HTTP status (after redirects were followed).
    status: u16,
    /// The answer's Content-Type, if any.
    content_type: Option<String>,
    /// Where a redirect that was not followed points.
    location: Option<String>,
    /// How long the answer took.
    elapsed: Duration,
    /// Whether the probe was SigV4-signed (it changes what a 401/403 means).
    signed: bool,
    /// What the probe was, in words.
    probe: &'a str,
}

/// The outcome for an HTTP answer. See the module docs for the rule.
fn judge_answer(answer: &Answer<'_>) -> Outcome {
    let status = answer.status;
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .map(|reason| format!(" {reason}"))
        .unwrap_or_default();
    let answered = format!("answered {status}{reason}");
    let users_get = || {
        let error = error_for_status(status);
        format!(
            "users would now get the error {}/{}",
            error.error_type.as_str(),
            error.condition
        )
    };
    match status {
        200..=299 => {
            let content_type = answer
                .content_type
                .as_deref()
                .map(|value| format!(" ({value})"))
                .unwrap_or_default();
            Outcome::Pass(format!(
                "{answered}{content_type} in {} to the probe ({}, which no user sees)",
                human(answer.elapsed),
                answer.probe
            ))
        }
        300..=399 => Outcome::fail(
            format!(
                "{answered}, a redirect{}",
                answer
                    .location
                    .as_deref()
                    .map(|to| format!(" to {to}"))
                    .unwrap_or_default()
            ),
            "set COMPONENT_POST_URL to the URL the bot really answers at",
        ),
        401 if answer.signed => Outcome::fail(
            format!("{answered} to the signed probe; {}", users_get()),
            "the bot wants its own credentials besides SigV4: put its token where it expects \
             it (e.g. in COMPONENT_POST_URL)",
        ),
        401 => Outcome::fail(
            format!("{answered}: the bot wants credentials; {}", users_get()),
            "put the bot's token where it expects it (e.g. in COMPONENT_POST_URL), or, for a \
             Function URL with AuthType AWS_IAM behind another name, sign requests with \
             COMPONENT_POST_SIGV4=on",
        ),
        403 if answer.signed => Outcome::fail(
            format!("{answered}: the signed probe was refused; {}", users_get()),
            "the credentials' identity needs lambda:InvokeFunctionUrl and \
             lambda:InvokeFunction on the function (attach the stack's ConnectorPolicyArn), \
             and the region signed for must be the function's (COMPONENT_POST_SIGV4_REGION)",
        ),
        403 => Outcome::fail(
            format!("{answered}: the bot refuses this caller; {}", users_get()),
            "a Function URL with AuthType AWS_IAM needs signed requests: \
             COMPONENT_POST_SIGV4=on when it is reached by another name; otherwise allow \
             this host at the bot",
        ),
        404 => Outcome::fail(
            format!("{answered}: no bot at this path; {}", users_get()),
            "correct the path in COMPONENT_POST_URL",
        ),
        405 => Outcome::fail(
            format!("{answered}: the URL does not take POST requests"),
            "COMPONENT_POST_URL must be the bot's endpoint, which takes a POST of the request JSON",
        ),
        407 => Outcome::fail(
            format!("{answered}: a proxy between here and the bot wants credentials"),
            "put them in HTTPS_PROXY/HTTP_PROXY (http://user:password@proxy:port), or set \
             NO_PROXY for the bot's host",
        ),
        410 => Outcome::fail(
            format!("{answered}: the bot says it is gone; {}", users_get()),
            "point COMPONENT_POST_URL at the bot's current address",
        ),
        400..=499 => Outcome::Pass(format!(
            "the bot is reachable and took the probe ({}), which it {answered} to, in {}",
            answer.probe,
            human(answer.elapsed)
        )),
        _ => Outcome::fail(
            format!("{answered}: the bot failed; {}", users_get()),
            "see the bot's log (for the function: its CloudWatch log group); a proxying \
             function answers 502 when the bot behind it did not answer",
        ),
    }
}

/// The outcome when no HTTP answer came.
fn judge_failure(error: &reqwest::Error, url: &Url, timeout: Duration) -> Outcome {
    let chain = error_chain(error);
    let host = url.host_str().unwrap_or("the bot's host");
    let port = url.port_or_known_default().unwrap_or(80);
    let users_get = "users would now get the error cancel/remote-server-timeout \
                     (Connection failure)";
    if error.is_timeout() {
        return Outcome::fail(
            format!(
                "no answer from {} within {} (COMPONENT_POST_TIMEOUT); {users_get}",
                shown_url(url),
                human(timeout)
            ),
            "make sure the bot runs and this machine may reach it (firewall, security group); \
             a bot that is only slow needs a larger COMPONENT_POST_TIMEOUT",
        );
    }
    let lower = chain.to_ascii_lowercase();
    if has_io_kind(error, std::io::ErrorKind::ConnectionRefused) || lower.contains("refused") {
        return Outcome::fail(
            format!(
                "nothing listens at {host}:{port} ({}); {users_get}",
                root_cause(error)
            ),
            "start the bot, or correct the host and port in COMPONENT_POST_URL",
        );
    }
    if lower.contains("dns error") || lower.contains("failed to lookup address") {
        return Outcome::fail(
            format!("cannot resolve {host} ({}); {users_get}", root_cause(error)),
            "correct the host in COMPONENT_POST_URL, or this machine's DNS",
        );
    }
    if lower.contains("certificate") || lower.contains("tls") {
        return Outcome::fail(
            format!("no TLS connection to {host} ({chain}); {users_get}"),
            format!(
                "the bot's certificate must be valid for {host} and signed by an authority \
                 this machine trusts"
            ),
        );
    }
    Outcome::fail(
        format!("no answer from {} ({chain}); {users_get}", shown_url(url)),
        "make sure the bot runs and this machine may reach it",
    )
}

/// Whether an I/O error of `kind` is somewhere in `error`'s sources.
fn has_io_kind(error: &(dyn std::error::Error + 'static), kind: std::io::ErrorKind) -> bool {
    let mut current = Some(error);
    while let Some(cause) = current {
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == kind)
        {
            return true;
        }
        current = cause.source();
    }
    false
}

/// The `sigv4` line when signing worked: the scope of the signature.
fn describe_signature(headers: &[(&'static str, String)]) -> String {
    let header = |wanted: &str| {
        headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .map(|(_, value)| value.as_str())
    };
    // Credential=<key id>/<date>/<region>/<service>/aws4_request
    let scope: Vec<&str> = header("authorization")
        .and_then(|value| value.split("Credential=").nth(1))
        .and_then(|rest| rest.split(',').next())
        .map(|credential| credential.split('/').collect())
        .unwrap_or_default();
    let temporary = if header("x-amz-security-token").is_some() {
        ", temporary credentials"
    } else {
        ""
    };
    match scope.as_slice() {
        [key, _date, region, service, ..] => format!(
            "requests are signed for {service} in {region} with access key {}{temporary}",
            masked_key(key)
        ),
        _ => "requests are signed".to_owned(),
    }
}

/// The `sigv4` line when the probe could not be signed.
fn signing_failure(error: &SignError) -> Outcome {
    match error {
        SignError::NoCredentials(reason) => Outcome::fail(
            format!("no AWS credentials to sign with: {reason}"),
            "give this machine credentials through the AWS SDK's chain with the stack's \
             ConnectorPolicyArn attached: an instance or task role, AWS_PROFILE, or \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        ),
        SignError::NoRegion => Outcome::fail(
            "no AWS region to sign for",
            "set COMPONENT_POST_SIGV4_REGION or AWS_REGION to the function's region",
        ),
        SignError::Signing(reason) => Outcome::fail(
            format!("cannot sign the probe: {reason}"),
            "check the AWS credentials (a malformed key or token)",
        ),
        SignError::Timeout => Outcome::fail(
            "no AWS credentials within COMPONENT_POST_TIMEOUT: a credential provider \
             did not answer",
            "check the credential endpoint the AWS SDK uses here (the ECS task's \
             AWS_CONTAINER_CREDENTIALS_* variables, or the instance metadata service)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn answer(status: u16, signed: bool) -> Outcome {
        judge_answer(&Answer {
            status,
            content_type: Some("application/json".into()),
            location: None,
            elapsed: Duration::from_millis(12),
            signed,
            probe: "a probe",
        })
    }

    #[test]
    fn the_probe_is_a_recognisable_bodyless_chat_message() {
        let (request, _) = probe_request("bot.example.com", &HashSet::from([StanzaKind::Message]));
        assert_eq!(request.kind, StanzaKind::Message);
        assert_eq!(request.to, "bot.example.com");
        assert_eq!(request.from, "xmpp-lambda-check@bot.example.com/check");
        assert_eq!(request.body, None);
        assert_eq!(request.stanza_type.as_deref(), Some("chat"));
        let id = request.id.expect("an id");
        assert!(id.starts_with(PROBE_ID_PREFIX), "{id}");
        assert!(
            request.stanza.contains(CHAT_STATES_NS),
            "{}",
            request.stanza
        );
        assert!(
            request.stanza.contains("jabber:client"),
            "{}",
            request.stanza
        );
    }

    #[test]
    fn the_probe_follows_the_forwarded_kinds() {
        let (iq, _) = probe_request("bot.example.com", &HashSet::from([StanzaKind::Iq]));
        assert_eq!(iq.kind, StanzaKind::Iq);
        assert_eq!(iq.stanza_type.as_deref(), Some("get"));
        assert!(iq.stanza.contains(PING_NS), "{}", iq.stanza);
        let (presence, _) =
            probe_request("bot.example.com", &HashSet::from([StanzaKind::Presence]));
        assert_eq!(presence.kind, StanzaKind::Presence);
        assert_eq!(presence.stanza_type.as_deref(), Some("probe"));
    }

    #[test]
    fn answers_below_500_pass_except_the_ones_that_mean_no_bot() {
        for status in [200, 204, 400, 422, 429] {
            assert!(answer(status, false).passed(), "{status}");
        }
        for status in [301, 401, 403, 404, 405, 407, 410, 500, 502, 503] {
            assert!(!answer(status, false).passed(), "{status}");
        }
    }

    #[test]
    fn failures_say_what_users_would_get_and_the_fix() {
        let Outcome::Fail { problem, fix } = answer(500, false) else {
            panic!("500 fails");
        };
        assert_eq!(
            problem,
            "answered 500 Internal Server Error: the bot failed; users would now get the \
             error cancel/internal-server-error"
        );
        assert!(fix.starts_with("see the bot's log"), "{fix}");
        let Outcome::Fail { fix: unsigned, .. } = answer(403, false) else {
            panic!("403 fails");
        };
        assert!(unsigned.contains("COMPONENT_POST_SIGV4=on"), "{unsigned}");
        let Outcome::Fail { fix: signed, .. } = answer(403, true) else {
            panic!("403 fails");
        };
        assert!(signed.contains("lambda:InvokeFunctionUrl"), "{signed}");
    }

    #[test]
    fn the_signature_scope_is_described_without_the_key() {
        let headers = vec![
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/eu-west-1/lambda/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=abc"
                    .to_owned(),
            ),
            ("x-amz-security-token", "token".to_owned()),
        ];
        assert_eq!(
            describe_signature(&headers),
            "requests are signed for lambda in eu-west-1 with access key …MPLE, temporary \
             credentials"
        );
    }
}
