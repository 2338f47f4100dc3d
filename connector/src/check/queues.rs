//! The sqs transport's side: AWS credentials and a region are found, the
//! queues exist, and the credentials may send to the request queue and
//! receive from and delete on the reply queue.
//!
//! Without disturbing real traffic: each permission is proven by a call SQS
//! must refuse for its content, so no message is queued, none received and
//! none deleted. A request that is not authorised is refused with
//! `AccessDenied` before SQS looks at its content, and a queue that does not
//! exist is refused as such; any other refusal shows the queue is there and
//! the call was allowed:
//!
//! * **send**: `SendMessage` with `DelaySeconds` 901 (the most is 900, and a
//!   FIFO queue takes no per-message delay at all) → `InvalidParameterValue`.
//! * **receive**: `ReceiveMessage` of 11 messages (the most is 10), with no
//!   wait and a visibility timeout of 0 → `InvalidParameterValue`. Nothing
//!   is received, so no reply's receive count (and `maxReceiveCount`)
//!   moves.
//! * **delete**: `DeleteMessage` with a receipt handle SQS never issued →
//!   `ReceiptHandleIsInvalid`.
//!
//! Tested against moto, which authorises every call before it reads it (with
//! its IAM checks on). AWS does not document that order for SQS; if a real
//! queue validated before authorising, a missing permission would show up
//! only once the connector runs, as `AccessDenied` in its log. Permissions
//! outside these calls (KMS keys of an SSE-KMS queue, used only for a real
//! message) are not checked.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use tokio::time::timeout;

use super::report::{Outcome, Report, error_chain, masked_key};
use crate::sqs::is_fifo;

/// How long one SQS call may take (the SDK retries within it).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the credentials chain may take (instance metadata off EC2
/// takes a few seconds to give up).
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(30);
/// A delay SQS refuses on every queue: the most is 900 s.
const REFUSED_DELAY_SECONDS: i32 = 901;
/// A batch size SQS refuses: the most is 10.
const REFUSED_MAX_MESSAGES: i32 = 11;
/// The body of the refused message, in case a queue ever took it: a reader
/// sees what it is, and the function refuses it as no request envelope.
const REFUSED_BODY: &str = "xmpp-lambda-connector check: SQS must refuse this message \
                            (DelaySeconds 901); it is not a request";
/// A receipt handle SQS never issued.
const UNKNOWN_RECEIPT_HANDLE: &str = "xmpp-lambda-check-not-a-receipt-handle";

/// Checks the AWS settings and both queues.
pub async fn check(request_queue_urls: &[&str], reply_queue_url: &str, report: &mut Report) {
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    if !report.record("aws", &aws_settings(&sdk).await) {
        let reason = "needs AWS credentials and a region";
        for _ in request_queue_urls {
            report.skip("request queue", reason);
        }
        report.skip("reply queue", reason);
        return;
    }
    let client = aws_sdk_sqs::Client::new(&sdk);
    for request_queue_url in request_queue_urls {
        report.record(
            "request queue",
            &request_queue(&client, request_queue_url).await,
        );
    }
    report.record("reply queue", &reply_queue(&client, reply_queue_url).await);
}

/// The `aws` line: the region and credentials the SDK's chains find.
async fn aws_settings(sdk: &aws_config::SdkConfig) -> Outcome {
    let Some(region) = sdk.region() else {
        return Outcome::fail(
            "no AWS region",
            "set AWS_REGION to the queues' region (the one in their URLs)",
        );
    };
    let found = match sdk.credentials_provider() {
        Some(provider) => timeout(CREDENTIALS_TIMEOUT, provider.provide_credentials())
            .await
            .map_err(|_| "looking for them took too long".to_owned())
            .and_then(|result| result.map_err(|e| error_chain(&e))),
        None => Err("the AWS SDK has no credentials chain".to_owned()),
    };
    match found {
        Ok(credentials) => {
            let temporary = if credentials.session_token().is_some() {
                ", temporary"
            } else {
                ""
            };
            let endpoint = sdk
                .endpoint_url()
                .map(|url| format!(", endpoint {url}"))
                .unwrap_or_default();
            Outcome::Pass(format!(
                "region {region}, credentials found (access key {}{temporary}){endpoint}",
                masked_key(credentials.access_key_id())
            ))
        }
        Err(reason) => Outcome::fail(
            format!("no AWS credentials: {reason}"),
            "give this machine credentials through the AWS SDK's chain with the stack's \
             ConnectorPolicyArn attached: an instance or task role, AWS_PROFILE, or \
             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        ),
    }
}

/// The `request queue` line: exists, and sending is allowed.
async fn request_queue(client: &aws_sdk_sqs::Client, url: &str) -> Outcome {
    let mut send = client
        .send_message()
        .queue_url(url)
        .message_body(REFUSED_BODY)
        .delay_seconds(REFUSED_DELAY_SECONDS);
    if is_fifo(url) {
        // Everything else a FIFO queue needs, so only the delay is wrong.
        send = send
            .message_group_id("xmpp-lambda-check")
            .message_deduplication_id(uuid::Uuid::new_v4().to_string());
    }
    let answer = call(send.send()).await;
    match judge(answer, &["InvalidParameterValue"]) {
        Verdict::Allowed => Outcome::Pass(format!(
            "{url} exists, and these credentials may send to it (SQS refused the check's \
             message for its delay, as intended: nothing was queued)"
        )),
        Verdict::Accepted => Outcome::fail(
            format!(
                "SQS accepted the check's message with a delay of {REFUSED_DELAY_SECONDS} s, \
                 which it must refuse; it is on the queue now and will end in its \
                 dead-letter queue"
            ),
            "REQUEST_QUEUE_URL must be an Amazon SQS queue (or a faithful stand-in)",
        ),
        verdict => verdict.outcome(url, "send to it", "sqs:SendMessage", "RequestQueueUrl"),
    }
}

/// The `reply queue` line: exists, and receiving and deleting are allowed.
async fn reply_queue(client: &aws_sdk_sqs::Client, url: &str) -> Outcome {
    let receive = call(
        client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(REFUSED_MAX_MESSAGES)
            .wait_time_seconds(0)
            .visibility_timeout(0)
            .send(),
    )
    .await;
    let received = match &receive {
        Ok(output) => output.messages().len(),
        Err(_) => 0,
    };
    let receive = judge(receive, &["InvalidParameterValue"]);
    match receive {
        Verdict::Allowed => {}
        Verdict::Accepted => {
            return Outcome::fail(
                format!(
                    "SQS accepted a receive of {REFUSED_MAX_MESSAGES} messages, which it must \
                     refuse, and handed out {received} (visible again at once, but each \
                     receive counts towards the queue's maxReceiveCount)"
                ),
                "REPLY_QUEUE_URL must be an Amazon SQS queue (or a faithful stand-in)",
            );
        }
        // A missing queue or unusable credentials: deleting says no more.
        Verdict::Missing { .. } | Verdict::BadCredentials { .. } | Verdict::Unreachable(_) => {
            return receive.outcome(
                url,
                "receive from it",
                "sqs:ReceiveMessage",
                "ReplyQueueUrl",
            );
        }
        Verdict::Denied { .. } | Verdict::Unexpected { .. } => {}
    }
    let delete = judge(
        call(
            client
                .delete_message()
                .queue_url(url)
                .receipt_handle(UNKNOWN_RECEIPT_HANDLE)
                .send(),
        )
        .await,
        &["ReceiptHandleIsInvalid"],
    );
    match (receive, delete) {
        (Verdict::Allowed, Verdict::Allowed | Verdict::Accepted) => Outcome::Pass(format!(
            "{url} exists, and these credentials may receive from it and delete on it (SQS \
             refused an oversized receive and an unknown receipt handle, as intended: no reply \
             was touched)"
        )),
        (Verdict::Denied { .. }, Verdict::Denied { .. }) => Outcome::fail(
            format!("these credentials may neither receive from {url} nor delete on it"),
            "allow sqs:ReceiveMessage and sqs:DeleteMessage on the reply queue (the stack's \
             ConnectorPolicyArn does)",
        ),
        (Verdict::Allowed, delete) => {
            delete.outcome(url, "delete on it", "sqs:DeleteMessage", "ReplyQueueUrl")
        }
        (receive, _) => receive.outcome(
            url,
            "receive from it",
            "sqs:ReceiveMessage",
            "ReplyQueueUrl",
        ),
    }
}

/// Runs one SDK call within [`CALL_TIMEOUT`]; a timeout is reported like an
/// unreachable endpoint.
async fn call<T, E>(
    request: impl std::future::Future<Output = Result<T, SdkError<E>>>,
) -> Result<T, Refusal>
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    match timeout(CALL_TIMEOUT, request).await {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(error)) => Err(Refusal::from_sdk(&error)),
        Err(_) => Err(Refusal::Unreachable(format!(
            "no answer within {} s",
            CALL_TIMEOUT.as_secs()
        ))),
    }
}

/// Why an SQS call did not succeed.
#[derive(Debug)]
enum Refusal {
    /// SQS answered with an error.
    Answered {
        /// The error code, e.g. `AccessDenied`; empty when none was given.
        code: String,
        /// SQS's own words.
        message: String,
        /// The HTTP status, for answers whose code could not be read.
        status: Option<u16>,
    },
    /// SQS was not reached (connection, DNS, TLS, timeout); the whole cause.
    Unreachable(String),
}

impl Refusal {
    fn from_sdk<E>(error: &SdkError<E>) -> Refusal
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        match error {
            SdkError::ServiceError(_) => {
                let raw = error.raw_response();
                let body = raw
                    .and_then(|response| response.body().bytes())
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                // An answer the SDK could not read (moto's IAM refusals come
                // as query-protocol XML) still names its code in the body.
                let code = error
                    .code()
                    .map(str::to_owned)
                    .or_else(|| xml_text(&body, "Code"))
                    .unwrap_or_default();
                let message = error
                    .message()
                    .map(str::to_owned)
                    .or_else(|| xml_text(&body, "Message"))
                    .unwrap_or_default();
                Refusal::Answered {
                    code,
                    message,
                    status: raw.map(|response| response.status().as_u16()),
                }
            }
            _ => Refusal::Unreachable(aws_sdk_sqs::error::DisplayErrorContext(error).to_string()),
        }
    }
}

/// The text of the first `<name>…</name>` in an XML error answer.
fn xml_text(xml: &str, name: &str) -> Option<String> {
    let (_, rest) = xml.split_once(&format!("<{name}>"))?;
    let (text, _) = rest.split_once(&format!("</{name}>"))?;
    Some(text.trim().to_owned())
}

/// What one refused-by-design call proves.
#[derive(Debug)]
enum Verdict {
    /// Refused for its content: the queue exists and the call is allowed.
    Allowed,
    /// Not refused: SQS took a call it must refuse.
    Accepted,
    /// The credentials may not make this call.
    Denied { code: String, message: String },
    /// There is no such queue.
    Missing { code: String },
    /// SQS does not accept the credentials themselves.
    BadCredentials { code: String, message: String },
    /// SQS was not reached.
    Unreachable(String),
    /// Another answer, shown as it came.
    Unexpected { code: String, message: String },
}

/// Error codes of a call the credentials may not make (KMS: a queue
/// encrypted with a key the caller may not use).
const DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "KMS.AccessDeniedException",
];
/// Error codes of a queue that does not exist (query and JSON protocol).
const MISSING: &[&str] = &[
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
];
/// Error codes of credentials SQS does not take.
const BAD_CREDENTIALS: &[&str] = &[
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "ExpiredToken",
    "InvalidSecurity",
    "IncompleteSignature",
    "MissingAuthenticationToken",
];

/// Judges the answer to a call SQS must refuse with one of `expected`.
fn judge<T>(answer: Result<T, Refusal>, expected: &[&str]) -> Verdict {
    match answer {
        Ok(_) => Verdict::Accepted,
        Err(Refusal::Unreachable(cause)) => Verdict::Unreachable(cause),
        Err(Refusal::Answered {
            code,
            message,
            status,
        }) => {
            let code_text = code.as_str();
            if expected.contains(&code_text) {
                Verdict::Allowed
            } else if DENIED.contains(&code_text) || (code.is_empty() && status == Some(403)) {
                Verdict::Denied { code, message }
            } else if MISSING.contains(&code_text) {
                Verdict::Missing { code }
            } else if BAD_CREDENTIALS.contains(&code_text) {
                Verdict::BadCredentials { code, message }
            } else {
                Verdict::Unexpected { code, message }
            }
        }
    }
}

impl Verdict {
    /// The line for a verdict other than [`Verdict::Allowed`] about
    /// `action` (e.g. "send to it") on the queue at `url`, which needs
    /// `permission`; `output` names the stack output with the right URL.
    fn outcome(&self, url: &str, action: &str, permission: &str, output: &str) -> Outcome {
        let option = if output == "RequestQueueUrl" {
            "REQUEST_QUEUE_URL"
        } else {
            "REPLY_QUEUE_URL"
        };
        match self {
            Verdict::Allowed => Outcome::Pass(format!("{url}: these credentials may {action}")),
            Verdict::Accepted => Outcome::fail(
                format!("SQS accepted a call on {url} it must refuse"),
                format!("{option} must be an Amazon SQS queue (or a faithful stand-in)"),
            ),
            Verdict::Denied { code, message } => Outcome::fail(
                format!(
                    "these credentials may not {action} ({})",
                    said(code, message)
                ),
                format!("allow {permission} on {url} (the stack's ConnectorPolicyArn does)"),
            ),
            Verdict::Missing { code } => Outcome::fail(
                format!("there is no queue {url} ({code})"),
                format!(
                    "set {option} to the stack's {output} output; AWS_REGION must be the \
                     queue's region"
                ),
            ),
            Verdict::BadCredentials { code, message } => Outcome::fail(
                format!(
                    "SQS does not accept these credentials ({})",
                    said(code, message)
                ),
                "use a valid access key: the key may be deleted or inactive, its secret \
                 wrong, or a session expired",
            ),
            Verdict::Unreachable(cause) => Outcome::fail(
                format!("SQS could not be reached: {cause}"),
                "this machine must reach the SQS endpoint of AWS_REGION (or AWS_ENDPOINT_URL): \
                 check DNS, proxy and firewall",
            ),
            Verdict::Unexpected { code, message } => Outcome::fail(
                format!("SQS answered {} on {url}", said(code, message)),
                "see the message above; the check expected SQS to refuse the call for its \
                 content",
            ),
        }
    }
}

/// An error code with its message, e.g. `AccessDenied: Access to the
/// resource … is denied.`
fn said(code: &str, message: &str) -> String {
    match (code.is_empty(), message.is_empty()) {
        (true, true) => "an error without code".to_owned(),
        (true, false) => message.to_owned(),
        (false, true) => code.to_owned(),
        (false, false) => format!("{code}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: &str, status: u16) -> Result<(), Refusal> {
        Err(Refusal::Answered {
            code: code.to_owned(),
            message: "words".to_owned(),
            status: Some(status),
        })
    }

    #[test]
    fn refusals_are_told_apart_by_code() {
        assert!(matches!(
            judge(
                refused("InvalidParameterValue", 400),
                &["InvalidParameterValue"]
            ),
            Verdict::Allowed
        ));
        assert!(matches!(
            judge(refused("AccessDenied", 403), &["InvalidParameterValue"]),
            Verdict::Denied { .. }
        ));
        assert!(matches!(
            judge(refused("", 403), &["InvalidParameterValue"]),
            Verdict::Denied { .. }
        ));
        assert!(matches!(
            judge(
                refused("QueueDoesNotExist", 400),
                &["InvalidParameterValue"]
            ),
            Verdict::Missing { .. }
        ));
        assert!(matches!(
            judge(
                refused("AWS.SimpleQueueService.NonExistentQueue", 400),
                &["ReceiptHandleIsInvalid"]
            ),
            Verdict::Missing { .. }
        ));
        assert!(matches!(
            judge(
                refused("InvalidClientTokenId", 403),
                &["InvalidParameterValue"]
            ),
            Verdict::BadCredentials { .. }
        ));
        assert!(matches!(
            judge(
                refused("ReceiptHandleIsInvalid", 400),
                &["InvalidParameterValue"]
            ),
            Verdict::Unexpected { .. }
        ));
        assert!(matches!(
            judge(Ok::<(), Refusal>(()), &["InvalidParameterValue"]),
            Verdict::Accepted
        ));
    }

    #[test]
    fn codes_are_read_from_xml_answers() {
        let xml = "<ErrorResponse><Error><Code>AccessDenied</Code>\
                   <Message>not authorized</Message></Error></ErrorResponse>";
        assert_eq!(xml_text(xml, "Code").as_deref(), Some("AccessDenied"));
        assert_eq!(xml_text(xml, "Message").as_deref(), Some("not authorized"));
        assert_eq!(xml_text("{}", "Code"), None);
    }

    #[test]
    fn a_denied_call_names_the_permission() {
        let verdict = judge(refused("AccessDenied", 403), &["InvalidParameterValue"]);
        assert_eq!(
            verdict.outcome(
                "http://q/requests",
                "send to it",
                "sqs:SendMessage",
                "RequestQueueUrl"
            ),
            Outcome::fail(
                "these credentials may not send to it (AccessDenied: words)",
                "allow sqs:SendMessage on http://q/requests (the stack's ConnectorPolicyArn does)",
            )
        );
    }
}
