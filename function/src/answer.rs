//! Asking the bot within the invocation's time.

use crate::bot::Bot;
use std::time::Duration;
use tokio::time::Instant;
use xmpp_lambda_shared::{BotResponse, Request};

/// Asks the bot, giving up at `deadline` (then: no response, which the
/// reply rules and the retry policy already handle).
pub(crate) async fn answer_by<B: Bot>(
    bot: &B,
    request: &Request,
    deadline: Option<Instant>,
) -> BotResponse {
    let Some(deadline) = deadline else {
        return bot.answer(request).await;
    };
    match tokio::time::timeout_at(deadline, bot.answer(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(from = %request.from, "the bot did not answer before the function's deadline");
            BotResponse::no_response()
        }
    }
}

/// `deadline` moved `reserve` earlier (but not into the past), so the
/// handler still has time to report after the bot's time is up.
pub(crate) fn reserve(deadline: Option<Instant>, reserve: Duration) -> Option<Instant> {
    deadline.map(|deadline| {
        deadline
            .checked_sub(reserve)
            .filter(|at| *at > Instant::now())
            .unwrap_or_else(Instant::now)
    })
}
