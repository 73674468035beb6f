"""`aisopsflow gateway`: one asyncio process serving Enrollment and RunnerGateway on two ports.

Two ``grpc.aio`` servers because one gRPC server cannot make the client
certificate optional: enrollment is server-only TLS, the gateway mutual TLS.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import uuid
from typing import Any

import grpc

from ops.gateway.blocking import db_call
from ops.gateway.connect_service import ConnectService
from ops.gateway.control_watch import ControlWatch
from ops.gateway.enrollment_service import EnrollmentService
from ops.gateway.jobs_listener import JobsListener
from ops.gateway.sessions import SessionTable, rotation_loop, touch_loop
from ops.gateway.tls import GatewayTLS, load_gateway_tls
from ops.rpc import runner_pb2_grpc
from shared.db import bind
from shared.dispatch import Dispatcher
from shared.runner_keys import load_job_signing_key
from shared.runners import registry
from shared.settings import Settings

log = logging.getLogger(__name__)

#: Server channel options. A frozen (SIGSTOPped) runner answers no ping: it is pinged
#: after 5 s without traffic and dropped 5 s later, well inside 15 s. Runners ping as
#: well, so pings without data are allowed without limit and as often as every 4 s
#: (a server otherwise answers a client pinging more often than every 5 min with GOAWAY).
KEEPALIVE_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.keepalive_time_ms", 5000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.http2.ping_timeout_ms", 5000),
    ("grpc.http2.min_ping_interval_without_data_ms", 4000),
    ("grpc.http2.min_time_between_pings_ms", 4000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.max_ping_strikes", 0),
)
#: How long in-flight calls may finish after SIGTERM, in seconds (below `up`'s 10 s stop timeout).
STOP_GRACE_SECONDS = 5.0


def new_gateway_id() -> str:
    """This process's name in ``Runner.gateway_id``: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Gateway:
    """Both servers and the loops behind them (dispatch, control, presence, token rotation)."""

    def __init__(self, settings: Settings, *, tls: GatewayTLS | None = None) -> None:
        self.settings = settings
        self.tls = tls or load_gateway_tls(settings)
        self.gateway_id = new_gateway_id()
        self.sessions = SessionTable()
        self.listener = JobsListener(settings, self.sessions)
        self.control = ControlWatch(settings, self.sessions)
        self.stop_event = asyncio.Event()
        self.enroll_server = grpc.aio.server(options=KEEPALIVE_OPTIONS)
        self.gateway_server = grpc.aio.server(options=KEEPALIVE_OPTIONS)
        runner_pb2_grpc.add_EnrollmentServicer_to_server(
            EnrollmentService(settings, self.tls.ca), self.enroll_server
        )
        runner_pb2_grpc.add_RunnerGatewayServicer_to_server(
            ConnectService(
                settings,
                self.tls.ca,
                self.sessions,
                self.listener,
                self.control,
                Dispatcher(settings),
                self.gateway_id,
            ),
            self.gateway_server,
        )
        self.loops: list[asyncio.Task[Any]] = []
        self.enroll_port = 0
        self.port = 0

    async def start(self) -> None:
        """Bind both ports and start serving."""
        host = self.settings.gateway_host
        self.enroll_port = self.enroll_server.add_secure_port(
            _address(host, self.settings.gateway_enroll_port), self.tls.enroll_credentials()
        )
        self.port = self.gateway_server.add_secure_port(
            _address(host, self.settings.gateway_port), self.tls.gateway_credentials()
        )
        await self.enroll_server.start()
        await self.gateway_server.start()
        for loop in (
            self.listener.run(self.stop_event),
            self.control.run(self.stop_event),
            touch_loop(self.sessions, self.stop_event),
            rotation_loop(self.settings, self.sessions, self.stop_event),
        ):
            self.loops.append(asyncio.create_task(loop))
        log.info(
            "gateway %s: enrollment on %s (TLS), runners on %s (mTLS), CA sha256 %s",
            self.gateway_id,
            _address(host, self.enroll_port),
            _address(host, self.port),
            self.tls.ca.sha256,
        )

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """End every stream, let calls in flight finish within ``grace`` seconds, stop the loops."""
        self.stop_event.set()
        held = [(session.runner_id, session.epoch) for session in self.sessions.live]
        self.sessions.close_all(grpc.StatusCode.UNAVAILABLE, "the gateway is stopping")
        await asyncio.gather(self.enroll_server.stop(grace), self.gateway_server.stop(grace))
        for task in self.loops:
            task.cancel()
        await asyncio.gather(*self.loops, return_exceptions=True)
        # Each stream's own ending marks its runner offline, but a stopping server
        # cancels those handlers and the process may exit before their updates land:
        # do it here too (the epoch keeps a runner that moved to another gateway online).
        for runner_id, epoch in held:
            try:
                await db_call(registry.mark_offline, runner_id, epoch)
            except Exception:  # noqa: BLE001 - presence goes stale on its own
                log.exception("could not mark runner %s offline", runner_id)
        log.info("gateway %s stopped", self.gateway_id)


async def serve(settings: Settings) -> None:
    """Run the gateway until SIGTERM or SIGINT."""
    gateway = Gateway(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await gateway.start()
    await stopping.wait()
    log.info("stopping the gateway")
    await gateway.stop()


def main(settings: Settings) -> int:
    """The gateway process: bind the database, make Core's keys if missing, serve; returns 0 once stopped."""
    bind(settings.resolved_database_url)
    # Made now, not on the first enrollment: every process then reads one key file.
    load_job_signing_key(settings)
    asyncio.run(serve(settings))
    return 0
