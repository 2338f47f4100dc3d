//! The command line: usage, and refusals before anything is polled.

use std::process::Command;

fn trigger(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_xmpp-lambda-sqs-trigger"))
        .args(args)
        .env_remove("REQUEST_QUEUE_URL")
        .output()
        .expect("the trigger runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

#[test]
fn help_prints_the_usage() {
    let (code, text) = trigger(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(
        text.starts_with("usage: xmpp-lambda-sqs-trigger --queue-url URL"),
        "{text}"
    );
    assert!(text.contains("--batch-size N"), "{text}");
}

#[test]
fn bad_arguments_are_refused_with_the_usage() {
    for (args, message) in [
        (vec![], "--queue-url (or REQUEST_QUEUE_URL) is required"),
        (vec!["--queue-url"], "--queue-url needs a value"),
        (
            vec!["--batch-size", "ten"],
            r#"--batch-size "ten" is not a whole number"#,
        ),
        (vec!["--frobnicate", "1"], "unknown option --frobnicate"),
    ] {
        let (code, text) = trigger(&args);
        assert_eq!(code, Some(2), "{args:?}: {text}");
        assert!(
            text.starts_with(&format!("xmpp-lambda-sqs-trigger: {message}")),
            "{args:?}: {text}"
        );
        assert!(text.contains("usage:"), "{text}");
    }
}
