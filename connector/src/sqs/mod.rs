//! The sqs transport (DESIGN §5): requests go to one queue, the function
//! answers on another.
//!
//! * [`requests`]: request envelopes onto the request queue, batched under
//!   load, retried on errors, each confirmed to its sender (or refused
//!   within the bot timeout).
//! * [`replies`]: long-polls the reply queue while the XMPP link is up and
//!   deletes a reply only once its stanzas are written to the stream.
//!
//! AWS settings come only from the SDK's standard chain (environment,
//! profile, role; `AWS_ENDPOINT_URL` for a local server).

mod calls;
pub mod replies;
pub mod requests;

pub use calls::{SqsStats, client, is_fifo};
pub use replies::ReplyPoller;
pub use requests::RequestSender;
