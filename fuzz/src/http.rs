//! The bot's HTTP/1.1 answer, read from reads of any size, against an
//! independent reference reader written from RFC 9112's grammar: the same
//! status, content type, body and reuse decision, or both refusing, or
//! both waiting for bytes that have not come.

use crate::input::{Input, read_sizes};
use xmpp_lambda_connector::fuzzing::{AnswerOutcome, read_answer, reference_answer};

/// Body limits the exchange is run with: tiny ones cut bodies anywhere.
const MAX_BODIES: [usize; 4] = [4, 16, 1024, 64 * 1024];

/// Checks one case: a read-size seed, then flags (bit 0: the bot closes
/// the connection after the bytes; bits 1–2: the body limit), then the
/// bytes the bot sends.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let seed = input.byte();
    let flags = input.byte();
    let bytes = input.rest();
    let closed = flags & 1 == 1;
    let max_body = MAX_BODIES[usize::from(flags >> 1) % MAX_BODIES.len()];
    let sizes = read_sizes(seed, bytes.len(), 8 * 1024);
    let ours = read_answer(bytes, &sizes, closed, max_body);
    if let AnswerOutcome::Answer { body, .. } = &ours {
        assert!(body.len() <= max_body, "a body past the limit");
    }
    let expected = reference_answer(bytes, closed, max_body);
    assert_eq!(
        ours,
        expected,
        "{:?} (closed: {closed}, limit {max_body}, reads {sizes:?})",
        String::from_utf8_lossy(bytes)
    );
}
