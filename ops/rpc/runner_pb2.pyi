from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EnrollRequest(_message.Message):
    __slots__ = ("token", "csr_pem", "identity_public_key", "inventory", "labels", "runner_id", "proof")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    INVENTORY_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    token: str
    csr_pem: bytes
    identity_public_key: bytes
    inventory: Inventory
    labels: _containers.ScalarMap[str, str]
    runner_id: str
    proof: bytes
    def __init__(self, token: _Optional[str] = ..., csr_pem: _Optional[bytes] = ..., identity_public_key: _Optional[bytes] = ..., inventory: _Optional[_Union[Inventory, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., runner_id: _Optional[str] = ..., proof: _Optional[bytes] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("runner_id", "tenant_id", "certificate_pem", "ca_certificate_pem", "job_signing_public_key", "session_token", "not_after", "gateway_address")
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    JOB_SIGNING_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    runner_id: str
    tenant_id: str
    certificate_pem: bytes
    ca_certificate_pem: bytes
    job_signing_public_key: bytes
    session_token: str
    not_after: int
    gateway_address: str
    def __init__(self, runner_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., certificate_pem: _Optional[bytes] = ..., ca_certificate_pem: _Optional[bytes] = ..., job_signing_public_key: _Optional[bytes] = ..., session_token: _Optional[str] = ..., not_after: _Optional[int] = ..., gateway_address: _Optional[str] = ...) -> None: ...

class Inventory(_message.Message):
    __slots__ = ("hostname", "os", "kernel", "arch", "cpus", "memory_bytes", "ips", "runner_version", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    IPS_FIELD_NUMBER: _ClassVar[int]
    RUNNER_VERSION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    os: str
    kernel: str
    arch: str
    cpus: int
    memory_bytes: int
    ips: _containers.RepeatedScalarFieldContainer[str]
    runner_version: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, hostname: _Optional[str] = ..., os: _Optional[str] = ..., kernel: _Optional[str] = ..., arch: _Optional[str] = ..., cpus: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., ips: _Optional[_Iterable[str]] = ..., runner_version: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RunnerMessage(_message.Message):
    __slots__ = ("hello", "heartbeat", "job_accepted", "log_chunk", "job_result", "ack", "inventory")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    JOB_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    LOG_CHUNK_FIELD_NUMBER: _ClassVar[int]
    JOB_RESULT_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    INVENTORY_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    heartbeat: Heartbeat
    job_accepted: JobAccepted
    log_chunk: LogChunk
    job_result: JobResult
    ack: Ack
    inventory: Inventory
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., job_accepted: _Optional[_Union[JobAccepted, _Mapping]] = ..., log_chunk: _Optional[_Union[LogChunk, _Mapping]] = ..., job_result: _Optional[_Union[JobResult, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ..., inventory: _Optional[_Union[Inventory, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("inventory", "running_job_ids")
    INVENTORY_FIELD_NUMBER: _ClassVar[int]
    RUNNING_JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    inventory: Inventory
    running_job_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, inventory: _Optional[_Union[Inventory, _Mapping]] = ..., running_job_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("sent_at_ms", "running_job_ids")
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    sent_at_ms: int
    running_job_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, sent_at_ms: _Optional[int] = ..., running_job_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class JobAccepted(_message.Message):
    __slots__ = ("job_id", "accepted_at_ms")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    accepted_at_ms: int
    def __init__(self, job_id: _Optional[str] = ..., accepted_at_ms: _Optional[int] = ...) -> None: ...

class LogChunk(_message.Message):
    __slots__ = ("job_id", "seq", "stream", "data", "at_ms")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    seq: int
    stream: str
    data: bytes
    at_ms: int
    def __init__(self, job_id: _Optional[str] = ..., seq: _Optional[int] = ..., stream: _Optional[str] = ..., data: _Optional[bytes] = ..., at_ms: _Optional[int] = ...) -> None: ...

class JobResult(_message.Message):
    __slots__ = ("job_id", "seq", "payload", "signature")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    seq: int
    payload: bytes
    signature: bytes
    def __init__(self, job_id: _Optional[str] = ..., seq: _Optional[int] = ..., payload: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("kind", "job_id", "seq", "error")
    KIND_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    kind: str
    job_id: str
    seq: int
    error: str
    def __init__(self, kind: _Optional[str] = ..., job_id: _Optional[str] = ..., seq: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class CoreMessage(_message.Message):
    __slots__ = ("job", "cancel", "token_rotation", "ack")
    JOB_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ROTATION_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    job: SignedJob
    cancel: Cancel
    token_rotation: TokenRotation
    ack: Ack
    def __init__(self, job: _Optional[_Union[SignedJob, _Mapping]] = ..., cancel: _Optional[_Union[Cancel, _Mapping]] = ..., token_rotation: _Optional[_Union[TokenRotation, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ...) -> None: ...

class SignedJob(_message.Message):
    __slots__ = ("job_id", "payload", "signature")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    payload: bytes
    signature: bytes
    def __init__(self, job_id: _Optional[str] = ..., payload: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class Cancel(_message.Message):
    __slots__ = ("job_id", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    reason: str
    def __init__(self, job_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class TokenRotation(_message.Message):
    __slots__ = ("token", "previous_valid_until")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    token: str
    previous_valid_until: int
    def __init__(self, token: _Optional[str] = ..., previous_valid_until: _Optional[int] = ...) -> None: ...

class RenewRequest(_message.Message):
    __slots__ = ("csr_pem",)
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    csr_pem: bytes
    def __init__(self, csr_pem: _Optional[bytes] = ...) -> None: ...

class RenewResponse(_message.Message):
    __slots__ = ("certificate_pem", "not_after")
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    certificate_pem: bytes
    not_after: int
    def __init__(self, certificate_pem: _Optional[bytes] = ..., not_after: _Optional[int] = ...) -> None: ...
