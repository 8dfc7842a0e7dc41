//! Organizations through the real server on both stores: the owner,
//! admins and members and what each may do, ownership transfer and the
//! owner who cannot leave, invitations (once, for their verified address,
//! before they expire; parallel accepts make one membership), nobody
//! seeing another organization, and `Authorize` deciding in the named or
//! active organization, with membership changes reaching every replica.

use std::{sync::Arc, time::Duration};

use keyport_proto::v1::{
    AcceptInvitationRequest, CreateInvitationRequest, CreateOrganizationRequest, DeleteOrganizationRequest,
    GetSessionRequest, Invitation, LeaveOrganizationRequest, ListInvitationsRequest, ListMembersRequest,
    ListMyOrganizationsRequest, Membership, Organization, RemoveMemberRequest, RenameOrganizationRequest,
    RevokeInvitationRequest, SetActiveOrganizationRequest, SetMemberRoleRequest, TransferOwnershipRequest, UserChange,
    WatchSessionEventsRequest, organization_service_client::OrganizationServiceClient,
    watch_session_events_response::Event,
};
use keyport_server::config::Config;
use keyport_tests::{
    Backend, TestServer,
    grpc::authed,
    mailpit::{Mailpit, PUBLIC_BASE_URL},
    server::PASSWORD,
};
use tokio::sync::Barrier;
use tonic::{Code, Status, transport::Channel};

use crate::{
    TestResult,
    authorization::{authorize, decisions, refused, user_id},
    on_both_backends,
};

on_both_backends!(
    owners_admins_and_members_each_do_their_part,
    nobody_sees_or_changes_another_organization,
    invitations_work_once_for_their_address_before_they_expire,
    parallel_accepts_make_exactly_one_membership,
    authorize_decides_in_the_named_or_active_organization,
    an_invitation_is_mailed_to_the_invited_address,
);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const UNKNOWN: &str = "0190e9b1-0000-7000-8000-000000000000";

/// Members read posts inside their organization, admins write them too,
/// `billing` is a custom role; the owner's `*` covers the apps' permissions.
fn configure(config: &mut Config) {
    config.authorization.permissions = ["posts:read", "posts:write", "billing:read"].map(String::from).to_vec();
    config.organizations.roles = [
        ("owner", vec!["*"]),
        ("admin", vec!["posts:*"]),
        ("member", vec!["posts:read"]),
        ("billing", vec!["billing:read"]),
    ]
    .into_iter()
    .map(|(role, grants)| (role.to_owned(), grants.into_iter().map(String::from).collect()))
    .collect();
}

fn orgs(server: &TestServer) -> OrganizationServiceClient<Channel> {
    OrganizationServiceClient::new(server.channel())
}

/// A signed-up user with a verified address, signed in: their token.
async fn verified(server: &TestServer, email: &str) -> Result<String, BoxError> {
    server.sign_up(email).await?;
    let sql = format!("UPDATE users SET email_verified = true WHERE email = '{email}'");
    sea_orm::ConnectionTrait::execute_unprepared(&server.db, &sql).await?;
    Ok(server.sign_in(email, PASSWORD).await?)
}

async fn create(server: &TestServer, token: &str, name: &str, slug: &str) -> Result<Organization, Status> {
    let request = CreateOrganizationRequest { name: name.into(), slug: slug.into() };
    Ok(orgs(server).create_organization(authed(request, token)).await?.into_inner().organization.unwrap_or_default())
}

async fn invite(server: &TestServer, token: &str, org: &str, email: &str, role: &str) -> Result<Invitation, Status> {
    let request = CreateInvitationRequest { organization_id: org.into(), email: email.into(), role: role.into() };
    Ok(orgs(server).create_invitation(authed(request, token)).await?.into_inner().invitation.unwrap_or_default())
}

async fn accept(server: &TestServer, token: &str, invitation: &str) -> Result<Membership, Status> {
    let request = AcceptInvitationRequest { invitation_id: invitation.into() };
    Ok(orgs(server).accept_invitation(authed(request, token)).await?.into_inner().membership.unwrap_or_default())
}

async fn members(server: &TestServer, token: &str, org: &str) -> Result<Vec<(String, String)>, Status> {
    let request = ListMembersRequest { organization_id: org.into() };
    let listed = orgs(server).list_members(authed(request, token)).await?.into_inner().members;
    Ok(listed.into_iter().map(|m| (m.user.map(|u| u.email).unwrap_or_default(), m.role)).collect())
}

async fn set_role(server: &TestServer, token: &str, org: &str, user: &str, role: &str) -> Result<(), Status> {
    let request = SetMemberRoleRequest { organization_id: org.into(), user_id: user.into(), role: role.into() };
    orgs(server).set_member_role(authed(request, token)).await?;
    Ok(())
}

async fn remove(server: &TestServer, token: &str, org: &str, user: &str) -> Result<(), Status> {
    let request = RemoveMemberRequest { organization_id: org.into(), user_id: user.into() };
    orgs(server).remove_member(authed(request, token)).await?;
    Ok(())
}

async fn leave(server: &TestServer, token: &str, org: &str) -> Result<(), Status> {
    orgs(server).leave_organization(authed(LeaveOrganizationRequest { organization_id: org.into() }, token)).await?;
    Ok(())
}

/// The member `email` joins `org` as `role`, invited by `inviter`.
async fn join(server: &TestServer, inviter: &str, org: &str, email: &str, role: &str) -> Result<String, BoxError> {
    let token = verified(server, email).await?;
    let invitation = invite(server, inviter, org, email, role).await?;
    accept(server, &token, &invitation.id).await?;
    Ok(token)
}

fn pair(email: &str, role: &str) -> (String, String) {
    (email.to_owned(), role.to_owned())
}

async fn owners_admins_and_members_each_do_their_part(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, configure).await?;
    let ann = verified(&server, "ann@example.com").await?;
    let acme = create(&server, &ann, "Acme", "acme").await?;
    refused(create(&server, &ann, "Other", "acme").await, Code::AlreadyExists, "SLUG_TAKEN", "a taken slug");
    refused(create(&server, &ann, "Bad", "Bad Slug").await, Code::InvalidArgument, "INVALID_ARGUMENT", "a bad slug");
    refused(create(&server, &ann, "", "empty").await, Code::InvalidArgument, "INVALID_ARGUMENT", "an empty name");
    let mine = orgs(&server).list_my_organizations(authed(ListMyOrganizationsRequest {}, &ann)).await?.into_inner();
    assert_eq!(mine.memberships.len(), 1);
    assert_eq!(
        (mine.memberships[0].role.as_str(), mine.memberships[0].organization.clone()),
        ("owner", Some(acme.clone()))
    );

    let bob = join(&server, &ann, &acme.id, "bob@example.com", "member").await?;
    let bob_id = user_id(&server, &bob).await?;
    let ann_id = user_id(&server, &ann).await?;
    assert_eq!(
        members(&server, &bob, &acme.id).await?,
        [pair("ann@example.com", "owner"), pair("bob@example.com", "member")]
    );
    // A member reads, and changes nothing.
    refused(
        invite(&server, &bob, &acme.id, "x@example.com", "member").await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
        "a member invites",
    );
    let rename = RenameOrganizationRequest { organization_id: acme.id.clone(), name: "Mine".into() };
    refused(
        orgs(&server).rename_organization(authed(rename, &bob)).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
        "a member renames",
    );
    refused(
        remove(&server, &bob, &acme.id, &ann_id).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
        "a member removes",
    );

    // An admin manages members, not admins or the owner.
    set_role(&server, &ann, &acme.id, &bob_id, "admin").await?;
    let carol = join(&server, &bob, &acme.id, "carol@example.com", "member").await?;
    let carol_id = user_id(&server, &carol).await?;
    refused(
        invite(&server, &bob, &acme.id, "dan@example.com", "admin").await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
        "an admin invites an admin",
    );
    refused(
        set_role(&server, &bob, &acme.id, &ann_id, "member").await,
        Code::FailedPrecondition,
        "LAST_OWNER",
        "the owner's role",
    );
    refused(
        remove(&server, &bob, &acme.id, &ann_id).await,
        Code::FailedPrecondition,
        "LAST_OWNER",
        "removing the owner",
    );
    refused(
        set_role(&server, &ann, &acme.id, &carol_id, "owner").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
        "owner by SetMemberRole",
    );
    refused(
        set_role(&server, &ann, &acme.id, &carol_id, "ghost").await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
        "an undefined role",
    );
    refused(
        set_role(&server, &ann, &acme.id, UNKNOWN, "member").await,
        Code::NotFound,
        "MEMBER_NOT_FOUND",
        "not a member",
    );
    set_role(&server, &bob, &acme.id, &carol_id, "billing").await?;
    remove(&server, &bob, &acme.id, &carol_id).await?;
    refused(members(&server, &carol, &acme.id).await, Code::NotFound, "ORGANIZATION_NOT_FOUND", "a removed member");

    // The owner cannot leave, nor delete their account; a transfer makes
    // them an admin, who can leave.
    refused(leave(&server, &ann, &acme.id).await, Code::FailedPrecondition, "LAST_OWNER", "the owner leaving");
    let delete_me = keyport_proto::v1::DeleteCurrentUserRequest { password: PASSWORD.into() };
    let deleted = server.users().delete_current_user(authed(delete_me, &ann)).await;
    refused(deleted, Code::FailedPrecondition, "LAST_OWNER", "the owner deleting their account");
    let to_self = TransferOwnershipRequest { organization_id: acme.id.clone(), user_id: ann_id.clone() };
    refused(
        orgs(&server).transfer_ownership(authed(to_self, &ann)).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
        "to oneself",
    );
    let by_admin = TransferOwnershipRequest { organization_id: acme.id.clone(), user_id: bob_id.clone() };
    refused(
        orgs(&server).transfer_ownership(authed(by_admin.clone(), &bob)).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
        "an admin transfers",
    );
    orgs(&server).transfer_ownership(authed(by_admin, &ann)).await?;
    assert_eq!(
        members(&server, &ann, &acme.id).await?,
        [pair("ann@example.com", "admin"), pair("bob@example.com", "owner")]
    );
    leave(&server, &ann, &acme.id).await?;
    let delete = DeleteOrganizationRequest { organization_id: acme.id.clone() };
    orgs(&server).delete_organization(authed(delete, &bob)).await?;
    refused(members(&server, &bob, &acme.id).await, Code::NotFound, "ORGANIZATION_NOT_FOUND", "a deleted organization");
    assert_eq!(server.count("memberships").await?, 0);
    Ok(())
}

async fn nobody_sees_or_changes_another_organization(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, configure).await?;
    let ann = verified(&server, "ann@example.com").await?;
    let acme = create(&server, &ann, "Acme", "acme").await?;
    let invitation = invite(&server, &ann, &acme.id, "bob@example.com", "member").await?;
    let eve = verified(&server, "eve@example.com").await?;
    let ann_id = user_id(&server, &ann).await?;
    // Another's organization answers exactly as an unknown one.
    for org in [acme.id.as_str(), UNKNOWN] {
        let not_found =
            |result: Result<(), Status>, what: &str| refused(result, Code::NotFound, "ORGANIZATION_NOT_FOUND", what);
        not_found(members(&server, &eve, org).await.map(drop), "members");
        not_found(invite(&server, &eve, org, "eve2@example.com", "member").await.map(drop), "invite");
        let list = ListInvitationsRequest { organization_id: org.into() };
        not_found(orgs(&server).list_invitations(authed(list, &eve)).await.map(drop), "invitations");
        let revoke = RevokeInvitationRequest { organization_id: org.into(), invitation_id: invitation.id.clone() };
        not_found(orgs(&server).revoke_invitation(authed(revoke, &eve)).await.map(drop), "revoke");
        not_found(set_role(&server, &eve, org, &ann_id, "member").await, "set role");
        not_found(remove(&server, &eve, org, &ann_id).await, "remove");
        let rename = RenameOrganizationRequest { organization_id: org.into(), name: "Eve's".into() };
        not_found(orgs(&server).rename_organization(authed(rename, &eve)).await.map(drop), "rename");
        let delete = DeleteOrganizationRequest { organization_id: org.into() };
        not_found(orgs(&server).delete_organization(authed(delete, &eve)).await.map(drop), "delete");
        let active = SetActiveOrganizationRequest { organization_id: org.into() };
        not_found(orgs(&server).set_active_organization(authed(active, &eve)).await.map(drop), "active");
    }
    for bad in ["", "nope", &"x".repeat(10_000), &acme.id.to_uppercase()] {
        refused(members(&server, &ann, bad).await, Code::InvalidArgument, "INVALID_ARGUMENT", "a malformed id");
    }
    // A key is no member, nor is an anonymous caller.
    let anonymous = orgs(&server).list_my_organizations(ListMyOrganizationsRequest {}).await;
    refused(anonymous, Code::Unauthenticated, "UNAUTHENTICATED", "no session");
    assert_eq!(members(&server, &ann, &acme.id).await?, [pair("ann@example.com", "owner")], "nothing changed");
    Ok(())
}

async fn invitations_work_once_for_their_address_before_they_expire(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, configure).await?;
    let ann = verified(&server, "ann@example.com").await?;
    let acme = create(&server, &ann, "Acme", "acme").await?;
    let bob = verified(&server, "bob@example.com").await?;
    let carol = verified(&server, "carol@example.com").await?;
    let invalid = |result: Result<Membership, Status>, what: &str| {
        refused(result, Code::FailedPrecondition, "INVITATION_INVALID", what)
    };

    let for_bob = invite(&server, &ann, &acme.id, "Bob@Example.com", "member").await?;
    assert_eq!(for_bob.email, "bob@example.com", "normalised");
    invalid(accept(&server, &carol, &for_bob.id).await, "for another address");
    let unverified = server.sign_up("dan@example.com").await?;
    let for_dan = invite(&server, &ann, &acme.id, "dan@example.com", "member").await?;
    invalid(accept(&server, &unverified, &for_dan.id).await, "an unverified address");
    invalid(accept(&server, &bob, UNKNOWN).await, "unknown");
    refused(accept(&server, &bob, "nope").await, Code::InvalidArgument, "INVALID_ARGUMENT", "malformed");
    let joined = accept(&server, &bob, &for_bob.id).await?;
    assert_eq!((joined.role.as_str(), joined.organization.map(|o| o.id)), ("member", Some(acme.id.clone())));
    invalid(accept(&server, &bob, &for_bob.id).await, "used");
    let again = invite(&server, &ann, &acme.id, "bob@example.com", "member").await?;
    let already = accept(&server, &bob, &again.id).await;
    refused(already, Code::InvalidArgument, "INVALID_ARGUMENT", "already a member");

    // Revoked, and expired.
    let for_carol = invite(&server, &ann, &acme.id, "carol@example.com", "member").await?;
    let pending = orgs(&server)
        .list_invitations(authed(ListInvitationsRequest { organization_id: acme.id.clone() }, &ann))
        .await?
        .into_inner();
    assert!(pending.invitations.iter().any(|i| i.id == for_carol.id));
    let revoke = RevokeInvitationRequest { organization_id: acme.id.clone(), invitation_id: for_carol.id.clone() };
    orgs(&server).revoke_invitation(authed(revoke.clone(), &ann)).await?;
    invalid(accept(&server, &carol, &for_carol.id).await, "revoked");
    refused(
        orgs(&server).revoke_invitation(authed(revoke, &ann)).await,
        Code::FailedPrecondition,
        "INVITATION_INVALID",
        "revoked twice",
    );
    let late = invite(&server, &ann, &acme.id, "carol@example.com", "member").await?;
    server.clock.advance(Duration::from_secs(8 * 24 * 3600));
    let carol = server.sign_in("carol@example.com", PASSWORD).await?;
    invalid(accept(&server, &carol, &late.id).await, "expired");
    let ann = server.sign_in("ann@example.com", PASSWORD).await?;
    for (email, role, what) in [
        ("not-an-email", "member", "a bad address"),
        ("x@example.com", "owner", "owner"),
        ("x@example.com", "ghost", "an undefined role"),
    ] {
        refused(invite(&server, &ann, &acme.id, email, role).await, Code::InvalidArgument, "INVALID_ARGUMENT", what);
    }
    assert_eq!(members(&server, &ann, &acme.id).await?.len(), 2, "ann and bob only");
    Ok(())
}

async fn parallel_accepts_make_exactly_one_membership(backend: Backend) -> TestResult {
    let server = Arc::new(TestServer::start_with(backend, configure).await?);
    let ann = verified(&server, "ann@example.com").await?;
    let acme = create(&server, &ann, "Acme", "acme").await?;
    let bob = verified(&server, "bob@example.com").await?;
    // Eight accepts of one invitation, and of four invitations at once.
    let one = invite(&server, &ann, &acme.id, "bob@example.com", "member").await?;
    let mut ids = vec![one.id.clone(); 8];
    let other = create(&server, &ann, "Beta", "beta").await?;
    for _ in 0..4 {
        ids.push(invite(&server, &ann, &other.id, "bob@example.com", "member").await?.id);
    }
    let barrier = Arc::new(Barrier::new(ids.len()));
    let calls: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let (server, barrier, bob) = (server.clone(), barrier.clone(), bob.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                accept(&server, &bob, &id).await.map(|membership| membership.organization.map(|o| o.id))
            })
        })
        .collect();
    let mut joined = Vec::new();
    for call in calls {
        match call.await? {
            Ok(organization) => joined.push(organization.unwrap_or_default()),
            Err(status) => assert!(
                [Code::FailedPrecondition, Code::InvalidArgument].contains(&status.code()),
                "a losing accept is refused: {status:?}"
            ),
        }
    }
    joined.sort();
    let mut expected = vec![acme.id.clone(), other.id.clone()];
    expected.sort();
    assert_eq!(joined, expected, "exactly one membership in each");
    assert_eq!(server.count("memberships").await?, 4, "ann twice, bob twice");
    Ok(())
}

async fn authorize_decides_in_the_named_or_active_organization(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, configure).await?;
    let replica = TestServer::replica_of_with(&server, configure).await?;
    let ann = verified(&server, "ann@example.com").await?;
    let acme = create(&server, &ann, "Acme", "acme").await?;
    let bob = join(&server, &ann, &acme.id, "bob@example.com", "member").await?;
    let bob_id = user_id(&server, &bob).await?;
    let eve = verified(&server, "eve@example.com").await?;
    let in_org = |token: String, org: String| {
        let server = &server;
        async move {
            let request = keyport_proto::v1::AuthorizeRequest {
                token,
                permissions: vec!["posts:read".into(), "posts:write".into(), "users:read".into()],
                organization_id: org,
            };
            keyport_proto::v1::authorization_service_client::AuthorizationServiceClient::new(server.channel())
                .authorize(request)
                .await
                .map(|response| response.into_inner())
        }
    };
    assert_eq!(
        decisions(&authorize(&server, &bob, &["posts:read"]).await?),
        [false],
        "no organization: the user's roles"
    );
    let answer = in_org(bob.clone(), acme.id.clone()).await?;
    assert_eq!(decisions(&answer), [true, false, false]);
    assert_eq!((answer.organization_id.as_str(), answer.organization_role.as_str()), (acme.id.as_str(), "member"));
    // The owner's `*` is the apps' permissions, never Keyport's own.
    assert_eq!(decisions(&in_org(ann.clone(), acme.id.clone()).await?), [true, true, false]);
    let outsider = in_org(eve.clone(), acme.id.clone()).await?;
    assert_eq!((decisions(&outsider), outsider.organization_role.as_str()), (vec![false, false, false], ""));
    refused(
        in_org(bob.clone(), "nope".into()).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
        "a malformed organization",
    );

    // The active organization is the default.
    let active = SetActiveOrganizationRequest { organization_id: acme.id.clone() };
    orgs(&server).set_active_organization(authed(active, &bob)).await?;
    let session = server.sessions().get_session(GetSessionRequest { token: bob.clone() }).await?.into_inner();
    assert_eq!(session.session.map(|s| s.active_organization_id), Some(acme.id.clone()));
    assert_eq!(decisions(&authorize(&server, &bob, &["posts:read"]).await?), [true], "decided in the active one");
    assert_eq!(decisions(&authorize(&replica, &bob, &["posts:read"]).await?), [true], "on the other replica too");

    // Removed: the next check, on either replica, decides without it.
    let watched = if backend == Backend::Postgres { &replica } else { &server };
    let mut events = watched.sessions().watch_session_events(WatchSessionEventsRequest {}).await?.into_inner();
    assert!(matches!(events.message().await?.and_then(|m| m.event), Some(Event::Ready(_))));
    remove(&server, &ann, &acme.id, &bob_id).await?;
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.message().await?.and_then(|m| m.event) {
                Some(Event::UserChanged(changed))
                    if changed.user_id == bob_id && changed.change() == UserChange::Organizations =>
                {
                    return Ok::<_, Status>(());
                }
                Some(_) => continue,
                None => return Err(Status::aborted("stream ended")),
            }
        }
    })
    .await??;
    // SQLite's replicas share the file but not events: there, the
    // replica's own cache may serve the old answer for its 5 seconds.
    let replicas = if backend == Backend::Postgres { vec![&server, &replica] } else { vec![&server] };
    for on in replicas {
        assert_eq!(decisions(&authorize(on, &bob, &["posts:read"]).await?), [false], "removed: refused next");
    }
    let session = server.sessions().get_session(GetSessionRequest { token: bob.clone() }).await?.into_inner();
    assert_eq!(session.session.map(|s| s.active_organization_id), Some(String::new()), "active in none now");
    Ok(())
}

async fn an_invitation_is_mailed_to_the_invited_address(backend: Backend) -> TestResult {
    let mailpit = Mailpit::start().await?;
    let server = TestServer::start_with(backend, |config| {
        configure(config);
        mailpit.configure(&mut config.mail);
    })
    .await?;
    let ann = verified(&server, "ann@example.com").await?;
    let acme = create(&server, &ann, "Acme <Labs>", "acme").await?;
    let invitation = invite(&server, &ann, &acme.id, "bob@example.com", "member").await?;
    let mails = mailpit.wait_for("bob@example.com", 1).await?;
    let mail = &mails[0];
    assert!(mail.subject.contains("Acme <Labs>"), "{}", mail.subject);
    let link = format!("{PUBLIC_BASE_URL}/organizations?invitation={}", invitation.id);
    assert!(mail.text.contains(&link), "{}", mail.text);
    assert!(mail.html.contains("Acme &lt;Labs&gt;"), "the name is escaped in HTML: {}", mail.html);
    // The mailed id is what accepting takes, for the invited address only.
    let bob = verified(&server, "bob@example.com").await?;
    accept(&server, &bob, &invitation.id).await?;
    assert_eq!(members(&server, &ann, &acme.id).await?.len(), 2);
    Ok(())
}
