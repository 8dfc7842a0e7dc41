import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from keyport.v1 import oauth_pb2 as _oauth_pb2
from keyport.v1 import session_pb2 as _session_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListProvidersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListProvidersResponse(_message.Message):
    __slots__ = ("providers",)
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    providers: _containers.RepeatedCompositeFieldContainer[_oauth_pb2.OAuthProvider]
    def __init__(self, providers: _Optional[_Iterable[_Union[_oauth_pb2.OAuthProvider, _Mapping]]] = ...) -> None: ...

class StartOAuthRequest(_message.Message):
    __slots__ = ("provider_id", "redirect_uri", "link")
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_URI_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    provider_id: str
    redirect_uri: str
    link: bool
    def __init__(self, provider_id: _Optional[str] = ..., redirect_uri: _Optional[str] = ..., link: bool = ...) -> None: ...

class StartOAuthResponse(_message.Message):
    __slots__ = ("authorization_url", "state", "binding", "expires_at")
    AUTHORIZATION_URL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BINDING_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    authorization_url: str
    state: str
    binding: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, authorization_url: _Optional[str] = ..., state: _Optional[str] = ..., binding: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FinishOAuthRequest(_message.Message):
    __slots__ = ("state", "code", "redirect_uri", "binding", "error")
    STATE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REDIRECT_URI_FIELD_NUMBER: _ClassVar[int]
    BINDING_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    state: str
    code: str
    redirect_uri: str
    binding: str
    error: str
    def __init__(self, state: _Optional[str] = ..., code: _Optional[str] = ..., redirect_uri: _Optional[str] = ..., binding: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class FinishOAuthResponse(_message.Message):
    __slots__ = ("session", "linked", "challenge", "new_user")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    LINKED_FIELD_NUMBER: _ClassVar[int]
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    NEW_USER_FIELD_NUMBER: _ClassVar[int]
    session: _session_pb2.SessionGrant
    linked: _oauth_pb2.LinkedAccount
    challenge: _session_pb2.SignInChallenge
    new_user: bool
    def __init__(self, session: _Optional[_Union[_session_pb2.SessionGrant, _Mapping]] = ..., linked: _Optional[_Union[_oauth_pb2.LinkedAccount, _Mapping]] = ..., challenge: _Optional[_Union[_session_pb2.SignInChallenge, _Mapping]] = ..., new_user: bool = ...) -> None: ...

class ListLinkedAccountsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListLinkedAccountsResponse(_message.Message):
    __slots__ = ("accounts",)
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[_oauth_pb2.LinkedAccount]
    def __init__(self, accounts: _Optional[_Iterable[_Union[_oauth_pb2.LinkedAccount, _Mapping]]] = ...) -> None: ...

class UnlinkAccountRequest(_message.Message):
    __slots__ = ("provider_id", "subject")
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    provider_id: str
    subject: str
    def __init__(self, provider_id: _Optional[str] = ..., subject: _Optional[str] = ...) -> None: ...

class UnlinkAccountResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
