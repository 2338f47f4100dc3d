//! The stack's IAM policies, exactly as `template.yaml` writes them, are
//! enough: with moto enforcing IAM, the connector runs on `ConnectorPolicy`
//! alone, and the function and its SQS event source (the local trigger) on
//! the function role's policy alone, and a message makes the round trip.
//! (moto checks actions, not resources or conditions; `scripts/
//! lint_template.py` checks that the policy allows nothing else.)

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;
use xmpp_lambda_tests::{
    Connector, LambdaFunction, Moto, Prosody, Result, SqsTrigger, XmppServer, body_of, login,
    workspace_root,
};

const WAIT: Duration = Duration::from_secs(20);

/// The connector's and the function's policies from template.yaml, with
/// these queues' ARNs.
async fn template_policies(requests_arn: &str, replies_arn: &str) -> Result<Value> {
    let root = workspace_root();
    let output = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("scripts/lint_template.py"))
        .arg(root.join("template.yaml"))
        .args(["--policies", requests_arn, replies_arn])
        .stdin(Stdio::null())
        .output()
        .await?;
    if !output.status.success() {
        return Err(format!(
            "lint_template.py --policies failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

#[tokio::test]
async fn the_template_policies_are_enough_for_a_round_trip() -> Result<()> {
    let prosody = Prosody::start().await?;
    let moto = Moto::start().await?;
    let requests = moto.create_queue_with("requests.fifo", &[]).await?;
    let replies = moto
        .create_queue_with("replies.fifo", &[("ContentBasedDeduplication", "true")])
        .await?;
    let policies = template_policies(
        &moto.queue_attribute(&requests, "QueueArn").await?,
        &moto.queue_attribute(&replies, "QueueArn").await?,
    )
    .await?;
    let (connector_key, connector_secret) = moto
        .create_iam_user("connector", &policies["connector"].to_string())
        .await?;
    let (function_key, function_secret) = moto
        .create_iam_user("function", &policies["function"].to_string())
        .await?;
    moto.enforce_iam().await?;
    // IAM is enforced from now on: the harness's own keys are refused.
    assert!(
        moto.queue_depth(&requests).await.is_err(),
        "moto still answers unknown keys"
    );

    let as_function = [
        ("AWS_ACCESS_KEY_ID", function_key.as_str()),
        ("AWS_SECRET_ACCESS_KEY", function_secret.as_str()),
    ];
    let mut function_env = vec![("BOT", "echo"), ("MAX_RECEIVE_COUNT", "5")];
    function_env.extend(as_function);
    let function = LambdaFunction::start(&moto, &replies, &function_env).await?;
    let _trigger = SqsTrigger::start_with(&moto, &requests, &function, 10, &as_function).await?;

    let mut env = moto.sqs_transport_env(&requests, &replies);
    env.retain(|(key, _)| !matches!(*key, "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY"));
    env.push(("AWS_ACCESS_KEY_ID", connector_key));
    env.push(("AWS_SECRET_ACCESS_KEY", connector_secret));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut connector = Connector::start_for(&prosody, &env).await?;
    connector
        .wait_for_log("component link established", WAIT)
        .await?;

    let mut alice = login(&prosody, "alice").await?;
    let echo = format!("echo@{}", prosody.component_domain());
    alice.send_message(&echo, "hello").await?;
    let reply = alice.expect_message("the echo", WAIT).await?;
    assert_eq!(body_of(&reply).as_deref(), Some("Did you say hello?"));
    // The connector's own count when it stops: the request was sent, the
    // reply received and deleted, and not one call was refused.
    connector.terminate();
    connector.wait_exit(WAIT).await?;
    let calls = connector.wait_for_log("sqs calls", WAIT).await?;
    let logs = connector.logs();
    for count in ["requests_sent=1", "replies_received=1", "replies_deleted=1"] {
        assert!(calls.contains(count), "{count} in {calls}");
    }
    let refused: Vec<&String> = logs
        .iter()
        .filter(|line| line.contains("AccessDenied") || line.contains("not authorized"))
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    Ok(())
}
