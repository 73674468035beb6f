"""Enrollment pins Core's CA by fingerprint and says clearly why a gateway refused it."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from ops.runner.cli import runner_group
from ops.runner.enroll import EnrollError, enroll, pin_ca
from ops.runner.state import RunnerState
from shared import pki
from shared.domain import job_signing
from tests.ops.runner.fake_gateway import FakeGateway, start_servers, stop_servers
from tests.ops.runner.fakes import RUNNER, TENANT, FakeCore, enrolled_state


def with_enroll_server(core: FakeCore, body: Callable[[FakeGateway, int], Awaitable[None]]) -> None:
    async def main() -> None:
        gateway = FakeGateway(core)
        server, _, enroll_port = await start_servers(gateway)
        try:
            await body(gateway, enroll_port)
        finally:
            await stop_servers(server)

    asyncio.run(main())


def test_enroll_pins_the_ca_and_stores_a_private_identity(core: FakeCore, tmp_path: Path) -> None:
    state = RunnerState(tmp_path / "state")

    async def body(gateway: FakeGateway, port: int) -> None:
        runner_id = await asyncio.to_thread(
            enroll, state, f"127.0.0.1:{port}", "token-1", core.ca_sha256.upper(), {"role": "db"}
        )
        assert runner_id == RUNNER
        (request,) = gateway.enroll_requests
        assert request.token == "token-1" and dict(request.labels) == {"role": "db"}
        assert request.inventory.hostname and not request.runner_id
        assert request.identity_public_key == job_signing.public_key_raw(state.identity_key())

    with_enroll_server(core, body)

    identity = state.identity()
    assert (identity.runner_id, identity.tenant_id) == (RUNNER, TENANT)
    assert identity.gateway_address.startswith("127.0.0.1:")
    assert state.ca_pem() == core.ca_pem
    assert state.session_token() == "session-token-enrolled"
    certificate, key = state.client_certificate()
    assert pki.runner_name(certificate) == pki.RunnerName(TENANT, RUNNER)
    assert pki.load_private_key(key)
    assert stat.S_IMODE(state.directory.stat().st_mode) == 0o700
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in state.directory.iterdir()}
    assert set(modes.values()) == {0o600}, modes


def test_a_wrong_ca_fingerprint_is_refused_before_the_token_is_sent(core: FakeCore) -> None:
    wrong = "ab" * 32

    async def body(gateway: FakeGateway, port: int) -> None:
        with pytest.raises(EnrollError) as raised:
            await asyncio.to_thread(pin_ca, "127.0.0.1", port, wrong)
        assert str(raised.value) == (
            f"CA fingerprint mismatch: expected {wrong}, gateway presented {core.ca_sha256}"
        )
        assert gateway.enroll_requests == []

    with_enroll_server(core, body)


@pytest.mark.parametrize("message", ["enrollment token already used", "enrollment token expired"])
def test_the_cli_shows_the_gateways_refusal_in_one_line(
    core: FakeCore, tmp_path: Path, message: str
) -> None:
    async def body(gateway: FakeGateway, port: int) -> None:
        gateway.enroll_refusal = message
        result = await asyncio.to_thread(
            CliRunner().invoke,
            runner_group,
            [
                "enroll",
                "--gateway",
                f"127.0.0.1:{port}",
                "--token",
                "t",
                "--ca-sha256",
                core.ca_sha256,
                "--state-dir",
                str(tmp_path / "state"),
            ],
        )
        assert result.exit_code == 1
        assert result.output.strip() == f"aisopsflow: error: {message}"

    with_enroll_server(core, body)


def test_the_cli_prints_the_runner_id_and_keeps_labels(core: FakeCore, tmp_path: Path) -> None:
    async def body(gateway: FakeGateway, port: int) -> None:
        result = await asyncio.to_thread(
            CliRunner().invoke,
            runner_group,
            [
                "enroll",
                "--gateway",
                f"127.0.0.1:{port}",
                "--token",
                "t",
                "--ca-sha256",
                core.ca_sha256,
                "--label",
                "role=db",
                "--label",
                "zone=eu",
                "--state-dir",
                str(tmp_path / "state"),
            ],
        )
        assert result.exit_code == 0, result.output
        assert result.output == f"{RUNNER}\n"

    with_enroll_server(core, body)
    stored = json.loads((tmp_path / "state" / "runner.json").read_text())
    assert stored["labels"] == {"role": "db", "zone": "eu"}


def test_an_unreachable_gateway_says_where(tmp_path: Path) -> None:
    with pytest.raises(EnrollError, match=r"cannot reach the gateway at 127\.0\.0\.1:1: "):
        enroll(RunnerState(tmp_path / "s"), "127.0.0.1:1", "t", "00" * 32, {})


def test_start_without_an_enrollment_fails_clearly(tmp_path: Path) -> None:
    result = CliRunner().invoke(runner_group, ["start", "--state-dir", str(tmp_path / "none")])

    assert result.exit_code == 1
    assert "holds no enrollment: run `aisopsflow runner enroll` first" in result.output


def test_a_second_agent_on_the_same_state_dir_is_refused(core: FakeCore, tmp_path: Path) -> None:
    state = enrolled_state(core, tmp_path / "state")
    descriptor = state.lock()
    try:
        result = CliRunner().invoke(runner_group, ["start", "--state-dir", str(state.directory)])
    finally:
        os.close(descriptor)

    assert result.exit_code == 1
    assert "another runner agent is using" in result.output
