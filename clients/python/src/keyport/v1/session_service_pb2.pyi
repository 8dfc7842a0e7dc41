import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from keyport.v1 import session_pb2 as _session_pb2
from keyport.v1 import user_pb2 as _user_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SignInRequest(_message.Message):
    __slots__ = ("email", "password")
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    email: str
    password: str
    def __init__(self, email: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class SignInResponse(_message.Message):
    __slots__ = ("session", "challenge")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    session: _session_pb2.SessionGrant
    challenge: _session_pb2.SignInChallenge
    def __init__(self, session: _Optional[_Union[_session_pb2.SessionGrant, _Mapping]] = ..., challenge: _Optional[_Union[_session_pb2.SignInChallenge, _Mapping]] = ...) -> None: ...

class CompleteSignInRequest(_message.Message):
    __slots__ = ("challenge", "totp_code", "backup_code", "passkey_credential")
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    TOTP_CODE_FIELD_NUMBER: _ClassVar[int]
    BACKUP_CODE_FIELD_NUMBER: _ClassVar[int]
    PASSKEY_CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    challenge: str
    totp_code: str
    backup_code: str
    passkey_credential: str
    def __init__(self, challenge: _Optional[str] = ..., totp_code: _Optional[str] = ..., backup_code: _Optional[str] = ..., passkey_credential: _Optional[str] = ...) -> None: ...

class CompleteSignInResponse(_message.Message):
    __slots__ = ("session", "backup_codes_left")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    BACKUP_CODES_LEFT_FIELD_NUMBER: _ClassVar[int]
    session: _session_pb2.SessionGrant
    backup_codes_left: int
    def __init__(self, session: _Optional[_Union[_session_pb2.SessionGrant, _Mapping]] = ..., backup_codes_left: _Optional[int] = ...) -> None: ...

class StartPasskeySignInRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StartPasskeySignInResponse(_message.Message):
    __slots__ = ("ceremony", "options", "expires_at")
    CEREMONY_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ceremony: str
    options: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, ceremony: _Optional[str] = ..., options: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FinishPasskeySignInRequest(_message.Message):
    __slots__ = ("ceremony", "credential")
    CEREMONY_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    ceremony: str
    credential: str
    def __init__(self, ceremony: _Optional[str] = ..., credential: _Optional[str] = ...) -> None: ...

class FinishPasskeySignInResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: _session_pb2.SessionGrant
    def __init__(self, session: _Optional[_Union[_session_pb2.SessionGrant, _Mapping]] = ...) -> None: ...

class StartEmailSignInRequest(_message.Message):
    __slots__ = ("email",)
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    email: str
    def __init__(self, email: _Optional[str] = ...) -> None: ...

class StartEmailSignInResponse(_message.Message):
    __slots__ = ("binding", "expires_at")
    BINDING_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    binding: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, binding: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FinishEmailSignInRequest(_message.Message):
    __slots__ = ("binding", "token", "code")
    BINDING_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    binding: str
    token: str
    code: str
    def __init__(self, binding: _Optional[str] = ..., token: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class FinishEmailSignInResponse(_message.Message):
    __slots__ = ("user", "session", "new_user", "challenge")
    USER_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    NEW_USER_FIELD_NUMBER: _ClassVar[int]
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    user: _user_pb2.User
    session: _session_pb2.SessionGrant
    new_user: bool
    challenge: _session_pb2.SignInChallenge
    def __init__(self, user: _Optional[_Union[_user_pb2.User, _Mapping]] = ..., session: _Optional[_Union[_session_pb2.SessionGrant, _Mapping]] = ..., new_user: bool = ..., challenge: _Optional[_Union[_session_pb2.SignInChallenge, _Mapping]] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    def __init__(self, token: _Optional[str] = ...) -> None: ...

class IssueAccessTokenRequest(_message.Message):
    __slots__ = ("token", "audience")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    token: str
    audience: str
    def __init__(self, token: _Optional[str] = ..., audience: _Optional[str] = ...) -> None: ...

class IssueAccessTokenResponse(_message.Message):
    __slots__ = ("access_token", "expires_at")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, access_token: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetJwksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetJwksResponse(_message.Message):
    __slots__ = ("jwks", "max_age")
    JWKS_FIELD_NUMBER: _ClassVar[int]
    MAX_AGE_FIELD_NUMBER: _ClassVar[int]
    jwks: str
    max_age: _duration_pb2.Duration
    def __init__(self, jwks: _Optional[str] = ..., max_age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetSessionResponse(_message.Message):
    __slots__ = ("session", "user", "refreshed", "cache_ttl")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    REFRESHED_FIELD_NUMBER: _ClassVar[int]
    CACHE_TTL_FIELD_NUMBER: _ClassVar[int]
    session: _session_pb2.Session
    user: _user_pb2.User
    refreshed: bool
    cache_ttl: _duration_pb2.Duration
    def __init__(self, session: _Optional[_Union[_session_pb2.Session, _Mapping]] = ..., user: _Optional[_Union[_user_pb2.User, _Mapping]] = ..., refreshed: bool = ..., cache_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[_session_pb2.Session]
    def __init__(self, sessions: _Optional[_Iterable[_Union[_session_pb2.Session, _Mapping]]] = ...) -> None: ...

class RevokeSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class RevokeSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RevokeOtherSessionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RevokeOtherSessionsResponse(_message.Message):
    __slots__ = ("revoked_sessions",)
    REVOKED_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    revoked_sessions: int
    def __init__(self, revoked_sessions: _Optional[int] = ...) -> None: ...

class SignOutRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SignOutResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchSessionEventsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchSessionEventsResponse(_message.Message):
    __slots__ = ("ready", "session_revoked", "user_changed", "heartbeat", "roles_changed", "api_keys_changed")
    READY_FIELD_NUMBER: _ClassVar[int]
    SESSION_REVOKED_FIELD_NUMBER: _ClassVar[int]
    USER_CHANGED_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    ROLES_CHANGED_FIELD_NUMBER: _ClassVar[int]
    API_KEYS_CHANGED_FIELD_NUMBER: _ClassVar[int]
    ready: StreamReady
    session_revoked: _session_pb2.SessionRevoked
    user_changed: _session_pb2.UserChanged
    heartbeat: Heartbeat
    roles_changed: RolesChanged
    api_keys_changed: ApiKeysChanged
    def __init__(self, ready: _Optional[_Union[StreamReady, _Mapping]] = ..., session_revoked: _Optional[_Union[_session_pb2.SessionRevoked, _Mapping]] = ..., user_changed: _Optional[_Union[_session_pb2.UserChanged, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., roles_changed: _Optional[_Union[RolesChanged, _Mapping]] = ..., api_keys_changed: _Optional[_Union[ApiKeysChanged, _Mapping]] = ...) -> None: ...

class ApiKeysChanged(_message.Message):
    __slots__ = ("owner_id", "api_key_id")
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    owner_id: str
    api_key_id: str
    def __init__(self, owner_id: _Optional[str] = ..., api_key_id: _Optional[str] = ...) -> None: ...

class RolesChanged(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StreamReady(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
