"""The agent against a loopback gateway: Hello, jobs, acks, replay, rotation, cancel, refusals."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from ops.rpc import runner_pb2
from ops.runner.agent import Agent
from ops.runner.config import RunnerConfig
from ops.runner.outbox import Outbox
from ops.runner.state import RunnerState
from shared import pki
from shared.domain import job_signing
from tests.ops.runner.fake_gateway import FakeGateway, start_servers, stop_servers, wait_for
from tests.ops.runner.fakes import RUNNER, FakeCore, enrolled_state

Body = Callable[[FakeGateway, Agent, RunnerState], Awaitable[None]]


def with_gateway(
    core: FakeCore,
    tmp_path: Path,
    body: Body,
    *,
    lifetime_s: float = 3600,
    renewal_hook: str | None = None,
    prepare: Callable[[FakeGateway], None] | None = None,
) -> None:
    """Run ``body`` with a started agent connected (or connecting) to a fresh fake gateway."""

    async def main() -> None:
        gateway = FakeGateway(core)
        if prepare is not None:
            prepare(gateway)
        server, port, enroll_port = await start_servers(gateway)
        state = enrolled_state(
            core,
            tmp_path / "state",
            gateway=f"127.0.0.1:{port}",
            enroll=f"127.0.0.1:{enroll_port}",
            lifetime_s=lifetime_s,
        )
        config = RunnerConfig(
            state_dir=state.directory,
            heartbeat_ms=200,
            kill_grace_ms=500,
            reconnect_max_ms=500,
            renewal_hook=renewal_hook,
        )
        agent = Agent(config, state)
        task = asyncio.ensure_future(agent.run())
        try:
            await body(gateway, agent, state)
        finally:
            agent.stop()
            await asyncio.wait_for(task, 20)
            await stop_servers(server)

    asyncio.run(main())


def runner_verifies(state: RunnerState, result: dict[str, Any]) -> dict[str, Any]:
    public = job_signing.public_key_raw(state.identity_key())
    return job_signing.verify(public, result["payload"], result["signature"])


def test_hello_first_then_a_job_streams_chunks_and_a_signed_result(
    core: FakeCore, tmp_path: Path
) -> None:
    async def body(gateway: FakeGateway, agent: Agent, state: RunnerState) -> None:
        await wait_for(lambda: gateway.streams and gateway.streams[0].received)
        stream = gateway.streams[0]
        first = stream.received[0]
        assert first.WhichOneof("body") == "hello"
        assert first.hello.inventory.labels == {"role": "db"}
        assert first.hello.inventory.hostname and first.hello.inventory.cpus > 0
        assert stream.token == "session-token-1"
        assert stream.fingerprint == pki.fingerprint(state.client_certificate()[0])

        job_id, payload, signature = core.signed_job(
            argv=[
                "sh",
                "-c",
                "echo out-1; sleep 0.2; echo err-1 >&2; sleep 0.2; echo out-2; exit 3",
            ]
        )
        gateway.send_job(job_id, payload, signature)
        result = await wait_for(lambda: gateway.result(job_id))

        assert [a.job_id for a in gateway.received("job_accepted")] == [job_id]
        chunks = gateway.received("log_chunk")
        assert [(c.seq, c.stream, c.data) for c in chunks] == [
            (1, "stdout", b"out-1\n"),
            (2, "stderr", b"err-1\n"),
            (3, "stdout", b"out-2\n"),
        ]
        assert result["seq"] == 4
        document = runner_verifies(state, result)
        assert document["status"] == "failed" and document["exit_code"] == 3
        assert document["last_seq"] == 3 and document["runner_id"] == RUNNER
        assert document["stdout_bytes"] == 12 and document["stderr_bytes"] == 6
        # Every item was acknowledged, so nothing waits in the outbox.
        await wait_for(lambda: not agent.outbox.unacked())
        await wait_for(lambda: gateway.received("heartbeat"))

    with_gateway(core, tmp_path, body)


def test_refused_jobs_get_a_signed_refusal_and_a_redelivery_does_not_run_again(
    core: FakeCore, tmp_path: Path
) -> None:
    marker = tmp_path / "ran.txt"

    async def body(gateway: FakeGateway, agent: Agent, state: RunnerState) -> None:
        await wait_for(lambda: gateway.streams)
        job_id, payload, signature = core.signed_job(argv=["sh", "-c", f"echo ran >> {marker}"])
        gateway.send_job(job_id, payload, signature)
        await wait_for(lambda: gateway.result(job_id))

        # Redelivered (a gateway retrying after a reconnect): acknowledged, not run.
        gateway.send_job(job_id, payload, signature)
        await wait_for(lambda: [i for i in gateway.items if i == (job_id, 1, "result")][1:])
        assert marker.read_text() == "ran\n"

        # The same nonce under a new job id, a forged signature, another runner's job.
        nonce = job_signing.verify(job_signing.public_key_raw(core.job_key), payload, signature)[
            "nonce"
        ]
        replay_id, replay_payload, replay_sig = core.signed_job(
            nonce=nonce, argv=["sh", "-c", f"echo ran >> {marker}"]
        )
        forged_id, forged_payload, _ = core.signed_job()
        other_id, other_payload, other_sig = core.signed_job(runner_id="rn_other")
        gateway.send_job(replay_id, replay_payload, replay_sig)
        gateway.send_job(forged_id, forged_payload, b"x" * 64)
        gateway.send_job(other_id, other_payload, other_sig)

        reasons = {}
        for refused in (replay_id, forged_id, other_id):
            document = runner_verifies(state, await wait_for(lambda j=refused: gateway.result(j)))
            assert document["status"] == "refused" and document["last_seq"] == 0
            reasons[refused] = document["error"]
        assert reasons[replay_id] == f"replayed nonce (first seen with job {job_id})"
        assert reasons[forged_id] == "bad signature"
        assert reasons[other_id] == "meant for runner rn_other"
        assert marker.read_text() == "ran\n"

    with_gateway(core, tmp_path, body)


def test_unacknowledged_items_are_replayed_in_order_after_a_reconnect(
    core: FakeCore, tmp_path: Path
) -> None:
    async def body(gateway: FakeGateway, agent: Agent, state: RunnerState) -> None:
        gateway.auto_ack = False
        await wait_for(lambda: gateway.streams)
        job_id, payload, signature = core.signed_job(
            argv=["sh", "-c", "for i in 1 2 3; do echo line-$i; sleep 0.1; done"]
        )
        gateway.send_job(job_id, payload, signature)
        await wait_for(lambda: gateway.result(job_id))
        first_pass = [seq for _, seq, _ in gateway.items]
        assert first_pass == list(range(1, len(first_pass) + 1)) and len(first_pass) >= 2

        # The stream breaks before Core acknowledged anything; the next one acks all.
        gateway.auto_ack = True
        gateway.streams[0].abort_with.set_result((grpc.StatusCode.UNAVAILABLE, "gateway restart"))
        await wait_for(lambda: len(gateway.streams) == 2)
        await wait_for(lambda: not agent.outbox.unacked(), timeout_s=10)

        second = gateway.streams[1].received
        assert second[0].WhichOneof("body") == "hello"
        replayed = [
            (m.log_chunk.seq if m.HasField("log_chunk") else m.job_result.seq)
            for m in second
            if m.WhichOneof("body") in ("log_chunk", "job_result")
        ]
        assert replayed == first_pass

    with_gateway(core, tmp_path, body)


def test_token_rotation_is_stored_acknowledged_and_used_on_the_next_stream(
    core: FakeCore, tmp_path: Path
) -> None:
    async def body(gateway: FakeGateway, agent: Agent, state: RunnerState) -> None:
        await wait_for(lambda: gateway.streams)
        gateway.send(
            runner_pb2.CoreMessage(token_rotation=runner_pb2.TokenRotation(token="session-token-2"))
        )
        await wait_for(lambda: [a for a in gateway.received("ack") if a.kind == "token"])
        assert state.session_token() == "session-token-2"

        gateway.streams[0].abort_with.set_result((grpc.StatusCode.UNAVAILABLE, "bye"))
        await wait_for(lambda: len(gateway.streams) == 2)
        assert gateway.streams[1].token == "session-token-2"

    with_gateway(core, tmp_path, body)


def test_cancel_kills_the_job_and_reports_it_failed(core: FakeCore, tmp_path: Path) -> None:
    async def body(gateway: FakeGateway, agent: Agent, state: RunnerState) -> None:
        await wait_for(lambda: gateway.streams)
        job_id, payload, signature = core.signed_job(argv=["sh", "-c", "echo go; sleep 300"])
        gateway.send_job(job_id, payload, signature)
        await wait_for(lambda: gateway.received("log_chunk"))
        gateway.send(
            runner_pb2.CoreMessage(cancel=runner_pb2.Cancel(job_id=job_id, reason="denied"))
        )
        document = runner_verifies(state, await wait_for(lambda: gateway.result(job_id)))
        assert document["status"] == "failed" and document["error"] == "cancelled: denied"

    with_gateway(core, tmp_path, body)


def test_a_refused_runner_logs_the_gateways_reason_and_keeps_trying(
    core: FakeCore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aisopsflow.runner")

    async def body(gateway: FakeGateway, agent: Agent, state: RunnerState) -> None:
        await wait_for(lambda: len(gateway.streams) >= 2)
        assert "the gateway refused this runner: runner rn_one is on the denylist: test" in (
            caplog.text
        )
        gateway.refuse = None
        await wait_for(lambda: gateway.streams[-1].received)

    def prepare(gateway: FakeGateway) -> None:
        gateway.refuse = "runner rn_one is on the denylist: test"

    with_gateway(core, tmp_path, body, prepare=prepare)


def test_renewal_at_two_thirds_opens_a_new_stream_before_closing_the_old(
    core: FakeCore, tmp_path: Path
) -> None:
    async def body(gateway: FakeGateway, agent: Agent, state: RunnerState) -> None:
        await wait_for(lambda: gateway.streams)
        first_fingerprint = gateway.streams[0].fingerprint
        # 6 s lifetime: renewal at about 4 s.
        await wait_for(lambda: len(gateway.streams) == 2, timeout_s=10)
        assert gateway.renewals == 1
        new = gateway.streams[1]
        assert new.fingerprint != first_fingerprint
        assert new.fingerprint == pki.fingerprint(state.client_certificate()[0])
        await wait_for(lambda: gateway.streams[0].ended.is_set())
        assert not new.ended.is_set()
        # The renewed certificate lasts an hour, so no second renewal comes soon.
        job_id, payload, signature = core.signed_job(argv=["echo", "after renewal"])
        gateway.send_job(job_id, payload, signature)
        document = runner_verifies(state, await wait_for(lambda: gateway.result(job_id)))
        assert document["status"] == "succeeded"

    with_gateway(core, tmp_path, body, lifetime_s=6)


def test_an_expired_certificate_is_replaced_through_the_hook_under_the_same_id(
    core: FakeCore, tmp_path: Path
) -> None:
    async def body(gateway: FakeGateway, agent: Agent, state: RunnerState) -> None:
        await wait_for(lambda: gateway.streams and gateway.streams[0].received)
        (request,) = gateway.enroll_requests
        assert request.token == "fresh-token-from-vault"
        assert request.runner_id == RUNNER and request.proof
        assert state.session_token() == "session-token-enrolled"
        assert state.certificate_not_after() > 0
        assert gateway.streams[0].fingerprint == pki.fingerprint(state.client_certificate()[0])

    with_gateway(
        core,
        tmp_path,
        body,
        lifetime_s=-60,
        renewal_hook="echo fresh-token-from-vault; echo ignored",
    )


def test_stop_reports_a_running_job_lost(core: FakeCore, tmp_path: Path) -> None:
    box: dict[str, Any] = {}

    async def body(gateway: FakeGateway, agent: Agent, state: RunnerState) -> None:
        await wait_for(lambda: gateway.streams)
        job_id, payload, signature = core.signed_job(argv=["sh", "-c", "echo go; sleep 300"])
        gateway.send_job(job_id, payload, signature)
        await wait_for(lambda: gateway.received("log_chunk"))
        box.update(gateway=gateway, job_id=job_id, state=state)

    with_gateway(core, tmp_path, body)

    result = box["gateway"].result(box["job_id"])
    document = runner_verifies(box["state"], result)
    assert document["status"] == "lost"
    outbox = Outbox(box["state"].outbox_path)
    assert outbox.unfinished() == []


def test_a_denied_runner_stops_its_running_job_and_reports_it_once_allowed(
    core: FakeCore, tmp_path: Path
) -> None:
    async def body(gateway: FakeGateway, agent: Agent, state: RunnerState) -> None:
        await wait_for(lambda: gateway.streams)
        job_id, payload, signature = core.signed_job(argv=["sh", "-c", "echo go; sleep 300"])
        gateway.send_job(job_id, payload, signature)
        await wait_for(lambda: gateway.received("log_chunk"))

        reason = "runner rn_one is on the denylist: compromised"
        gateway.refuse = reason
        gateway.streams[0].abort_with.set_result((grpc.StatusCode.PERMISSION_DENIED, reason))
        await wait_for(lambda: not agent.runs)
        assert gateway.result(job_id) is None
        await wait_for(lambda: len(gateway.streams) >= 3)  # reconnects are refused

        gateway.refuse = None
        document = runner_verifies(state, await wait_for(lambda: gateway.result(job_id)))
        assert document["status"] == "failed"
        assert document["error"] == f"cancelled: the gateway refused this runner: {reason}"

    with_gateway(core, tmp_path, body)


def test_a_certificate_that_could_not_be_renewed_in_time_goes_through_the_hook(
    core: FakeCore, tmp_path: Path
) -> None:
    async def body(gateway: FakeGateway, agent: Agent, state: RunnerState) -> None:
        await wait_for(lambda: gateway.streams)
        first = gateway.streams[0].fingerprint
        # Renewal is refused until the 3 s certificate has expired; then the hook re-enrolls.
        await wait_for(lambda: gateway.enroll_requests, timeout_s=15)
        assert gateway.renewals >= 1
        await wait_for(lambda: gateway.streams[-1].fingerprint != first)
        assert gateway.streams[-1].fingerprint == pki.fingerprint(state.client_certificate()[0])
        assert gateway.enroll_requests[0].runner_id == RUNNER

    def prepare(gateway: FakeGateway) -> None:
        gateway.renew_refusal = "certificate expired"

    with_gateway(
        core, tmp_path, body, lifetime_s=3, renewal_hook="echo fresh-token", prepare=prepare
    )
