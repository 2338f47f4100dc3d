//! Benchmark tools for xmpp-lambda: an XMPP client load generator that can
//! aim at any JID, a fast HTTP echo bot, a trivial echo component (the
//! ceiling any component could reach), a Lambda init-time meter and an SQS
//! call counter.

pub mod args;
pub mod echo_bot;
pub mod echo_component;
pub mod http_load;
pub mod lambda_init;
pub mod loadgen;
pub mod scanner;
pub mod server;
pub mod soak;
pub mod sqs_counter;
pub mod stats;
pub mod xmpp;
