import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from keyport.v1 import api_key_pb2 as _api_key_pb2
from keyport.v1 import session_pb2 as _session_pb2
from keyport.v1 import user_pb2 as _user_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuthorizeRequest(_message.Message):
    __slots__ = ("token", "permissions", "organization_id")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    token: str
    permissions: _containers.RepeatedScalarFieldContainer[str]
    organization_id: str
    def __init__(self, token: _Optional[str] = ..., permissions: _Optional[_Iterable[str]] = ..., organization_id: _Optional[str] = ...) -> None: ...

class PermissionDecision(_message.Message):
    __slots__ = ("permission", "allowed")
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    permission: str
    allowed: bool
    def __init__(self, permission: _Optional[str] = ..., allowed: bool = ...) -> None: ...

class AuthorizeResponse(_message.Message):
    __slots__ = ("allowed", "decisions", "session", "user", "granted", "refreshed", "cache_ttl", "api_key", "service_account", "organization_id", "organization_role")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    REFRESHED_FIELD_NUMBER: _ClassVar[int]
    CACHE_TTL_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_ROLE_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    decisions: _containers.RepeatedCompositeFieldContainer[PermissionDecision]
    session: _session_pb2.Session
    user: _user_pb2.User
    granted: _containers.RepeatedScalarFieldContainer[str]
    refreshed: bool
    cache_ttl: _duration_pb2.Duration
    api_key: _api_key_pb2.ApiKey
    service_account: _api_key_pb2.ServiceAccount
    organization_id: str
    organization_role: str
    def __init__(self, allowed: bool = ..., decisions: _Optional[_Iterable[_Union[PermissionDecision, _Mapping]]] = ..., session: _Optional[_Union[_session_pb2.Session, _Mapping]] = ..., user: _Optional[_Union[_user_pb2.User, _Mapping]] = ..., granted: _Optional[_Iterable[str]] = ..., refreshed: bool = ..., cache_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., api_key: _Optional[_Union[_api_key_pb2.ApiKey, _Mapping]] = ..., service_account: _Optional[_Union[_api_key_pb2.ServiceAccount, _Mapping]] = ..., organization_id: _Optional[str] = ..., organization_role: _Optional[str] = ...) -> None: ...
