"""A loopback stand-in for Core's gateway: both gRPC servers of runner.proto, on 127.0.0.1.

It stores each (job_id, seq) it receives, acknowledges it (unless told not
to), and lets a test push CoreMessages down the current stream. Only what the
agent needs to be tested alone; the real gateway lives in ops/gateway.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio

from ops.rpc import runner_pb2, runner_pb2_grpc
from shared import pki
from shared.domain import job_signing
from tests.ops.runner.fakes import RUNNER, TENANT, FakeCore


@dataclass
class Stream:
    """One Connect call as the gateway saw it."""

    fingerprint: str
    token: str
    outgoing: asyncio.Queue[runner_pb2.CoreMessage] = field(default_factory=asyncio.Queue)
    received: list[runner_pb2.RunnerMessage] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    abort_with: asyncio.Future[tuple[grpc.StatusCode, str]] | None = None


class FakeGateway(runner_pb2_grpc.RunnerGatewayServicer, runner_pb2_grpc.EnrollmentServicer):
    """Records what runners send; answers acks, renewals and enrollments."""

    def __init__(self, core: FakeCore) -> None:
        self.core = core
        self.streams: list[Stream] = []
        #: Every log chunk / result received, duplicates included, in arrival order.
        self.items: list[tuple[str, int, str]] = []
        self.auto_ack = True
        self.refuse: str | None = None
        self.enroll_refusal: str | None = None
        self.enroll_requests: list[runner_pb2.EnrollRequest] = []
        self.renewals = 0
        self.renew_lifetime_s = 3600.0
        self.renew_refusal: str | None = None
        self.enroll_lifetime_s = 3600.0
        self.gateway_address = ""
        self.identity_keys: dict[str, bytes] = {}

    # RunnerGateway.
    async def Connect(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:  # noqa: N802
        metadata = dict(context.invocation_metadata() or ())
        pem = context.auth_context()["x509_pem_cert"][0]
        stream = Stream(pki.fingerprint(pem), str(metadata.get("x-runner-token", "")))
        stream.abort_with = asyncio.get_running_loop().create_future()
        self.streams.append(stream)
        if self.refuse:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, self.refuse)

        async def pump() -> None:
            while True:
                await context.write(await stream.outgoing.get())

        async def receive() -> None:
            async for message in request_iterator:
                stream.received.append(message)
                kind = message.WhichOneof("body")
                if kind in ("log_chunk", "job_result"):
                    item = getattr(message, kind)
                    short = "log" if kind == "log_chunk" else "result"
                    self.items.append((item.job_id, item.seq, short))
                    if self.auto_ack:
                        stream.outgoing.put_nowait(
                            runner_pb2.CoreMessage(
                                ack=runner_pb2.Ack(kind=short, job_id=item.job_id, seq=item.seq)
                            )
                        )

        tasks = [asyncio.ensure_future(pump()), asyncio.ensure_future(receive())]
        try:
            done, _ = await asyncio.wait(
                [tasks[1], stream.abort_with], return_when=asyncio.FIRST_COMPLETED
            )
            if stream.abort_with in done:
                code, message = stream.abort_with.result()
                await context.abort(code, message)
        finally:
            for task in tasks:
                task.cancel()
            stream.ended.set()

    async def Renew(  # noqa: N802 - the proto's name
        self, request: runner_pb2.RenewRequest, context: grpc.aio.ServicerContext
    ) -> runner_pb2.RenewResponse:
        self.renewals += 1
        if self.renew_refusal:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, self.renew_refusal)
        certificate = self.core.runner_certificate(request.csr_pem, self.renew_lifetime_s)
        return runner_pb2.RenewResponse(
            certificate_pem=certificate, not_after=int(pki.not_after(certificate).timestamp())
        )

    # Enrollment.
    async def Enroll(  # noqa: N802 - the proto's name
        self, request: runner_pb2.EnrollRequest, context: grpc.aio.ServicerContext
    ) -> runner_pb2.EnrollResponse:
        self.enroll_requests.append(request)
        if self.enroll_refusal:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, self.enroll_refusal)
        runner_id = RUNNER
        if request.runner_id:
            message = job_signing.reenroll_proof_message(
                request.runner_id, request.token, hashlib.sha256(request.csr_pem).hexdigest()
            )
            known = self.identity_keys.get(request.runner_id, request.identity_public_key)
            try:
                job_signing.public_key_from_raw(known).verify(request.proof, message)
            except Exception:  # noqa: BLE001 - any failure is a bad proof
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, "bad re-enrollment proof")
            runner_id = request.runner_id
        certificate = self.core.runner_certificate(
            request.csr_pem, self.enroll_lifetime_s, runner_id
        )
        return runner_pb2.EnrollResponse(
            runner_id=runner_id,
            tenant_id=TENANT,
            certificate_pem=certificate,
            ca_certificate_pem=self.core.ca_pem,
            job_signing_public_key=job_signing.public_key_raw(self.core.job_key),
            session_token="session-token-enrolled",
            not_after=int(pki.not_after(certificate).timestamp()),
            gateway_address=self.gateway_address,
        )

    # Test helpers.
    def send(self, message: runner_pb2.CoreMessage, stream: int = -1) -> None:
        self.streams[stream].outgoing.put_nowait(message)

    def send_job(self, job_id: str, payload: bytes, signature: bytes) -> None:
        self.send(
            runner_pb2.CoreMessage(
                job=runner_pb2.SignedJob(job_id=job_id, payload=payload, signature=signature)
            )
        )

    def received(self, kind: str) -> list[Any]:
        return [
            getattr(m, kind)
            for s in self.streams
            for m in s.received
            if m.WhichOneof("body") == kind
        ]

    def result(self, job_id: str) -> dict[str, Any] | None:
        for result in self.received("job_result"):
            if result.job_id == job_id:
                return {"seq": result.seq, "payload": result.payload, "signature": result.signature}
        return None


async def wait_for(predicate: Callable[[], Any], timeout_s: float = 15.0) -> Any:
    """Poll ``predicate`` until it is truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        await asyncio.sleep(0.02)


async def start_servers(gateway: FakeGateway) -> tuple[grpc.aio.Server, int, int]:
    """(server, mTLS gateway port, server-TLS enroll port) on 127.0.0.1."""
    chain, key = gateway.core.server_credentials()
    server = grpc.aio.server(
        options=[
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 1000),
        ]
    )
    runner_pb2_grpc.add_RunnerGatewayServicer_to_server(gateway, server)
    mtls = grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=gateway.core.ca_pem, require_client_auth=True
    )
    port = server.add_secure_port("127.0.0.1:0", mtls)
    enroll_server = grpc.aio.server()
    runner_pb2_grpc.add_EnrollmentServicer_to_server(gateway, enroll_server)
    enroll_port = enroll_server.add_secure_port(
        "127.0.0.1:0", grpc.ssl_server_credentials([(key, chain)])
    )
    await server.start()
    await enroll_server.start()
    gateway.gateway_address = f"127.0.0.1:{port}"
    server.enroll_server = enroll_server  # type: ignore[attr-defined]
    return server, port, enroll_port


async def stop_servers(server: grpc.aio.Server) -> None:
    await server.stop(grace=None)
    await server.enroll_server.stop(grace=None)  # type: ignore[attr-defined]
