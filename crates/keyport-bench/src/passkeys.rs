//! The passkeys section: a passwordless sign-in (`StartPasskeySignIn` then
//! `FinishPasskeySignIn`, an ECDSA P-256 check) against a password
//! `SignIn` (an Argon2id hash at the server's settings) in the same run,
//! one caller, alternating. The software passkey signs between the two
//! calls; its time is not counted.

use std::{fmt::Write as _, path::Path, time::Duration, time::Instant};

use hdrhistogram::Histogram;
use keyport_core::second_factor::soft_passkey::SoftKey;
use keyport_proto::v1::{
    FinishPasskeyRegistrationRequest, FinishPasskeySignInRequest, SignInRequest, StartPasskeyRegistrationRequest,
    StartPasskeySignInRequest, passkey_service_client::PasskeyServiceClient,
    session_service_client::SessionServiceClient,
};
use tonic::{Request, metadata::MetadataValue};

use crate::{BoxError, server::ServerProcess, workload};

const SERVING_LIMIT: Duration = Duration::from_secs(30);
/// Sign-ins of each kind.
const ROUNDS: usize = 300;
/// The origin the software passkey's "browser" claims.
const ORIGIN: &str = "https://localhost";

/// What the section measured, in µs.
#[derive(Debug)]
pub(crate) struct PasskeyBench {
    /// `StartPasskeySignIn` and `FinishPasskeySignIn` together.
    passkey: Histogram<u64>,
    /// `FinishPasskeySignIn` alone.
    finish: Histogram<u64>,
    /// A password `SignIn` of a user without a second factor.
    password: Histogram<u64>,
}

/// Runs the section against a fresh `keyport` with passkeys on.
pub(crate) async fn passkeys(bin: &Path) -> Result<PasskeyBench, BoxError> {
    let env =
        [("KEYPORT_PASSKEYS__RP_ID", "localhost".to_owned()), ("KEYPORT_PASSKEYS__ORIGINS", format!("[\"{ORIGIN}\"]"))];
    let mut server = ServerProcess::spawn_with(bin, &env)?;
    server.wait_serving(SERVING_LIMIT).await?;
    let channels = workload::connect(server.addr(), 1).await?;
    let users = workload::sign_up_users(&channels, 2).await?;
    let (holder, plain) = (&users[0], &users[1]);
    let mut sessions = SessionServiceClient::new(channels[0].clone());
    let mut passkeys = PasskeyServiceClient::new(channels[0].clone());

    let mut key = SoftKey::at(ORIGIN)?;
    let started =
        passkeys.start_passkey_registration(authed(StartPasskeyRegistrationRequest {}, &holder.token)?).await?;
    let started = started.into_inner();
    let credential = key.register(&started.options)?;
    let finish = FinishPasskeyRegistrationRequest { ceremony: started.ceremony, credential, name: "bench".into() };
    passkeys.finish_passkey_registration(authed(finish, &holder.token)?).await?;

    eprintln!("passkeys: {ROUNDS} passwordless sign-ins and {ROUNDS} password sign-ins, 1 caller, alternating");
    let mut bench =
        PasskeyBench { passkey: Histogram::new(3)?, finish: Histogram::new(3)?, password: Histogram::new(3)? };
    for round in 0..ROUNDS {
        for passkey_first in [round % 2 == 0, round % 2 != 0] {
            if passkey_first {
                let begun = Instant::now();
                let started = sessions.start_passkey_sign_in(StartPasskeySignInRequest {}).await?.into_inner();
                let start_took = begun.elapsed();
                let credential = key.sign_discoverable(&started.options)?;
                let finishing = Instant::now();
                let request = FinishPasskeySignInRequest { ceremony: started.ceremony, credential };
                sessions.finish_passkey_sign_in(request).await?;
                let finish_took = finishing.elapsed();
                bench.passkey.record(micros(start_took + finish_took))?;
                bench.finish.record(micros(finish_took))?;
            } else {
                let begun = Instant::now();
                let request = SignInRequest { email: plain.email.clone(), password: plain.password.clone() };
                sessions.sign_in(request).await?;
                bench.password.record(micros(begun.elapsed()))?;
            }
        }
    }
    server.ensure_running()?;
    Ok(bench)
}

fn authed<T>(message: T, token: &str) -> Result<Request<T>, BoxError> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", MetadataValue::try_from(format!("Bearer {token}"))?);
    Ok(request)
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

/// The section as Markdown.
pub(crate) fn render(bench: &PasskeyBench) -> String {
    let mut out = String::new();
    let ms = |histogram: &Histogram<u64>, quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
    let _ = writeln!(out, "## Passkeys: a passwordless sign-in against a password sign-in\n");
    let _ = writeln!(
        out,
        "One caller on SQLite, {ROUNDS} of each, alternating which goes first. A passkey sign-in is two calls \
         (start, then finish with the software passkey's answer; its signing is not counted); a password sign-in \
         is one `SignIn` (Argon2id at the server's settings).\n"
    );
    let _ = writeln!(
        out,
        "| sign-in | calls | median (ms) | p90 (ms) | p99 (ms) | max (ms) |\n|---|---:|---:|---:|---:|---:|"
    );
    for (name, histogram) in [
        ("passkey: start + finish", &bench.passkey),
        ("passkey: finish alone", &bench.finish),
        ("password (`SignIn`)", &bench.password),
    ] {
        let _ = writeln!(
            out,
            "| {name} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
            histogram.len(),
            ms(histogram, 0.5),
            ms(histogram, 0.9),
            ms(histogram, 0.99),
            histogram.max() as f64 / 1000.0
        );
    }
    let _ = writeln!(out);
    out
}
