"""A real `aisopsflow gateway` process on free loopback ports, and a runner-side gRPC client for it."""

from __future__ import annotations

import hashlib
import json
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from ops.rpc import runner_pb2, runner_pb2_grpc
from shared import pki
from shared.bootstrap import prepare
from shared.db import connection
from shared.domain import job_signing
from shared.models import RunnerEnrollmentToken, Tenant, utcnow
from shared.runner_keys import load_ca
from shared.settings import Settings
from tests.support.processes import Process

#: How long a test waits for the gateway to listen, in seconds.
START_TIMEOUT_S = 30.0


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Enrolled:
    """What a test runner holds after enrolling: its keys, certificate and session token."""

    runner_id: str
    tenant_id: str
    tls_key_pem: bytes
    certificate_pem: bytes
    identity_key: Any
    session_token: str
    response: runner_pb2.EnrollResponse


@dataclass
class Stream:
    """An open Connect stream: send with ``send``, received messages land in ``received``."""

    requests: queue.Queue[runner_pb2.RunnerMessage | None]
    call: Any
    received: list[runner_pb2.CoreMessage] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)
    error: grpc.RpcError | None = None

    def send(self, message: runner_pb2.RunnerMessage) -> None:
        self.requests.put(message)

    def close(self) -> None:
        self.requests.put(None)

    def wait_ended(self, timeout: float) -> grpc.RpcError | None:
        assert self.ended.wait(timeout), "the stream did not end in time"
        return self.error

    def wait_for(self, predicate: Callable[[runner_pb2.CoreMessage], bool], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in list(self.received):
                if predicate(message):
                    return message
            time.sleep(0.05)
        raise AssertionError(f"no matching message within {timeout} s: {self.received}")


class GatewayClient:
    """Talks to the gateway as a runner would, with the CA it trusts."""

    def __init__(self, settings: Settings, enroll_port: int, port: int) -> None:
        self.settings = settings
        self.enroll_port = enroll_port
        self.port = port
        self.ca_pem = load_ca(settings).cert_pem
        self.channels: list[grpc.Channel] = []

    def _channel(self, port: int, credentials: grpc.ChannelCredentials) -> grpc.Channel:
        channel = grpc.secure_channel(f"127.0.0.1:{port}", credentials)
        self.channels.append(channel)
        return channel

    def enroll(
        self,
        token: str,
        *,
        labels: dict[str, str] | None = None,
        runner_id: str = "",
        identity_key: Any = None,
        hostname: str = "host-1",
    ) -> Enrolled:
        """Enroll (or, with ``runner_id`` and its ``identity_key``, re-enroll) with a fresh TLS key."""
        tls_key = pki.new_private_key()
        csr = pki.create_csr(tls_key, hostname)
        identity_key = identity_key or job_signing.new_signing_key()
        proof = b""
        if runner_id:
            proof = identity_key.sign(
                job_signing.reenroll_proof_message(
                    runner_id, token, hashlib.sha256(csr).hexdigest()
                )
            )
        stub = runner_pb2_grpc.EnrollmentStub(
            self._channel(
                self.enroll_port, grpc.ssl_channel_credentials(root_certificates=self.ca_pem)
            )
        )
        response = stub.Enroll(
            runner_pb2.EnrollRequest(
                token=token,
                csr_pem=csr,
                identity_public_key=job_signing.public_key_raw(identity_key),
                inventory=runner_pb2.Inventory(hostname=hostname, cpus=2, os="Linux"),
                labels=labels or {},
                runner_id=runner_id,
                proof=proof,
            ),
            timeout=20,
        )
        return Enrolled(
            response.runner_id,
            response.tenant_id,
            pki.private_key_pem(tls_key),
            response.certificate_pem,
            identity_key,
            response.session_token,
            response,
        )

    def gateway_stub(
        self, key_pem: bytes | None = None, certificate_pem: bytes | None = None
    ) -> runner_pb2_grpc.RunnerGatewayStub:
        """A stub on an mTLS channel presenting this certificate (or none)."""
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem, private_key=key_pem, certificate_chain=certificate_pem
        )
        return runner_pb2_grpc.RunnerGatewayStub(self._channel(self.port, credentials))

    def renew(self, enrolled: Enrolled, *, token: str | None = None) -> runner_pb2.RenewResponse:
        """Renew with a new TLS key; on success ``enrolled`` holds the new key and certificate."""
        key = pki.new_private_key()
        stub = self.gateway_stub(enrolled.tls_key_pem, enrolled.certificate_pem)
        response = stub.Renew(
            runner_pb2.RenewRequest(csr_pem=pki.create_csr(key, "renew")),
            metadata=[("x-runner-token", token or enrolled.session_token)],
            timeout=20,
        )
        enrolled.tls_key_pem = pki.private_key_pem(key)
        enrolled.certificate_pem = response.certificate_pem
        return response

    def connect(self, enrolled: Enrolled, *, hello: bool = True) -> Stream:
        """Open Connect with the runner's certificate and token; sends Hello first."""
        stub = self.gateway_stub(enrolled.tls_key_pem, enrolled.certificate_pem)
        requests: queue.Queue[runner_pb2.RunnerMessage | None] = queue.Queue()

        def outgoing() -> Iterator[runner_pb2.RunnerMessage]:
            while (message := requests.get()) is not None:
                yield message

        if hello:
            requests.put(
                runner_pb2.RunnerMessage(
                    hello=runner_pb2.Hello(inventory=runner_pb2.Inventory(hostname="host-1"))
                )
            )
        call = stub.Connect(outgoing(), metadata=[("x-runner-token", enrolled.session_token)])
        stream = Stream(requests, call)

        def collect() -> None:
            try:
                for message in call:
                    stream.received.append(message)
            except grpc.RpcError as error:
                stream.error = error
            finally:
                stream.ended.set()

        threading.Thread(target=collect, daemon=True).start()
        return stream

    def close(self) -> None:
        for channel in self.channels:
            channel.close()


@pytest.fixture
def gateway_settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    """Settings of a gateway on free loopback ports over SQLite in the test's temp dir."""
    enroll_port, port = free_ports(2)
    return make_settings(
        database_url=f"sqlite:///{tmp_path / 'gateway.db'}",
        gateway_host="127.0.0.1",
        gateway_enroll_port=str(enroll_port),
        gateway_port=str(port),
    )


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[[Settings], GatewayClient]]:
    """Start `aisopsflow gateway` for settings (database prepared first); a client for it."""
    started: list[tuple[Process, GatewayClient]] = []

    def start(settings: Settings) -> GatewayClient:
        prepare(settings)
        process = Process(settings, ["gateway"], tmp_path / f"gateway-{len(started)}.log").start()
        client = GatewayClient(settings, settings.gateway_enroll_port, settings.gateway_port)
        started.append((process, client))
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (_listening(settings.gateway_enroll_port) and _listening(settings.gateway_port)):
            assert process.process and process.process.poll() is None, process.output()[-4000:]
            assert time.monotonic() < deadline, process.output()[-4000:]
            time.sleep(0.1)
        client.process = process  # type: ignore[attr-defined]
        return client

    yield start
    for process, client in started:
        client.close()
        process.stop()


@pytest.fixture
def gateway(
    gateway_settings: Settings, start_gateway: Callable[[Settings], GatewayClient]
) -> GatewayClient:
    """A running gateway with the default settings of the test."""
    return start_gateway(gateway_settings)


def default_tenant_id() -> str:
    """The id of the tenant `prepare` made."""
    with connection():
        return Tenant.select(Tenant.id).order_by(Tenant.created_at).scalar()


def make_token(
    *, labels: dict[str, str] | None = None, ttl_seconds: int = 600, tenant_id: str | None = None
) -> str:
    """An enrollment token stored as the API stores one (hashed), for the default tenant."""
    token = secrets.token_urlsafe(32)
    with connection():
        RunnerEnrollmentToken.create(
            tenant=tenant_id or default_tenant_id(),
            token_hash=hashlib.sha256(token.encode()).hexdigest(),
            labels_json=json.dumps(labels or {}),
            created_by="test",
            expires_at=utcnow() + timedelta(seconds=ttl_seconds),
        )
    return token


@pytest.fixture
def new_token() -> Callable[..., str]:
    """Make enrollment tokens (see make_token); needs a prepared database (the gateway fixture)."""
    return make_token
