//! `keyport health`, the probe of container health checks.

use std::process::Output;

use crate::{TestResult, process::Served};

fn health(listen: &str) -> std::io::Result<Output> {
    std::process::Command::new(env!("CARGO_BIN_EXE_keyport"))
        .args(["--listen", listen, "health"])
        .env_remove("KEYPORT_CONFIG")
        .output()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_exits_zero_while_serving_and_one_when_nothing_answers() -> TestResult {
    let data = tempfile::tempdir()?;
    let served = Served::start(data.path(), &[]).await?;
    let address = served.grpc.to_string();
    let output = health(&address)?;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8(output.stdout)?.trim(), "SERVING");
    // A wildcard listen address is probed through loopback.
    let output = health(&format!("0.0.0.0:{}", served.grpc.port()))?;
    assert!(output.status.success(), "{output:?}");
    served.kill().await?;

    let output = health(&address)?;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(String::from_utf8(output.stderr)?.contains("cannot connect"));
    Ok(())
}
