import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProviderKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROVIDER_KIND_UNSPECIFIED: _ClassVar[ProviderKind]
    PROVIDER_KIND_OIDC: _ClassVar[ProviderKind]
    PROVIDER_KIND_GITHUB: _ClassVar[ProviderKind]
PROVIDER_KIND_UNSPECIFIED: ProviderKind
PROVIDER_KIND_OIDC: ProviderKind
PROVIDER_KIND_GITHUB: ProviderKind

class OAuthProvider(_message.Message):
    __slots__ = ("id", "display_name", "kind")
    ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    id: str
    display_name: str
    kind: ProviderKind
    def __init__(self, id: _Optional[str] = ..., display_name: _Optional[str] = ..., kind: _Optional[_Union[ProviderKind, str]] = ...) -> None: ...

class LinkedAccount(_message.Message):
    __slots__ = ("provider_id", "subject", "email", "linked_at")
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    LINKED_AT_FIELD_NUMBER: _ClassVar[int]
    provider_id: str
    subject: str
    email: str
    linked_at: _timestamp_pb2.Timestamp
    def __init__(self, provider_id: _Optional[str] = ..., subject: _Optional[str] = ..., email: _Optional[str] = ..., linked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
