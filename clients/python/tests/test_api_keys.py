"""``ApiKeyService``, API keys in ``Authorize`` and as the bearer of admin calls, and service accounts.

They run on a server of their own (:func:`tests.conftest.api_keys_server`)
whose ``user`` role grants ``posts:read`` and ``posts:write``, so that a key
scoped to ``posts:read`` is narrower than its owner, and whose ``auditor``
grants ``users:read`` and ``posts:read``; its admin is made by its own
command line (:func:`tests.conftest.api_keys_admin`).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from keyport import (
    API_KEY_PREFIX,
    ApiKeyExpired,
    ApiKeyNotAccepted,
    ApiKeyNotFound,
    InvalidArgument,
    KeyportClient,
    KeyportError,
    Metadata,
    PermissionDenied,
    PermissionUnknown,
    Reason,
    ServiceAccountNotFound,
    Unauthenticated,
    bearer_metadata,
    is_api_key,
    list_all_users,
)
from keyport.v1 import (
    admin_service_pb2 as admin_pb,
    api_key_pb2,
    api_key_service_pb2 as keys_pb,
    api_key_service_pb2_grpc,
    authorization_service_pb2 as authorization,
    session_service_pb2,
    user_service_pb2,
)

from .support import PASSWORD, Admin, KeyportServer, unique_email

#: The shape of a key: ``kpa_``, a 16-byte id and a 32-byte secret, base64url without padding.
KEY_SHAPE = re.compile(r"^kpa_[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$")
#: A well-formed key id that no key has.
UNKNOWN_KEY_ID = "A" * 22
#: A well-formed service account id (a UUIDv7) that no service account has.
UNKNOWN_ACCOUNT_ID = "01890a5d-ac96-7b4b-bcce-b302099a8057"


@dataclass
class Owner:
    """A user signed up and freshly signed in (a new key needs a recent sign-in)."""

    id: str
    email: str
    token: str

    @property
    def auth(self) -> Metadata:
        """The metadata that presents the session."""
        return bearer_metadata(self.token)


def _signed_in(client: KeyportClient, label: str) -> Owner:
    email = unique_email(label)
    user = client.users.SignUp(user_service_pb2.SignUpRequest(email=email, password=PASSWORD, name=label)).user
    grant = client.sessions.SignIn(session_service_pb2.SignInRequest(email=email, password=PASSWORD)).session
    assert grant.token
    return Owner(id=user.id, email=email, token=grant.token)


def _key(
    client: KeyportClient, owner: Owner, scopes: Sequence[str] = ("posts:read",), name: str = "ci"
) -> keys_pb.CreateApiKeyResponse:
    return client.api_keys.CreateApiKey(keys_pb.CreateApiKeyRequest(name=name, scopes=scopes), metadata=owner.auth)


def _authorize(client: KeyportClient, token: str, permissions: Sequence[str] = ("posts:read",)) -> authorization.AuthorizeResponse:
    return client.authorization.Authorize(authorization.AuthorizeRequest(token=token, permissions=permissions))


def _decisions(answer: authorization.AuthorizeResponse) -> List[Tuple[str, bool]]:
    return [(decision.permission, decision.allowed) for decision in answer.decisions]


def _listed(client: KeyportClient, auth: Metadata, service_account_id: str = "") -> List[str]:
    request = keys_pb.ListApiKeysRequest(service_account_id=service_account_id)
    return [key.id for key in client.api_keys.ListApiKeys(request, metadata=auth).api_keys]


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


def test_a_key_shows_its_secret_once_is_listed_without_it_and_kept_only_as_a_hash(
    api_keys_server: KeyportServer, api_keys_client: KeyportClient
) -> None:
    client = api_keys_client
    owner = _signed_in(client, "create")
    created = client.api_keys.CreateApiKey(
        keys_pb.CreateApiKeyRequest(name="deploy bot", scopes=["posts:read"]), metadata=owner.auth
    )
    key, secret = created.api_key, created.secret
    assert KEY_SHAPE.match(secret), secret
    assert secret.startswith(f"{API_KEY_PREFIX}{key.id}."), "the key is kpa_<id>.<secret>"
    assert is_api_key(secret) and not is_api_key(owner.token)
    assert key.name == "deploy bot" and key.owner_user_id == owner.id and key.service_account_id == ""
    assert list(key.scopes) == ["posts:read"]
    assert not key.HasField("last_used_at"), "never used yet"
    assert key.rate_limit_per_minute == 0
    lifetime = key.expires_at.ToDatetime() - key.created_at.ToDatetime()
    assert abs(lifetime - timedelta(days=90)) < timedelta(minutes=1), "api_keys.default_lifetime_days (90)"
    assert abs(key.created_at.ToDatetime(tzinfo=timezone.utc) - datetime.now(timezone.utc)) < timedelta(minutes=1)

    listing = client.api_keys.ListApiKeys(keys_pb.ListApiKeysRequest(), metadata=owner.auth)
    assert [listed.id for listed in listing.api_keys] == [key.id]
    assert not any("secret" in name for name in api_key_pb2.ApiKey.DESCRIPTOR.fields_by_name), "no secret field"
    assert not any("secret" in name for name in keys_pb.ListApiKeysResponse.DESCRIPTOR.fields_by_name)
    secret_part = secret.split(".", 1)[1].encode()
    assert secret_part not in listing.SerializeToString()
    # The server's data directory (its SQLite database and log) holds the key's id, never its secret.
    files = [path for path in api_keys_server.data_dir.rglob("*") if path.is_file()]
    assert files
    for path in files:
        assert secret_part not in path.read_bytes(), f"the secret is in {path.name}"

    other = _signed_in(client, "create-other")
    assert _listed(client, other.auth) == [], "another user's keys are theirs"


def test_authorize_with_a_key_allows_what_its_scopes_and_the_owners_roles_grant_with_no_session(
    api_keys_client: KeyportClient,
) -> None:
    client = api_keys_client
    owner = _signed_in(client, "authorize")
    created = _key(client, owner, ["posts:read"])
    assert _authorize(client, owner.token, ["posts:read", "posts:write"]).allowed, "the user's roles grant both"

    answer = _authorize(client, created.secret, ["posts:read", "posts:write", "users:read"])
    assert _decisions(answer) == [("posts:read", True), ("posts:write", False), ("users:read", False)]
    assert answer.allowed is False
    assert list(answer.granted) == ["posts:read"], "the scopes within the owner's roles"
    assert answer.HasField("api_key") and answer.api_key.id == created.api_key.id
    assert answer.HasField("user") and answer.user.id == owner.id and list(answer.user.roles) == ["user"]
    assert not answer.HasField("session"), "a key has no session"
    assert not answer.HasField("service_account")
    assert answer.HasField("cache_ttl")
    assert _authorize(client, created.secret).allowed is True

    listed = client.api_keys.ListApiKeys(keys_pb.ListApiKeysRequest(), metadata=owner.auth).api_keys
    assert listed[0].HasField("last_used_at"), "the check is its first use"
    _refused(
        lambda: _authorize(client, created.secret, ["posts:delete"]), PermissionUnknown, grpc.StatusCode.INVALID_ARGUMENT
    )


def test_a_key_where_only_a_session_is_accepted_is_api_key_not_accepted(api_keys_client: KeyportClient) -> None:
    client = api_keys_client
    owner = _signed_in(client, "not-accepted")
    secret = _key(client, owner).secret
    by_key = bearer_metadata(secret)
    calls: List[Tuple[str, Callable[[], object]]] = [
        ("GetSession", lambda: client.sessions.GetSession(session_service_pb2.GetSessionRequest(token=secret))),
        ("ListSessions", lambda: client.sessions.ListSessions(session_service_pb2.ListSessionsRequest(), metadata=by_key)),
        ("GetCurrentUser", lambda: client.users.GetCurrentUser(user_service_pb2.GetCurrentUserRequest(), metadata=by_key)),
        (
            "CreateApiKey",
            lambda: client.api_keys.CreateApiKey(
                keys_pb.CreateApiKeyRequest(name="by key", scopes=["posts:read"]), metadata=by_key
            ),
        ),
        ("ListApiKeys", lambda: client.api_keys.ListApiKeys(keys_pb.ListApiKeysRequest(), metadata=by_key)),
    ]
    for what, call in calls:
        err = _refused(call, ApiKeyNotAccepted, grpc.StatusCode.UNAUTHENTICATED, what)
        assert err.reason == Reason.API_KEY_NOT_ACCEPTED == "API_KEY_NOT_ACCEPTED"
    assert len(_listed(client, owner.auth)) == 1, "the key created none"


def test_a_revoked_key_is_refused_at_once_and_the_revocation_is_pushed(api_keys_client: KeyportClient) -> None:
    client = api_keys_client
    owner = _signed_in(client, "revoke")
    kept = _key(client, owner, name="kept")
    revoked = _key(client, owner, name="revoked")
    assert _authorize(client, revoked.secret).allowed, "cached before the revocation"

    # Loopback is in the default server.trusted_proxies.
    stream = client.sessions.WatchSessionEvents(session_service_pb2.WatchSessionEventsRequest(), timeout=30)
    try:
        assert next(stream).WhichOneof("event") == "ready"
        client.api_keys.RevokeApiKey(keys_pb.RevokeApiKeyRequest(api_key_id=revoked.api_key.id), metadata=owner.auth)
        for event in stream:
            if event.WhichOneof("event") == "api_keys_changed" and event.api_keys_changed.api_key_id == revoked.api_key.id:
                assert event.api_keys_changed.owner_id == owner.id
                break
    finally:
        stream.cancel()
    _refused(lambda: _authorize(client, revoked.secret), Unauthenticated, grpc.StatusCode.UNAUTHENTICATED)
    assert _authorize(client, kept.secret).allowed, "the owner's other key"
    assert _listed(client, owner.auth) == [kept.api_key.id]
    _refused(
        lambda: client.api_keys.RevokeApiKey(keys_pb.RevokeApiKeyRequest(api_key_id=revoked.api_key.id), metadata=owner.auth),
        ApiKeyNotFound,
        grpc.StatusCode.NOT_FOUND,
        "revoked twice",
    )


def test_rotation_without_grace_refuses_the_old_key_at_once_and_with_grace_both_work_until_it_ends(
    api_keys_client: KeyportClient,
) -> None:
    client = api_keys_client
    owner = _signed_in(client, "rotate")
    first = _key(client, owner, name="rotated")

    def rotate(api_key_id: str, grace: Optional[Duration] = None) -> keys_pb.RotateApiKeyResponse:
        request = keys_pb.RotateApiKeyRequest(api_key_id=api_key_id, grace=grace)
        return client.api_keys.RotateApiKey(request, metadata=owner.auth)

    now = rotate(first.api_key.id)
    assert KEY_SHAPE.match(now.secret) and now.secret.startswith(f"kpa_{now.api_key.id}.")
    assert now.api_key.id != first.api_key.id and now.replaced.id == first.api_key.id
    assert now.api_key.name == "rotated" and list(now.api_key.scopes) == ["posts:read"]
    assert now.api_key.owner_user_id == owner.id
    _refused(lambda: _authorize(client, first.secret), Unauthenticated, grpc.StatusCode.UNAUTHENTICATED, "no grace")
    assert _authorize(client, now.secret).api_key.id == now.api_key.id

    graceful = rotate(now.api_key.id, Duration(seconds=3600))
    assert graceful.replaced.id == now.api_key.id
    grace_ends = graceful.replaced.expires_at.ToDatetime(tzinfo=timezone.utc) - datetime.now(timezone.utc)
    assert timedelta(minutes=58) < grace_ends <= timedelta(hours=1, minutes=1), grace_ends
    assert _authorize(client, now.secret).api_key.id == now.api_key.id, "the old key, within its grace"
    assert _authorize(client, graceful.secret).api_key.id == graceful.api_key.id, "the new key"
    assert _listed(client, owner.auth) == [graceful.api_key.id, now.api_key.id], "both, newest first"
    assert graceful.replaced.replaced_by_id == graceful.api_key.id and graceful.api_key.replaced_by_id == ""
    listed = client.api_keys.ListApiKeys(keys_pb.ListApiKeysRequest(), metadata=owner.auth).api_keys
    assert [key.replaced_by_id for key in listed] == ["", graceful.api_key.id], "the old key names its replacement"
    twice = _refused(
        lambda: rotate(now.api_key.id, Duration(seconds=60)),
        InvalidArgument,
        grpc.StatusCode.INVALID_ARGUMENT,
        "a key is rotated once: rotate its replacement",
    )
    assert _fields(twice) == ["api_key_id"]
    assert _authorize(client, now.secret).api_key.id == now.api_key.id, "still within its grace"

    # A grace that runs out: the old key then raises ApiKeyExpired.
    brief = _key(client, owner, name="brief")
    after = rotate(brief.api_key.id, Duration(seconds=1))
    deadline = time.monotonic() + 5
    while True:
        try:
            _authorize(client, brief.secret)
        except ApiKeyExpired as err:
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED
            break
        assert time.monotonic() < deadline, "the old key still works 5 s after a 1 s grace"
        time.sleep(0.1)
    assert _authorize(client, after.secret).allowed

    too_long = _refused(
        lambda: rotate(graceful.api_key.id, Duration(seconds=8 * 86400)),
        InvalidArgument,
        grpc.StatusCode.INVALID_ARGUMENT,
        "a grace over 7 days",
    )
    assert _fields(too_long) == ["grace"]
    assert _authorize(client, graceful.secret).allowed, "a refused rotation changes nothing"


def test_an_unknown_key_or_another_users_is_api_key_not_found_and_a_malformed_id_invalid_argument(
    api_keys_client: KeyportClient,
) -> None:
    client = api_keys_client
    owner = _signed_in(client, "not-found")
    other = _signed_in(client, "not-found-other")
    created = _key(client, owner)
    for what, api_key_id, auth in [
        ("an unknown id", UNKNOWN_KEY_ID, owner.auth),
        ("another user's key", created.api_key.id, other.auth),
    ]:
        _refused(
            lambda: client.api_keys.RevokeApiKey(keys_pb.RevokeApiKeyRequest(api_key_id=api_key_id), metadata=auth),
            ApiKeyNotFound,
            grpc.StatusCode.NOT_FOUND,
            f"revoke {what}",
        )
        _refused(
            lambda: client.api_keys.RotateApiKey(keys_pb.RotateApiKeyRequest(api_key_id=api_key_id), metadata=auth),
            ApiKeyNotFound,
            grpc.StatusCode.NOT_FOUND,
            f"rotate {what}",
        )
    assert _authorize(client, created.secret).allowed, "the other user's tries left the key alone"
    for malformed in ["", "nope", created.secret]:
        err = _refused(
            lambda: client.api_keys.RevokeApiKey(keys_pb.RevokeApiKeyRequest(api_key_id=malformed), metadata=owner.auth),
            InvalidArgument,
            grpc.StatusCode.INVALID_ARGUMENT,
            repr(malformed),
        )
        assert _fields(err) == ["api_key_id"]
    _refused(
        lambda: client.api_keys.RevokeApiKey(keys_pb.RevokeApiKeyRequest(api_key_id=created.api_key.id)),
        Unauthenticated,
        grpc.StatusCode.UNAUTHENTICATED,
        "no session",
    )


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"name": "", "scopes": ["posts:read"]}, "name"),
        ({"name": "n" * 65, "scopes": ["posts:read"]}, "name"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["posts:read"] * 33}, "scopes"),
        ({"name": "x", "scopes": ["users:read"]}, "scopes"),  # the owner's roles lack it
        ({"name": "x", "scopes": ["posts:read"], "expires_in": Duration(seconds=30)}, "expires_in"),
    ],
    ids=["empty name", "name over 64", "no scope", "33 scopes", "scope the owner lacks", "under a minute"],
)
def test_bad_input_is_invalid_argument_with_the_field(
    api_keys_client: KeyportClient, request_fields: Dict[str, Any], field: str
) -> None:
    client = api_keys_client
    owner = _signed_in(client, "input")
    err = _refused(
        lambda: client.api_keys.CreateApiKey(keys_pb.CreateApiKeyRequest(**request_fields), metadata=owner.auth),
        InvalidArgument,
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert _fields(err) == [field]
    assert _listed(client, owner.auth) == [], "no key was made"


@pytest.mark.parametrize("scope", ["posts:delete", "Posts:read", "posts"])
def test_a_scope_outside_the_catalogue_is_permission_unknown(api_keys_client: KeyportClient, scope: str) -> None:
    client = api_keys_client
    owner = _signed_in(client, "unknown-scope")
    _refused(
        lambda: client.api_keys.CreateApiKey(keys_pb.CreateApiKeyRequest(name="x", scopes=[scope]), metadata=owner.auth),
        PermissionUnknown,
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert _listed(client, owner.auth) == []
    _refused(
        lambda: client.api_keys.CreateApiKey(keys_pb.CreateApiKeyRequest(name="x", scopes=["posts:read"])),
        Unauthenticated,
        grpc.StatusCode.UNAUTHENTICATED,
        "no session",
    )


def test_a_service_accounts_key_lists_users_narrows_with_its_roles_and_goes_with_it(
    api_keys_client: KeyportClient, api_keys_admin: Admin
) -> None:
    client = api_keys_client
    as_admin = bearer_metadata(api_keys_admin.token)
    name = f"ci-{uuid.uuid4().hex[:8]}.bot"
    account = client.admin.CreateServiceAccount(
        admin_pb.CreateServiceAccountRequest(name=name, description="The CI pipeline", roles=["auditor"]),
        metadata=as_admin,
    ).service_account
    assert account.id and account.name == name and account.description == "The CI pipeline"
    assert list(account.roles) == ["auditor"]
    listed = client.admin.ListServiceAccounts(admin_pb.ListServiceAccountsRequest(), metadata=as_admin).service_accounts
    assert [a.name for a in listed if a.id == account.id] == [name]

    created = client.api_keys.CreateApiKey(
        keys_pb.CreateApiKeyRequest(name="deploy", scopes=["users:read", "posts:read"], service_account_id=account.id),
        metadata=as_admin,
    )
    assert KEY_SHAPE.match(created.secret)
    assert created.api_key.service_account_id == account.id and created.api_key.owner_user_id == ""
    assert list(created.api_key.scopes) == ["posts:read", "users:read"], "sorted"
    assert _listed(client, as_admin, account.id) == [created.api_key.id]

    answer = _authorize(client, created.secret, ["users:read", "posts:read", "posts:write"])
    assert _decisions(answer) == [("users:read", True), ("posts:read", True), ("posts:write", False)]
    assert answer.service_account.id == account.id and answer.api_key.id == created.api_key.id
    assert not answer.HasField("user") and not answer.HasField("session")

    # The key is the bearer of AdminService calls its scopes allow.
    by_key = bearer_metadata(created.secret)
    assert client.admin.ListUsers(admin_pb.ListUsersRequest(page_size=200), metadata=by_key).users
    assert any(managed.user.id == api_keys_admin.id for managed in list_all_users(client, created.secret))
    _refused(
        lambda: client.admin.CreateUser(admin_pb.CreateUserRequest(email=unique_email("by-key")), metadata=by_key),
        PermissionDenied,
        grpc.StatusCode.PERMISSION_DENIED,
        "CreateUser needs users:write",
    )

    _refused(
        lambda: client.api_keys.CreateApiKey(
            keys_pb.CreateApiKeyRequest(name="x", scopes=["users:write"], service_account_id=account.id), metadata=as_admin
        ),
        InvalidArgument,
        grpc.StatusCode.INVALID_ARGUMENT,
        "a scope the service account's roles lack",
    )
    user = _signed_in(client, "not-an-admin")
    _refused(
        lambda: client.api_keys.CreateApiKey(
            keys_pb.CreateApiKeyRequest(name="x", scopes=["posts:read"], service_account_id=account.id), metadata=user.auth
        ),
        PermissionDenied,
        grpc.StatusCode.PERMISSION_DENIED,
        "a plain user's key for the service account",
    )
    _refused(
        lambda: client.admin.CreateServiceAccount(admin_pb.CreateServiceAccountRequest(name=f"{name}-2"), metadata=user.auth),
        PermissionDenied,
        grpc.StatusCode.PERMISSION_DENIED,
        "a plain user's service account",
    )
    bad_name = _refused(
        lambda: client.admin.CreateServiceAccount(
            admin_pb.CreateServiceAccountRequest(name="CI Bot", roles=["auditor"]), metadata=as_admin
        ),
        InvalidArgument,
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert _fields(bad_name) == ["name"]
    _refused(
        lambda: client.admin.CreateServiceAccount(
            admin_pb.CreateServiceAccountRequest(name=name, roles=["auditor"]), metadata=as_admin
        ),
        InvalidArgument,
        grpc.StatusCode.INVALID_ARGUMENT,
        "a taken name",
    )

    # A narrower role narrows the key at once: it never outgrows its owner.
    narrowed = client.admin.SetServiceAccountRoles(
        admin_pb.SetServiceAccountRolesRequest(service_account_id=account.id, roles=["user"]), metadata=as_admin
    ).service_account
    assert list(narrowed.roles) == ["user"]
    assert _decisions(_authorize(client, created.secret, ["users:read", "posts:read"])) == [
        ("users:read", False),
        ("posts:read", True),
    ]
    _refused(
        lambda: client.admin.ListUsers(admin_pb.ListUsersRequest(), metadata=by_key),
        PermissionDenied,
        grpc.StatusCode.PERMISSION_DENIED,
    )

    deleted = client.admin.DeleteServiceAccount(
        admin_pb.DeleteServiceAccountRequest(service_account_id=account.id), metadata=as_admin
    )
    assert deleted.api_keys_revoked == 1
    _refused(lambda: _authorize(client, created.secret), Unauthenticated, grpc.StatusCode.UNAUTHENTICATED)
    _refused(
        lambda: client.admin.ListUsers(admin_pb.ListUsersRequest(), metadata=by_key),
        Unauthenticated,
        grpc.StatusCode.UNAUTHENTICATED,
    )
    gone: List[Callable[[], object]] = [
        lambda: client.admin.DeleteServiceAccount(
            admin_pb.DeleteServiceAccountRequest(service_account_id=account.id), metadata=as_admin
        ),
        lambda: client.api_keys.ListApiKeys(keys_pb.ListApiKeysRequest(service_account_id=account.id), metadata=as_admin),
        lambda: client.api_keys.CreateApiKey(
            keys_pb.CreateApiKeyRequest(name="x", scopes=["posts:read"], service_account_id=account.id), metadata=as_admin
        ),
        lambda: client.admin.SetServiceAccountRoles(
            admin_pb.SetServiceAccountRolesRequest(service_account_id=UNKNOWN_ACCOUNT_ID), metadata=as_admin
        ),
    ]
    for i, call in enumerate(gone):
        _refused(call, ServiceAccountNotFound, grpc.StatusCode.NOT_FOUND, f"call {i}")
    listed = client.admin.ListServiceAccounts(admin_pb.ListServiceAccountsRequest(), metadata=as_admin).service_accounts
    assert account.id not in [a.id for a in listed]


def test_eight_parallel_checks_with_one_key_agree_and_a_revocation_racing_them_leaves_it_refused(
    api_keys_client: KeyportClient,
) -> None:
    client = api_keys_client
    owner = _signed_in(client, "parallel")
    created = _key(client, owner)
    permissions = ["posts:write", "posts:read", "users:read"]
    with ThreadPoolExecutor(max_workers=9) as pool:
        answers = list(pool.map(lambda _: _authorize(client, created.secret, permissions), range(8)))
        for answer in answers:
            assert _decisions(answer) == [("posts:write", False), ("posts:read", True), ("users:read", False)]
            assert answer.api_key.id == created.api_key.id and answer.user.id == owner.id

        def check() -> Optional[Unauthenticated]:
            try:
                assert _authorize(client, created.secret, permissions).api_key.id == created.api_key.id
            except Unauthenticated as err:
                return err
            return None

        racing = [pool.submit(check) for _ in range(8)]
        revoke = pool.submit(
            client.api_keys.RevokeApiKey, keys_pb.RevokeApiKeyRequest(api_key_id=created.api_key.id), metadata=owner.auth
        )
        revoke.result()
        outcomes = [future.result() for future in racing]
        assert all(outcome is None or outcome.code() == grpc.StatusCode.UNAUTHENTICATED for outcome in outcomes)
        after = list(pool.map(lambda _: check(), range(8)))
    assert all(isinstance(outcome, Unauthenticated) for outcome in after), after


def test_the_api_key_stub_works_on_a_grpc_aio_channel(api_keys_server: KeyportServer, api_keys_client: KeyportClient) -> None:
    """The SDK has no asyncio client; the generated stub on a ``grpc.aio`` channel works with its helpers."""
    owner = _signed_in(api_keys_client, "aio")

    async def manage() -> None:
        async with grpc.aio.insecure_channel(api_keys_server.address) as channel:
            stub = api_key_service_pb2_grpc.ApiKeyServiceStub(channel)
            created = await stub.CreateApiKey(
                keys_pb.CreateApiKeyRequest(name="aio", scopes=["posts:read"]), metadata=owner.auth, timeout=10
            )
            assert is_api_key(created.secret)
            listed = await stub.ListApiKeys(keys_pb.ListApiKeysRequest(), metadata=owner.auth, timeout=10)
            assert [key.id for key in listed.api_keys] == [created.api_key.id]
            rotated = await stub.RotateApiKey(
                keys_pb.RotateApiKeyRequest(api_key_id=created.api_key.id), metadata=owner.auth, timeout=10
            )
            with pytest.raises(grpc.aio.AioRpcError) as by_key:
                await stub.ListApiKeys(keys_pb.ListApiKeysRequest(), metadata=bearer_metadata(rotated.secret), timeout=10)
            assert type(KeyportError.from_rpc_error(by_key.value)) is ApiKeyNotAccepted
            await stub.RevokeApiKey(
                keys_pb.RevokeApiKeyRequest(api_key_id=rotated.api_key.id), metadata=owner.auth, timeout=10
            )
            with pytest.raises(grpc.aio.AioRpcError) as excinfo:
                await stub.RevokeApiKey(
                    keys_pb.RevokeApiKeyRequest(api_key_id=rotated.api_key.id), metadata=owner.auth, timeout=10
                )
            assert type(KeyportError.from_rpc_error(excinfo.value)) is ApiKeyNotFound

    asyncio.run(manage())
    assert _listed(api_keys_client, owner.auth) == []
