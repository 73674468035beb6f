"""The runner agent as a real process (`python -m ops.runner.cli start`, what `aisopsflow runner start` runs): SIGKILL mid-job, restart, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from shared.domain import job_signing
from tests.ops.runner.fake_gateway import FakeGateway, start_servers, stop_servers, wait_for
from tests.ops.runner.fakes import FakeCore, enrolled_state

REPO = Path(__file__).resolve().parents[3]


async def start_runner(state_dir: Path, log: Path) -> asyncio.subprocess.Process:
    environ = dict(os.environ, AISOPSFLOW_RUNNER_HEARTBEAT_SECONDS="1")
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ops.runner.cli",
        "start",
        "--state-dir",
        str(state_dir),
        cwd=REPO,
        env=environ,
        stdout=log.open("ab"),
        stderr=asyncio.subprocess.STDOUT,
    )


def test_a_killed_runner_reports_its_job_lost_once_and_never_reruns_it(
    core: FakeCore, tmp_path: Path
) -> None:
    lines = tmp_path / "appended.txt"
    log = tmp_path / "runner.log"

    async def main() -> None:
        gateway = FakeGateway(core)
        gateway.auto_ack = False
        server, port, _ = await start_servers(gateway)
        state = enrolled_state(core, tmp_path / "state", gateway=f"127.0.0.1:{port}")
        runner = await start_runner(state.directory, log)
        try:
            await wait_for(lambda: gateway.streams and gateway.streams[0].received)
            job_id, payload, signature = core.signed_job(
                argv=[
                    "sh",
                    "-c",
                    f"for i in $(seq 1 400); do echo line-$i; echo x >> {lines}; sleep 0.02; done",
                ],
            )
            gateway.send_job(job_id, payload, signature)
            await wait_for(lambda: len(gateway.received("log_chunk")) >= 5)

            runner.kill()
            await runner.wait()
            gateway.auto_ack = True
            runner = await start_runner(state.directory, log)
            result = await wait_for(lambda: gateway.result(job_id), timeout_s=20)

            appended = lines.read_text().count("\n")
            await asyncio.sleep(1.0)
            assert lines.read_text().count("\n") == appended < 400, "the job ran on or again"
            assert len(gateway.received("job_accepted")) == 1

            stored = {(j, seq): kind for j, seq, kind in gateway.items if j == job_id}
            results = [seq for (_, seq), kind in stored.items() if kind == "result"]
            assert len(results) == 1
            assert sorted(seq for _, seq in stored) == list(range(1, results[0] + 1))
            document = job_signing.verify(
                job_signing.public_key_raw(state.identity_key()),
                result["payload"],
                result["signature"],
            )
            assert document["status"] == "lost" and document["last_seq"] == results[0] - 1

            # SIGTERM: a graceful stop.
            runner.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(runner.wait(), 15) == 0
        finally:
            if runner.returncode is None:
                runner.kill()
                await runner.wait()
            await stop_servers(server)

    asyncio.run(main())
