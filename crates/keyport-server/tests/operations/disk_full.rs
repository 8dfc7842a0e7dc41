//! SQLite on a disk that fills up, on the real binary: writes past the
//! limit are refused as UNAVAILABLE (retry later) with the cause logged,
//! reads go on, nothing is half-written, and once space is freed the same
//! process writes again; the file passes an integrity check afterwards.

use std::path::Path;

use keyport_proto::v1::{
    GetSessionRequest, SignInRequest, SignUpRequest, session_service_client::SessionServiceClient,
    user_service_client::UserServiceClient,
};
use tonic::{Code, Status, transport::Channel};
use tonic_types::StatusExt;

use crate::{TestResult, process::Served};

const PASSWORD: &str = "a-long-unusual-passphrase-42";
/// Room for a few sign-ups above the freshly migrated files.
const HEADROOM_KIB: u64 = 256;

fn reason(status: &Status) -> String {
    status.get_error_details().error_info().map(|info| info.reason.clone()).unwrap_or_default()
}

/// The largest file in `dir`, in KiB.
fn largest_file_kib(dir: &Path) -> std::io::Result<u64> {
    let mut largest = 0;
    for entry in std::fs::read_dir(dir)? {
        largest = largest.max(entry?.metadata()?.len());
    }
    Ok(largest.div_ceil(1024))
}

async fn sign_up(channel: &Channel, email: &str) -> Result<String, Status> {
    let request = SignUpRequest { email: email.into(), password: PASSWORD.into(), name: String::new() };
    let grant = UserServiceClient::new(channel.clone()).sign_up(request).await?.into_inner().session;
    Ok(grant.map(|grant| grant.token).unwrap_or_default())
}

async fn sign_in(channel: &Channel, email: &str) -> Result<(), Status> {
    let request = SignInRequest { email: email.into(), password: PASSWORD.into() };
    SessionServiceClient::new(channel.clone()).sign_in(request).await.map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_full_disk_refuses_writes_clearly_and_half_writes_nothing() -> TestResult {
    let data = tempfile::tempdir()?;
    // Made and migrated with room to spare, then served on a nearly full disk.
    let migrated = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyport"))
        .arg("--data-dir")
        .arg(data.path())
        .arg("migrate")
        .env_remove("KEYPORT_CONFIG")
        .output()
        .await?;
    assert!(migrated.status.success(), "{migrated:?}");
    let limit = largest_file_kib(data.path())? + HEADROOM_KIB;
    let served = Served::start_limited(data.path(), limit).await?;
    let channel = served.channel().await?;

    let (mut acknowledged, mut refused) = (Vec::new(), Vec::new());
    for n in 0..5_000 {
        let email = format!("u{n}@example.com");
        match sign_up(&channel, &email).await {
            Ok(token) => acknowledged.push((email, token)),
            Err(status) => {
                assert_eq!((status.code(), reason(&status).as_str()), (Code::Unavailable, "UNAVAILABLE"), "{status:?}");
                refused.push(email);
                if refused.len() == 3 {
                    break;
                }
            }
        }
    }
    assert!(!acknowledged.is_empty(), "the headroom took some writes");
    assert_eq!(refused.len(), 3, "the disk never filled in {} sign-ups", acknowledged.len());

    // Reads go on while the disk is full.
    let (first, token) = &acknowledged[0];
    let request = GetSessionRequest { token: token.clone() };
    SessionServiceClient::new(channel.clone()).get_session(request).await?;

    // Space freed: the same process writes again, with nothing half-done
    // by the refused calls (an account either is whole or is not there).
    served.lift_file_limit().await?;
    sign_up(&channel, "after@example.com").await?;
    for (email, _) in &acknowledged {
        sign_in(&channel, email).await.map_err(|status| format!("{email} lost: {status:?}"))?;
    }
    for email in &refused {
        match sign_up(&channel, email).await {
            Ok(_) => {}
            Err(status) if reason(&status) == "EMAIL_TAKEN" => {
                sign_in(&channel, email).await.map_err(|status| format!("{email} is half-written: {status:?}"))?;
            }
            Err(status) => return Err(format!("{email}: {status:?}").into()),
        }
    }
    sign_in(&channel, first).await?;
    served.kill().await?;

    // A backup runs SQLite's integrity check on the file.
    let copy = data.path().join("check.db");
    let backup = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyport"))
        .arg("--data-dir")
        .arg(data.path())
        .arg("backup")
        .arg(&copy)
        .env_remove("KEYPORT_CONFIG")
        .output()
        .await?;
    assert!(backup.status.success(), "{backup:?}");
    let expected = acknowledged.len() + refused.len() + 1;
    let report = String::from_utf8(backup.stdout)?;
    assert!(report.contains(&format!(" {expected} users")), "{report}");
    Ok(())
}
