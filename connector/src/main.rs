//! The `xmpp-lambda-connector` program (see the library's documentation).

fn main() -> std::process::ExitCode {
    xmpp_lambda_connector::main()
}
