//! `keyport admin ...` as an operator runs it: the real binary on an
//! embedded SQLite database, before the server starts (the first admin),
//! while it serves (that admin signs in and lists users over gRPC), and
//! after it stopped; with the refusals of bad input.

use std::{
    io::Write,
    net::TcpListener,
    path::Path,
    process::{Command, Output, Stdio},
    time::Duration,
};

use keyport_proto::v1::{
    ListUsersRequest, SignInRequest, admin_service_client::AdminServiceClient,
    session_service_client::SessionServiceClient, sign_in_response::Outcome,
};
use tonic::{Request, transport::Channel};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const PASSWORD: &str = "a-long-unusual-passphrase-42";

/// Runs `keyport admin <args>` on the database in `data_dir`, feeding `stdin`.
fn admin(data_dir: &Path, args: &[&str], stdin: &str) -> std::io::Result<Output> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyport"))
        .arg("--data-dir")
        .arg(data_dir)
        .arg("admin")
        .args(args)
        .env_remove("KEYPORT_CONFIG")
        .env("KEYPORT_HASHING__MEMORY_KIB", "1024")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes())?;
    }
    child.wait_with_output()
}

/// The command's standard output, after checking it succeeded.
fn succeeded(output: std::io::Result<Output>) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let output = output?;
    let (stdout, stderr) = (String::from_utf8(output.stdout)?, String::from_utf8(output.stderr)?);
    assert!(output.status.success(), "exit {:?}: {stdout} {stderr}", output.status);
    Ok(stdout)
}

/// The command's standard error, after checking it failed.
fn failed(output: std::io::Result<Output>) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let output = output?;
    let stderr = String::from_utf8(output.stderr)?;
    assert!(!output.status.success(), "succeeded: {}", String::from_utf8_lossy(&output.stdout));
    assert!(output.stdout.is_empty(), "a failure prints nothing on stdout");
    Ok(stderr)
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn sign_in(channel: Channel, email: &str) -> Result<String, tonic::Status> {
    let request = SignInRequest { email: email.into(), password: PASSWORD.into() };
    match SessionServiceClient::new(channel).sign_in(request).await?.into_inner().outcome {
        Some(Outcome::Session(grant)) => Ok(grant.token),
        other => Err(tonic::Status::internal(format!("no session: {other:?}"))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstraps_the_first_admin_and_administers_with_the_server_up_or_down() -> TestResult {
    let data = tempfile::tempdir()?;
    let dir = data.path();

    // Before the server ever ran: the first admin.
    let created = succeeded(admin(
        dir,
        &["create-user", "--email", "Root@Example.com", "--role", "admin", "--password-stdin", "--email-verified"],
        &format!("{PASSWORD}\n"),
    ))?;
    assert!(created.starts_with("created ") && created.contains("root@example.com roles=admin,user"), "{created}");

    let port = free_port()?;
    let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyport"))
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", &format!("127.0.0.1:{port}"), "serve"])
        .env("KEYPORT_HASHING__MEMORY_KIB", "1024")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let channel = {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match Channel::from_shared(endpoint.clone())?.connect().await {
                Ok(channel) => break channel,
                Err(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(error) => return Err(error.into()),
            }
        }
    };
    let root = sign_in(channel.clone(), "root@example.com").await?;
    let mut request = Request::new(ListUsersRequest::default());
    request.metadata_mut().insert("authorization", format!("Bearer {root}").parse()?);
    let listed = AdminServiceClient::new(channel.clone()).list_users(request).await?.into_inner();
    assert_eq!(listed.users.len(), 1, "the bootstrapped admin may list users");

    // While it serves.
    succeeded(admin(dir, &["create-user", "--email", "ann@example.com", "--name", "Ann"], ""))?;
    let granted = succeeded(admin(dir, &["grant", "--email", "ann@example.com", "--role", "admin"], ""))?;
    assert!(granted.contains("roles=admin,user"), "{granted}");
    let revoked = succeeded(admin(dir, &["revoke", "--email", "ann@example.com", "--role", "admin"], ""))?;
    assert!(revoked.contains("roles=user"), "{revoked}");
    let banned =
        succeeded(admin(dir, &["ban", "--email", "ann@example.com", "--reason", "spam", "--hours", "24"], ""))?;
    assert!(banned.starts_with("banned "), "{banned}");
    let listed = succeeded(admin(dir, &["list-users", "--banned"], ""))?;
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains("ann@example.com") && listed.ends_with(" banned\n"), "{listed}");
    succeeded(admin(dir, &["unban", "--email", "ann@example.com"], ""))?;
    assert_eq!(succeeded(admin(dir, &["list-users", "--banned"], ""))?, "");
    let admins = succeeded(admin(dir, &["list-users", "--role", "admin"], ""))?;
    assert_eq!(admins.lines().count(), 1, "{admins}");

    // Bad input: a clear message, a failing exit, nothing written.
    for (args, stdin, expected) in [
        (&["grant", "--email", "nobody@example.com", "--role", "admin"][..], "", "no user has the email"),
        (&["grant", "--email", "ann@example.com", "--role", "superuser"][..], "", "invalid argument"),
        (&["ban", "--email", "ann@example.com", "--reason", ""][..], "", "invalid argument"),
        (&["create-user", "--email", "ann@example.com"][..], "", "email is already taken"),
        (&["create-user", "--email", "not an email"][..], "", "invalid argument"),
        (&["create-user", "--email", "bob@example.com", "--password-stdin"][..], "short\n", "at least"),
        (&["list-users", "--limit", "100000"][..], "", "invalid argument"),
    ] {
        let stderr = failed(admin(dir, args, stdin))?;
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let everyone = succeeded(admin(dir, &["list-users"], ""))?;
    assert_eq!(everyone.lines().count(), 2, "nothing half-written: {everyone}");

    // After the server stopped.
    server.start_kill()?;
    server.wait().await?;
    let everyone = succeeded(admin(dir, &["list-users", "--email-prefix", "ROOT"], ""))?;
    assert!(everyone.contains("root@example.com roles=admin,user"), "{everyone}");
    Ok(())
}
