//! `make demo` and `make demo-sqs` must keep working: run scripts/demo.sh
//! once (DEMO_ONCE=1) on each path and check the "hello" round trip it
//! prints.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use xmpp_lambda_tests::{Result, free_port, workspace_bin, workspace_root};

#[tokio::test]
async fn the_demo_script_says_hello_and_gets_the_echo() -> Result<()> {
    run_demo(&[]).await
}

#[tokio::test]
async fn the_sqs_demo_says_hello_through_the_queues_and_the_function() -> Result<()> {
    let stdout = run_demo_output(&[
        ("DEMO_TRANSPORT", "sqs".into()),
        ("BOOTSTRAP_BIN", workspace_bin("bootstrap").into()),
        (
            "SQS_TRIGGER_BIN",
            workspace_bin("xmpp-lambda-sqs-trigger").into(),
        ),
    ])
    .await?;
    assert!(stdout.contains("transport sqs"), "{stdout}");
    Ok(())
}

/// Runs the demo once with `env` and checks the round trip it prints.
async fn run_demo(env: &[(&str, std::ffi::OsString)]) -> Result<()> {
    run_demo_output(env).await.map(|_| ())
}

/// Runs the demo once with `env`, checks the round trip it prints and
/// returns its standard output.
async fn run_demo_output(env: &[(&str, std::ffi::OsString)]) -> Result<String> {
    let mut script = Command::new("bash");
    script
        .arg(workspace_root().join("scripts").join("demo.sh"))
        .env("DEMO_ONCE", "1")
        .env("DEMO_C2S_PORT", free_port().to_string())
        .env("CONNECTOR_BIN", workspace_bin("xmpp-lambda-connector"))
        .envs(env.iter().map(|(key, value)| (*key, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: on timeout the whole demo gets SIGTERM and
        // the script's trap stops what it started.
        .process_group(0)
        .kill_on_drop(true);
    let child = script.spawn()?;
    let pid = child.id().ok_or("the demo exited at once")?;
    let output = match tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await
    {
        Ok(output) => output?,
        Err(_) => {
            // SAFETY: kill(2) on our own child's process group.
            unsafe {
                libc::kill(-(pid as libc::pid_t), libc::SIGTERM);
            }
            return Err("the demo did not finish within 60 s".into());
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "demo failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("alice@localhost -> echo@bot.localhost: hello"),
        "{stdout}"
    );
    assert!(
        stdout.contains("echo@bot.localhost -> alice@localhost: Did you say hello?"),
        "{stdout}"
    );
    // The bot answers a mention in the demo room.
    assert!(
        stdout.contains("bot in demo@conference.localhost: Did you say bot: hello room?"),
        "{stdout}"
    );
    // The push it shows works as printed.
    assert!(
        stdout.contains("curl -sS -H 'Authorization: Bearer "),
        "{stdout}"
    );
    assert!(stdout.contains("-> 202 Accepted {\"ids\":[\""), "{stdout}");
    Ok(stdout.into_owned())
}
