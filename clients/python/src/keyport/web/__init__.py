"""Web adapters of the Keyport guard.

- :mod:`keyport.web.guard`: the framework-free guard
  (:func:`~keyport.web.guard.authenticate_request`,
  :func:`~keyport.web.guard.authenticate_request_async`);
- :mod:`keyport.web.asgi`: :class:`~keyport.web.asgi.KeyportMiddleware`, pure ASGI;
- :mod:`keyport.web.fastapi`: ``Depends(require_session)`` and
  ``Depends(require_permissions(...))`` (the ``fastapi`` extra);
- :mod:`keyport.web.wsgi`: :class:`~keyport.web.wsgi.KeyportWSGIMiddleware`
  over the sync cache (Flask, Django).
"""

from .guard import (
    Authenticated,
    CookieSettings,
    Credentials,
    Outcome,
    Refused,
    authenticate_request,
    authenticate_request_async,
    client_ip_from,
    read_credentials,
)

__all__ = [
    "Authenticated",
    "CookieSettings",
    "Credentials",
    "Outcome",
    "Refused",
    "authenticate_request",
    "authenticate_request_async",
    "client_ip_from",
    "read_credentials",
]
