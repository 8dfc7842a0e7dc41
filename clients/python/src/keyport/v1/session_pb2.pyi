import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from keyport.v1 import user_pb2 as _user_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AssuranceLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ASSURANCE_LEVEL_UNSPECIFIED: _ClassVar[AssuranceLevel]
    ASSURANCE_LEVEL_AAL1: _ClassVar[AssuranceLevel]
    ASSURANCE_LEVEL_AAL2: _ClassVar[AssuranceLevel]

class SecondFactor(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SECOND_FACTOR_UNSPECIFIED: _ClassVar[SecondFactor]
    SECOND_FACTOR_TOTP: _ClassVar[SecondFactor]
    SECOND_FACTOR_BACKUP_CODE: _ClassVar[SecondFactor]
    SECOND_FACTOR_PASSKEY: _ClassVar[SecondFactor]

class UserChange(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    USER_CHANGE_UNSPECIFIED: _ClassVar[UserChange]
    USER_CHANGE_PROFILE: _ClassVar[UserChange]
    USER_CHANGE_PASSWORD: _ClassVar[UserChange]
    USER_CHANGE_ROLES: _ClassVar[UserChange]
    USER_CHANGE_BANNED: _ClassVar[UserChange]
    USER_CHANGE_DELETED: _ClassVar[UserChange]
    USER_CHANGE_SESSIONS_REVOKED: _ClassVar[UserChange]
    USER_CHANGE_SECOND_FACTOR: _ClassVar[UserChange]
    USER_CHANGE_UNBANNED: _ClassVar[UserChange]
    USER_CHANGE_ORGANIZATIONS: _ClassVar[UserChange]
ASSURANCE_LEVEL_UNSPECIFIED: AssuranceLevel
ASSURANCE_LEVEL_AAL1: AssuranceLevel
ASSURANCE_LEVEL_AAL2: AssuranceLevel
SECOND_FACTOR_UNSPECIFIED: SecondFactor
SECOND_FACTOR_TOTP: SecondFactor
SECOND_FACTOR_BACKUP_CODE: SecondFactor
SECOND_FACTOR_PASSKEY: SecondFactor
USER_CHANGE_UNSPECIFIED: UserChange
USER_CHANGE_PROFILE: UserChange
USER_CHANGE_PASSWORD: UserChange
USER_CHANGE_ROLES: UserChange
USER_CHANGE_BANNED: UserChange
USER_CHANGE_DELETED: UserChange
USER_CHANGE_SESSIONS_REVOKED: UserChange
USER_CHANGE_SECOND_FACTOR: UserChange
USER_CHANGE_UNBANNED: UserChange
USER_CHANGE_ORGANIZATIONS: UserChange

class Session(_message.Message):
    __slots__ = ("id", "user_id", "created_at", "expires_at", "absolute_expires_at", "refreshed_at", "ip_address", "user_agent", "current", "assurance_level", "authenticated_at", "impersonator_id", "active_organization_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ABSOLUTE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REFRESHED_AT_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    ASSURANCE_LEVEL_FIELD_NUMBER: _ClassVar[int]
    AUTHENTICATED_AT_FIELD_NUMBER: _ClassVar[int]
    IMPERSONATOR_ID_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_ORGANIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    user_id: str
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    absolute_expires_at: _timestamp_pb2.Timestamp
    refreshed_at: _timestamp_pb2.Timestamp
    ip_address: str
    user_agent: str
    current: bool
    assurance_level: AssuranceLevel
    authenticated_at: _timestamp_pb2.Timestamp
    impersonator_id: str
    active_organization_id: str
    def __init__(self, id: _Optional[str] = ..., user_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., absolute_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., refreshed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ip_address: _Optional[str] = ..., user_agent: _Optional[str] = ..., current: bool = ..., assurance_level: _Optional[_Union[AssuranceLevel, str]] = ..., authenticated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., impersonator_id: _Optional[str] = ..., active_organization_id: _Optional[str] = ...) -> None: ...

class SignInChallenge(_message.Message):
    __slots__ = ("challenge", "factors", "expires_at", "passkey_options")
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    FACTORS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    PASSKEY_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    challenge: str
    factors: _containers.RepeatedScalarFieldContainer[SecondFactor]
    expires_at: _timestamp_pb2.Timestamp
    passkey_options: str
    def __init__(self, challenge: _Optional[str] = ..., factors: _Optional[_Iterable[_Union[SecondFactor, str]]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., passkey_options: _Optional[str] = ...) -> None: ...

class SessionGrant(_message.Message):
    __slots__ = ("token", "session", "user")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    token: str
    session: Session
    user: _user_pb2.User
    def __init__(self, token: _Optional[str] = ..., session: _Optional[_Union[Session, _Mapping]] = ..., user: _Optional[_Union[_user_pb2.User, _Mapping]] = ...) -> None: ...

class SessionRevoked(_message.Message):
    __slots__ = ("session_id", "user_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    user_id: str
    def __init__(self, session_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class UserChanged(_message.Message):
    __slots__ = ("user_id", "change")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    change: UserChange
    def __init__(self, user_id: _Optional[str] = ..., change: _Optional[_Union[UserChange, str]] = ...) -> None: ...
