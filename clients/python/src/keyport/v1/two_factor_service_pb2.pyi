import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from keyport.v1 import session_pb2 as _session_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListFactorsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListFactorsResponse(_message.Message):
    __slots__ = ("totp_enabled", "totp_enabled_at", "backup_codes_left", "passkeys")
    TOTP_ENABLED_FIELD_NUMBER: _ClassVar[int]
    TOTP_ENABLED_AT_FIELD_NUMBER: _ClassVar[int]
    BACKUP_CODES_LEFT_FIELD_NUMBER: _ClassVar[int]
    PASSKEYS_FIELD_NUMBER: _ClassVar[int]
    totp_enabled: bool
    totp_enabled_at: _timestamp_pb2.Timestamp
    backup_codes_left: int
    passkeys: int
    def __init__(self, totp_enabled: bool = ..., totp_enabled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., backup_codes_left: _Optional[int] = ..., passkeys: _Optional[int] = ...) -> None: ...

class EnrollTotpRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EnrollTotpResponse(_message.Message):
    __slots__ = ("secret", "otpauth_uri", "qr_code_svg", "expires_at")
    SECRET_FIELD_NUMBER: _ClassVar[int]
    OTPAUTH_URI_FIELD_NUMBER: _ClassVar[int]
    QR_CODE_SVG_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    secret: str
    otpauth_uri: str
    qr_code_svg: bytes
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, secret: _Optional[str] = ..., otpauth_uri: _Optional[str] = ..., qr_code_svg: _Optional[bytes] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ConfirmTotpRequest(_message.Message):
    __slots__ = ("code",)
    CODE_FIELD_NUMBER: _ClassVar[int]
    code: str
    def __init__(self, code: _Optional[str] = ...) -> None: ...

class ConfirmTotpResponse(_message.Message):
    __slots__ = ("backup_codes", "session")
    BACKUP_CODES_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    backup_codes: _containers.RepeatedScalarFieldContainer[str]
    session: _session_pb2.Session
    def __init__(self, backup_codes: _Optional[_Iterable[str]] = ..., session: _Optional[_Union[_session_pb2.Session, _Mapping]] = ...) -> None: ...

class DisableTotpRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DisableTotpResponse(_message.Message):
    __slots__ = ("revoked_sessions",)
    REVOKED_SESSIONS_FIELD_NUMBER: _ClassVar[int]
    revoked_sessions: int
    def __init__(self, revoked_sessions: _Optional[int] = ...) -> None: ...

class RegenerateBackupCodesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RegenerateBackupCodesResponse(_message.Message):
    __slots__ = ("backup_codes",)
    BACKUP_CODES_FIELD_NUMBER: _ClassVar[int]
    backup_codes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, backup_codes: _Optional[_Iterable[str]] = ...) -> None: ...

class StepUpRequest(_message.Message):
    __slots__ = ("totp_code", "backup_code", "passkey")
    TOTP_CODE_FIELD_NUMBER: _ClassVar[int]
    BACKUP_CODE_FIELD_NUMBER: _ClassVar[int]
    PASSKEY_FIELD_NUMBER: _ClassVar[int]
    totp_code: str
    backup_code: str
    passkey: PasskeyAssertion
    def __init__(self, totp_code: _Optional[str] = ..., backup_code: _Optional[str] = ..., passkey: _Optional[_Union[PasskeyAssertion, _Mapping]] = ...) -> None: ...

class PasskeyAssertion(_message.Message):
    __slots__ = ("ceremony", "credential")
    CEREMONY_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    ceremony: str
    credential: str
    def __init__(self, ceremony: _Optional[str] = ..., credential: _Optional[str] = ...) -> None: ...

class StartPasskeyStepUpRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StartPasskeyStepUpResponse(_message.Message):
    __slots__ = ("ceremony", "options", "expires_at")
    CEREMONY_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ceremony: str
    options: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, ceremony: _Optional[str] = ..., options: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StepUpResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: _session_pb2.Session
    def __init__(self, session: _Optional[_Union[_session_pb2.Session, _Mapping]] = ...) -> None: ...
