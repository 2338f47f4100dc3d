//! `make demo` must keep working: run scripts/demo.sh once (DEMO_ONCE=1)
//! and check the "hello" round trip it prints.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use xmpp_lambda_tests::{Result, free_port, workspace_bin, workspace_root};

#[tokio::test]
async fn the_demo_script_says_hello_and_gets_the_echo() -> Result<()> {
    let mut script = Command::new("bash");
    script
        .arg(workspace_root().join("scripts").join("demo.sh"))
        .env("DEMO_ONCE", "1")
        .env("DEMO_C2S_PORT", free_port().to_string())
        .env("CONNECTOR_BIN", workspace_bin("xmpp-lambda-connector"))
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
    Ok(())
}
