//! Benchmark tools for xmpp-lambda: an XMPP client load generator that can
//! aim at any JID, a fast HTTP echo bot, and a Lambda init-time meter.

pub mod args;
pub mod echo_bot;
pub mod http_load;
pub mod lambda_init;
pub mod loadgen;
pub mod scanner;
pub mod stats;
pub mod xmpp;
