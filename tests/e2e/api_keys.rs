//! API keys and service accounts through the real server on both stores:
//! a key's secret is shown once and stored hashed, a key allows what its
//! scopes and its owner's roles both grant, expiry, revocation, rotation,
//! its own rate limit, last use written once per interval, service
//! accounts managed by admins and calling admin RPCs with their keys, and
//! every change reaching the event stream (and the other replica) at once.

use std::{sync::Arc, time::Duration};

use keyport_proto::v1::{
    ApiKey, BanUserRequest, CreateApiKeyRequest, CreateApiKeyResponse, CreateServiceAccountRequest,
    DeleteServiceAccountRequest, DeleteUserRequest, GetSessionRequest, ListApiKeysRequest, ListServiceAccountsRequest,
    ListSessionsRequest, ListUsersRequest, RevokeApiKeyRequest, RotateApiKeyRequest, RotateApiKeyResponse,
    ServiceAccount, SetServiceAccountRolesRequest, SetUserRolesRequest, WatchSessionEventsRequest,
    admin_service_client::AdminServiceClient, api_key_service_client::ApiKeyServiceClient,
    watch_session_events_response::Event,
};
use keyport_server::config::Config;
use keyport_tests::{Backend, TestServer, grpc::authed, server::PASSWORD};
use sha2::{Digest, Sha256};
use tokio::sync::Barrier;
use tonic::{Code, Status, transport::Channel};

use crate::{
    TestResult,
    authorization::{authorize, decisions, refused, user_id, user_with_roles},
    on_both_backends,
};

on_both_backends!(
    a_key_shows_its_secret_once_and_is_stored_hashed,
    a_key_never_outgrows_its_owner,
    keys_expire_and_are_revoked_at_once,
    rotation_keeps_the_old_key_only_for_its_grace,
    a_key_keeps_its_own_rate_limit_under_a_burst,
    bad_input_is_refused_and_writes_nothing,
    parallel_creations_cannot_pass_the_limit_of_keys,
    service_accounts_own_keys_that_admins_manage,
    revocations_reach_the_event_stream_of_every_replica,
    the_rust_client_manages_and_checks_keys,
);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const UNKNOWN_ACCOUNT: &str = "0190e9b1-0000-7000-8000-000000000000";

/// `writer` may read and write posts, `support` read users; `admin` all.
fn configure(config: &mut Config) {
    config.authorization.permissions = ["posts:read", "posts:write", "billing:read"].map(String::from).to_vec();
    config.authorization.roles = [
        ("user", vec![]),
        ("writer", vec!["posts:read", "posts:write"]),
        ("support", vec!["users:read"]),
        ("admin", vec!["*"]),
    ]
    .into_iter()
    .map(|(role, grants)| (role.to_owned(), grants.into_iter().map(String::from).collect()))
    .collect();
}

fn keys(server: &TestServer) -> ApiKeyServiceClient<Channel> {
    ApiKeyServiceClient::new(server.channel())
}

fn admin(server: &TestServer) -> AdminServiceClient<Channel> {
    AdminServiceClient::new(server.channel())
}

fn new_key(name: &str, scopes: &[&str]) -> CreateApiKeyRequest {
    CreateApiKeyRequest {
        name: name.into(),
        scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
        ..Default::default()
    }
}

async fn create(
    server: &TestServer,
    token: &str,
    request: CreateApiKeyRequest,
) -> Result<CreateApiKeyResponse, Status> {
    Ok(keys(server).create_api_key(authed(request, token)).await?.into_inner())
}

async fn list(server: &TestServer, token: &str, service_account_id: &str) -> Result<Vec<ApiKey>, Status> {
    let request = ListApiKeysRequest { service_account_id: service_account_id.into() };
    Ok(keys(server).list_api_keys(authed(request, token)).await?.into_inner().api_keys)
}

async fn revoke(server: &TestServer, token: &str, id: &str) -> Result<(), Status> {
    let request = RevokeApiKeyRequest { api_key_id: id.into(), service_account_id: String::new() };
    keys(server).revoke_api_key(authed(request, token)).await?;
    Ok(())
}

async fn rotate(server: &TestServer, token: &str, id: &str, grace: Duration) -> Result<RotateApiKeyResponse, Status> {
    let grace = (!grace.is_zero()).then(|| prost_types::Duration::try_from(grace).unwrap_or_default());
    let request = RotateApiKeyRequest { api_key_id: id.into(), service_account_id: String::new(), grace };
    Ok(keys(server).rotate_api_key(authed(request, token)).await?.into_inner())
}

async fn service_account(
    server: &TestServer,
    token: &str,
    name: &str,
    roles: &[&str],
) -> Result<ServiceAccount, Status> {
    let request = CreateServiceAccountRequest {
        name: name.into(),
        description: "syncs invoices".into(),
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
    };
    let created = admin(server).create_service_account(authed(request, token)).await?.into_inner();
    Ok(created.service_account.unwrap_or_default())
}

/// The stored hash of a key's secret equals SHA-256 of the secret shown.
async fn stored_hash_matches(server: &TestServer, secret: &str) -> Result<bool, BoxError> {
    let (prefixed_id, secret_part) = secret.split_once('.').ok_or("no dot in the key")?;
    let id = prefixed_id.strip_prefix("kpa_").ok_or("no prefix")?;
    let hex: String = Sha256::digest(secret_part.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let literal = match server.database_url.starts_with("postgres") {
        false => format!("X'{hex}'"),
        true => format!("'\\x{hex}'::bytea"),
    };
    let sql = format!("SELECT COUNT(*) FROM api_keys WHERE id = '{id}' AND secret_hash = {literal}");
    Ok(server.scalar(&sql).await? == 1)
}

async fn last_used(server: &TestServer, id: &str) -> Result<i64, BoxError> {
    server.scalar(&format!("SELECT COALESCE(last_used_at, 0) FROM api_keys WHERE id = '{id}'")).await
}

async fn a_key_shows_its_secret_once_and_is_stored_hashed(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, configure).await?;
    let ann = user_with_roles(&server, "ann@example.com", "user writer").await?;
    let created = create(&server, &ann, new_key("ci deploys", &["posts:read"])).await?;
    let key = created.api_key.clone().ok_or("no key")?;
    assert!(created.secret.starts_with("kpa_"), "a distinct prefix for secret scanners");
    assert!(stored_hash_matches(&server, &created.secret).await?, "only SHA-256 of the secret is stored");
    let secret_part = created.secret.split_once('.').ok_or("no dot")?.1;
    let leaks = format!("SELECT COUNT(*) FROM audit_events WHERE detail LIKE '%{secret_part}%'");
    assert_eq!(server.scalar(&leaks).await?, 0, "the secret is in no audit entry");
    assert_eq!(key.scopes, ["posts:read"]);
    assert_eq!(key.owner_user_id, user_id(&server, &ann).await?);
    assert!(key.expires_at.is_some(), "90 days by default");
    // Listed without any secret: the message has no field for it.
    assert_eq!(list(&server, &ann, "").await?, vec![key.clone()]);

    // The key allows its scopes that the owner has, and names its owner.
    let answer = authorize(&server, &created.secret, &["posts:read", "posts:write"]).await?;
    assert_eq!(decisions(&answer), [true, false], "posts:write is the owner's, not the key's");
    assert_eq!(answer.granted, ["posts:read"]);
    assert_eq!(answer.api_key.as_ref().map(|k| k.id.as_str()), Some(key.id.as_str()));
    assert_eq!(answer.user.as_ref().map(|u| u.email.as_str()), Some("ann@example.com"));
    assert!(answer.session.is_none() && answer.service_account.is_none());
    assert!(answer.cache_ttl.is_some_and(|ttl| ttl.seconds > 0), "an unlimited key's answers are cacheable");

    // A key is no session.
    let as_session = server.sessions().get_session(GetSessionRequest { token: created.secret.clone() }).await;
    refused(as_session, Code::Unauthenticated, "API_KEY_NOT_ACCEPTED", "GetSession with a key");
    let own_calls = server.sessions().list_sessions(authed(ListSessionsRequest {}, &created.secret)).await;
    refused(own_calls, Code::Unauthenticated, "API_KEY_NOT_ACCEPTED", "a user RPC with a key");
    let mint = create(&server, &created.secret, new_key("child", &["posts:read"])).await;
    refused(mint, Code::Unauthenticated, "API_KEY_NOT_ACCEPTED", "a key minting keys");

    // Last use: written by the first check, not by the next ones within
    // the interval, and again after it.
    let first = last_used(&server, &key.id).await?;
    assert!(first > 0, "the first check records the use");
    server.clock.advance(Duration::from_secs(60));
    authorize(&server, &created.secret, &["posts:read"]).await?;
    assert_eq!(last_used(&server, &key.id).await?, first, "at most once per interval");
    server.clock.advance(Duration::from_secs(300));
    authorize(&server, &created.secret, &["posts:read"]).await?;
    assert!(last_used(&server, &key.id).await? > first, "written again after the interval");
    Ok(())
}

async fn a_key_never_outgrows_its_owner(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, configure).await?;
    let root = user_with_roles(&server, "root@example.com", "admin user").await?;
    let ann = user_with_roles(&server, "ann@example.com", "user writer").await?;
    let ann_id = user_id(&server, &ann).await?;
    let beyond = create(&server, &ann, new_key("too much", &["billing:read"])).await;
    refused(beyond, Code::InvalidArgument, "INVALID_ARGUMENT", "a scope the owner lacks");
    let unknown = create(&server, &ann, new_key("typo", &["post:read"])).await;
    refused(unknown, Code::InvalidArgument, "PERMISSION_UNKNOWN", "a scope outside the catalogue");

    let key = create(&server, &ann, new_key("bot", &["posts:read", "posts:write"])).await?.secret;
    assert_eq!(decisions(&authorize(&server, &key, &["posts:write"]).await?), [true]);
    // The owner loses the role: the key loses it at the next check.
    let demote = SetUserRolesRequest { user_id: ann_id.clone(), roles: vec![] };
    admin(&server).set_user_roles(authed(demote, &root)).await?;
    assert_eq!(decisions(&authorize(&server, &key, &["posts:read", "posts:write"]).await?), [false, false]);
    // A banned owner's keys do not work; a deleted owner's are gone.
    let ban = BanUserRequest { user_id: ann_id.clone(), reason: "abuse".into(), expires_at: None };
    admin(&server).ban_user(authed(ban, &root)).await?;
    refused(authorize(&server, &key, &["posts:read"]).await, Code::Unauthenticated, "UNAUTHENTICATED", "banned owner");
    admin(&server).delete_user(authed(DeleteUserRequest { user_id: ann_id }, &root)).await?;
    refused(authorize(&server, &key, &["posts:read"]).await, Code::Unauthenticated, "UNAUTHENTICATED", "owner gone");
    assert_eq!(server.count("api_keys").await?, 0, "the owner's keys went with them");
    Ok(())
}

async fn keys_expire_and_are_revoked_at_once(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, configure).await?;
    let ann = user_with_roles(&server, "ann@example.com", "user writer").await?;
    let bob = user_with_roles(&server, "bob@example.com", "user writer").await?;
    let hour = prost_types::Duration { seconds: 3600, nanos: 0 };
    let short =
        create(&server, &ann, CreateApiKeyRequest { expires_in: Some(hour), ..new_key("short", &["posts:read"]) })
            .await?;
    let kept = create(&server, &ann, new_key("kept", &["posts:read"])).await?;
    let kept_id = kept.api_key.clone().ok_or("no key")?.id;

    // Another owner cannot revoke it: answered as for an unknown key.
    refused(revoke(&server, &bob, &kept_id).await, Code::NotFound, "API_KEY_NOT_FOUND", "another owner's key");
    assert!(authorize(&server, &kept.secret, &["posts:read"]).await?.allowed, "still works");
    revoke(&server, &ann, &kept_id).await?;
    refused(
        authorize(&server, &kept.secret, &["posts:read"]).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
        "revoked",
    );
    refused(revoke(&server, &ann, &kept_id).await, Code::NotFound, "API_KEY_NOT_FOUND", "revoked twice");

    assert!(authorize(&server, &short.secret, &["posts:read"]).await?.allowed);
    server.clock.advance(Duration::from_secs(3601));
    refused(
        authorize(&server, &short.secret, &["posts:read"]).await,
        Code::Unauthenticated,
        "API_KEY_EXPIRED",
        "expired",
    );
    // A wrong secret for the expired key's id says nothing about it.
    let (id, _) = short.secret.split_once('.').ok_or("no dot")?;
    let forged = format!("{id}.{}", "A".repeat(43));
    refused(authorize(&server, &forged, &["posts:read"]).await, Code::Unauthenticated, "UNAUTHENTICATED", "forged");
    Ok(())
}

async fn rotation_keeps_the_old_key_only_for_its_grace(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, configure).await?;
    let ann = user_with_roles(&server, "ann@example.com", "user writer").await?;
    let first = create(&server, &ann, new_key("deploys", &["posts:read"])).await?;
    let first_id = first.api_key.clone().ok_or("no key")?.id;
    let rotated = rotate(&server, &ann, &first_id, Duration::from_secs(3600)).await?;
    let second = rotated.api_key.clone().ok_or("no key")?;
    assert_ne!(second.id, first_id);
    assert_eq!((second.name.as_str(), second.scopes.clone()), ("deploys", vec!["posts:read".to_owned()]));
    assert!(stored_hash_matches(&server, &rotated.secret).await?);
    assert_eq!(rotated.replaced.as_ref().map(|old| old.replaced_by_id.as_str()), Some(second.id.as_str()));
    let again = rotate(&server, &ann, &first_id, Duration::ZERO).await;
    refused(again, Code::InvalidArgument, "INVALID_ARGUMENT", "a key rotated already, in its grace");
    // Both work during the grace; the old one no longer after it.
    assert!(authorize(&server, &first.secret, &["posts:read"]).await?.allowed);
    assert!(authorize(&server, &rotated.secret, &["posts:read"]).await?.allowed);
    server.clock.advance(Duration::from_secs(3601));
    refused(
        authorize(&server, &first.secret, &["posts:read"]).await,
        Code::Unauthenticated,
        "API_KEY_EXPIRED",
        "grace over",
    );
    assert!(authorize(&server, &rotated.secret, &["posts:read"]).await?.allowed);
    // Without a grace the old key ends at once. (Rotating mints a
    // credential: the hour above made the sign-in stale.)
    let stale = rotate(&server, &ann, &second.id, Duration::ZERO).await;
    refused(stale, Code::FailedPrecondition, "REAUTHENTICATION_REQUIRED", "a stale sign-in rotating");
    let ann = server.sign_in("ann@example.com", PASSWORD).await?;
    let third = rotate(&server, &ann, &second.id, Duration::ZERO).await?;
    refused(
        authorize(&server, &rotated.secret, &["posts:read"]).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
        "no grace",
    );
    assert!(authorize(&server, &third.secret, &["posts:read"]).await?.allowed);
    let too_long = rotate(&server, &ann, &third.api_key.ok_or("no key")?.id, Duration::from_secs(8 * 86_400)).await;
    refused(too_long, Code::InvalidArgument, "INVALID_ARGUMENT", "a grace over 7 days");
    let expired = rotate(&server, &ann, &first_id, Duration::ZERO).await;
    refused(expired, Code::Unauthenticated, "API_KEY_EXPIRED", "an expired key is not renewed by rotating it");
    let gone = rotate(&server, &ann, &second.id, Duration::ZERO).await;
    refused(gone, Code::NotFound, "API_KEY_NOT_FOUND", "rotate a key rotated without grace");
    Ok(())
}

async fn a_key_keeps_its_own_rate_limit_under_a_burst(backend: Backend) -> TestResult {
    let server = Arc::new(TestServer::start_with(backend, configure).await?);
    let ann = user_with_roles(&server, "ann@example.com", "user writer").await?;
    let limited =
        create(&server, &ann, CreateApiKeyRequest { rate_limit_per_minute: 3, ..new_key("limited", &["posts:read"]) })
            .await?;
    // Eight checks at once: exactly the three the limit allows pass.
    let barrier = Arc::new(Barrier::new(8));
    let mut calls = Vec::new();
    for _ in 0..8 {
        let (server, barrier, secret) = (server.clone(), barrier.clone(), limited.secret.clone());
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            authorize(&server, &secret, &["posts:read"]).await
        }));
    }
    let mut passed = 0;
    for call in calls {
        match call.await? {
            Ok(answer) => {
                passed += 1;
                assert!(answer.cache_ttl.is_none_or(|ttl| ttl.seconds == 0 && ttl.nanos == 0), "not cacheable");
            }
            Err(status) => refused::<()>(Err(status), Code::ResourceExhausted, "RATE_LIMITED", "past the limit"),
        }
    }
    assert_eq!(passed, 3);
    // A minute refills it.
    server.clock.advance(Duration::from_secs(61));
    assert!(authorize(&server, &limited.secret, &["posts:read"]).await?.allowed);
    Ok(())
}

async fn bad_input_is_refused_and_writes_nothing(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, configure).await?;
    let ann = user_with_roles(&server, "ann@example.com", "user writer").await?;
    let too_many: Vec<String> = (0..33).map(|_| "posts:read".to_owned()).collect();
    let seconds = |seconds| Some(prost_types::Duration { seconds, nanos: 0 });
    let cases = [
        (new_key("", &["posts:read"]), "INVALID_ARGUMENT", "an empty name"),
        (new_key(&"x".repeat(65), &["posts:read"]), "INVALID_ARGUMENT", "an oversized name"),
        (new_key("a\u{7}b", &["posts:read"]), "INVALID_ARGUMENT", "a control character"),
        (new_key("none", &[]), "INVALID_ARGUMENT", "no scope"),
        (CreateApiKeyRequest { scopes: too_many, ..new_key("many", &[]) }, "INVALID_ARGUMENT", "33 scopes"),
        (new_key("malformed", &["posts"]), "PERMISSION_UNKNOWN", "a scope that is not resource:action"),
        (
            CreateApiKeyRequest { expires_in: seconds(10), ..new_key("brief", &["posts:read"]) },
            "INVALID_ARGUMENT",
            "10 s",
        ),
        (
            CreateApiKeyRequest { expires_in: seconds(400 * 86_400), ..new_key("long", &["posts:read"]) },
            "INVALID_ARGUMENT",
            "400 days",
        ),
        (
            CreateApiKeyRequest { expires_in: seconds(-5), ..new_key("negative", &["posts:read"]) },
            "INVALID_ARGUMENT",
            "negative",
        ),
        (
            CreateApiKeyRequest { rate_limit_per_minute: 2_000_000, ..new_key("fast", &["posts:read"]) },
            "INVALID_ARGUMENT",
            "a huge limit",
        ),
        (
            CreateApiKeyRequest { service_account_id: "nope".into(), ..new_key("sa", &["posts:read"]) },
            "PERMISSION_DENIED",
            "a service account, not an admin",
        ),
    ];
    for (request, reason, what) in cases {
        let code = match reason {
            "PERMISSION_DENIED" => Code::PermissionDenied,
            _ => Code::InvalidArgument,
        };
        refused(create(&server, &ann, request).await, code, reason, what);
    }
    for bad_id in ["", "short", &"*".repeat(22), &"x".repeat(10_000)] {
        refused(revoke(&server, &ann, bad_id).await, Code::InvalidArgument, "INVALID_ARGUMENT", "a malformed key id");
    }
    let good = create(&server, &ann, new_key("good", &["posts:read"])).await?.secret;
    for bad_key in [
        String::new(),
        "kpa_".into(),
        format!("{good}A"),
        good.replacen("kpa_", "kpx_", 1),
        "kpa_".to_owned() + &"x".repeat(20_000),
    ] {
        let answer = authorize(&server, &bad_key, &["posts:read"]).await;
        assert!(
            matches!(&answer, Err(status) if status.code() == Code::Unauthenticated),
            "{:.40}: {answer:?}",
            bad_key
        );
    }
    assert_eq!(server.count("api_keys").await?, 1, "only the good key was written");
    // A session signed in long ago cannot mint a lasting credential.
    server.clock.advance(Duration::from_secs(601));
    let stale = create(&server, &ann, new_key("late", &["posts:read"])).await;
    refused(stale, Code::FailedPrecondition, "REAUTHENTICATION_REQUIRED", "a stale sign-in");
    assert_eq!(server.count("api_keys").await?, 1);
    Ok(())
}

async fn parallel_creations_cannot_pass_the_limit_of_keys(backend: Backend) -> TestResult {
    let server = Arc::new(
        TestServer::start_with(backend, |config| {
            configure(config);
            config.api_keys.max_per_owner = 3;
        })
        .await?,
    );
    let ann = user_with_roles(&server, "ann@example.com", "user writer").await?;
    let barrier = Arc::new(Barrier::new(8));
    let mut calls = Vec::new();
    for n in 0..8 {
        let (server, barrier, ann) = (server.clone(), barrier.clone(), ann.clone());
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            create(&server, &ann, new_key(&format!("key {n}"), &["posts:read"])).await
        }));
    }
    let mut created = 0;
    for call in calls {
        match call.await? {
            Ok(_) => created += 1,
            Err(status) => refused::<()>(Err(status), Code::InvalidArgument, "INVALID_ARGUMENT", "past the limit"),
        }
    }
    assert_eq!(created, 3);
    assert_eq!(server.count("api_keys").await?, 3);
    Ok(())
}

async fn service_accounts_own_keys_that_admins_manage(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, configure).await?;
    let root = user_with_roles(&server, "root@example.com", "admin user").await?;
    let ann = user_with_roles(&server, "ann@example.com", "user writer").await?;
    refused(
        service_account(&server, &ann, "billing-sync", &[]).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
        "not an admin",
    );
    let account = service_account(&server, &root, "billing-sync", &["support"]).await?;
    assert_eq!(account.roles, ["support"]);
    refused(
        service_account(&server, &root, "billing-sync", &[]).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
        "a taken name",
    );
    refused(
        service_account(&server, &root, "Billing Sync", &[]).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
        "a bad name",
    );
    refused(
        service_account(&server, &root, "other", &["ghost"]).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
        "an undefined role",
    );
    let listed = admin(&server).list_service_accounts(authed(ListServiceAccountsRequest {}, &root)).await?.into_inner();
    assert_eq!(listed.service_accounts, vec![account.clone()]);

    // Its key, created by the admin, calls the admin RPCs its scopes allow.
    let request = CreateApiKeyRequest { service_account_id: account.id.clone(), ..new_key("sync", &["users:read"]) };
    let key = create(&server, &root, request).await?.secret;
    let users = admin(&server).list_users(authed(ListUsersRequest::default(), &key)).await?.into_inner();
    assert_eq!(users.users.len(), 2);
    let ban = BanUserRequest { user_id: user_id(&server, &ann).await?, reason: "x".into(), expires_at: None };
    refused(
        admin(&server).ban_user(authed(ban, &key)).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
        "beyond its scopes",
    );
    let answer = authorize(&server, &key, &["users:read"]).await?;
    assert!(answer.allowed && answer.user.is_none() && answer.session.is_none());
    assert_eq!(answer.service_account.map(|sa| sa.name), Some("billing-sync".to_owned()));
    assert_eq!(list(&server, &root, &account.id).await?.len(), 1);
    refused(
        list(&server, &ann, &account.id).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
        "a user listing its keys",
    );

    // Its roles change: its keys' decisions with them, at once.
    let set = SetServiceAccountRolesRequest { service_account_id: account.id.clone(), roles: vec![] };
    admin(&server).set_service_account_roles(authed(set, &root)).await?;
    assert!(!authorize(&server, &key, &["users:read"]).await?.allowed);
    for (id, code, reason) in [
        (UNKNOWN_ACCOUNT, Code::NotFound, "SERVICE_ACCOUNT_NOT_FOUND"),
        ("nope", Code::InvalidArgument, "INVALID_ARGUMENT"),
    ] {
        let delete = DeleteServiceAccountRequest { service_account_id: id.into() };
        refused(admin(&server).delete_service_account(authed(delete, &root)).await, code, reason, id);
    }
    let delete = DeleteServiceAccountRequest { service_account_id: account.id.clone() };
    let deleted = admin(&server).delete_service_account(authed(delete, &root)).await?.into_inner();
    assert_eq!(deleted.api_keys_revoked, 1);
    refused(authorize(&server, &key, &["users:read"]).await, Code::Unauthenticated, "UNAUTHENTICATED", "its key after");
    assert_eq!(server.count("api_keys").await?, 0);
    Ok(())
}

async fn revocations_reach_the_event_stream_of_every_replica(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, configure).await?;
    let replica = TestServer::replica_of_with(&server, configure).await?;
    let ann = user_with_roles(&server, "ann@example.com", "user writer").await?;
    let created = create(&server, &ann, new_key("bot", &["posts:read"])).await?;
    let key_id = created.api_key.ok_or("no key")?.id;
    // The other replica's stream on PostgreSQL; this process's on SQLite.
    let watched = if backend == Backend::Postgres { &replica } else { &server };
    let mut events = watched.sessions().watch_session_events(WatchSessionEventsRequest {}).await?.into_inner();
    assert!(matches!(events.message().await?.and_then(|m| m.event), Some(Event::Ready(_))));
    // Warmed into the watched replica's own cache, which must drop it.
    assert!(authorize(watched, &created.secret, &["posts:read"]).await?.allowed);
    revoke(&server, &ann, &key_id).await?;
    let heard = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.message().await?.and_then(|m| m.event) {
                Some(Event::ApiKeysChanged(changed)) => return Ok::<_, Status>(changed),
                Some(_) => continue,
                None => return Err(Status::aborted("stream ended")),
            }
        }
    })
    .await??;
    assert_eq!(heard.api_key_id, key_id);
    assert_eq!(heard.owner_id, user_id(&server, &ann).await?);
    refused(
        authorize(watched, &created.secret, &["posts:read"]).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
        "on the replica",
    );
    Ok(())
}

async fn the_rust_client_manages_and_checks_keys(backend: Backend) -> TestResult {
    use keyport_client::{CacheConfig, ClientInfo, KeyportClient, NewApiKey, Reason, SessionCache};
    let server = TestServer::start_with(backend, configure).await?;
    let ann = user_with_roles(&server, "ann@example.com", "user writer").await?;
    let client = KeyportClient::builder(format!("http://{}", server.addr)).build()?;
    let here = ClientInfo::default();
    let new = NewApiKey { name: "ci".into(), scopes: vec!["posts:read".into()], ..Default::default() };
    let created = client.create_api_key(&ann, new, &here).await?;
    assert_eq!(client.list_api_keys(&ann, &here).await?, vec![created.key.clone()]);

    let decided = client.authorize(&created.secret, &["posts:read", "posts:write"], &here).await?;
    assert_eq!(decided.decisions, [("posts:read".to_owned(), true), ("posts:write".to_owned(), false)]);
    let caller = decided.principal.api_key.clone().ok_or("a key's principal names the key")?;
    assert_eq!((caller.id.as_str(), caller.service_account_id), (created.key.id.as_str(), None));
    assert_eq!((decided.principal.email.as_str(), decided.principal.session_id.as_str()), ("ann@example.com", ""));

    // Through the cache: the second check is a hit, and a revocation drops it.
    let cache = SessionCache::start(client.clone(), CacheConfig::default());
    tokio::time::timeout(Duration::from_secs(5), async {
        while !cache.is_live() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await?;
    assert!(cache.authorize(&created.secret, &["posts:read"], &here).await?.all());
    assert!(cache.decide_cached(&created.secret, &["posts:read"]).is_some(), "cached");
    let rotated = client.rotate_api_key(&ann, &created.key.id, Duration::ZERO, &here).await?;
    tokio::time::timeout(Duration::from_secs(5), async {
        while cache.decide_cached(&created.secret, &["posts:read"]).is_some() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .map_err(|_| "the rotation never reached the cache")?;
    let old = cache.authorize(&created.secret, &["posts:read"], &here).await;
    assert!(matches!(&old, Err(error) if *error.reason() == Reason::Unauthenticated), "{old:?}");
    assert!(cache.authorize(&rotated.secret, &["posts:read"], &here).await?.all());
    client.revoke_api_key(&ann, &rotated.key.id, &here).await?;
    let gone = client.revoke_api_key(&ann, &rotated.key.id, &here).await;
    assert!(matches!(&gone, Err(error) if *error.reason() == Reason::ApiKeyNotFound), "{gone:?}");
    let as_session = client.get_session(&rotated.secret, &here).await;
    assert!(matches!(&as_session, Err(error) if *error.reason() == Reason::ApiKeyNotAccepted), "{as_session:?}");
    Ok(())
}
