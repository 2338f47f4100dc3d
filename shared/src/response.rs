//! What came back from the bot: the HTTP outcome the reply rules work on.

use serde::{Deserialize, Serialize};

/// The bot's HTTP answer, captured verbatim, or the lack of one.
///
/// The same shape travels in the reply envelope (§5), so the connector applies
/// the reply rules to an HTTP answer and to a queued one alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotResponse {
    /// The HTTP status; `0` means no response at all (connect failure,
    /// timeout), which maps to its own error row.
    pub status: u16,
    /// The `Content-Type` header as sent, if any: a reply is only built from
    /// a JSON content type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The response body as text (lossily decoded if it was not UTF-8).
    #[serde(default)]
    pub body: String,
}

impl BotResponse {
    /// No response: the bot could not be reached or did not answer in time.
    pub fn no_response() -> Self {
        BotResponse {
            status: 0,
            content_type: None,
            body: String::new(),
        }
    }

    /// A JSON answer with status 200, as the built-in bots give.
    pub fn json(body: impl Into<String>) -> Self {
        BotResponse {
            status: 200,
            content_type: Some("application/json".into()),
            body: body.into(),
        }
    }

    /// An answer from its raw parts; the body is decoded lossily.
    pub fn from_http(status: u16, content_type: Option<&str>, body: &[u8]) -> Self {
        BotResponse {
            status,
            content_type: content_type.map(str::to_owned),
            body: String::from_utf8_lossy(body).into_owned(),
        }
    }

    /// An answer from owned parts, as read from the network: a body that
    /// is UTF-8 (as JSON is) becomes the text without a copy; any other
    /// is decoded lossily.
    pub fn from_http_owned(status: u16, content_type: Option<String>, body: Vec<u8>) -> Self {
        let body = match String::from_utf8(body) {
            Ok(text) => text,
            Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
        };
        BotResponse {
            status,
            content_type,
            body,
        }
    }

    /// Whether the content type is JSON (`application/json`, parameters
    /// such as `; charset=utf-8` allowed, case-insensitive).
    pub fn is_json(&self) -> bool {
        has_media_type(self.content_type.as_deref(), &["application/json"])
    }

    /// Whether the bot took the request: it answered with a status below
    /// 300 (no response at all is not). Only then are delivery receipts
    /// and displayed markers sent (DESIGN §10).
    pub fn is_success(&self) -> bool {
        (100..300).contains(&self.status)
    }

    /// Whether this outcome should be tried again later (queue transport):
    /// no response, 429 and 5xx are passing; everything else is final.
    pub fn is_retryable(&self) -> bool {
        self.status == 0 || self.status == 429 || self.status >= 500
    }
}

/// Whether an answer with this status and content type is a stream of
/// replies (DESIGN §11): `200` with `application/x-ndjson` or
/// `application/jsonl`, one reply object per line, each sent as soon as
/// its line is complete.
pub fn is_reply_stream(status: u16, content_type: Option<&str>) -> bool {
    status == 200 && has_media_type(content_type, &["application/x-ndjson", "application/jsonl"])
}

/// Whether `content_type`'s media type (parameters aside, any case) is
/// one of `media_types`.
fn has_media_type(content_type: Option<&str>, media_types: &[&str]) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|media| {
            let media = media.trim();
            media_types
                .iter()
                .any(|wanted| media.eq_ignore_ascii_case(wanted))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_type(ct: Option<&str>) -> BotResponse {
        BotResponse::from_http(200, ct, b"{}")
    }

    #[test]
    fn owned_parts_read_as_the_borrowed_ones() {
        for body in [
            &b"{\"body\":\"hi\"}"[..],
            b"caf\xc3\xa9",
            b"bad \xff byte",
            b"",
        ] {
            assert_eq!(
                BotResponse::from_http_owned(200, Some("application/json".into()), body.to_vec()),
                BotResponse::from_http(200, Some("application/json"), body)
            );
        }
    }

    #[test]
    fn json_content_types() {
        assert!(with_type(Some("application/json")).is_json());
        assert!(with_type(Some("application/json; charset=utf-8")).is_json());
        assert!(with_type(Some("Application/JSON ;charset=UTF-8")).is_json());
        assert!(!with_type(Some("text/plain")).is_json());
        assert!(!with_type(Some("application/jsonp")).is_json());
        assert!(!with_type(None).is_json());
    }

    #[test]
    fn reply_streams_are_ndjson_or_jsonl_with_200() {
        assert!(is_reply_stream(200, Some("application/x-ndjson")));
        assert!(is_reply_stream(
            200,
            Some("application/jsonl; charset=utf-8")
        ));
        assert!(is_reply_stream(200, Some("Application/X-NDJSON")));
        assert!(!is_reply_stream(201, Some("application/x-ndjson")));
        assert!(!is_reply_stream(200, Some("application/json")));
        assert!(!is_reply_stream(200, Some("application/x-ndjsonx")));
        assert!(!is_reply_stream(200, None));
    }

    #[test]
    fn retryable_outcomes() {
        assert!(BotResponse::no_response().is_retryable());
        for status in [429, 500, 502, 503, 504] {
            assert!(BotResponse::from_http(status, None, b"").is_retryable());
        }
        for status in [200, 204, 400, 403, 404] {
            assert!(!BotResponse::from_http(status, None, b"").is_retryable());
        }
    }

    #[test]
    fn success_is_an_answer_below_300() {
        assert!(!BotResponse::no_response().is_success());
        for status in [200, 202, 204, 299] {
            assert!(
                BotResponse::from_http(status, None, b"").is_success(),
                "{status}"
            );
        }
        for status in [300, 304, 400, 429, 500, 503] {
            assert!(
                !BotResponse::from_http(status, None, b"").is_success(),
                "{status}"
            );
        }
    }

    #[test]
    fn non_utf8_body_is_decoded_lossily() {
        let response = BotResponse::from_http(200, None, b"ok \xff");
        assert_eq!(response.body, "ok \u{fffd}");
    }
}
