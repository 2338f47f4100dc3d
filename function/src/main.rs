//! `bootstrap`: the Lambda function with the built-in bots, chosen by `BOT`
//! (`proxy` to `COMPONENT_POST_URL`, or `echo`).

use std::process::ExitCode;
use xmpp_lambda_function::{BuiltinBot, init_logging, run};

// One thread: a Lambda gets a fraction of a core, and a single-threaded
// runtime starts faster.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    init_logging();
    let bot = match BuiltinBot::from_env() {
        Ok(bot) => bot,
        Err(error) => {
            tracing::error!("cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    tracing::debug!(bot = bot.name(), "starting");
    match run(bot).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("the Lambda runtime stopped: {error}");
            ExitCode::FAILURE
        }
    }
}
