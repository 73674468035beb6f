"""A frozen runner is dropped within 15 s: the server pings it and gives up on a missing answer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from ops.gateway.server import KEEPALIVE_OPTIONS
from shared.db import connection
from shared.models import Runner

REPO = Path(__file__).resolve().parents[3]

#: A runner stand-in: connects, says Hello and then only waits (so SIGSTOP freezes it).
CLIENT = textwrap.dedent(
    """
    import sys, threading, time
    import grpc
    from ops.rpc import runner_pb2, runner_pb2_grpc

    port, folder = sys.argv[1], sys.argv[2]
    read = lambda name: open(f"{folder}/{name}", "rb").read()
    credentials = grpc.ssl_channel_credentials(read("ca.pem"), read("key.pem"), read("cert.pem"))
    channel = grpc.secure_channel(f"127.0.0.1:{port}", credentials)
    stub = runner_pb2_grpc.RunnerGatewayStub(channel)

    def messages():
        yield runner_pb2.RunnerMessage(hello=runner_pb2.Hello())
        threading.Event().wait()

    token = read("token").decode()
    for message in stub.Connect(messages(), metadata=[("x-runner-token", token)]):
        pass
    """
)


def test_keepalive_options_detect_a_frozen_peer_within_15_s():
    options = dict(KEEPALIVE_OPTIONS)

    assert options["grpc.keepalive_time_ms"] + options["grpc.keepalive_timeout_ms"] <= 15_000
    assert options["grpc.http2.ping_timeout_ms"] <= 5000
    assert options["grpc.keepalive_permit_without_calls"] == 1
    assert options["grpc.http2.max_pings_without_data"] == 0
    assert options["grpc.http2.min_ping_interval_without_data_ms"] <= 5000


def _status(runner_id: str) -> str:
    with connection():
        return Runner.get_by_id(runner_id).status


def _wait(runner_id: str, status: str, timeout: float) -> float:
    started = time.monotonic()
    while _status(runner_id) != status:
        assert time.monotonic() - started < timeout, f"not {status} within {timeout} s"
        time.sleep(0.2)
    return time.monotonic() - started


def test_a_sigstopped_runner_goes_offline_within_15_s(gateway, new_token, tmp_path):
    enrolled = gateway.enroll(new_token())
    folder = tmp_path / "runner"
    folder.mkdir()
    (folder / "ca.pem").write_bytes(gateway.ca_pem)
    (folder / "key.pem").write_bytes(enrolled.tls_key_pem)
    (folder / "cert.pem").write_bytes(enrolled.certificate_pem)
    (folder / "token").write_text(enrolled.session_token)
    environ = {**os.environ, "PYTHONPATH": str(REPO)}
    client = subprocess.Popen(
        [sys.executable, "-c", CLIENT, str(gateway.port), str(folder)], env=environ
    )
    try:
        _wait(enrolled.runner_id, "online", 20)
        os.kill(client.pid, signal.SIGSTOP)

        took = _wait(enrolled.runner_id, "offline", 20)

        assert took <= 15
    finally:
        os.kill(client.pid, signal.SIGCONT)
        client.kill()
        client.wait(10)
