//! What every request to a bot says about itself.

/// The content type of every request to a bot.
pub const JSON: &str = "application/json";
/// The user agent of every request to a bot.
pub const USER_AGENT: &str = concat!("xmpp-lambda-connector/", env!("CARGO_PKG_VERSION"));
