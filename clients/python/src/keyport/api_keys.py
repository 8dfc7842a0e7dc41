"""API keys: long-lived credentials of machine callers, ``kpa_<id>.<secret>``.

The RPCs are the generated ones on :attr:`keyport.KeyportClient.api_keys`
(``CreateApiKey``, ``ListApiKeys``, ``RevokeApiKey``, ``RotateApiKey``),
each with the owner's session token as ``metadata=bearer_metadata(token)``,
or an admin's for a service account's keys (``service_account_id``); the
service accounts themselves are ``AdminService`` calls on
:attr:`keyport.KeyportClient.admin` (``CreateServiceAccount``,
``ListServiceAccounts``, ``SetServiceAccountRoles``,
``DeleteServiceAccount``). For asyncio, the generated
``ApiKeyServiceStub`` works on a ``grpc.aio`` channel; wrap its errors with
:meth:`keyport.KeyportError.from_rpc_error`.

A key is checked as a session token is, with ``Authorize(token=key, ...)``,
and may be the bearer of ``AdminService`` calls
(``metadata=bearer_metadata(key)``) when its scopes and its owner's roles
grant what they need. Every other call wants a session and raises
:class:`keyport.ApiKeyNotAccepted` for a key; :func:`is_api_key` tells the
two apart before the call.
"""

from __future__ import annotations

__all__ = ["API_KEY_PREFIX", "is_api_key"]

#: The prefix of every API key (``kpa_<id>.<secret>``); session tokens
#: start with ``kp_``.
API_KEY_PREFIX = "kpa_"


def is_api_key(token: str) -> bool:
    """Whether ``token`` looks like an API key rather than a session token.

    What decides which check a bearer credential gets (a key:
    ``Authorize``; a session: ``GetSession`` too). Not a validation: Keyport
    still raises :class:`keyport.Unauthenticated` for a malformed, unknown
    or revoked key::

        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        answer = keyport.authorization.Authorize(AuthorizeRequest(token=token, permissions=["posts:read"]))
        if is_api_key(token):
            print("key", answer.api_key.name, "of", answer.user.email or answer.service_account.name)

    Args:
        token: A bearer credential, e.g. from an ``Authorization`` header.

    Returns:
        ``True`` when it starts with :data:`API_KEY_PREFIX`.
    """
    return token.startswith(API_KEY_PREFIX)
