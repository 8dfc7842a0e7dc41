//! Access tokens through the real server on both stores: what a token
//! says, the JWKS over gRPC and plain HTTP, forged and stale tokens refused
//! by the Rust verifier, key rotation with overlap, replicas sharing one
//! key set when they make it at once, the keys sealed at rest, and bad
//! requests refused with their reasons.

use std::{sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use keyport_client::{AccessTokenVerifier, KeyportClient, VerifierConfig, VerifyError};
use keyport_proto::v1::{
    CreateApiKeyRequest, GetJwksRequest, IssueAccessTokenRequest, IssueAccessTokenResponse, RevokeSessionRequest,
    api_key_service_client::ApiKeyServiceClient,
};
use keyport_server::config::Config;
use keyport_tests::{Backend, TestServer, grpc::authed, server::TEST_FACTOR_KEY};
use sea_orm::{ConnectionTrait, Statement};
use tokio::sync::Barrier;
use tonic::{Code, Status};

use crate::{
    TestResult,
    authorization::{refused, user_id, user_with_roles},
    on_both_backends,
};

on_both_backends!(
    a_token_says_who_and_verifies_against_the_published_keys,
    forged_tampered_and_stale_tokens_are_refused,
    keys_rotate_with_overlap_and_old_ones_are_swept,
    replicas_making_the_first_key_at_once_share_one,
    calls_cancelled_while_the_first_key_is_made_leave_one_usable_key,
    bad_requests_are_refused_with_their_reasons,
);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const ISSUER: &str = "https://keyport.test";

/// Access tokens on, for `orders` (the default) and `billing`; `writer`
/// may read and write posts.
fn configure(config: &mut Config) {
    config.access_tokens.issuer = ISSUER.into();
    config.access_tokens.audiences = vec!["orders".into(), "billing".into()];
    // Replicas seal and open the keys with the same key (on SQLite each
    // test server would otherwise make its own in its data directory).
    config.second_factors.encryption_key = TEST_FACTOR_KEY.into();
    config.authorization.permissions = ["posts:read", "posts:write"].map(String::from).to_vec();
    config.authorization.roles =
        [("user", vec![]), ("writer", vec!["posts:read", "posts:write"]), ("admin", vec!["*"])]
            .into_iter()
            .map(|(role, grants)| (role.to_owned(), grants.into_iter().map(String::from).collect()))
            .collect();
}

async fn issue(server: &TestServer, token: &str, audience: &str) -> Result<IssueAccessTokenResponse, Status> {
    let request = IssueAccessTokenRequest { token: token.into(), audience: audience.into() };
    Ok(server.sessions().issue_access_token(request).await?.into_inner())
}

fn client(server: &TestServer) -> Result<KeyportClient, BoxError> {
    Ok(KeyportClient::builder(format!("http://{}", server.addr)).build()?)
}

fn verifier(server: &TestServer, audience: &str) -> Result<AccessTokenVerifier, BoxError> {
    let config = VerifierConfig { min_refetch_interval: Duration::ZERO, ..VerifierConfig::default() };
    Ok(AccessTokenVerifier::with_config(client(server)?, ISSUER, audience, config))
}

/// The token's decoded header or payload (`part` 0 or 1).
fn part(token: &str, part: usize) -> Result<serde_json::Value, BoxError> {
    let encoded = token.split('.').nth(part).ok_or("not a JWT")?;
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded)?)?)
}

fn kid(token: &str) -> Result<String, BoxError> {
    Ok(part(token, 0)?["kid"].as_str().ok_or("no kid")?.to_owned())
}

/// The kids of the JWKS served over gRPC, after checking the HTTP one is
/// the same document.
async fn published(server: &TestServer) -> Result<Vec<String>, BoxError> {
    let grpc = server.sessions().get_jwks(GetJwksRequest {}).await?.into_inner();
    let http = reqwest::get(format!("http://{}/.well-known/jwks.json", server.addr)).await?;
    assert_eq!(http.status(), 200);
    let max_age = grpc.max_age.map(|age| age.seconds).unwrap_or_default();
    assert_eq!(http.headers()["cache-control"], format!("public, max-age={max_age}").as_str());
    assert_eq!(http.headers()["content-type"], "application/jwk-set+json");
    let document: serde_json::Value = serde_json::from_str(&grpc.jwks)?;
    assert_eq!(http.json::<serde_json::Value>().await?, document, "the same keys over HTTP and gRPC");
    let keys = document["keys"].as_array().ok_or("no keys")?;
    for key in keys {
        assert!(key.get("d").is_none(), "a private member was published: {key}");
        assert_eq!(key["use"], "sig");
    }
    Ok(keys.iter().filter_map(|key| key["kid"].as_str().map(str::to_owned)).collect())
}

async fn a_token_says_who_and_verifies_against_the_published_keys(backend: Backend) -> TestResult {
    for algorithm in ["EdDSA", "ES256"] {
        let server = TestServer::start_with(backend, |config| {
            configure(config);
            config.access_tokens.algorithm = algorithm.into();
            config.access_tokens.include_permissions = true;
            // A session that ends before a token's 15 minutes would.
            config.sessions.expires_in_secs = 600;
        })
        .await?;
        let ann = user_with_roles(&server, "ann@example.com", "user writer").await?;
        let ann_id = user_id(&server, &ann).await?;
        let issued = issue(&server, &ann, "").await?;
        let header = part(&issued.access_token, 0)?;
        assert_eq!((header["alg"].as_str(), header["typ"].as_str()), (Some(algorithm), Some("at+jwt")));
        assert_eq!(published(&server).await?, [kid(&issued.access_token)?], "{algorithm}");

        let claims = verifier(&server, "orders")?.verify(&issued.access_token).await?;
        assert_eq!(
            (claims.iss.as_str(), claims.sub.as_str(), claims.aud.as_str()),
            (ISSUER, ann_id.as_str(), "orders")
        );
        assert_eq!(claims.roles, ["user", "writer"]);
        assert_eq!(claims.permissions, Some(vec!["posts:read".to_owned(), "posts:write".to_owned()]));
        assert_eq!(claims.act, None);
        let request = keyport_proto::v1::GetSessionRequest { token: ann.clone() };
        let session = server.sessions().get_session(request).await?.into_inner().session.ok_or("no session")?;
        assert_eq!(claims.sid, session.id);
        let session_ends = session.expires_at.ok_or("no expiry")?.seconds;
        assert_eq!(claims.exp, session_ends, "never past the session's end");
        assert_eq!(issued.expires_at.map(|at| at.seconds), Some(claims.exp));

        // Another audience gets its own token; neither passes for the other.
        let billing = issue(&server, &ann, "billing").await?.access_token;
        assert_eq!(verifier(&server, "billing")?.verify(&billing).await?.aud, "billing");
        let wrong = verifier(&server, "orders")?.verify(&billing).await;
        assert!(matches!(wrong, Err(VerifyError::Invalid(_))), "{wrong:?}");

        // Offline means offline: a revoked session's token lives until it
        // expires (documented), but no new one is issued.
        let revoke = RevokeSessionRequest { session_id: claims.sid.clone() };
        server.sessions().revoke_session(authed(revoke, &ann)).await?;
        assert!(verifier(&server, "orders")?.verify(&issued.access_token).await.is_ok());
        refused(issue(&server, &ann, "").await, Code::Unauthenticated, "UNAUTHENTICATED", "a revoked session");
    }
    Ok(())
}

/// `token` with its payload replaced by `edit(payload)`, signature kept.
fn with_payload(token: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Result<String, BoxError> {
    let mut payload = part(token, 1)?;
    edit(&mut payload);
    let parts: Vec<&str> = token.split('.').collect();
    Ok(format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(payload.to_string()), parts[2]))
}

async fn forged_tampered_and_stale_tokens_are_refused(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, |config| {
        configure(config);
        config.access_tokens.ttl_secs = 1;
    })
    .await?;
    let ann = server.sign_up("ann@example.com").await?;
    let token = issue(&server, &ann, "").await?.access_token;
    let strict = VerifierConfig { leeway: Duration::ZERO, ..VerifierConfig::default() };
    let orders = AccessTokenVerifier::with_config(client(&server)?, ISSUER, "orders", strict);
    orders.verify(&token).await?;

    let invalid = |result: Result<_, VerifyError>, what: &str| {
        assert!(matches!(result, Err(VerifyError::Invalid(_))), "{what}: {result:?}");
    };
    let malformed = |result: Result<_, VerifyError>, what: &str| {
        assert!(matches!(result, Err(VerifyError::Malformed(_))), "{what}: {result:?}");
    };
    let as_bob = with_payload(&token, |claims| claims["sub"] = "bob".into())?;
    invalid(orders.verify(&as_bob).await, "a tampered subject");
    let longer = with_payload(&token, |claims| claims["exp"] = 4_000_000_000_i64.into())?;
    invalid(orders.verify(&longer).await, "a tampered expiry");
    let mut signature = token.clone();
    let last = signature.pop().ok_or("empty")?;
    signature.push(if last == 'A' { 'B' } else { 'A' });
    invalid(orders.verify(&signature).await, "a tampered signature");
    let other_issuer = AccessTokenVerifier::new(client(&server)?, "https://evil.test", "orders");
    invalid(other_issuer.verify(&token).await, "another issuer");

    // `alg: none`, and HS256 keyed with the public key (the confusion
    // attack): refused before any key is tried.
    let kid = kid(&token)?;
    let payload = token.split('.').nth(1).ok_or("no payload")?;
    let none = URL_SAFE_NO_PAD.encode(serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": kid}).to_string());
    malformed(orders.verify(&format!("{none}.{payload}.")).await, "alg none");
    let jwks: serde_json::Value =
        serde_json::from_str(&server.sessions().get_jwks(GetJwksRequest {}).await?.into_inner().jwks)?;
    let public_x = jwks["keys"][0]["x"].as_str().ok_or("no x")?.to_owned();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid.clone());
    let claims = part(&token, 1)?;
    let hs256 = jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(public_x.as_bytes()))?;
    malformed(orders.verify(&hs256).await, "HS256 with the public key");
    malformed(orders.verify("").await, "empty");
    malformed(orders.verify("not.a.jwt").await, "garbage");
    malformed(orders.verify(&"a".repeat(20_000)).await, "oversized");

    // A token of another Keyport (same issuer name, its own keys): its kid
    // is unknown here, after one more look at the keys.
    let stranger = TestServer::start_with(Backend::Sqlite, configure).await?;
    let theirs = issue(&stranger, &stranger.sign_up("eve@example.com").await?, "").await?.access_token;
    assert_ne!(crate::access_tokens::kid(&theirs)?, kid);
    let unknown = orders.verify(&theirs).await;
    assert!(matches!(unknown, Err(VerifyError::UnknownKey)), "{unknown:?}");

    // Expired: one second of life, then past it (no leeway configured).
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    invalid(orders.verify(&token).await, "expired");

    // Keyport out of reach and the key never fetched: fail closed, and say
    // so (not "unknown key").
    let fresh = issue(&server, &ann, "").await?.access_token;
    let cold = AccessTokenVerifier::new(KeyportClient::builder("http://127.0.0.1:1").build()?, ISSUER, "orders");
    let unreachable = cold.verify(&fresh).await;
    assert!(matches!(unreachable, Err(VerifyError::KeysUnavailable)), "{unreachable:?}");
    assert!(!unreachable.unwrap_err().is_token_error());
    Ok(())
}

async fn keys_rotate_with_overlap_and_old_ones_are_swept(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, |config| {
        configure(config);
        config.access_tokens.rotate_after_secs = 2;
        config.access_tokens.jwks_max_age_secs = 1;
        config.access_tokens.ttl_secs = 5;
    })
    .await?;
    let ann = server.sign_up("ann@example.com").await?;
    let orders = verifier(&server, "orders")?;
    let first = issue(&server, &ann, "").await?.access_token;
    let first_kid = kid(&first)?;
    orders.verify(&first).await?;

    // Due: the next key is published first, and does not sign yet.
    server.clock.advance(Duration::from_secs(2));
    let during = issue(&server, &ann, "").await?.access_token;
    assert_eq!(kid(&during)?, first_kid, "the new key waits a max-age before signing");
    let both = published(&server).await?;
    assert_eq!(both.len(), 2, "{both:?}");
    let second_kid = both.iter().find(|kid| **kid != first_kid).ok_or("no new key")?.clone();

    // Then it signs, and the old key's tokens still verify.
    server.clock.advance(Duration::from_secs(1));
    let second = issue(&server, &ann, "").await?.access_token;
    assert_eq!(kid(&second)?, second_kid);
    orders.verify(&second).await?;
    orders.verify(&during).await?;

    // Past the old key's last token: unpublished, then swept.
    server.clock.advance(Duration::from_secs(5));
    let now = published(&server).await?;
    assert!(!now.contains(&first_kid) && now.contains(&second_kid), "{now:?}");
    let swept = server.accounts.sweep_expired().await?;
    assert!(swept.signing_keys >= 1, "{swept:?}");
    let left = server.scalar(&format!("SELECT COUNT(*) FROM signing_keys WHERE kid = '{first_kid}'")).await?;
    assert_eq!(left, 0);
    Ok(())
}

async fn replicas_making_the_first_key_at_once_share_one(backend: Backend) -> TestResult {
    let first = TestServer::start_with(backend, configure).await?;
    let second = TestServer::replica_of_with(&first, configure).await?;
    let ann = first.sign_up("ann@example.com").await?;
    // No key exists yet: eight calls on two replicas race to make it.
    let barrier = Arc::new(Barrier::new(8));
    let servers = [Arc::new(first), Arc::new(second)];
    let calls = (0..8).map(|i| {
        let (server, barrier, ann) = (servers[i % 2].clone(), barrier.clone(), ann.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            issue(&server, &ann, "").await
        })
    });
    let tokens: Vec<String> = futures::future::try_join_all(calls)
        .await?
        .into_iter()
        .map(|issued| issued.map(|issued| issued.access_token))
        .collect::<Result<_, _>>()?;
    let kids: std::collections::BTreeSet<String> = tokens.iter().map(|token| kid(token)).collect::<Result<_, _>>()?;
    assert_eq!(kids.len(), 1, "one key signed every token: {kids:?}");
    assert_eq!(servers[0].scalar("SELECT COUNT(*) FROM signing_keys").await?, 1);
    // Either replica's keys verify every token.
    for server in &servers {
        let orders = verifier(server, "orders")?;
        for token in &tokens {
            orders.verify(token).await?;
        }
    }

    // Sealed at rest: the stored private key is ciphertext under the
    // configured key's id, bound to its kid.
    let db = &servers[0].db;
    let sql = "SELECT sealed_private_key FROM signing_keys".to_owned();
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await?.ok_or("no key")?;
    let sealed: String = row.try_get("", "sealed_private_key")?;
    assert!(sealed.starts_with("v1.") && sealed.split('.').count() == 3, "{sealed}");
    Ok(())
}

async fn calls_cancelled_while_the_first_key_is_made_leave_one_usable_key(backend: Backend) -> TestResult {
    let server = Arc::new(TestServer::start_with(backend, configure).await?);
    let ann = server.sign_up("ann@example.com").await?;
    // No key yet: eight calls start making it and are dropped mid-flight,
    // at staggered moments, by their deadline.
    let barrier = Arc::new(Barrier::new(8));
    let calls = (0..8u64).map(|i| {
        let (server, barrier, ann) = (server.clone(), barrier.clone(), ann.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            let _ = tokio::time::timeout(Duration::from_micros(200 * i), issue(&server, &ann, "")).await;
        })
    });
    futures::future::try_join_all(calls).await?;
    // The key's insert ran to its end on its own task, and the lock went
    // with the cancelled callers: the next calls are served with one key.
    let tokens = futures::future::try_join_all((0..4).map(|_| issue(&server, &ann, ""))).await?;
    let kids: std::collections::BTreeSet<String> =
        tokens.iter().map(|issued| kid(&issued.access_token)).collect::<Result<_, _>>()?;
    assert_eq!(kids.len(), 1, "{kids:?}");
    assert_eq!(server.scalar("SELECT COUNT(*) FROM signing_keys").await?, 1);
    let orders = verifier(&server, "orders")?;
    for issued in &tokens {
        orders.verify(&issued.access_token).await?;
    }
    Ok(())
}

async fn bad_requests_are_refused_with_their_reasons(backend: Backend) -> TestResult {
    let off = TestServer::start(backend).await?;
    let token = off.sign_up("ann@example.com").await?;
    let disabled = "ACCESS_TOKENS_DISABLED";
    refused(issue(&off, &token, "").await, Code::FailedPrecondition, disabled, "off");
    refused(off.sessions().get_jwks(GetJwksRequest {}).await, Code::FailedPrecondition, disabled, "no JWKS");
    let http = reqwest::get(format!("http://{}/.well-known/jwks.json", off.addr)).await?;
    assert_eq!(http.status(), 404);

    let server = TestServer::start_with(backend, configure).await?;
    let ann = user_with_roles(&server, "ann@example.com", "user writer").await?;
    let not_allowed = "AUDIENCE_NOT_ALLOWED";
    refused(issue(&server, &ann, "payroll").await, Code::InvalidArgument, not_allowed, "another audience");
    refused(issue(&server, &ann, "ORDERS").await, Code::InvalidArgument, not_allowed, "case matters");
    refused(issue(&server, &ann, &"a".repeat(20_000)).await, Code::InvalidArgument, not_allowed, "oversized");
    refused(issue(&server, &ann, "orders\0").await, Code::InvalidArgument, not_allowed, "a control character");
    let unauthenticated = "UNAUTHENTICATED";
    refused(issue(&server, "", "").await, Code::Unauthenticated, unauthenticated, "no session");
    refused(issue(&server, "kp_nonsense", "").await, Code::Unauthenticated, unauthenticated, "malformed");
    let forged = format!("{}x", &ann[..ann.len() - 1]);
    refused(issue(&server, &forged, "").await, Code::Unauthenticated, unauthenticated, "a wrong secret");

    // An API key is not a session.
    let request = CreateApiKeyRequest { name: "ci".into(), scopes: vec!["posts:read".into()], ..Default::default() };
    let key = ApiKeyServiceClient::new(server.channel()).create_api_key(authed(request, &ann)).await?.into_inner();
    let accepted = "API_KEY_NOT_ACCEPTED";
    refused(issue(&server, &key.secret, "").await, Code::Unauthenticated, accepted, "an API key");

    // An expired session.
    server.clock.advance(Duration::from_secs(31 * 24 * 3600));
    refused(issue(&server, &ann, "").await, Code::Unauthenticated, "SESSION_EXPIRED", "an expired session");
    assert_eq!(server.scalar("SELECT COUNT(*) FROM signing_keys").await?, 0, "no refused call made a key");
    Ok(())
}
