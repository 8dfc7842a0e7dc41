//! `AuthorizationService.Authorize` through the real server on both stores:
//! decisions per permission by role (by name, `resource:*` and `*`), the
//! catalogue refusing unknown names before the token is read, every bad
//! input, and checks racing a revocation.

use std::{sync::Arc, time::Duration};

use keyport_proto::v1::{
    AuthorizeRequest, AuthorizeResponse, GetCurrentUserRequest, SetUserRolesRequest, SignOutRequest,
    admin_service_client::AdminServiceClient, authorization_service_client::AuthorizationServiceClient,
};
use keyport_server::config::Config;
use keyport_tests::{
    Backend, TestServer,
    grpc::{authed, reason},
    server::PASSWORD,
};
use tokio::sync::Barrier;
use tonic::{Code, Status};

use crate::{TestResult, on_both_backends};

on_both_backends!(
    decides_each_permission_by_role,
    bad_input_gets_stable_reasons,
    parallel_checks_see_a_revocation_at_once,
    a_malformed_catalogue_stops_the_server,
    a_role_set_by_an_admin_reaches_the_next_check_at_once,
    only_admins_set_roles_and_bad_input_is_refused,
);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The apps' catalogue: posts and billing; editors get every posts action.
pub(crate) fn configure(config: &mut Config) {
    config.authorization.permissions = ["posts:read", "posts:write", "billing:read"].map(String::from).to_vec();
    config.authorization.roles = [("user", vec!["posts:read"]), ("editor", vec!["posts:*"]), ("admin", vec!["*"])]
        .into_iter()
        .map(|(role, grants)| (role.to_owned(), grants.into_iter().map(String::from).collect()))
        .collect();
}

pub(crate) async fn authorize(
    server: &TestServer,
    token: &str,
    permissions: &[&str],
) -> Result<AuthorizeResponse, Status> {
    let request = AuthorizeRequest {
        token: token.into(),
        permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        organization_id: String::new(),
    };
    Ok(AuthorizationServiceClient::new(server.channel()).authorize(request).await?.into_inner())
}

pub(crate) fn decisions(response: &AuthorizeResponse) -> Vec<bool> {
    response.decisions.iter().map(|decision| decision.allowed).collect()
}

/// Signs `email` up with `roles` (set in the database before the first
/// session is read, so no cache holds the old ones) and in again.
pub(crate) async fn user_with_roles(server: &TestServer, email: &str, roles: &str) -> Result<String, BoxError> {
    server.sign_up(email).await?;
    let sql = format!("UPDATE users SET roles = '{roles}' WHERE email = '{email}'");
    sea_orm::ConnectionTrait::execute_unprepared(&server.db, &sql).await?;
    Ok(server.sign_in(email, PASSWORD).await?)
}

pub(crate) fn refused<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, expected: &str, what: &str) {
    match result {
        Err(status) => {
            assert_eq!(status.code(), code, "{what}: {status:?}");
            assert_eq!(reason(&status), expected, "{what}: {status:?}");
        }
        Ok(value) => panic!("{what}: expected {expected}, got {value:?}"),
    }
}

async fn decides_each_permission_by_role(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, configure).await?;
    let asked = ["posts:read", "posts:write", "billing:read", "users:write"];

    let reader = server.sign_up("reader@example.com").await?;
    let answer = authorize(&server, &reader, &asked).await?;
    assert_eq!(decisions(&answer), [true, false, false, false]);
    assert!(!answer.allowed);
    assert_eq!(answer.granted, ["posts:read"]);
    let asked_back: Vec<_> = answer.decisions.iter().map(|d| d.permission.as_str()).collect();
    assert_eq!(asked_back, asked, "one decision per permission, in order");
    assert_eq!(answer.user.as_ref().ok_or("no user")?.roles, ["user"]);
    assert!(answer.session.is_some() && answer.cache_ttl.is_some());
    assert!(authorize(&server, &reader, &["posts:read"]).await?.allowed);

    let editor = user_with_roles(&server, "editor@example.com", "editor user").await?;
    assert_eq!(decisions(&authorize(&server, &editor, &asked).await?), [true, true, false, false], "posts:*");
    let admin = user_with_roles(&server, "admin@example.com", "admin user").await?;
    let answer = authorize(&server, &admin, &asked).await?;
    assert!(answer.allowed, "*: {:?}", answer.decisions);
    assert_eq!(answer.granted.len(), 8, "the three of the apps and Keyport's five: {:?}", answer.granted);
    // A role the config no longer defines grants nothing.
    let retired = user_with_roles(&server, "retired@example.com", "moderator").await?;
    assert_eq!(decisions(&authorize(&server, &retired, &asked).await?), [false; 4]);
    Ok(())
}

async fn bad_input_gets_stable_reasons(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, configure).await?;
    let token = server.sign_up("ann@example.com").await?;
    let many: Vec<&str> = std::iter::repeat_n("posts:read", 33).collect();
    let long = format!("posts:{}", "a".repeat(65));
    for (permissions, code, expected, what) in [
        (vec!["posts:delete"], Code::InvalidArgument, "PERMISSION_UNKNOWN", "not in the catalogue"),
        (vec!["posts:read", "Posts:Read"], Code::InvalidArgument, "PERMISSION_UNKNOWN", "upper case"),
        (vec!["posts"], Code::InvalidArgument, "PERMISSION_UNKNOWN", "no action"),
        (vec!["posts:*"], Code::InvalidArgument, "PERMISSION_UNKNOWN", "a grant is not a permission"),
        (vec![""], Code::InvalidArgument, "PERMISSION_UNKNOWN", "empty name"),
        (vec![long.as_str()], Code::InvalidArgument, "PERMISSION_UNKNOWN", "oversized part"),
        (vec![], Code::InvalidArgument, "INVALID_ARGUMENT", "none asked"),
        (many, Code::InvalidArgument, "INVALID_ARGUMENT", "33 asked"),
    ] {
        refused(authorize(&server, &token, &permissions).await, code, expected, what);
    }
    // The names are checked first: a typo fails alike with any token.
    refused(
        authorize(&server, "garbage", &["posts:delete"]).await,
        Code::InvalidArgument,
        "PERMISSION_UNKNOWN",
        "typo, bad token",
    );
    for (bad, what) in [("", "empty token"), ("garbage", "malformed token"), ("kp_AAAA.BBBB", "unknown token")] {
        refused(authorize(&server, bad, &["posts:read"]).await, Code::Unauthenticated, "UNAUTHENTICATED", what);
    }
    let request = AuthorizeRequest {
        token: token.clone(),
        permissions: vec!["posts:read".into()],
        organization_id: "org_1".into(),
    };
    let result = AuthorizationServiceClient::new(server.channel()).authorize(request).await;
    refused(result, Code::InvalidArgument, "INVALID_ARGUMENT", "organization");

    let signed_out = server.sign_in("ann@example.com", PASSWORD).await?;
    server.sessions().sign_out(authed(SignOutRequest {}, &signed_out)).await?;
    refused(
        authorize(&server, &signed_out, &["posts:read"]).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
        "signed out",
    );
    server.clock.advance(Duration::from_secs(8 * 24 * 3600));
    refused(authorize(&server, &token, &["posts:read"]).await, Code::Unauthenticated, "SESSION_EXPIRED", "expired");
    Ok(())
}

async fn parallel_checks_see_a_revocation_at_once(backend: Backend) -> TestResult {
    const CALLERS: usize = 16;
    let server = Arc::new(TestServer::start_with(backend, configure).await?);
    let token = server.sign_up("ann@example.com").await?;
    let barrier = Arc::new(Barrier::new(CALLERS));
    let calls = (0..CALLERS).map(|_| {
        let (server, barrier, token) = (server.clone(), barrier.clone(), token.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            authorize(&server, &token, &["posts:read", "posts:write"]).await.map(|answer| decisions(&answer))
        })
    });
    for answer in futures::future::join_all(calls).await {
        assert_eq!(answer??, [true, false], "every parallel check the same");
    }
    // Checks keep coming while the session ends: none after the sign-out
    // returned is allowed (the server's own cache drops it at once).
    let checker = {
        let (server, token) = (server.clone(), token.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for _ in 0..200 {
                answers.push((std::time::Instant::now(), authorize(&server, &token, &["posts:read"]).await.is_ok()));
            }
            answers
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    server.sessions().sign_out(authed(SignOutRequest {}, &token)).await?;
    let signed_out_at = std::time::Instant::now();
    let answers = checker.await?;
    let late_allowed = answers.iter().filter(|(at, allowed)| *at > signed_out_at && *allowed).count();
    assert_eq!(late_allowed, 0, "a check that started after the sign-out returned was allowed");
    Ok(())
}

async fn a_malformed_catalogue_stops_the_server(backend: Backend) -> TestResult {
    let started = TestServer::start_with(backend, |config| {
        configure(config);
        config.authorization.roles.insert("editor".into(), vec!["wiki:*".into()]);
    })
    .await;
    let error = started.err().ok_or("a role granting an unknown resource started")?;
    assert!(error.to_string().contains("role \"editor\""), "{error}");
    Ok(())
}

pub(crate) async fn user_id(server: &TestServer, token: &str) -> Result<String, BoxError> {
    let me = server.users().get_current_user(authed(GetCurrentUserRequest {}, token)).await?.into_inner();
    Ok(me.user.ok_or("no user")?.id)
}

async fn set_roles(server: &TestServer, admin: &str, user_id: &str, roles: &[&str]) -> Result<Vec<String>, Status> {
    let request =
        SetUserRolesRequest { user_id: user_id.into(), roles: roles.iter().map(|r| (*r).to_owned()).collect() };
    let response = AdminServiceClient::new(server.channel()).set_user_roles(authed(request, admin)).await?;
    Ok(response.into_inner().user.map(|user| user.roles).unwrap_or_default())
}

async fn a_role_set_by_an_admin_reaches_the_next_check_at_once(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, configure).await?;
    let admin = user_with_roles(&server, "admin@example.com", "admin user").await?;
    let ann = server.sign_up("ann@example.com").await?;
    let ann_id = user_id(&server, &ann).await?;
    // Cached by the server as a plain user.
    assert_eq!(decisions(&authorize(&server, &ann, &["posts:write"]).await?), [false]);

    assert_eq!(set_roles(&server, &admin, &ann_id, &["editor"]).await?, ["editor", "user"], "user is kept");
    assert_eq!(decisions(&authorize(&server, &ann, &["posts:write"]).await?), [true], "granted: the next check");
    assert_eq!(set_roles(&server, &admin, &ann_id, &[]).await?, ["user"]);
    assert_eq!(decisions(&authorize(&server, &ann, &["posts:write"]).await?), [false], "removed: the next check");
    assert_eq!(server.scalar("SELECT COUNT(*) FROM audit_events WHERE kind = 'roles_changed'").await?, 2);

    // Another replica's cache hears of it too (PostgreSQL relays events;
    // SQLite replicas are separate processes on one file, with no relay).
    if backend == Backend::Postgres {
        let replica = TestServer::replica_of_with(&server, configure).await?;
        assert_eq!(decisions(&authorize(&replica, &ann, &["posts:write"]).await?), [false]);
        set_roles(&server, &admin, &ann_id, &["editor"]).await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while decisions(&authorize(&replica, &ann, &["posts:write"]).await?) != [true] {
            assert!(std::time::Instant::now() < deadline, "the replica kept the old roles");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // Parallel changes: the last one written is what every check sees.
    let server = Arc::new(server);
    let barrier = Arc::new(Barrier::new(8));
    let changes = (0..8).map(|n| {
        let (server, barrier, admin, ann_id) = (server.clone(), barrier.clone(), admin.clone(), ann_id.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            let roles: &[&str] = if n % 2 == 0 { &["editor"] } else { &[] };
            set_roles(&server, &admin, &ann_id, roles).await
        })
    });
    for changed in futures::future::join_all(changes).await {
        changed??;
    }
    let stored =
        server.scalar("SELECT COUNT(*) FROM users WHERE email = 'ann@example.com' AND roles = 'editor user'").await?;
    let answer = decisions(&authorize(&server, &ann, &["posts:write"]).await?);
    assert_eq!(answer, [stored == 1], "the check agrees with what was stored last");
    Ok(())
}

async fn only_admins_set_roles_and_bad_input_is_refused(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, configure).await?;
    let admin = user_with_roles(&server, "admin@example.com", "admin user").await?;
    let editor = user_with_roles(&server, "editor@example.com", "editor user").await?;
    let ann = server.sign_up("ann@example.com").await?;
    let ann_id = user_id(&server, &ann).await?;
    // A non-admin cannot, not even for themselves; no credential cannot.
    let editor_id = user_id(&server, &editor).await?;
    for (token, target, code, expected, what) in [
        (ann.as_str(), ann_id.as_str(), Code::PermissionDenied, "PERMISSION_DENIED", "a user for themselves"),
        (editor.as_str(), ann_id.as_str(), Code::PermissionDenied, "PERMISSION_DENIED", "an editor"),
        (editor.as_str(), editor_id.as_str(), Code::PermissionDenied, "PERMISSION_DENIED", "an editor for themselves"),
        ("", ann_id.as_str(), Code::Unauthenticated, "UNAUTHENTICATED", "no credential"),
        ("kp_AAAA.BBBB", ann_id.as_str(), Code::Unauthenticated, "UNAUTHENTICATED", "unknown token"),
    ] {
        refused(set_roles(&server, token, target, &["admin"]).await, code, expected, what);
    }
    for (target, roles, what) in [
        ("not-a-uuid", vec!["editor"], "malformed id"),
        ("", vec!["editor"], "empty id"),
        (ann_id.as_str(), vec!["superuser"], "undefined role"),
        (ann_id.as_str(), vec!["Editor"], "wrong case"),
    ] {
        refused(set_roles(&server, &admin, target, &roles).await, Code::InvalidArgument, "INVALID_ARGUMENT", what);
    }
    let unknown = set_roles(&server, &admin, "0190e9b1-0000-7000-8000-000000000000", &["editor"]).await;
    refused(unknown, Code::NotFound, "USER_NOT_FOUND", "unknown user");
    assert_eq!(
        server.scalar("SELECT COUNT(*) FROM audit_events WHERE kind = 'roles_changed'").await?,
        0,
        "nothing written"
    );
    assert_eq!(decisions(&authorize(&server, &ann, &["posts:write"]).await?), [false]);
    // An expired admin session cannot either.
    server.clock.advance(Duration::from_secs(8 * 24 * 3600));
    refused(
        set_roles(&server, &admin, &ann_id, &["editor"]).await,
        Code::Unauthenticated,
        "SESSION_EXPIRED",
        "expired admin",
    );
    Ok(())
}
