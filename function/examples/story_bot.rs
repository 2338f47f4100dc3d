//! A bot whose answer appears while it is being written, the way a bot in
//! front of a language model should answer: word by word, the message
//! growing in place (XEP-0308 corrections), a new message for each
//! paragraph. The "model" here is a stand-in that needs no network: it
//! tells a short story about what it was sent, one word per
//! `STORY_WORD_DELAY_MS` (default 150), as a model yields tokens.
//!
//! Behind a Function URL with `InvokeMode: RESPONSE_STREAM` (the template's
//! `FunctionUrlInvokeMode`), each word reaches the person as it is written;
//! over SQS each line is a reply envelope of its own (the function sends at
//! most one correction per `COMPONENT_STREAM_EDIT_INTERVAL`, as the
//! connector would); behind a buffered URL the person gets the finished
//! story.
//!
//! Run it locally with
//! `FUNCTION_URL_INVOKE_MODE=RESPONSE_STREAM cargo lambda watch --example story_bot`.

use std::time::Duration;
use xmpp_lambda_function::{
    Bot, BotResponse, Reply, ReplyWriter, Request, no_reply, replies, text_reply,
};

/// A stand-in for a language model: the answer to a prompt, one word at a
/// time, each after the model's thinking time.
struct Model {
    /// How long each word takes.
    word_delay: Duration,
}

impl Model {
    /// The answer to `prompt`, paragraph by paragraph.
    fn answer(&self, prompt: &str) -> Vec<String> {
        let subject = prompt.trim();
        vec![
            format!(
                "Once upon a time someone sent a bot the words \u{201c}{subject}\u{201d}, \
                 and the bot began to write."
            ),
            "It wrote one word at a time, the way a language model does, and every \
             word appeared as soon as it existed, so nobody wondered whether the bot \
             was still there."
                .to_owned(),
            "The end.".to_owned(),
        ]
    }

    /// Waits as long as the next word takes to think of.
    async fn think(&self) {
        tokio::time::sleep(self.word_delay).await;
    }
}

struct StoryBot {
    /// What writes the answer.
    model: Model,
}

impl StoryBot {
    fn from_env() -> StoryBot {
        let delay_ms = std::env::var("STORY_WORD_DELAY_MS")
            .ok()
            .and_then(|ms| ms.trim().parse().ok())
            .unwrap_or(150);
        StoryBot {
            model: Model {
                word_delay: Duration::from_millis(delay_ms),
            },
        }
    }
}

impl Bot for StoryBot {
    /// The whole story at once, a message per paragraph, for whoever asks
    /// without a stream.
    async fn answer(&self, request: &Request) -> BotResponse {
        let Some(prompt) = request.body.as_deref() else {
            return no_reply();
        };
        let paragraphs = self.model.answer(prompt).into_iter().map(Reply::text);
        replies(paragraphs).unwrap_or_else(|error| text_reply(&error.to_string()))
    }

    /// The story as it is written: each paragraph one message that grows a
    /// word at a time.
    async fn answer_streamed(&self, request: &Request, writer: &mut ReplyWriter) -> BotResponse {
        // Typing notifications and receipts carry no body: nothing to say.
        let Some(prompt) = request.body.as_deref() else {
            return no_reply();
        };
        for paragraph in self.model.answer(prompt) {
            let mut text = String::new();
            for word in paragraph.split(' ') {
                self.model.think().await;
                // The paragraph's first word starts a message; every later
                // one corrects it to the text so far.
                let line = if text.is_empty() {
                    text.push_str(word);
                    Reply::text(&text)
                } else {
                    text.push(' ');
                    text.push_str(word);
                    Reply::text(&text).replacing()
                };
                if writer.send(line).await.is_err() {
                    // Nobody reads any more: stop writing.
                    return no_reply();
                }
            }
        }
        no_reply()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), xmpp_lambda_function::Error> {
    xmpp_lambda_function::run(StoryBot::from_env()).await
}
