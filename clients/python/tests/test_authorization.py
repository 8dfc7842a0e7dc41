"""``AuthorizationService.Authorize`` against the live test server.

The shared test server's catalogue is ``posts:read`` and ``posts:write``;
``user`` grants ``posts:read`` and ``admin`` everything
(:data:`tests.conftest.AUTHORIZATION_ENV`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import List, Sequence, Tuple

import grpc
import pytest

from keyport import (
    InvalidArgument,
    KeyportClient,
    PermissionUnknown,
    Reason,
    Unauthenticated,
    bearer_metadata,
)
from keyport.v1 import authorization_service_pb2 as authorization, session_service_pb2

from .support import Account


def _authorize(
    client: KeyportClient, token: str, permissions: Sequence[str], organization_id: str = ""
) -> authorization.AuthorizeResponse:
    request = authorization.AuthorizeRequest(token=token, permissions=permissions, organization_id=organization_id)
    return client.authorization.Authorize(request)


def _decisions(answer: authorization.AuthorizeResponse) -> List[Tuple[str, bool]]:
    return [(decision.permission, decision.allowed) for decision in answer.decisions]


def test_decides_each_permission_in_the_order_asked(client: KeyportClient, account: Account) -> None:
    answer = _authorize(client, account.token, ["posts:read", "posts:write"])
    assert answer.allowed is False
    assert _decisions(answer) == [("posts:read", True), ("posts:write", False)]
    assert list(answer.granted) == ["posts:read"]
    assert list(answer.user.roles) == ["user"]
    assert answer.user.email == account.email
    assert answer.HasField("session") and answer.session.id == account.response.session.session.id
    assert answer.HasField("cache_ttl") and answer.cache_ttl.ToTimedelta().total_seconds() > 0

    assert _authorize(client, account.token, ["posts:read"]).allowed is True


@pytest.mark.parametrize("name", ["posts:delete", "Posts", "posts", "posts:", ":read"])
def test_a_name_outside_the_catalogue_or_not_resource_action_is_permission_unknown(
    client: KeyportClient, account: Account, name: str
) -> None:
    with pytest.raises(PermissionUnknown) as excinfo:
        _authorize(client, account.token, ["posts:read", name])
    assert excinfo.value.reason == Reason.PERMISSION_UNKNOWN == "PERMISSION_UNKNOWN"
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_permission_unknown_is_checked_before_the_token(client: KeyportClient) -> None:
    with pytest.raises(PermissionUnknown):
        _authorize(client, "", ["posts:delete"])


@pytest.mark.parametrize(
    ("permissions", "organization_id"),
    [([], ""), (["posts:read"] * 33, ""), (["posts:read"], "org_1")],
    ids=["no permission", "33 permissions", "a malformed organization id"],
)
def test_no_permission_more_than_32_or_a_malformed_organization_id_is_invalid_argument(
    client: KeyportClient, account: Account, permissions: List[str], organization_id: str
) -> None:
    with pytest.raises(InvalidArgument) as excinfo:
        _authorize(client, account.token, permissions, organization_id)
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_32_permissions_are_decided(client: KeyportClient, account: Account) -> None:
    assert len(_authorize(client, account.token, ["posts:read"] * 32).decisions) == 32


@pytest.mark.parametrize("token", ["", "not a token", "kp_" + "A" * 22 + "." + "A" * 43])
def test_a_missing_or_bad_token_is_unauthenticated(client: KeyportClient, token: str) -> None:
    with pytest.raises(Unauthenticated) as excinfo:
        _authorize(client, token, ["posts:read"])
    assert excinfo.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_signed_out_session_is_unauthenticated(client: KeyportClient, account: Account) -> None:
    assert _authorize(client, account.token, ["posts:read"]).allowed
    client.sessions.SignOut(session_service_pb2.SignOutRequest(), metadata=bearer_metadata(account.token))
    with pytest.raises(Unauthenticated):
        _authorize(client, account.token, ["posts:read"])


def test_parallel_calls_with_one_token_answer_alike(client: KeyportClient, account: Account) -> None:
    permissions = ["posts:write", "posts:read", "users:read"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: _authorize(client, account.token, permissions), range(8)))
    for answer in answers:
        assert _decisions(answer) == [("posts:write", False), ("posts:read", True), ("users:read", False)]
        assert answer.allowed is False
        assert answer.session.id == answers[0].session.id
