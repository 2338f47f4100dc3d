//! A bot of your own in a few lines: it answers every chat message with its
//! text reversed, and stays silent for messages without a body (such as
//! typing notifications).
//!
//! Run it locally with `cargo lambda watch --example reverse_bot`, deploy it
//! like the built-in function (its binary is the Lambda's `bootstrap`).

use xmpp_lambda_function::{Bot, BotResponse, Request, text_reply};

struct ReverseBot;

impl Bot for ReverseBot {
    async fn answer(&self, request: &Request) -> BotResponse {
        match &request.body {
            Some(body) => text_reply(&body.chars().rev().collect::<String>()),
            // 204: answered, nothing to say.
            None => BotResponse::from_http(204, None, b""),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), xmpp_lambda_function::Error> {
    xmpp_lambda_function::run(ReverseBot).await
}
