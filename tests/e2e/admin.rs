//! `AdminService` through the real server on both stores: bans (sessions end
//! at once, sign-ins refused until lifted or run out, racing sign-ins leave
//! no session), revoking and deleting users, listing and inspecting them,
//! and the refusals of every RPC to everyone but an admin.

use std::{sync::Arc, time::Duration};

use keyport_core::Clock;
use keyport_proto::v1::{
    BanFilter, BanUserRequest, DeleteRoleRequest, DeleteUserRequest, GetUserRequest, ListAuditEventsRequest,
    ListUsersRequest, ListUsersResponse, ManagedUser, PutRoleRequest, RevokeUserSessionsRequest, SetUserRolesRequest,
    UnbanUserRequest, UserChange, WatchSessionEventsRequest, admin_service_client::AdminServiceClient,
    complete_sign_in_request::Answer, watch_session_events_response::Event,
};
use keyport_server::config::Config;
use keyport_tests::{Backend, TestServer, grpc::authed, server::PASSWORD};
use tokio::sync::Barrier;
use tonic::{Code, Status, transport::Channel};

use crate::{
    TestResult,
    authorization::{refused, user_id, user_with_roles},
    on_both_backends,
    second_factors::{challenge, complete, enrolled},
};

on_both_backends!(
    a_ban_ends_every_session_and_refuses_sign_in_until_lifted,
    a_ban_runs_out_on_its_own,
    a_ban_voids_a_pending_second_factor,
    sign_ins_racing_a_ban_leave_no_session,
    a_cancelled_ban_is_all_or_nothing,
    revoking_and_deleting_users,
    admins_page_through_and_filter_users,
    admins_read_the_audit_trail_a_page_at_a_time,
    impersonation_is_marked_short_and_changes_no_credential,
    run_time_roles_reach_every_check_at_once,
    lesser_admins_reach_no_further_than_their_own_permissions,
    only_admins_call_admin_rpcs,
);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const UNKNOWN_USER: &str = "0190e9b1-0000-7000-8000-000000000000";

/// Roles: `support` may read users and nothing else; `admin` may do all.
fn configure(config: &mut Config) {
    config.authorization.permissions = ["posts:read", "posts:write"].map(String::from).to_vec();
    let helpdesk = vec!["users:read", "users:write", "sessions:revoke"];
    config.authorization.roles =
        [("user", vec![]), ("support", vec!["users:read"]), ("helpdesk", helpdesk), ("admin", vec!["*"])]
            .into_iter()
            .map(|(role, grants)| (role.to_owned(), grants.into_iter().map(String::from).collect()))
            .collect();
}

fn admin(server: &TestServer) -> AdminServiceClient<Channel> {
    AdminServiceClient::new(server.channel())
}

async fn ban(
    server: &TestServer,
    token: &str,
    user_id: &str,
    expires_in: Option<Duration>,
) -> Result<ManagedUser, Status> {
    let expires_at = expires_in.map(|after| proto_time(server.clock.now().unix_millis() + millis(after)));
    let request = BanUserRequest { user_id: user_id.into(), reason: "chargebacks".into(), expires_at };
    Ok(admin(server).ban_user(authed(request, token)).await?.into_inner().user.unwrap_or_default())
}

async fn unban(server: &TestServer, token: &str, user_id: &str) -> Result<ManagedUser, Status> {
    let request = UnbanUserRequest { user_id: user_id.into() };
    Ok(admin(server).unban_user(authed(request, token)).await?.into_inner().user.unwrap_or_default())
}

async fn list(server: &TestServer, token: &str, request: ListUsersRequest) -> Result<ListUsersResponse, Status> {
    Ok(admin(server).list_users(authed(request, token)).await?.into_inner())
}

fn emails(page: &ListUsersResponse) -> Vec<String> {
    page.users.iter().filter_map(|managed| managed.user.as_ref()).map(|user| user.email.clone()).collect()
}

fn proto_time(unix_millis: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: unix_millis.div_euclid(1000),
        nanos: (unix_millis.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

async fn sessions_of(server: &TestServer, email: &str) -> Result<i64, BoxError> {
    let sql = format!("SELECT COUNT(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email = '{email}'");
    server.scalar(&sql).await
}

/// Waits for the `change` of `user_id` on a `WatchSessionEvents` stream.
async fn heard(
    events: &mut tonic::Streaming<keyport_proto::v1::WatchSessionEventsResponse>,
    user_id: &str,
    change: UserChange,
) -> TestResult {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.message().await?.and_then(|message| message.event) {
                Some(Event::UserChanged(changed)) if changed.user_id == user_id && changed.change() == change => {
                    return Ok::<_, BoxError>(());
                }
                Some(_) => continue,
                None => return Err("the stream ended".into()),
            }
        }
    })
    .await?
}

async fn a_ban_ends_every_session_and_refuses_sign_in_until_lifted(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, configure).await?;
    let root = user_with_roles(&server, "root@example.com", "admin user").await?;
    let ann = server.sign_up("ann@example.com").await?;
    let ann_laptop = server.sign_in("ann@example.com", PASSWORD).await?;
    let ann_id = user_id(&server, &ann).await?;
    assert_eq!(server.session_reason(&ann).await, "OK", "cached by the server before the ban");
    let mut events = server.sessions().watch_session_events(WatchSessionEventsRequest {}).await?.into_inner();
    events.message().await?;
    let replica = match backend {
        Backend::Postgres => Some(TestServer::replica_of_with(&server, configure).await?),
        Backend::Sqlite => None,
    };
    if let Some(replica) = &replica {
        assert_eq!(replica.session_reason(&ann_laptop).await, "OK", "cached by the other replica too");
    }

    let banned = ban(&server, &root, &ann_id, None).await?;
    let ban_info = banned.ban.ok_or("the answer shows the ban")?;
    assert_eq!((ban_info.reason.as_str(), ban_info.expires_at), ("chargebacks", None));
    for token in [&ann, &ann_laptop] {
        assert_eq!(server.session_reason(token).await, "UNAUTHENTICATED", "refused at once");
    }
    assert_eq!(sessions_of(&server, "ann@example.com").await?, 0);
    heard(&mut events, &ann_id, UserChange::Banned).await?;
    if let Some(replica) = &replica {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while replica.session_reason(&ann_laptop).await == "OK" {
            assert!(std::time::Instant::now() < deadline, "the other replica kept the banned user's session");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let refused_there = replica.sign_in("ann@example.com", PASSWORD).await.unwrap_err();
        assert_eq!(keyport_tests::grpc::reason(&refused_there), "USER_BANNED");
    }

    // The right password is told of the ban; a wrong one learns nothing.
    refused(server.sign_in("ann@example.com", PASSWORD).await, Code::PermissionDenied, "USER_BANNED", "banned");
    refused(
        server.sign_in("ann@example.com", "wrong password!").await,
        Code::Unauthenticated,
        "INVALID_CREDENTIALS",
        "wrong",
    );
    let audited = "SELECT COUNT(*) FROM audit_events WHERE kind = 'user_banned' AND detail LIKE '%:revoked:2'";
    assert_eq!(server.scalar(audited).await?, 1, "audited with the two sessions it ended");
    let listed = list(&server, &root, ListUsersRequest { ban: BanFilter::Banned.into(), ..Default::default() }).await?;
    assert_eq!(emails(&listed), ["ann@example.com"]);

    let lifted = unban(&server, &root, &ann_id).await?;
    assert!(lifted.ban.is_none());
    heard(&mut events, &ann_id, UserChange::Unbanned).await?;
    let again = server.sign_in("ann@example.com", PASSWORD).await?;
    assert_eq!(server.session_reason(&again).await, "OK");
    // Banning again replaces the ban and ends the new session.
    ban(&server, &root, &ann_id, Some(Duration::from_secs(60))).await?;
    assert_eq!(server.session_reason(&again).await, "UNAUTHENTICATED");
    Ok(())
}

async fn a_ban_runs_out_on_its_own(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, configure).await?;
    let root = user_with_roles(&server, "root@example.com", "admin user").await?;
    let ann_id = user_id(&server, &server.sign_up("ann@example.com").await?).await?;
    let banned = ban(&server, &root, &ann_id, Some(Duration::from_secs(3600))).await?;
    assert!(banned.ban.and_then(|ban| ban.expires_at).is_some());
    server.clock.advance(Duration::from_secs(3599));
    refused(server.sign_in("ann@example.com", PASSWORD).await, Code::PermissionDenied, "USER_BANNED", "not yet over");
    server.clock.advance(Duration::from_secs(2));
    let root = server.sign_in("root@example.com", PASSWORD).await?;
    server.sign_in("ann@example.com", PASSWORD).await?;
    let shown = admin(&server).get_user(authed(GetUserRequest { user_id: ann_id }, &root)).await?.into_inner();
    assert!(shown.user.ok_or("no user")?.ban.is_none(), "a ban that ran out is not shown as one");
    let listed = list(&server, &root, ListUsersRequest { ban: BanFilter::Banned.into(), ..Default::default() }).await?;
    assert!(listed.users.is_empty(), "{listed:?}");
    Ok(())
}

async fn a_ban_voids_a_pending_second_factor(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, configure).await?;
    let root = user_with_roles(&server, "root@example.com", "admin user").await?;
    let ada = enrolled(&server, "ada@example.com").await?;
    let ada_id = user_id(&server, &ada.token).await?;
    // The password was right before the ban; the second factor comes after.
    let pending = challenge(&server, &ada.email).await?;
    ban(&server, &root, &ada_id, None).await?;
    let result = complete(&server, &pending.challenge, Answer::TotpCode(ada.code(&server, 0))).await;
    refused(result, Code::InvalidArgument, "SIGN_IN_CHALLENGE_INVALID", "a challenge from before the ban");
    let backup = Answer::BackupCode(ada.backup_codes[0].clone());
    refused(
        complete(&server, &pending.challenge, backup).await,
        Code::InvalidArgument,
        "SIGN_IN_CHALLENGE_INVALID",
        "backup",
    );
    // A banned user with a factor gets no challenge at all.
    let refusal = challenge(&server, &ada.email).await.unwrap_err().to_string();
    assert!(refusal.contains("suspended"), "{refusal}");
    assert_eq!(sessions_of(&server, "ada@example.com").await?, 0);
    Ok(())
}

async fn sign_ins_racing_a_ban_leave_no_session(backend: Backend) -> TestResult {
    const SIGN_INS: usize = 8;
    let server = Arc::new(TestServer::start_with(backend, configure).await?);
    let root = user_with_roles(&server, "root@example.com", "admin user").await?;
    let ann_id = user_id(&server, &server.sign_up("ann@example.com").await?).await?;
    let barrier = Arc::new(Barrier::new(SIGN_INS + 1));
    let sign_ins: Vec<_> = (0..SIGN_INS)
        .map(|_| {
            let (server, barrier) = (server.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                server.sign_in("ann@example.com", PASSWORD).await
            })
        })
        .collect();
    barrier.wait().await;
    ban(&server, &root, &ann_id, None).await?;
    for signed_in in futures::future::join_all(sign_ins).await {
        match signed_in? {
            // Signed in before the ban: the ban ended it.
            Ok(token) => assert_eq!(server.session_reason(&token).await, "UNAUTHENTICATED"),
            Err(status) => {
                // Also when the ban landed between the password check and
                // the session's insert: the refusal still says why.
                assert_eq!(keyport_tests::grpc::reason(&status), "USER_BANNED", "{status:?}");
            }
        }
    }
    assert_eq!(sessions_of(&server, "ann@example.com").await?, 0, "no session outlives the ban");
    Ok(())
}

async fn a_cancelled_ban_is_all_or_nothing(backend: Backend) -> TestResult {
    // A banned sign-in stays a failed attempt (its answer says the password
    // was right); this one makes a dozen.
    let server = TestServer::start_with(backend, |config| {
        configure(config);
        config.sign_in_limits.per_account = 1_000;
        config.sign_in_limits.per_ip = 1_000;
    })
    .await?;
    let root = user_with_roles(&server, "root@example.com", "admin user").await?;
    let ann_id = user_id(&server, &server.sign_up("ann@example.com").await?).await?;
    let mut landed = 0;
    for delay_ms in 0..12 {
        server.sign_in("ann@example.com", PASSWORD).await?;
        let _ = tokio::time::timeout(Duration::from_millis(delay_ms), ban(&server, &root, &ann_id, None)).await;
        // A ban that reached the server runs to its end, cancelled or not;
        // one cancelled before it was sent did nothing. Either way never
        // banned with a session left, nor a session ended without a ban.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let banned = server
            .scalar("SELECT COUNT(*) FROM users WHERE email = 'ann@example.com' AND banned_at IS NOT NULL")
            .await?;
        let sessions = sessions_of(&server, "ann@example.com").await?;
        let signing_in = server.sign_in("ann@example.com", PASSWORD).await;
        if banned == 1 {
            landed += 1;
            assert_eq!(sessions, 0, "after {delay_ms} ms: banned with a session left");
            refused(signing_in, Code::PermissionDenied, "USER_BANNED", "after a cancelled ban");
            unban(&server, &root, &ann_id).await?;
        } else {
            assert!(sessions > 0, "after {delay_ms} ms: sessions ended without a ban");
            signing_in?;
        }
    }
    assert!(landed > 0, "no ban of twelve reached the server: the test proved nothing");
    Ok(())
}

async fn revoking_and_deleting_users(backend: Backend) -> TestResult {
    let server = Arc::new(TestServer::start_with(backend, configure).await?);
    let root = user_with_roles(&server, "root@example.com", "admin user").await?;
    let ann = server.sign_up("ann@example.com").await?;
    let ann_phone = server.sign_in("ann@example.com", PASSWORD).await?;
    let ann_id = user_id(&server, &ann).await?;
    let mut events = server.sessions().watch_session_events(WatchSessionEventsRequest {}).await?.into_inner();
    events.message().await?;

    let shown = admin(&server).get_user(authed(GetUserRequest { user_id: ann_id.clone() }, &root)).await?.into_inner();
    assert_eq!(shown.sessions.len(), 2);
    assert!(shown.sessions.iter().all(|session| !session.current && session.user_id == ann_id));
    assert!(shown.linked_accounts.is_empty());

    let revoke = || RevokeUserSessionsRequest { user_id: ann_id.clone() };
    assert_eq!(admin(&server).revoke_user_sessions(authed(revoke(), &root)).await?.into_inner().revoked, 2);
    heard(&mut events, &ann_id, UserChange::SessionsRevoked).await?;
    for token in [&ann, &ann_phone] {
        assert_eq!(server.session_reason(token).await, "UNAUTHENTICATED");
    }
    assert_eq!(admin(&server).revoke_user_sessions(authed(revoke(), &root)).await?.into_inner().revoked, 0);
    assert_eq!(server.session_reason(&root).await, "OK", "the admin's own session is not touched");

    // Parallel deletes of one user: one deletes, the others find no user.
    let ann = server.sign_in("ann@example.com", PASSWORD).await?;
    let barrier = Arc::new(Barrier::new(6));
    let deletes = (0..6).map(|_| {
        let (server, barrier, root, ann_id) = (server.clone(), barrier.clone(), root.clone(), ann_id.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            admin(&server).delete_user(authed(DeleteUserRequest { user_id: ann_id }, &root)).await
        })
    });
    let mut deleted = 0;
    for outcome in futures::future::join_all(deletes).await {
        match outcome? {
            Ok(_) => deleted += 1,
            Err(status) => assert_eq!(keyport_tests::grpc::reason(&status), "USER_NOT_FOUND", "{status:?}"),
        }
    }
    assert_eq!(deleted, 1);
    heard(&mut events, &ann_id, UserChange::Deleted).await?;
    assert_eq!(server.session_reason(&ann).await, "UNAUTHENTICATED");
    assert_eq!(server.scalar("SELECT COUNT(*) FROM users WHERE email = 'ann@example.com'").await?, 0);
    let gone = admin(&server).get_user(authed(GetUserRequest { user_id: ann_id.clone() }, &root)).await;
    refused(gone, Code::NotFound, "USER_NOT_FOUND", "a deleted user");
    let revoke_gone = admin(&server).revoke_user_sessions(authed(revoke(), &root)).await;
    refused(revoke_gone, Code::NotFound, "USER_NOT_FOUND", "revoking a deleted user's sessions");
    Ok(())
}

async fn admins_page_through_and_filter_users(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, configure).await?;
    let root = user_with_roles(&server, "root@example.com", "admin user").await?;
    // `_` and `%` are LIKE wildcards: a prefix matches them literally.
    let emails_in_order =
        ["team_a@example.com", "teamxb@example.com", "team_c@example.com", "100%@example.com", "bob@example.org"];
    let start = server.clock.now().unix_millis();
    for email in emails_in_order {
        server.clock.advance(Duration::from_secs(10));
        server.sign_up(email).await?;
    }
    let mut newest_first: Vec<String> = emails_in_order.iter().rev().map(|email| (*email).to_owned()).collect();
    newest_first.push("root@example.com".into());

    // Pages of two, each continuing where the last ended.
    let (mut seen, mut token, mut pages) = (Vec::new(), String::new(), 0);
    loop {
        let page =
            list(&server, &root, ListUsersRequest { page_size: 2, page_token: token, ..Default::default() }).await?;
        assert!(page.users.len() <= 2);
        seen.extend(emails(&page));
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!((seen, pages), (newest_first, 3), "every user once, newest first");

    let by_prefix = |prefix: &str| ListUsersRequest { email_prefix: prefix.into(), ..Default::default() };
    assert_eq!(emails(&list(&server, &root, by_prefix("team_")).await?), ["team_c@example.com", "team_a@example.com"]);
    assert_eq!(emails(&list(&server, &root, by_prefix(" TEAM_C")).await?), ["team_c@example.com"], "normalised");
    assert_eq!(emails(&list(&server, &root, by_prefix("100%")).await?), ["100%@example.com"]);
    assert!(list(&server, &root, by_prefix("%")).await?.users.is_empty(), "a literal %");
    // Created at or after the second sign-up, before the fourth.
    let window = ListUsersRequest {
        created_after: Some(proto_time(start + 20_000)),
        created_before: Some(proto_time(start + 40_000)),
        ..Default::default()
    };
    assert_eq!(emails(&list(&server, &root, window).await?), ["team_c@example.com", "teamxb@example.com"]);
    let bob_id = list(&server, &root, by_prefix("bob")).await?.users[0].user.clone().ok_or("no user")?.id;
    admin(&server)
        .set_user_roles(authed(SetUserRolesRequest { user_id: bob_id, roles: vec!["support".into()] }, &root))
        .await?;
    let supporters = list(&server, &root, ListUsersRequest { role: "support".into(), ..Default::default() }).await?;
    assert_eq!(emails(&supporters), ["bob@example.org"]);
    let admins = list(&server, &root, ListUsersRequest { role: "admin".into(), ..Default::default() }).await?;
    assert_eq!(emails(&admins), ["root@example.com"], "a whole role, not a part of one");
    let not_banned =
        list(&server, &root, ListUsersRequest { ban: BanFilter::NotBanned.into(), ..Default::default() }).await?;
    assert_eq!(not_banned.users.len(), 6);

    // Bad input: one reason, and the field named.
    for (request, what) in [
        (ListUsersRequest { page_size: 201, ..Default::default() }, "page too large"),
        (ListUsersRequest { page_size: -1, ..Default::default() }, "negative page size"),
        (ListUsersRequest { page_token: "garbage!".into(), ..Default::default() }, "malformed page token"),
        (ListUsersRequest { page_token: "AAAA".into(), ..Default::default() }, "short page token"),
        (ListUsersRequest { role: "Not A Role".into(), ..Default::default() }, "malformed role"),
        (ListUsersRequest { role: "superuser".into(), ..Default::default() }, "a role the config lacks"),
        (ListUsersRequest { ban: 99, ..Default::default() }, "unknown ban filter"),
        (ListUsersRequest { email_prefix: "a".repeat(2_000), ..Default::default() }, "oversized prefix"),
        (
            ListUsersRequest {
                created_after: Some(prost_types::Timestamp { seconds: 0, nanos: -1 }),
                ..Default::default()
            },
            "malformed time",
        ),
        (
            ListUsersRequest {
                created_before: Some(prost_types::Timestamp { seconds: i64::MAX, nanos: 0 }),
                ..Default::default()
            },
            "time out of range",
        ),
    ] {
        refused(list(&server, &root, request).await, Code::InvalidArgument, "INVALID_ARGUMENT", what);
    }
    for (user_id, code, expected) in [
        ("", Code::InvalidArgument, "INVALID_ARGUMENT"),
        ("not-a-uuid", Code::InvalidArgument, "INVALID_ARGUMENT"),
        (&"x".repeat(10_000), Code::InvalidArgument, "INVALID_ARGUMENT"),
        (&UNKNOWN_USER.to_uppercase(), Code::InvalidArgument, "INVALID_ARGUMENT"),
        (&format!("{{{UNKNOWN_USER}}}"), Code::InvalidArgument, "INVALID_ARGUMENT"),
        (&UNKNOWN_USER.replace('-', ""), Code::InvalidArgument, "INVALID_ARGUMENT"),
        (UNKNOWN_USER, Code::NotFound, "USER_NOT_FOUND"),
    ] {
        let result = admin(&server).get_user(authed(GetUserRequest { user_id: user_id.into() }, &root)).await;
        refused(result, code, expected, &format!("GetUser {user_id:.12}"));
    }
    Ok(())
}

/// Every admin RPC, called with `token` on the user `target`; `Ok` or its
/// refusal.
async fn every_rpc(server: &TestServer, token: &str, target: &str) -> Vec<(&'static str, Result<(), Status>)> {
    let client = admin(server);
    let id = || target.to_owned();
    vec![
        ("ListUsers", client.clone().list_users(authed(ListUsersRequest::default(), token)).await.map(drop)),
        ("GetUser", client.clone().get_user(authed(GetUserRequest { user_id: id() }, token)).await.map(drop)),
        (
            "SetUserRoles",
            client
                .clone()
                .set_user_roles(authed(SetUserRolesRequest { user_id: id(), roles: vec![] }, token))
                .await
                .map(drop),
        ),
        (
            "BanUser",
            client
                .clone()
                .ban_user(authed(BanUserRequest { user_id: id(), reason: "r".into(), expires_at: None }, token))
                .await
                .map(drop),
        ),
        ("UnbanUser", client.clone().unban_user(authed(UnbanUserRequest { user_id: id() }, token)).await.map(drop)),
        (
            "RevokeUserSessions",
            client
                .clone()
                .revoke_user_sessions(authed(RevokeUserSessionsRequest { user_id: id() }, token))
                .await
                .map(drop),
        ),
        (
            "ListAuditEvents",
            client
                .clone()
                .list_audit_events(authed(ListAuditEventsRequest { user_id: id(), ..Default::default() }, token))
                .await
                .map(drop),
        ),
        (
            "ImpersonateUser",
            client
                .clone()
                .impersonate_user(authed(keyport_proto::v1::ImpersonateUserRequest { user_id: id() }, token))
                .await
                .map(drop),
        ),
        ("DeleteUser", client.clone().delete_user(authed(DeleteUserRequest { user_id: id() }, token)).await.map(drop)),
        ("ListRoles", client.clone().list_roles(authed(keyport_proto::v1::ListRolesRequest {}, token)).await.map(drop)),
        (
            "PutRole",
            client
                .clone()
                .put_role(authed(PutRoleRequest { name: "reader".into(), grants: vec!["posts:read".into()] }, token))
                .await
                .map(drop),
        ),
        (
            "DeleteRole",
            client.clone().delete_role(authed(DeleteRoleRequest { name: "reader".into() }, token)).await.map(drop),
        ),
    ]
}

async fn only_admins_call_admin_rpcs(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, configure).await?;
    let root = user_with_roles(&server, "root@example.com", "admin user").await?;
    let support = user_with_roles(&server, "support@example.com", "support user").await?;
    let ann = server.sign_up("ann@example.com").await?;
    let ann_id = user_id(&server, &ann).await?;
    let root_id = user_id(&server, &root).await?;

    for (token, what, expected) in [
        (ann.as_str(), "a user", "PERMISSION_DENIED"),
        ("", "no credential", "UNAUTHENTICATED"),
        ("kp_AAAA.BBBB", "an unknown token", "UNAUTHENTICATED"),
    ] {
        for (rpc, result) in every_rpc(&server, token, &root_id).await {
            let status = result.err().unwrap_or_else(|| panic!("{rpc} allowed {what}"));
            assert_eq!(keyport_tests::grpc::reason(&status), expected, "{rpc} by {what}: {status:?}");
        }
    }
    // A user's own id in the body does not make them an admin of themselves.
    for (rpc, result) in every_rpc(&server, &ann, &ann_id).await {
        assert_eq!(
            result.map_err(|s| keyport_tests::grpc::reason(&s)),
            Err("PERMISSION_DENIED".into()),
            "{rpc} on oneself"
        );
    }
    // Support reads users and changes nothing.
    for (rpc, result) in every_rpc(&server, &support, &ann_id).await {
        let allowed = matches!(rpc, "ListUsers" | "GetUser" | "ListRoles");
        assert_eq!(result.is_ok(), allowed, "{rpc} by support: {result:?}");
    }
    assert_eq!(server.session_reason(&ann).await, "OK", "nothing was done to ann");
    let admin_kinds = "SELECT COUNT(*) FROM audit_events WHERE kind IN \
        ('roles_changed', 'user_banned', 'user_unbanned', 'user_sessions_revoked', 'user_deleted', \
        'impersonation_started', 'user_created')";
    assert_eq!(server.scalar(admin_kinds).await?, 0, "nothing written by a refusal");

    // An admin cannot ban or delete themselves (a lock-out, or DeleteCurrentUser's job).
    refused(ban(&server, &root, &root_id, None).await, Code::InvalidArgument, "INVALID_ARGUMENT", "self-ban");
    let self_delete = admin(&server).delete_user(authed(DeleteUserRequest { user_id: root_id.clone() }, &root)).await;
    refused(self_delete, Code::InvalidArgument, "INVALID_ARGUMENT", "self-delete");
    // Bad ban input.
    for (reason, expires_in, what) in [
        ("", None, "no reason"),
        ("   ", None, "a blank reason"),
        (&*"r".repeat(513), None, "an oversized reason"),
        ("bad\u{7}", None, "a control character"),
        ("ok", Some(-1_000), "an expiry in the past"),
        ("ok", Some(0), "an expiry now"),
    ] {
        let expires_at = expires_in.map(|offset| proto_time(server.clock.now().unix_millis() + offset));
        let request = BanUserRequest { user_id: ann_id.clone(), reason: reason.into(), expires_at };
        refused(admin(&server).ban_user(authed(request, &root)).await, Code::InvalidArgument, "INVALID_ARGUMENT", what);
    }
    for (rpc, result) in every_rpc(&server, &root, UNKNOWN_USER).await {
        if matches!(rpc, "ListUsers" | "ListAuditEvents" | "ListRoles" | "PutRole" | "DeleteRole") {
            continue;
        }
        assert_eq!(result.map_err(|s| keyport_tests::grpc::reason(&s)), Err("USER_NOT_FOUND".into()), "{rpc}");
    }
    for (rpc, result) in every_rpc(&server, &root, "not-a-uuid").await {
        if matches!(rpc, "ListUsers" | "ListRoles" | "PutRole" | "DeleteRole") {
            continue;
        }
        assert_eq!(result.map_err(|s| keyport_tests::grpc::reason(&s)), Err("INVALID_ARGUMENT".into()), "{rpc}");
    }
    assert_eq!(server.session_reason(&ann).await, "OK", "still nothing done to ann");

    // An expired admin session is refused by every RPC.
    server.clock.advance(Duration::from_secs(8 * 24 * 3600));
    for (rpc, result) in every_rpc(&server, &root, &ann_id).await {
        assert_eq!(result.map_err(|s| keyport_tests::grpc::reason(&s)), Err("SESSION_EXPIRED".into()), "{rpc}");
    }
    Ok(())
}

async fn admins_read_the_audit_trail_a_page_at_a_time(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, configure).await?;
    let root = user_with_roles(&server, "root@example.com", "admin user").await?;
    let support = user_with_roles(&server, "support@example.com", "support user").await?;
    let ann = server.sign_up("ann@example.com").await?;
    let ann_id = user_id(&server, &ann).await?;
    server.clock.advance(Duration::from_secs(60));
    let after_sign_up = server.clock.now().unix_millis();
    server.sign_in("ann@example.com", "wrong password!").await.unwrap_err();
    server.sign_in("ann@example.com", PASSWORD).await?;
    ban(&server, &root, &ann_id, None).await?;
    let audit = |request: ListAuditEventsRequest, token: &str| {
        let mut client = admin(&server);
        let request = authed(request, token);
        async move { client.list_audit_events(request).await.map(|r| r.into_inner()) }
    };

    let failed = audit(ListAuditEventsRequest { kind: "sign_in_failed".into(), ..Default::default() }, &root).await?;
    assert_eq!(failed.events.len(), 1, "{failed:?}");
    let entry = &failed.events[0];
    assert_eq!((entry.user_id.as_str(), entry.detail.as_str()), (ann_id.as_str(), "wrong_password"));
    let banned = audit(ListAuditEventsRequest { kind: "user_banned".into(), ..Default::default() }, &root).await?;
    let root_id = user_id(&server, &root).await?;
    assert_eq!(banned.events[0].user_id, root_id, "an admin's action is the admin's row");
    assert_eq!(banned.events[0].detail, format!("{ann_id}:revoked:2"));
    let anns = audit(ListAuditEventsRequest { user_id: ann_id.clone(), ..Default::default() }, &root).await?;
    let kinds: Vec<&str> = anns.events.iter().map(|event| event.kind.as_str()).collect();
    assert_eq!(kinds, ["user_banned", "sign_in", "sign_in_failed", "sign_up"], "by or about ann, newest first");
    assert_eq!(anns.events[0].target_user_id, ann_id, "the admin's action names its target");
    assert!(anns.events[1..].iter().all(|event| event.target_user_id.is_empty()));
    let window = ListAuditEventsRequest { after: Some(proto_time(after_sign_up)), ..Default::default() };
    assert_eq!(audit(window, &root).await?.events.len(), 3, "the failure, the sign-in and the ban");

    // Every entry once, newest first, pages of two.
    let (mut ids, mut token) = (Vec::new(), String::new());
    loop {
        let page =
            audit(ListAuditEventsRequest { page_size: 2, page_token: token, ..Default::default() }, &root).await?;
        ids.extend(page.events.iter().map(|event| event.id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(i64::try_from(ids.len())?, server.count("audit_events").await?);
    assert!(ids.windows(2).all(|pair| pair[0] > pair[1]), "newest first, none twice");

    for (request, what) in [
        (ListAuditEventsRequest { user_id: "not-a-uuid".into(), ..Default::default() }, "malformed user"),
        (ListAuditEventsRequest { kind: "Sign In".into(), ..Default::default() }, "malformed kind"),
        (ListAuditEventsRequest { kind: "k".repeat(65), ..Default::default() }, "oversized kind"),
        (ListAuditEventsRequest { page_size: 201, ..Default::default() }, "page too large"),
        (ListAuditEventsRequest { page_token: "nope".into(), ..Default::default() }, "bad page token"),
        (
            ListAuditEventsRequest {
                after: Some(prost_types::Timestamp { seconds: 1, nanos: 2_000_000_000 }),
                ..Default::default()
            },
            "malformed time",
        ),
    ] {
        refused(audit(request, &root).await, Code::InvalidArgument, "INVALID_ARGUMENT", what);
    }
    refused(
        audit(ListAuditEventsRequest::default(), &support).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
        "support",
    );
    Ok(())
}

async fn impersonate(server: &TestServer, admin_token: &str, user_id: &str) -> Result<String, Status> {
    let request = keyport_proto::v1::ImpersonateUserRequest { user_id: user_id.into() };
    let grant = admin(server).impersonate_user(authed(request, admin_token)).await?.into_inner();
    Ok(grant.session.map(|grant| grant.token).unwrap_or_default())
}

async fn impersonation_is_marked_short_and_changes_no_credential(backend: Backend) -> TestResult {
    use keyport_proto::v1::{
        ChangePasswordRequest, DeleteCurrentUserRequest, EnrollTotpRequest, GetCurrentUserRequest, GetSessionRequest,
        RevokeOtherSessionsRequest, SignOutRequest, two_factor_service_client::TwoFactorServiceClient,
    };
    let server = TestServer::start_with(backend, configure).await?;
    let root = user_with_roles(&server, "root@example.com", "admin user").await?;
    let other_admin = user_with_roles(&server, "bob@example.com", "admin user").await?;
    let (root_id, bob_id) = (user_id(&server, &root).await?, user_id(&server, &other_admin).await?);
    let ann = server.sign_up("ann@example.com").await?;
    let ann_id = user_id(&server, &ann).await?;

    let as_ann = impersonate(&server, &root, &ann_id).await?;
    let seen = server.sessions().get_session(GetSessionRequest { token: as_ann.clone() }).await?.into_inner();
    let session = seen.session.ok_or("no session")?;
    assert_eq!((seen.user.ok_or("no user")?.id, session.impersonator_id.as_str()), (ann_id.clone(), root_id.as_str()));
    let ends = session.absolute_expires_at.ok_or("no end")?.seconds - session.created_at.ok_or("no start")?.seconds;
    assert_eq!(ends, 3600, "an hour at most");
    let me = server.users().get_current_user(authed(GetCurrentUserRequest {}, &as_ann)).await?.into_inner();
    assert_eq!(me.user.ok_or("no user")?.email, "ann@example.com", "sees what ann sees");
    let audited = format!(
        "SELECT COUNT(*) FROM audit_events WHERE kind = 'impersonation_started' AND user_id = '{root_id}' \
         AND detail = '{ann_id}:{}'",
        session.id
    );
    assert_eq!(server.scalar(&audited).await?, 1);

    // Nothing the user alone may do.
    let change =
        ChangePasswordRequest { current_password: PASSWORD.into(), new_password: "a brand new passphrase".into() };
    refused(
        server.users().change_password(authed(change, &as_ann)).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
        "password",
    );
    let delete = DeleteCurrentUserRequest { password: PASSWORD.into() };
    refused(
        server.users().delete_current_user(authed(delete, &as_ann)).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
        "delete",
    );
    let enroll = TwoFactorServiceClient::new(server.channel()).enroll_totp(authed(EnrollTotpRequest {}, &as_ann)).await;
    refused(enroll, Code::PermissionDenied, "PERMISSION_DENIED", "a second factor");
    let others = server.sessions().revoke_other_sessions(authed(RevokeOtherSessionsRequest {}, &as_ann)).await;
    refused(others, Code::PermissionDenied, "PERMISSION_DENIED", "ann's other sessions");
    assert_eq!(server.session_reason(&ann).await, "OK", "ann's own session is untouched");

    // Who may be impersonated.
    refused(impersonate(&server, &root, &bob_id).await, Code::PermissionDenied, "PERMISSION_DENIED", "another admin");
    refused(impersonate(&server, &root, &root_id).await, Code::InvalidArgument, "INVALID_ARGUMENT", "oneself");
    refused(impersonate(&server, &root, UNKNOWN_USER).await, Code::NotFound, "USER_NOT_FOUND", "nobody");
    refused(impersonate(&server, &root, "not-a-uuid").await, Code::InvalidArgument, "INVALID_ARGUMENT", "malformed");
    refused(impersonate(&server, &ann, &root_id).await, Code::PermissionDenied, "PERMISSION_DENIED", "a user");
    refused(impersonate(&server, &as_ann, &bob_id).await, Code::PermissionDenied, "PERMISSION_DENIED", "nested");
    refused(impersonate(&server, "", &ann_id).await, Code::Unauthenticated, "UNAUTHENTICATED", "no credential");

    // It ends with a sign-out, with a ban of the user, or on its own.
    let second = impersonate(&server, &root, &ann_id).await?;
    server.sessions().sign_out(authed(SignOutRequest {}, &second)).await?;
    assert_eq!(server.session_reason(&second).await, "UNAUTHENTICATED");
    server.clock.advance(Duration::from_secs(3601));
    assert_eq!(server.session_reason(&as_ann).await, "SESSION_EXPIRED", "an hour later");
    let root = server.sign_in("root@example.com", PASSWORD).await?;
    let third = impersonate(&server, &root, &ann_id).await?;
    ban(&server, &root, &ann_id, None).await?;
    assert_eq!(server.session_reason(&third).await, "UNAUTHENTICATED", "a ban ends it");
    refused(impersonate(&server, &root, &ann_id).await, Code::PermissionDenied, "USER_BANNED", "a banned user");

    // Admins may be impersonated where the config allows; such a session
    // still administers nothing.
    let allowing = TestServer::start_with(backend, |config| {
        configure(config);
        config.authorization.impersonate_admins = true;
        config.authorization.impersonation_ttl_secs = 120;
    })
    .await?;
    let root = user_with_roles(&allowing, "root@example.com", "admin user").await?;
    let bob = user_with_roles(&allowing, "bob@example.com", "admin user").await?;
    let as_bob = impersonate(&allowing, &root, &user_id(&allowing, &bob).await?).await?;
    let listed = admin(&allowing).list_users(authed(ListUsersRequest::default(), &as_bob)).await;
    refused(listed, Code::PermissionDenied, "PERMISSION_DENIED", "an impersonated admin");
    allowing.clock.advance(Duration::from_secs(121));
    assert_eq!(allowing.session_reason(&as_bob).await, "SESSION_EXPIRED", "the configured limit");
    Ok(())
}

async fn put_role(server: &TestServer, token: &str, name: &str, grants: &[&str]) -> Result<Vec<String>, Status> {
    let request = PutRoleRequest { name: name.into(), grants: grants.iter().map(|g| (*g).to_owned()).collect() };
    let role = admin(server).put_role(authed(request, token)).await?.into_inner().role.unwrap_or_default();
    Ok(role.grants)
}

async fn may(server: &TestServer, token: &str, permission: &str) -> Result<bool, BoxError> {
    let answer = crate::authorization::authorize(server, token, &[permission]).await?;
    Ok(crate::authorization::decisions(&answer) == [true])
}

async fn run_time_roles_reach_every_check_at_once(backend: Backend) -> TestResult {
    use keyport_proto::v1::{ListRolesRequest, SetUserRolesRequest};
    let server = Arc::new(TestServer::start_with(backend, configure).await?);
    let root = user_with_roles(&server, "root@example.com", "admin user").await?;
    let support = user_with_roles(&server, "support@example.com", "support user").await?;
    let ann = server.sign_up("ann@example.com").await?;
    let ann_id = user_id(&server, &ann).await?;
    let mut events = server.sessions().watch_session_events(WatchSessionEventsRequest {}).await?.into_inner();
    events.message().await?;

    assert_eq!(put_role(&server, &root, "editor", &["posts:*", "posts:read"]).await?, ["posts:*", "posts:read"]);
    let listed = admin(&server).list_roles(authed(ListRolesRequest {}, &support)).await?.into_inner().roles;
    let names: Vec<(&str, bool)> = listed.iter().map(|role| (role.name.as_str(), role.configured)).collect();
    assert_eq!(names, [("admin", true), ("helpdesk", true), ("support", true), ("user", true), ("editor", false)]);
    let assign = SetUserRolesRequest { user_id: ann_id.clone(), roles: vec!["editor".into()] };
    admin(&server).set_user_roles(authed(assign, &root)).await?;
    assert!(may(&server, &ann, "posts:write").await?, "a run-time role grants");

    // A change of grants reaches the next check, here and (PostgreSQL)
    // on another replica, and is pushed to every cache.
    let replica = match backend {
        Backend::Postgres => Some(TestServer::replica_of_with(&server, configure).await?),
        Backend::Sqlite => None,
    };
    put_role(&server, &root, "editor", &["posts:read"]).await?;
    assert!(!may(&server, &ann, "posts:write").await?, "taken away: the next check");
    let roles_changed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.message().await?.and_then(|message| message.event) {
                Some(Event::RolesChanged(_)) => return Ok::<_, Status>(()),
                Some(_) => continue,
                None => return Err(Status::aborted("the stream ended")),
            }
        }
    })
    .await;
    assert!(matches!(roles_changed, Ok(Ok(()))), "pushed: {roles_changed:?}");
    if let Some(replica) = &replica {
        assert!(may(replica, &ann, "posts:read").await?);
        put_role(&server, &root, "editor", &[]).await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while may(replica, &ann, "posts:read").await? {
            assert!(std::time::Instant::now() < deadline, "the other replica kept the old grants");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // A replica started now reads the run-time roles at start.
        let late = TestServer::replica_of_with(&server, configure).await?;
        put_role(&server, &root, "editor", &["posts:write"]).await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !may(&late, &ann, "posts:write").await? {
            assert!(std::time::Instant::now() < deadline, "a later replica never saw the role");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // Parallel changes: what was stored last is what every check decides.
    let barrier = Arc::new(Barrier::new(8));
    let changes = (0..8).map(|n| {
        let (server, barrier, root) = (server.clone(), barrier.clone(), root.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            let grants: &[&str] = if n % 2 == 0 { &["posts:write"] } else { &["posts:read"] };
            put_role(&server, &root, "editor", grants).await
        })
    });
    for changed in futures::future::join_all(changes).await {
        changed??;
    }
    let stored = server.scalar("SELECT COUNT(*) FROM roles WHERE name = 'editor' AND grants = 'posts:write'").await?;
    assert_eq!(may(&server, &ann, "posts:write").await?, stored == 1, "the check agrees with the stored grants");

    // Deleting the role: ann keeps the name, which grants nothing.
    admin(&server).delete_role(authed(DeleteRoleRequest { name: "editor".into() }, &root)).await?;
    assert!(!may(&server, &ann, "posts:write").await? && !may(&server, &ann, "posts:read").await?);

    // Bad input, and nothing written by it.
    let before = server.count("roles").await?;
    for (name, grants, what) in [
        ("support", vec!["posts:read"], "a role of the configuration"),
        ("admin", vec![], "the admin role"),
        ("Bad Name", vec![], "a malformed name"),
        ("", vec![], "no name"),
        ("reader", vec!["nope:read"], "a permission outside the catalogue"),
        ("reader", vec!["posts"], "a malformed grant"),
    ] {
        refused(put_role(&server, &root, name, &grants).await, Code::InvalidArgument, "INVALID_ARGUMENT", what);
    }
    let many: Vec<String> = (0..65).map(|n| format!("posts:read{n}")).collect();
    let too_many = PutRoleRequest { name: "reader".into(), grants: many };
    refused(
        admin(&server).put_role(authed(too_many, &root)).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
        "65 grants",
    );
    for name in ["ghost", "support", "BAD"] {
        let deleted = admin(&server).delete_role(authed(DeleteRoleRequest { name: name.into() }, &root)).await;
        refused(deleted, Code::InvalidArgument, "INVALID_ARGUMENT", name);
    }
    assert_eq!(server.count("roles").await?, before, "nothing written");
    Ok(())
}

/// A role with `users:write` but not everything cannot hand out, define or
/// act on more than it has (no escalation to `admin`).
async fn lesser_admins_reach_no_further_than_their_own_permissions(backend: Backend) -> TestResult {
    use keyport_proto::v1::{CreateUserRequest, SetUserRolesRequest};
    let server = TestServer::start_with(backend, configure).await?;
    let root = user_with_roles(&server, "root@example.com", "admin user").await?;
    let desk = user_with_roles(&server, "desk@example.com", "helpdesk user").await?;
    let (root_id, desk_id) = (user_id(&server, &root).await?, user_id(&server, &desk).await?);
    let ann_id = user_id(&server, &server.sign_up("ann@example.com").await?).await?;
    let set = |token: &str, user_id: &str, roles: &[&str]| {
        let request =
            SetUserRolesRequest { user_id: user_id.into(), roles: roles.iter().map(|r| (*r).to_owned()).collect() };
        let (mut client, request) = (admin(&server), authed(request, token));
        async move { client.set_user_roles(request).await.map(drop) }
    };
    let denied =
        |result: Result<(), Status>, what: &str| refused(result, Code::PermissionDenied, "PERMISSION_DENIED", what);

    denied(set(&desk, &desk_id, &["admin"]).await, "granting itself admin");
    denied(set(&desk, &ann_id, &["admin"]).await, "granting another admin");
    denied(set(&desk, &root_id, &[]).await, "demoting an admin");
    denied(ban(&server, &desk, &root_id, None).await.map(drop), "banning an admin");
    let delete_root = admin(&server).delete_user(authed(DeleteUserRequest { user_id: root_id.clone() }, &desk)).await;
    denied(delete_root.map(drop), "deleting an admin");
    let revoke = authed(RevokeUserSessionsRequest { user_id: root_id }, &desk);
    let revoke_root = admin(&server).revoke_user_sessions(revoke).await;
    denied(revoke_root.map(drop), "ending an admin's sessions");
    denied(put_role(&server, &desk, "god", &["*"]).await.map(drop), "defining a role with everything");
    denied(put_role(&server, &desk, "poster", &["posts:write"]).await.map(drop), "a permission it lacks");
    let create =
        CreateUserRequest { email: "eve@example.com".into(), roles: vec!["admin".into()], ..Default::default() };
    denied(admin(&server).create_user(authed(create, &desk)).await.map(drop), "creating an admin");
    // A role root defined with more than the desk has is out of its reach.
    put_role(&server, &root, "poster", &["posts:write"]).await?;
    denied(put_role(&server, &desk, "poster", &[]).await.map(drop), "weakening a role beyond it");
    let delete_poster = admin(&server).delete_role(authed(DeleteRoleRequest { name: "poster".into() }, &desk)).await;
    denied(delete_poster.map(drop), "deleting a role beyond it");
    assert_eq!(server.scalar("SELECT COUNT(*) FROM users WHERE roles LIKE '%admin%'").await?, 1, "still one admin");

    // Within its reach, it works.
    set(&desk, &ann_id, &["support"]).await?;
    ban(&server, &desk, &ann_id, None).await?;
    put_role(&server, &desk, "reviewer", &["users:read"]).await?;
    Ok(())
}
