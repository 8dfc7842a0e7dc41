//! `keyport backup` and `keyport restore` on the real binary: a backup
//! taken under write load holds every sign-up acknowledged before it began,
//! restores into a server where those users sign in, and bad paths are
//! refused with nothing overwritten or half-made.

use std::{
    path::Path,
    process::Output,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use keyport_proto::v1::{
    SignInRequest, SignUpRequest, session_service_client::SessionServiceClient, user_service_client::UserServiceClient,
};
use tokio::time::Instant;

use crate::{TestResult, process::Served};

const PASSWORD: &str = "a-long-unusual-passphrase-42";
const WRITERS: usize = 4;

async fn keyport(data_dir: &Path, args: &[&str]) -> std::io::Result<Output> {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_keyport"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("KEYPORT_CONFIG")
        .output()
        .await
}

fn said(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

/// Waits until `acked` holds `count` writes acknowledged after `since`.
async fn wait_for_writes(acked: &Mutex<Vec<(String, Instant)>>, since: Instant, count: usize) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = acked.lock().map_err(|_| "poisoned")?.iter().filter(|(_, at)| *at > since).count();
        if done >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("only {done} writes acknowledged").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_write_load_holds_every_acknowledged_write_and_restores() -> TestResult {
    let root = tempfile::tempdir()?;
    let (live, restored, copy) = (root.path().join("live"), root.path().join("restored"), root.path().join("b.db"));
    let served = Served::start(&live, &[]).await?;
    let channel = served.channel().await?;

    // Sign-ups from several callers at once, each recorded once acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<(String, Instant)>::new()));
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (channel, stop, acked) = (channel.clone(), stop.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let mut users = UserServiceClient::new(channel);
            for n in 0.. {
                if stop.load(Ordering::Acquire) {
                    return Ok::<_, tonic::Status>(n);
                }
                let email = format!("w{writer}-{n}@example.com");
                let request = SignUpRequest { email: email.clone(), password: PASSWORD.into(), name: String::new() };
                users.sign_up(request).await?;
                acked.lock().map_err(|_| tonic::Status::internal("poisoned"))?.push((email, Instant::now()));
            }
            Ok(0)
        }));
    }
    let begun = Instant::now();
    wait_for_writes(&acked, begun, 20).await?;

    let started = Instant::now();
    let backup = keyport(&live, &["backup", copy.to_str().ok_or("path")?]).await?;
    let finished = Instant::now();
    // The load goes on past the backup, and the server keeps answering.
    wait_for_writes(&acked, finished, 10).await?;
    stop.store(true, Ordering::Release);
    for writer in writers {
        writer.await??;
    }
    assert!(backup.status.success(), "{}", said(&backup));
    let report = String::from_utf8(backup.stdout.clone())?;
    assert!(report.starts_with("backed up ") && report.contains(" users, schema m"), "{report}");
    assert!(report.contains("second-factor key"), "the report reminds of the key: {report}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&copy)?.permissions().mode() & 0o777, 0o600, "the backup is private");
    let before: Vec<String> =
        acked.lock().map_err(|_| "poisoned")?.iter().filter(|(_, at)| *at < started).map(|(e, _)| e.clone()).collect();
    assert!(before.len() >= 20);

    // Restored into a new data directory, served, and every user
    // acknowledged before the backup began signs in.
    let restore = keyport(&restored, &["restore", copy.to_str().ok_or("path")?]).await?;
    assert!(restore.status.success(), "{}", said(&restore));
    served.kill().await?;
    let again = Served::start(&restored, &[]).await?;
    let mut sessions = SessionServiceClient::new(again.channel().await?);
    for email in &before {
        let request = SignInRequest { email: email.clone(), password: PASSWORD.into() };
        sessions.sign_in(request).await.map_err(|e| format!("{email} lost by the backup: {e}"))?;
    }
    again.kill().await?;

    // Never over an existing file: the backup and the restored database stay as they were.
    let bytes = std::fs::read(&copy)?;
    let refused = keyport(&restored, &["backup", copy.to_str().ok_or("path")?]).await?;
    assert!(!refused.status.success() && said(&refused).contains("exists already"), "{}", said(&refused));
    assert_eq!(std::fs::read(&copy)?, bytes);
    let refused = keyport(&restored, &["restore", copy.to_str().ok_or("path")?]).await?;
    assert!(!refused.status.success() && said(&refused).contains("exists already"), "{}", said(&refused));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_backups_and_targets_are_refused_with_nothing_half_made() -> TestResult {
    let root = tempfile::tempdir()?;
    let path = |name: &str| root.path().join(name);
    let empty = path("empty.db");
    std::fs::write(&empty, b"")?;
    let garbage = path("garbage.db");
    std::fs::write(&garbage, b"this is not a database, only some text that goes on for a while")?;

    // A real backup, then a truncated copy of it.
    let live = path("live");
    let served = Served::start(&live, &[]).await?;
    let good = path("good.db");
    let made = keyport(&live, &["backup", good.to_str().ok_or("path")?]).await?;
    assert!(made.status.success(), "{}", said(&made));
    served.kill().await?;
    let whole = std::fs::read(&good)?;
    let truncated = path("truncated.db");
    std::fs::write(&truncated, &whole[..whole.len() / 2])?;
    let missing = path("missing.db");

    for (bad, why) in [
        (&empty, "not a usable Keyport backup"),
        (&garbage, "not a usable Keyport backup"),
        (&truncated, "not a usable Keyport backup"),
        (&missing, "keyport restore"),
    ] {
        let target = path("target");
        let refused = keyport(&target, &["restore", bad.to_str().ok_or("path")?]).await?;
        assert!(!refused.status.success(), "restored {bad:?}");
        assert!(said(&refused).contains(why), "{bad:?}: {}", said(&refused));
        assert!(!target.join("keyport.db").exists(), "{bad:?} left a database behind");
        assert!(!target.join("keyport.db.restoring").exists(), "{bad:?} left a partial copy behind");
    }

    // Backing up what is not there makes nothing.
    let nowhere = path("nowhere");
    let refused = keyport(&nowhere, &["backup", path("x.db").to_str().ok_or("path")?]).await?;
    assert!(!refused.status.success() && said(&refused).contains("no database at"), "{}", said(&refused));
    assert!(!nowhere.exists() && !path("x.db").exists());
    // PostgreSQL has its own tools.
    for command in ["backup", "restore"] {
        let refused = keyport(
            &live,
            &["--database-url", "postgres://nobody@127.0.0.1:1/none", command, good.to_str().ok_or("path")?],
        )
        .await?;
        assert!(!refused.status.success() && said(&refused).contains("pg_dump"), "{}", said(&refused));
    }
    Ok(())
}
