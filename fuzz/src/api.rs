//! The connector's API (`COMPONENT_API_LISTEN`): any bytes on one
//! connection are answered with well-formed HTTP or the connection is
//! closed, within the read timeouts, without a panic; `/v1/send` writes
//! only sendable stanzas, only with the token, and says how many.

use crate::input::Input;
use crate::sendable::assert_sendable;
use xmpp_lambda_connector::fuzzing::{API_DOMAIN, API_MAX_HELD, API_TOKEN, api_exchange};

/// Checks one case: flags (bit 0: the link is up), then the bytes the
/// client sends before it waits for the API to close the connection.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let link_up = input.byte() & 1 == 1;
    let request = input.rest();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let exchange = runtime.block_on(api_exchange(request, link_up));
    let shown = || String::from_utf8_lossy(request);
    assert!(!exchange.panicked, "serving {:?} panicked", shown());
    assert!(
        exchange.held <= API_MAX_HELD,
        "{:?} held the connection for {:?}",
        shown(),
        exchange.held
    );
    let answers = answers(&exchange.answer);
    let accepted: usize = answers
        .iter()
        .filter(|answer| answer.status == 202)
        .map(|answer| answer.ids)
        .sum();
    assert_eq!(
        accepted,
        exchange.stanzas.len(),
        "202 answers name {accepted} ids, the link got {} stanzas",
        exchange.stanzas.len()
    );
    if !exchange.stanzas.is_empty() {
        let token = API_TOKEN.as_bytes();
        assert!(
            request.windows(token.len()).any(|window| window == token),
            "stanzas written without the token"
        );
        assert!(link_up, "stanzas written while the link is down");
    }
    for stanza in &exchange.stanzas {
        assert_sendable(stanza, API_DOMAIN);
    }
}

/// One answer the API wrote.
struct Answer {
    status: u16,
    /// How many ids a `202` names.
    ids: usize,
}

/// The answers in `bytes`: each must be a whole HTTP/1.1 answer with a
/// status HTTP defines and a body its `Content-Length` frames (the API
/// writes no other).
fn answers(mut bytes: &[u8]) -> Vec<Answer> {
    let mut answers = Vec::new();
    while !bytes.is_empty() {
        let mut fields = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut fields);
        let head = match response.parse(bytes) {
            Ok(httparse::Status::Complete(head)) => head,
            other => panic!(
                "not an HTTP answer ({other:?}): {:?}",
                String::from_utf8_lossy(bytes)
            ),
        };
        let status = response.code.unwrap_or_default();
        if status == 100 {
            // `100 Continue`, to a request that said `Expect:
            // 100-continue` (RFC 9110 §10.1.1): an interim answer, with no
            // body, before the final one.
            bytes = &bytes[head..];
            assert!(!bytes.is_empty(), "no final answer after a 100 Continue");
            continue;
        }
        assert!((200..600).contains(&status), "the status {status}");
        let length = response
            .headers
            .iter()
            .find(|field| field.name.eq_ignore_ascii_case("content-length"))
            .and_then(|field| std::str::from_utf8(field.value).ok()?.parse::<usize>().ok())
            .unwrap_or_else(|| {
                panic!(
                    "an answer without a length: {:?}",
                    String::from_utf8_lossy(bytes)
                )
            });
        let body = bytes
            .get(head..head + length)
            .unwrap_or_else(|| panic!("a cut answer: {:?}", String::from_utf8_lossy(bytes)));
        let ids = if status == 202 {
            let value: serde_json::Value =
                serde_json::from_slice(body).expect("a 202 body is JSON");
            value["ids"].as_array().map_or(0, Vec::len)
        } else {
            0
        };
        answers.push(Answer { status, ids });
        bytes = &bytes[head + length..];
    }
    answers
}
