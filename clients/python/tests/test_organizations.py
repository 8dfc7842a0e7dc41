"""``OrganizationService``, and ``Authorize`` in an organization.

They run on a server of their own (:func:`tests.conftest.organizations_server`)
whose catalogue is ``posts:read``, ``posts:write`` and ``billing:read``:
``user`` grants ``posts:write`` only, the organization role ``member``
``posts:read`` and the custom organization role ``billing``
``billing:read`` (``owner`` and ``admin`` keep ``*``). An invitation works
for a verified address only, so the users are made by its admin
(:func:`tests.conftest.organizations_admin`) with ``email_verified``.
"""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, List, Optional, Sequence, Tuple, Type

import grpc
import pytest

from keyport import (
    ApiKeyNotAccepted,
    InvalidArgument,
    InvitationInvalid,
    KeyportClient,
    KeyportError,
    LastOwner,
    MemberNotFound,
    Metadata,
    OrganizationNotFound,
    PermissionDenied,
    Reason,
    SlugTaken,
    Unauthenticated,
    bearer_metadata,
)
from keyport.v1 import (
    admin_service_pb2 as admin_pb,
    api_key_service_pb2 as keys_pb,
    authorization_service_pb2 as authorization,
    organization_service_pb2 as orgs_pb,
    session_pb2,
    session_service_pb2,
    user_service_pb2,
)

from .support import PASSWORD, Admin, unique_email

#: An id (a UUIDv7) that no organization, user or invitation has.
UNKNOWN_ID = "01890a5d-ac96-7b4b-bcce-b302099a8057"
UUID_V7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@dataclass
class Person:
    """A user signed in, with their session token."""

    id: str
    email: str
    token: str

    @property
    def auth(self) -> Metadata:
        """The metadata that presents the session."""
        return bearer_metadata(self.token)


def _verified(client: KeyportClient, admin: Admin, label: str) -> Person:
    """A user whose address an admin vouched for (``email_verified``), signed in."""
    email = unique_email(label)
    request = admin_pb.CreateUserRequest(email=email, password=PASSWORD, email_verified=True)
    user = client.admin.CreateUser(request, metadata=bearer_metadata(admin.token)).user.user
    grant = client.sessions.SignIn(session_service_pb2.SignInRequest(email=email, password=PASSWORD)).session
    return Person(id=user.id, email=email, token=grant.token)


def _unverified(client: KeyportClient, label: str) -> Person:
    """A user signed up by themselves: their address is not verified."""
    email = unique_email(label)
    up = client.users.SignUp(user_service_pb2.SignUpRequest(email=email, password=PASSWORD))
    return Person(id=up.user.id, email=email, token=up.session.token)


def _slug(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def _organization(client: KeyportClient, owner: Person, label: str = "acme") -> orgs_pb.Organization:
    request = orgs_pb.CreateOrganizationRequest(name=label.title(), slug=_slug(label))
    return client.organizations.CreateOrganization(request, metadata=owner.auth).organization


def _invite(client: KeyportClient, org_id: str, by: Person, email: str, role: str = "member") -> orgs_pb.Invitation:
    request = orgs_pb.CreateInvitationRequest(organization_id=org_id, email=email, role=role)
    return client.organizations.CreateInvitation(request, metadata=by.auth).invitation


def _accept(client: KeyportClient, invitation_id: str, who: Person) -> orgs_pb.Membership:
    request = orgs_pb.AcceptInvitationRequest(invitation_id=invitation_id)
    return client.organizations.AcceptInvitation(request, metadata=who.auth).membership


def _join(client: KeyportClient, org_id: str, owner: Person, who: Person, role: str = "member") -> None:
    _accept(client, _invite(client, org_id, owner, who.email, role).id, who)


def _members(client: KeyportClient, org_id: str, who: Person) -> List[Tuple[str, str]]:
    """``(user id, role)`` of each member, as ``ListMembers`` answers them (by email)."""
    members = client.organizations.ListMembers(orgs_pb.ListMembersRequest(organization_id=org_id), metadata=who.auth)
    return [(member.user.id, member.role) for member in members.members]


def _authorize(
    client: KeyportClient, token: str, permissions: Sequence[str], organization_id: str = ""
) -> authorization.AuthorizeResponse:
    request = authorization.AuthorizeRequest(token=token, permissions=permissions, organization_id=organization_id)
    return client.authorization.Authorize(request)


def _decisions(answer: authorization.AuthorizeResponse) -> List[Tuple[str, bool]]:
    return [(decision.permission, decision.allowed) for decision in answer.decisions]


def _refused(
    call: Callable[[], object], error: Type[KeyportError], code: grpc.StatusCode, what: str = ""
) -> KeyportError:
    """Runs ``call``, which must raise ``error`` with ``code``; returns the error."""
    with pytest.raises(error) as excinfo:
        call()
    assert excinfo.value.code() == code, what
    assert excinfo.value.reason == error.REASON, what
    return excinfo.value


def _fields(err: KeyportError) -> List[str]:
    assert isinstance(err, InvalidArgument)
    return [field for field, _ in err.field_violations]


def test_an_organization_is_created_with_its_creator_as_owner_and_renamed(
    organizations_client: KeyportClient, organizations_admin: Admin
) -> None:
    client = organizations_client
    owner = _verified(client, organizations_admin, "create")
    slug = _slug("acme")
    org = client.organizations.CreateOrganization(
        orgs_pb.CreateOrganizationRequest(name="Acme", slug=slug), metadata=owner.auth
    ).organization
    assert UUID_V7.match(org.id), org.id
    assert org.name == "Acme" and org.slug == slug
    assert abs(org.created_at.ToDatetime(tzinfo=timezone.utc) - datetime.now(timezone.utc)) < timedelta(minutes=1)

    mine = client.organizations.ListMyOrganizations(orgs_pb.ListMyOrganizationsRequest(), metadata=owner.auth)
    assert [(m.organization.id, m.role) for m in mine.memberships] == [(org.id, "owner")]
    assert not mine.memberships[0].HasField("user"), "the caller's own memberships, without user"
    assert _members(client, org.id, owner) == [(owner.id, "owner")]

    renamed = client.organizations.RenameOrganization(
        orgs_pb.RenameOrganizationRequest(organization_id=org.id, name="Acme Inc"), metadata=owner.auth
    ).organization
    assert (renamed.id, renamed.name, renamed.slug) == (org.id, "Acme Inc", slug)

    other = _verified(client, organizations_admin, "create-other")
    taken = _refused(
        lambda: client.organizations.CreateOrganization(
            orgs_pb.CreateOrganizationRequest(name="Another", slug=slug), metadata=other.auth
        ),
        SlugTaken,
        grpc.StatusCode.ALREADY_EXISTS,
        "another user's slug",
    )
    assert taken.reason == Reason.SLUG_TAKEN == "SLUG_TAKEN"
    for bad in ["Bad Slug", "UPPER", "a_b", "", "a" * 65]:
        err = _refused(
            lambda: client.organizations.CreateOrganization(
                orgs_pb.CreateOrganizationRequest(name="X", slug=bad), metadata=other.auth
            ),
            InvalidArgument,
            grpc.StatusCode.INVALID_ARGUMENT,
            repr(bad),
        )
        assert _fields(err) == ["slug"], bad
    for name in ["", "n" * 65]:
        err = _refused(
            lambda: client.organizations.CreateOrganization(
                orgs_pb.CreateOrganizationRequest(name=name, slug=_slug("named")), metadata=other.auth
            ),
            InvalidArgument,
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert _fields(err) == ["name"]
    assert not client.organizations.ListMyOrganizations(
        orgs_pb.ListMyOrganizationsRequest(), metadata=other.auth
    ).memberships, "no refused call made an organization"

    client.organizations.DeleteOrganization(orgs_pb.DeleteOrganizationRequest(organization_id=org.id), metadata=owner.auth)
    assert not client.organizations.ListMyOrganizations(orgs_pb.ListMyOrganizationsRequest(), metadata=owner.auth).memberships
    _refused(
        lambda: _members(client, org.id, owner), OrganizationNotFound, grpc.StatusCode.NOT_FOUND, "a deleted organization"
    )


def test_a_non_member_is_told_organization_not_found_as_for_an_unknown_one(
    organizations_client: KeyportClient, organizations_admin: Admin
) -> None:
    client = organizations_client
    owner = _verified(client, organizations_admin, "outsider-owner")
    outsider = _verified(client, organizations_admin, "outsider")
    org = _organization(client, owner)
    orgs = client.organizations
    for org_id in [org.id, UNKNOWN_ID]:
        calls: List[Tuple[str, Callable[[], object]]] = [
            ("ListMembers", lambda: orgs.ListMembers(orgs_pb.ListMembersRequest(organization_id=org_id), metadata=outsider.auth)),
            (
                "RenameOrganization",
                lambda: orgs.RenameOrganization(
                    orgs_pb.RenameOrganizationRequest(organization_id=org_id, name="Mine"), metadata=outsider.auth
                ),
            ),
            (
                "DeleteOrganization",
                lambda: orgs.DeleteOrganization(orgs_pb.DeleteOrganizationRequest(organization_id=org_id), metadata=outsider.auth),
            ),
            (
                "ListInvitations",
                lambda: orgs.ListInvitations(orgs_pb.ListInvitationsRequest(organization_id=org_id), metadata=outsider.auth),
            ),
            (
                "CreateInvitation",
                lambda: orgs.CreateInvitation(
                    orgs_pb.CreateInvitationRequest(organization_id=org_id, email=outsider.email, role="member"),
                    metadata=outsider.auth,
                ),
            ),
            (
                "LeaveOrganization",
                lambda: orgs.LeaveOrganization(orgs_pb.LeaveOrganizationRequest(organization_id=org_id), metadata=outsider.auth),
            ),
            (
                "SetActiveOrganization",
                lambda: orgs.SetActiveOrganization(
                    orgs_pb.SetActiveOrganizationRequest(organization_id=org_id), metadata=outsider.auth
                ),
            ),
        ]
        for what, call in calls:
            _refused(call, OrganizationNotFound, grpc.StatusCode.NOT_FOUND, f"{what} of {org_id}")
    assert _members(client, org.id, owner) == [(owner.id, "owner")], "the organization is unchanged"

    malformed = _refused(
        lambda: orgs.ListMembers(orgs_pb.ListMembersRequest(organization_id="nope"), metadata=owner.auth),
        InvalidArgument,
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert _fields(malformed) == ["organization_id"]
    _refused(
        lambda: orgs.ListMyOrganizations(orgs_pb.ListMyOrganizationsRequest()),
        Unauthenticated,
        grpc.StatusCode.UNAUTHENTICATED,
        "no session",
    )
    key = client.api_keys.CreateApiKey(
        keys_pb.CreateApiKeyRequest(name="ci", scopes=["posts:write"]), metadata=owner.auth
    ).secret
    by_key = bearer_metadata(key)
    _refused(
        lambda: orgs.ListMyOrganizations(orgs_pb.ListMyOrganizationsRequest(), metadata=by_key),
        ApiKeyNotAccepted,
        grpc.StatusCode.UNAUTHENTICATED,
        "an API key",
    )
    _refused(
        lambda: orgs.ListMembers(orgs_pb.ListMembersRequest(organization_id=org.id), metadata=by_key),
        ApiKeyNotAccepted,
        grpc.StatusCode.UNAUTHENTICATED,
        "an API key of the owner",
    )


def test_an_invitation_works_once_and_only_for_its_verified_address(
    organizations_client: KeyportClient, organizations_admin: Admin
) -> None:
    client = organizations_client
    owner = _verified(client, organizations_admin, "inviter")
    invitee = _verified(client, organizations_admin, "invitee")
    stranger = _verified(client, organizations_admin, "stranger")
    org = _organization(client, owner)

    invitation = _invite(client, org.id, owner, invitee.email.upper(), "member")
    assert UUID_V7.match(invitation.id)
    assert invitation.organization_id == org.id and invitation.role == "member"
    assert invitation.email == invitee.email, "normalised"
    assert invitation.invited_by_user_id == owner.id
    lifetime = invitation.expires_at.ToDatetime() - invitation.created_at.ToDatetime()
    assert abs(lifetime - timedelta(days=7)) < timedelta(minutes=1), "organizations.invitation_ttl_days (7)"
    pending = client.organizations.ListInvitations(
        orgs_pb.ListInvitationsRequest(organization_id=org.id), metadata=owner.auth
    ).invitations
    assert [i.id for i in pending] == [invitation.id]

    for who, what in [(stranger, "another user's invitation"), (owner, "the inviter")]:
        _refused(
            lambda: _accept(client, invitation.id, who), InvitationInvalid, grpc.StatusCode.FAILED_PRECONDITION, what
        )
    membership = _accept(client, invitation.id, invitee)
    assert membership.organization.id == org.id and membership.role == "member"
    assert abs(membership.joined_at.ToDatetime(tzinfo=timezone.utc) - datetime.now(timezone.utc)) < timedelta(minutes=1)
    reused = _refused(
        lambda: _accept(client, invitation.id, invitee), InvitationInvalid, grpc.StatusCode.FAILED_PRECONDITION, "reused"
    )
    assert reused.reason == Reason.INVITATION_INVALID == "INVITATION_INVALID"
    assert sorted(_members(client, org.id, invitee)) == sorted([(owner.id, "owner"), (invitee.id, "member")])
    assert not client.organizations.ListInvitations(
        orgs_pb.ListInvitationsRequest(organization_id=org.id), metadata=owner.auth
    ).invitations, "an accepted invitation is no longer pending"

    # A member sees the members but manages nothing.
    _refused(
        lambda: _invite(client, org.id, invitee, stranger.email),
        PermissionDenied,
        grpc.StatusCode.PERMISSION_DENIED,
        "a member invites",
    )
    _refused(
        lambda: client.organizations.ListInvitations(
            orgs_pb.ListInvitationsRequest(organization_id=org.id), metadata=invitee.auth
        ),
        PermissionDenied,
        grpc.StatusCode.PERMISSION_DENIED,
        "a member lists the invitations",
    )

    # An address nobody verified gets nothing from its invitation.
    unverified = _unverified(client, "unverified")
    for_unverified = _invite(client, org.id, owner, unverified.email)
    _refused(
        lambda: _accept(client, for_unverified.id, unverified),
        InvitationInvalid,
        grpc.StatusCode.FAILED_PRECONDITION,
        "an unverified address",
    )

    # A revoked invitation, and an unknown one.
    revoked = _invite(client, org.id, owner, stranger.email)
    revoke = orgs_pb.RevokeInvitationRequest(organization_id=org.id, invitation_id=revoked.id)
    client.organizations.RevokeInvitation(revoke, metadata=owner.auth)
    _refused(lambda: _accept(client, revoked.id, stranger), InvitationInvalid, grpc.StatusCode.FAILED_PRECONDITION, "revoked")
    _refused(
        lambda: client.organizations.RevokeInvitation(revoke, metadata=owner.auth),
        InvitationInvalid,
        grpc.StatusCode.FAILED_PRECONDITION,
        "revoked twice",
    )
    _refused(lambda: _accept(client, UNKNOWN_ID, stranger), InvitationInvalid, grpc.StatusCode.FAILED_PRECONDITION, "unknown")
    err = _refused(
        lambda: _accept(client, "nope", stranger), InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, "malformed"
    )
    assert _fields(err) == ["invitation_id"]
    for role, what in [("owner", "the owner's role"), ("wizard", "an undefined role")]:
        err = _refused(
            lambda: _invite(client, org.id, owner, stranger.email, role), InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, what
        )
        assert _fields(err) == ["role"]
    err = _refused(
        lambda: _invite(client, org.id, owner, "not an email"), InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT
    )
    assert _fields(err) == ["email"]
    assert sorted(_members(client, org.id, owner)) == sorted([(owner.id, "owner"), (invitee.id, "member")])


def test_admins_manage_members_and_the_owner_transfers_before_leaving(
    organizations_client: KeyportClient, organizations_admin: Admin
) -> None:
    client = organizations_client
    orgs = client.organizations
    owner = _verified(client, organizations_admin, "owner")
    deputy = _verified(client, organizations_admin, "deputy")
    member = _verified(client, organizations_admin, "member")
    outsider = _verified(client, organizations_admin, "outsider")
    org = _organization(client, owner)
    _join(client, org.id, owner, deputy, "admin")

    # An admin invites members, not admins.
    _refused(
        lambda: _invite(client, org.id, deputy, outsider.email, "admin"),
        PermissionDenied,
        grpc.StatusCode.PERMISSION_DENIED,
        "an admin invites an admin",
    )
    _accept(client, _invite(client, org.id, deputy, member.email, "member").id, member)

    def set_role(by: Person, user_id: str, role: str) -> orgs_pb.Membership:
        request = orgs_pb.SetMemberRoleRequest(organization_id=org.id, user_id=user_id, role=role)
        return orgs.SetMemberRole(request, metadata=by.auth).member

    changed = set_role(deputy, member.id, "billing")
    assert (changed.user.id, changed.role) == (member.id, "billing")
    _refused(lambda: set_role(member, deputy.id, "member"), PermissionDenied, grpc.StatusCode.PERMISSION_DENIED, "a member")
    for role in ["owner", "wizard"]:
        err = _refused(lambda: set_role(owner, member.id, role), InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, role)
        assert _fields(err) == ["role"]
    _refused(lambda: set_role(owner, outsider.id, "member"), MemberNotFound, grpc.StatusCode.NOT_FOUND, "not a member")
    _refused(lambda: set_role(owner, owner.id, "admin"), LastOwner, grpc.StatusCode.FAILED_PRECONDITION, "the owner's own")

    # The owner can neither leave nor be removed, nor an admin delete or hand over.
    leave = orgs_pb.LeaveOrganizationRequest(organization_id=org.id)
    last = _refused(lambda: orgs.LeaveOrganization(leave, metadata=owner.auth), LastOwner, grpc.StatusCode.FAILED_PRECONDITION)
    assert last.reason == Reason.LAST_OWNER == "LAST_OWNER"
    _refused(
        lambda: orgs.RemoveMember(orgs_pb.RemoveMemberRequest(organization_id=org.id, user_id=owner.id), metadata=owner.auth),
        LastOwner,
        grpc.StatusCode.FAILED_PRECONDITION,
        "the owner removed",
    )
    _refused(
        lambda: orgs.DeleteOrganization(orgs_pb.DeleteOrganizationRequest(organization_id=org.id), metadata=deputy.auth),
        PermissionDenied,
        grpc.StatusCode.PERMISSION_DENIED,
        "an admin deletes",
    )

    def transfer(by: Person, user_id: str) -> None:
        orgs.TransferOwnership(orgs_pb.TransferOwnershipRequest(organization_id=org.id, user_id=user_id), metadata=by.auth)

    _refused(lambda: transfer(deputy, deputy.id), PermissionDenied, grpc.StatusCode.PERMISSION_DENIED, "an admin transfers")
    _refused(lambda: transfer(owner, outsider.id), MemberNotFound, grpc.StatusCode.NOT_FOUND, "to a non-member")
    err = _refused(lambda: transfer(owner, owner.id), InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT, "to themselves")
    assert _fields(err) == ["user_id"]

    transfer(owner, deputy.id)
    assert sorted(_members(client, org.id, deputy)) == sorted(
        [(owner.id, "admin"), (deputy.id, "owner"), (member.id, "billing")]
    ), "the caller becomes an admin"
    orgs.LeaveOrganization(leave, metadata=owner.auth)
    _refused(lambda: _members(client, org.id, owner), OrganizationNotFound, grpc.StatusCode.NOT_FOUND, "after leaving")
    assert not orgs.ListMyOrganizations(orgs_pb.ListMyOrganizationsRequest(), metadata=owner.auth).memberships
    assert sorted(_members(client, org.id, deputy)) == sorted([(deputy.id, "owner"), (member.id, "billing")])

    orgs.RemoveMember(orgs_pb.RemoveMemberRequest(organization_id=org.id, user_id=member.id), metadata=deputy.auth)
    _refused(
        lambda: orgs.RemoveMember(orgs_pb.RemoveMemberRequest(organization_id=org.id, user_id=member.id), metadata=deputy.auth),
        MemberNotFound,
        grpc.StatusCode.NOT_FOUND,
        "removed twice",
    )
    assert _members(client, org.id, deputy) == [(deputy.id, "owner")]


def test_authorize_in_an_organization_adds_what_the_role_there_grants(
    organizations_client: KeyportClient, organizations_admin: Admin
) -> None:
    client = organizations_client
    owner = _verified(client, organizations_admin, "authz-owner")
    member = _verified(client, organizations_admin, "authz-member")
    outsider = _verified(client, organizations_admin, "authz-outsider")
    org = _organization(client, owner)
    _join(client, org.id, owner, member)
    posts = ["posts:read", "posts:write"]

    inside = _authorize(client, member.token, posts, org.id)
    assert inside.allowed and _decisions(inside) == [("posts:read", True), ("posts:write", True)]
    assert (inside.organization_id, inside.organization_role) == (org.id, "member")
    assert list(inside.granted) == ["posts:read", "posts:write"], "the user's roles and the member role"
    assert inside.user.id == member.id and inside.session.user_id == member.id

    outside = _authorize(client, member.token, posts)
    assert _decisions(outside) == [("posts:read", False), ("posts:write", True)], "without the organization"
    assert (outside.organization_id, outside.organization_role) == ("", "")

    stranger = _authorize(client, outsider.token, posts, org.id)
    assert _decisions(stranger) == [("posts:read", False), ("posts:write", True)], "a deny, not an error"
    assert stranger.organization_role == ""

    # The owner's `*` stops at Keyport's own permissions.
    owned = _authorize(client, owner.token, ["billing:read", "users:read", "sessions:revoke", "audit:read"], org.id)
    assert _decisions(owned) == [
        ("billing:read", True),
        ("users:read", False),
        ("sessions:revoke", False),
        ("audit:read", False),
    ]
    assert owned.organization_role == "owner"

    # A custom role: billing grants billing:read and nothing of member's.
    client.organizations.SetMemberRole(
        orgs_pb.SetMemberRoleRequest(organization_id=org.id, user_id=member.id, role="billing"), metadata=owner.auth
    )
    billing = _authorize(client, member.token, ["billing:read", "posts:read"], org.id)
    assert _decisions(billing) == [("billing:read", True), ("posts:read", False)]
    assert billing.organization_role == "billing"

    key = client.api_keys.CreateApiKey(keys_pb.CreateApiKeyRequest(name="ci", scopes=["posts:write"]), metadata=owner.auth)
    err = _refused(
        lambda: _authorize(client, key.secret, ["posts:write"], org.id),
        InvalidArgument,
        grpc.StatusCode.INVALID_ARGUMENT,
        "keys are not scoped to organizations",
    )
    assert _fields(err) == ["organization_id"]
    err = _refused(lambda: _authorize(client, member.token, posts, "nope"), InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT)
    assert _fields(err) == ["organization_id"]


def test_the_active_organization_is_the_sessions_and_authorize_decides_in_it(
    organizations_client: KeyportClient, organizations_admin: Admin
) -> None:
    client = organizations_client
    owner = _verified(client, organizations_admin, "active-owner")
    member = _verified(client, organizations_admin, "active-member")
    org = _organization(client, owner)
    _join(client, org.id, owner, member)
    other_session = client.sessions.SignIn(
        session_service_pb2.SignInRequest(email=member.email, password=PASSWORD)
    ).session.token

    def set_active(organization_id: str) -> None:
        request = orgs_pb.SetActiveOrganizationRequest(organization_id=organization_id)
        client.organizations.SetActiveOrganization(request, metadata=member.auth)

    def active(token: str) -> str:
        return client.sessions.GetSession(session_service_pb2.GetSessionRequest(token=token)).session.active_organization_id

    assert active(member.token) == ""
    assert not _authorize(client, member.token, ["posts:read"]).allowed
    set_active(org.id)
    assert active(member.token) == org.id
    answer = _authorize(client, member.token, ["posts:read"])
    assert answer.allowed, "without organization_id, in the session's active organization"
    assert (answer.organization_id, answer.organization_role) == (org.id, "member")
    assert answer.session.active_organization_id == org.id
    assert active(other_session) == "", "the member's other session chose none"
    assert not _authorize(client, other_session, ["posts:read"]).allowed

    set_active("")
    assert active(member.token) == ""
    cleared = _authorize(client, member.token, ["posts:read"])
    assert not cleared.allowed and cleared.organization_id == ""


def test_a_removed_member_is_pushed_on_watch_session_events_and_denied_next(
    organizations_client: KeyportClient, organizations_admin: Admin
) -> None:
    client = organizations_client
    owner = _verified(client, organizations_admin, "remove-owner")
    member = _verified(client, organizations_admin, "removed")
    org = _organization(client, owner)
    _join(client, org.id, owner, member)
    assert _authorize(client, member.token, ["posts:read"], org.id).allowed, "decided before the removal"

    # Loopback is in the default server.trusted_proxies.
    stream = client.sessions.WatchSessionEvents(session_service_pb2.WatchSessionEventsRequest(), timeout=30)
    try:
        assert next(stream).WhichOneof("event") == "ready"
        client.organizations.RemoveMember(
            orgs_pb.RemoveMemberRequest(organization_id=org.id, user_id=member.id), metadata=owner.auth
        )
        changed: Optional[session_pb2.UserChange] = None
        for event in stream:
            if event.WhichOneof("event") == "user_changed" and event.user_changed.user_id == member.id:
                changed = event.user_changed.change
                break
    finally:
        stream.cancel()
    assert changed == session_pb2.USER_CHANGE_ORGANIZATIONS == 9
    after = _authorize(client, member.token, ["posts:read"], org.id)
    assert not after.allowed and after.organization_role == "", "no longer a member"
    _refused(lambda: _members(client, org.id, member), OrganizationNotFound, grpc.StatusCode.NOT_FOUND)


def test_eight_parallel_accepts_of_one_invitation_make_exactly_one_membership(
    organizations_client: KeyportClient, organizations_admin: Admin
) -> None:
    client = organizations_client
    owner = _verified(client, organizations_admin, "race-owner")
    invitee = _verified(client, organizations_admin, "race-invitee")
    org = _organization(client, owner)
    invitation = _invite(client, org.id, owner, invitee.email)

    def accept(_: int) -> Optional[KeyportError]:
        try:
            _accept(client, invitation.id, invitee)
        except KeyportError as err:
            return err
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(accept, range(8)))
    assert sum(outcome is None for outcome in outcomes) == 1, outcomes
    for outcome in outcomes:
        # The losers find the invitation used, or the caller a member already.
        assert outcome is None or type(outcome) in (InvitationInvalid, InvalidArgument), outcome
    assert sorted(_members(client, org.id, owner)) == sorted([(owner.id, "owner"), (invitee.id, "member")])
