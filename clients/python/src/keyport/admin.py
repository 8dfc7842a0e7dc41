"""Helpers for ``AdminService``, the administration of users (``docs/admin.md``).

The RPCs are the generated ones on :attr:`keyport.KeyportClient.admin`
(``ListUsers``, ``GetUser``, ``CreateUser``, ``SetUserRoles``, ``BanUser``,
``UnbanUser``, ``RevokeUserSessions``, ``DeleteUser``, and the service
accounts' ``CreateServiceAccount``, ``ListServiceAccounts``,
``SetServiceAccountRoles`` and ``DeleteServiceAccount``), each with the
admin's session token as ``metadata=bearer_metadata(token)``, or an API key
whose scopes grant the call's permission. This module walks
every page of ``ListUsers``: :func:`list_all_users` with a
:class:`keyport.KeyportClient` (or a stub on a channel of your own), and
:func:`list_all_users_async` with a stub on a ``grpc.aio`` channel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, AsyncIterator, Iterator, NoReturn, Optional, Union

import grpc

from keyport.client import DEFAULT_TIMEOUT, KeyportClient, Metadata, bearer_metadata
from keyport.errors import KeyportError
from keyport.v1 import admin_service_pb2

if TYPE_CHECKING:
    from keyport.v1.admin_service_pb2_grpc import AdminServiceAsyncStub, AdminServiceStub

__all__ = ["list_all_users", "list_all_users_async"]


def _first_page(request: Optional[admin_service_pb2.ListUsersRequest]) -> admin_service_pb2.ListUsersRequest:
    """A copy of ``request`` (or an empty request) to page with."""
    page = admin_service_pb2.ListUsersRequest()
    if request is not None:
        page.CopyFrom(request)
    return page


def _raise_translated(err: grpc.RpcError) -> NoReturn:
    """Raises ``err`` as the :class:`keyport.KeyportError` of its reason, or as it is."""
    translated = KeyportError.from_rpc_error(err)
    if translated is None or translated is err:
        raise err
    raise translated from None


def _next_token(request: admin_service_pb2.ListUsersRequest, page: admin_service_pb2.ListUsersResponse) -> bool:
    """Moves ``request`` on to the page after ``page``; ``False`` when ``page`` was the last."""
    if not page.next_page_token:
        return False
    if page.next_page_token == request.page_token:
        raise RuntimeError("keyport: ListUsers answered the page token it was asked with")
    request.page_token = page.next_page_token
    return True


def list_all_users(
    admin: Union[KeyportClient, AdminServiceStub],
    token: str,
    request: Optional[admin_service_pb2.ListUsersRequest] = None,
    *,
    timeout: Optional[float] = None,
    metadata: Metadata = (),
) -> Iterator[admin_service_pb2.ManagedUser]:
    """Yields every user ``ListUsers`` lists for ``request``'s filters, newest first.

    A generator: it asks for the next page only once the loop has used up
    the one before, with that page's ``next_page_token``, until a page
    answers none. Users created meanwhile do not shift later pages (the
    token is a cursor)::

        request = ListUsersRequest(ban=BAN_FILTER_BANNED, page_size=200)
        for managed in list_all_users(keyport, admin_token, request):
            print(managed.user.email, managed.ban.reason)

    Args:
        admin: The client (its :attr:`~keyport.KeyportClient.admin` stub), or
            an ``AdminServiceStub`` on a channel of your own.
        token: The admin's session token, or an API key; their roles (and
            the key's scopes) must grant ``users:read``.
        request: The filters (``email_prefix``, ``created_after``,
            ``created_before``, ``role``, ``ban``) and ``page_size`` (1-200;
            0 means 50) of every page; not changed. A ``page_token`` starts
            the walk there instead of at the first page.
        timeout: Deadline of each page's call in seconds; ``None`` leaves it
            to the client's default.
        metadata: More metadata for each call, e.g.
            :func:`keyport.forwarded_client_metadata`.

    Yields:
        ``ManagedUser`` messages: the ``user``, and their ``ban`` while one
        is in force.

    Raises:
        keyport.KeyportError: The subclass of the failed page's reason, e.g.
            :class:`keyport.PermissionDenied` (the roles lack
            ``users:read``), :class:`keyport.Unauthenticated` or
            :class:`keyport.InvalidArgument` (a malformed filter or page
            size), after the users of the pages before.
        grpc.RpcError: A call that never reached Keyport.
        ValueError: An empty or malformed ``token``.
        RuntimeError: The server answered the page token it was asked with
            again (the walk would never end).
    """
    stub = admin.admin if isinstance(admin, KeyportClient) else admin
    call_metadata = bearer_metadata(token) + tuple(metadata)
    page_request = _first_page(request)
    while True:
        try:
            page = stub.ListUsers(page_request, timeout=timeout, metadata=call_metadata)
        except grpc.RpcError as err:
            _raise_translated(err)
        yield from page.users
        if not _next_token(page_request, page):
            return


async def list_all_users_async(
    admin: AdminServiceAsyncStub,
    token: str,
    request: Optional[admin_service_pb2.ListUsersRequest] = None,
    *,
    timeout: Optional[float] = DEFAULT_TIMEOUT,
    metadata: Metadata = (),
) -> AsyncIterator[admin_service_pb2.ManagedUser]:
    """Yields every user ``ListUsers`` lists, newest first, for asyncio.

    :func:`list_all_users` for an ``AdminServiceStub`` on a ``grpc.aio``
    channel; errors Keyport answered are raised as the
    :class:`keyport.KeyportError` subclass of their reason here too::

        async with grpc.aio.insecure_channel(address) as channel:
            admin = admin_service_pb2_grpc.AdminServiceStub(channel)
            async for managed in list_all_users_async(admin, admin_token, ListUsersRequest(page_size=200)):
                print(managed.user.email)

    Args:
        admin: An ``AdminServiceStub`` on a ``grpc.aio`` channel.
        token: The admin's session token; their roles must grant
            ``users:read``.
        request: The filters and ``page_size`` of every page, as for
            :func:`list_all_users`; not changed.
        timeout: Deadline of each page's call in seconds:
            :data:`keyport.DEFAULT_TIMEOUT` (2 s) unless given; ``None``
            means none.
        metadata: More metadata for each call.

    Yields:
        ``ManagedUser`` messages.

    Raises:
        keyport.KeyportError: The subclass of the failed page's reason.
        grpc.aio.AioRpcError: A call that never reached Keyport.
        ValueError: An empty or malformed ``token``.
        RuntimeError: The server answered the page token it was asked with
            again.
    """
    call_metadata = bearer_metadata(token) + tuple(metadata)
    page_request = _first_page(request)
    while True:
        try:
            page = await admin.ListUsers(page_request, timeout=timeout, metadata=call_metadata)
        except grpc.RpcError as err:
            _raise_translated(err)
        for managed in page.users:
            yield managed
        if not _next_token(page_request, page):
            return
