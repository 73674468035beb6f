"""The runner plane as real processes: API, worker, scheduler, gateway and runner agents on 127.0.0.1.

Every part is its own process on free loopback ports, with the stack's own data
dir (CA, job-signing key), SQLite file and Redis namespace, so tests never share
state. Runner agents are enrolled through the real CLI (`aisopsflow runner
enroll`) with tokens made through the real API, each in a state dir of its own,
and can be stopped, killed, frozen (SIGSTOP) and thawed (SIGCONT).

The test process binds the same database, so a test can read rows (log chunks
per job, a job's status) and write the ones a fault needs (a tampered job row),
then nudge the gateway over ``shared.runners.signals.jobs_channel`` as the
worker would. No fixtures here: ``bench/runners.py`` uses the same stack.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests

from ops.processes import child_environ
from shared.db import connection, write_transaction
from shared.domain import job_signing
from shared.models import (
    Runner,
    RunnerCertificate,
    RunnerEnrollmentToken,
    RunnerJob,
    RunnerJobLog,
    User,
    new_sortable_id,
    utcnow,
)
from shared.settings import Settings, load_settings
from tests.support.processes import REPO, STARTED, Process
from tests.support.up_stack import free_port_range

#: Longest wait for a started process to answer, in seconds.
READY_TIMEOUT_S = 60
#: What a Dramatiq worker process logs once it consumes.
WORKER_READY = "Worker process is ready for action."
#: A runner id as Core makes them (``shared.models.new_id("rn")``).
RUNNER_ID = re.compile(r"\brn_[0-9a-f]{32}\b")
#: Seconds an enrollment (one CLI process: keys, TLS, one RPC) may take.
ENROLL_TIMEOUT_S = 60


def port_answers(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(
    what: str, check: Callable[[], Any], timeout_s: float = READY_TIMEOUT_S, every_s: float = 0.1
) -> Any:
    """Poll ``check`` until it returns something true (returned); AssertionError naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(every_s)


def stack_settings(data_dir: Path, redis_url: str, **overrides: str) -> Settings:
    """Settings of a runner stack: its data dir, SQLite file, Redis namespace and free ports."""
    # One range for the three listeners, below the ephemeral range (see up_stack): three
    # separate picks could collide, as nothing listens on them yet.
    api_port = free_port_range(3)
    environ = {
        "AISOPSFLOW_DATA_DIR": str(data_dir),
        "AISOPSFLOW_ENV_FILE": "",
        "AISOPSFLOW_REDIS_URL": redis_url,
        "AISOPSFLOW_REDIS_NAMESPACE": f"r-{uuid.uuid4().hex[:12]}",
        "AISOPSFLOW_DATABASE_URL": f"sqlite:///{data_dir / 'runners.db'}",
        "AISOPSFLOW_API_PORT": str(api_port),
        "AISOPSFLOW_API_WORKERS": "1",
        "AISOPSFLOW_WORKER_PROCESSES": "1",
        "AISOPSFLOW_WORKER_THREADS": "4",
        "AISOPSFLOW_PLUGIN_BASE_PORT": "1",  # nothing listens there
        "AISOPSFLOW_GATEWAY_HOST": "127.0.0.1",
        "AISOPSFLOW_GATEWAY_ENROLL_PORT": str(api_port + 1),
        "AISOPSFLOW_GATEWAY_PORT": str(api_port + 2),
    }
    environ.update({f"AISOPSFLOW_{key.upper()}": value for key, value in overrides.items()})
    return load_settings({key: value for key, value in environ.items() if value != ""})


class Agent:
    """One runner agent: its state dir, its id once enrolled, and its process when started."""

    def __init__(self, stack: RunnerStack, name: str, state_dir: Path) -> None:
        self.stack = stack
        self.name = name
        self.state_dir = state_dir
        self.runner_id = ""
        self.log_path = stack.logs_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None
        #: Bearer token of an admin of the agent's tenant (None: the default tenant's admin).
        self.token: str | None = None
        # The session's leftover killer (tests.support.processes) reaches agents too.
        STARTED.append(self)  # type: ignore[arg-type]

    # -- lifecycle ---------------------------------------------------------------

    def start(self, *extra_args: str, **env: str) -> Agent:
        """`aisopsflow runner start --state-dir <dir>` in its own process group."""
        assert self.process is None or self.process.poll() is not None, "already running"
        environ = self.stack.environ()
        environ.update(env)
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {time.strftime('%H:%M:%S')} ---\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ops.cli",
                    "runner",
                    "start",
                    "--state-dir",
                    str(self.state_dir),
                    *extra_args,
                ],  # fmt: skip
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=REPO,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM the agent (its own group), SIGKILL after 10 s."""
        if self.running():
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)  # type: ignore[union-attr]
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL the agent process alone, as a crash would; a job it started runs on in its own group."""
        if self.running():
            os.kill(self.pid, signal.SIGCONT)  # a frozen process still dies, but reap it fast
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait(timeout=10)  # type: ignore[union-attr]

    def freeze(self) -> None:
        """SIGSTOP the agent: its sockets stay open, it answers nothing."""
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT a frozen agent."""
        os.kill(self.pid, signal.SIGCONT)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- what it stored ---------------------------------------------------------

    def state_file(self, name: str) -> bytes:
        return (self.state_dir / name).read_bytes()

    def client_pem(self) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM) of the agent's current TLS identity."""
        from ops.runner.state import CLIENT_FILE, split_client_pem

        return split_client_pem(self.state_file(CLIENT_FILE))

    def session_token(self) -> str:
        from ops.runner.state import TOKEN_FILE

        return self.state_file(TOKEN_FILE).decode().strip()

    def ca_pem(self) -> bytes:
        from ops.runner.state import CA_FILE

        return self.state_file(CA_FILE)

    def outbox_items(self, job_id: str) -> list[tuple[int, str, bool]]:
        """(seq, kind, acked) of every item the agent's SQLite outbox still holds for ``job_id``."""
        import sqlite3

        from ops.runner.state import OUTBOX_FILE

        path = self.state_dir / OUTBOX_FILE
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = db.execute(
                "SELECT seq, kind, acked FROM outbox WHERE job_id = ? ORDER BY seq", (job_id,)
            ).fetchall()
        return [(seq, kind, bool(acked)) for seq, kind, acked in rows]

    # -- Core's view ------------------------------------------------------------

    def view(self, token: str | None = None) -> dict[str, Any]:
        """``GET /api/runners/{id}``."""
        response = self.stack.get(f"/api/runners/{self.runner_id}", token=token or self.token)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_status(self, status: str, timeout_s: float = 30.0) -> float:
        """Seconds until ``GET /api/runners/{id}`` shows ``status``; AssertionError with the agent's log otherwise."""
        started = time.monotonic()
        try:
            wait_until(
                f"runner {self.name} {status}",
                lambda: self.view()["status"] == status,
                timeout_s,
                every_s=0.2,
            )
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.view()}\n{self.stack.tails(self)}") from None
        return time.monotonic() - started

    def row(self) -> Runner:
        with connection():
            return Runner.get_by_id(self.runner_id)

    def certificates(self) -> int:
        """How many certificates Core has issued to this runner."""
        with connection():
            return (
                RunnerCertificate.select().where(RunnerCertificate.runner == self.runner_id).count()
            )


@dataclass
class Enrolled:
    """What `aisopsflow runner enroll` did: its exit code, output, and the runner id it printed."""

    returncode: int
    stdout: str
    stderr: str
    runner_id: str = ""


@dataclass
class RunnerStack:
    """API (gunicorn), worker, scheduler and gateway processes on one database, and the agents."""

    settings: Settings
    root: Path
    token: str = ""
    tenant_id: str = ""
    processes: dict[str, Process] = field(default_factory=dict)
    agents: list[Agent] = field(default_factory=list)
    tenant_tokens: dict[str, str] = field(default_factory=dict)
    tenant_ids: dict[str, str] = field(default_factory=dict)

    @property
    def logs_dir(self) -> Path:
        path = self.root / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"

    @property
    def enroll_address(self) -> str:
        return f"127.0.0.1:{self.settings.gateway_enroll_port}"

    @property
    def gateway_address(self) -> str:
        return f"127.0.0.1:{self.settings.gateway_port}"

    def environ(self) -> dict[str, str]:
        """The environment every child gets: ours with the stack's settings, the repo importable."""
        environ = child_environ(self.settings)
        environ["PYTHONPATH"] = str(REPO) + os.pathsep + environ.get("PYTHONPATH", "")
        return environ

    # -- start and stop ----------------------------------------------------------

    def start(self, *, tenants: tuple[str, ...] = ()) -> RunnerStack:
        """Prepare the database, make the admin(s), start every Core process and wait until each answers.

        ``tenants`` (saas mode): slugs of tenants to create, each with an admin whose
        token is ``tenant_tokens[slug]``; the default tenant's admin is ``token``.
        """
        from shared.bootstrap import prepare
        from shared.sessions import open_session
        from shared.tenancy import create_tenant, tenant_by_slug

        prepare(self.settings)
        with connection():
            default = tenant_by_slug(self.settings.default_tenant_slug)
            self.tenant_id = default.id
            self.token = self._admin(default.id, open_session)
            for slug in tenants:
                tenant = create_tenant(self.settings, name=slug.title(), slug=slug)
                self.tenant_ids[slug] = tenant.id
                self.tenant_tokens[slug] = self._admin(tenant.id, open_session)
        for name in ("api", "worker", "scheduler", "gateway"):
            self.processes[name] = Process(
                self.settings, [name], self.logs_dir / f"{name}.log"
            ).start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _admin(self, tenant_id: str, open_session: Callable[..., Any]) -> str:
        user = User.create(
            tenant=tenant_id,
            email=f"admin-{uuid.uuid4().hex[:8]}@example.test",
            password_hash="x",
            role="admin",
        )
        return open_session(self.settings, user)[0]

    def wait_ready(self) -> None:
        """Wait until the API answers, the worker consumes, the scheduler runs and the gateway listens."""

        def alive(name: str) -> bool:
            process = self.processes[name]
            assert process.process and process.process.poll() is None, (
                f"{name} exited:\n{process.output()[-4000:]}"
            )
            return True

        def api() -> bool:
            alive("api")
            try:
                return requests.get(f"{self.api_url}/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        def gateway() -> bool:
            alive("gateway")
            return port_answers(self.settings.gateway_enroll_port) and port_answers(
                self.settings.gateway_port
            )

        wait_until("the API answering /healthz", api)
        wait_until("the gateway listening on both ports", gateway)
        wait_until(
            "the worker ready", lambda: alive("worker") and WORKER_READY in self.output("worker")
        )
        wait_until(
            "the scheduler started",
            lambda: alive("scheduler") and "scheduler started" in self.output("scheduler"),
        )

    def restart(self, name: str) -> None:
        """Stop and start one Core process (api, worker, scheduler, gateway)."""
        self.processes[name].stop()
        self.processes[name].start()
        self.wait_ready()

    def stop(self) -> None:
        """Stop every agent (SIGTERM, so it ends its jobs; SIGKILL after 5 s), then every Core process."""
        for agent in self.agents:
            if agent.running():
                agent.thaw()
                os.kill(agent.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for agent in self.agents:
            while agent.running() and time.monotonic() < deadline:
                time.sleep(0.05)
            agent.kill()
        for process in self.processes.values():
            process.kill()

    def output(self, name: str) -> str:
        return self.processes[name].output()

    def freeze(self, name: str) -> None:
        """SIGSTOP one Core process (e.g. the gateway: nothing is stored or acknowledged meanwhile)."""
        process = self.processes[name].process
        assert process is not None
        os.kill(process.pid, signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        """SIGCONT a frozen Core process."""
        process = self.processes[name].process
        assert process is not None
        os.kill(process.pid, signal.SIGCONT)

    def tails(self, *agents: Agent, chars: int = 3000) -> str:
        """The tail of the gateway's log and the given agents' logs, for a failure message."""
        parts = [f"--- gateway ---\n{self.output('gateway')[-chars:]}"]
        parts += [f"--- {agent.name} ---\n{agent.output()[-chars:]}" for agent in agents]
        parts.append(f"--- worker ---\n{self.output('worker')[-chars:]}")
        return "\n".join(parts)

    # -- the API -----------------------------------------------------------------

    def request(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {token or self.token}", **kwargs.pop("headers", {})}
        return requests.request(
            method, f"{self.api_url}{path}", headers=headers, timeout=30, **kwargs
        )

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def put_workflow(self, workflow_id: str, yaml_text: str, *, token: str | None = None) -> None:
        response = self.request(
            "PUT",
            f"/api/workflows/{workflow_id}",
            token=token,
            data=yaml_text.encode(),
            headers={"Content-Type": "application/yaml"},
        )
        assert response.status_code == 200, response.text

    def hook(self, workflow_id: str, body: Any = None, *, tenant: str = "") -> str:
        """POST a webhook; the execution id."""
        params = {"tenant": tenant} if tenant else {}
        response = requests.post(
            f"{self.api_url}/api/hooks/{workflow_id}", json=body or {}, params=params, timeout=30
        )
        assert response.status_code == 202, response.text
        return response.json()["execution_id"]

    def execution(self, execution_id: str, *, token: str | None = None) -> dict[str, Any]:
        response = self.get(f"/api/executions/{execution_id}", token=token)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_execution(
        self,
        execution_id: str,
        statuses: tuple[str, ...] = ("succeeded", "failed", "rejected", "timed_out", "cancelled"),
        timeout_s: float = 60.0,
        *,
        token: str | None = None,
    ) -> dict[str, Any]:
        """Poll until the execution reaches one of ``statuses``; the view."""
        view: dict[str, Any] = {}

        def reached() -> bool:
            nonlocal view
            view = self.execution(execution_id, token=token)
            return view["status"] in statuses

        try:
            wait_until(f"execution {execution_id} in {statuses}", reached, timeout_s, 0.1)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{view}\n{self.tails(*self.agents)}") from None
        return view

    def create_token(
        self,
        labels: dict[str, str] | None = None,
        *,
        ttl_seconds: int = 600,
        token: str | None = None,
    ) -> dict[str, Any]:
        """``POST /api/runners/enrollment-tokens``; the answer (token, expires_at, gateway, ca_sha256, command)."""
        response = self.request(
            "POST",
            "/api/runners/enrollment-tokens",
            token=token,
            json={"labels": labels or {}, "ttl_seconds": ttl_seconds},
        )
        assert response.status_code == 201, response.text
        return response.json()

    def expire_token(self, token: str) -> None:
        """Move an enrollment token's expiry into the past."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        with connection(), write_transaction():
            changed = (
                RunnerEnrollmentToken.update(expires_at=utcnow() - timedelta(seconds=5))
                .where(RunnerEnrollmentToken.token_hash == digest)
                .execute()
            )
        assert changed == 1

    # -- agents ------------------------------------------------------------------

    def new_agent(self, name: str | None = None) -> Agent:
        """An agent with an empty state dir of its own (not enrolled, not started)."""
        name = name or f"runner-{len(self.agents) + 1}"
        agent = Agent(self, name, self.root / name)
        self.agents.append(agent)
        return agent

    def enroll_command(
        self,
        agent: Agent,
        token: str,
        *,
        ca_sha256: str,
        labels: dict[str, str] | None = None,
        gateway: str | None = None,
    ) -> Enrolled:
        """Run `aisopsflow runner enroll` for ``agent``; what it printed and its exit code."""
        command = [
            sys.executable,
            "-m",
            "ops.cli",
            "runner",
            "enroll",
            "--gateway",
            gateway or self.enroll_address,
            "--token",
            token,
            "--ca-sha256",
            ca_sha256,
            "--state-dir",
            str(agent.state_dir),
        ]  # fmt: skip
        for key, value in (labels or {}).items():
            command += ["--label", f"{key}={value}"]
        done = subprocess.run(
            command,
            env=self.environ(),
            capture_output=True,
            text=True,
            timeout=ENROLL_TIMEOUT_S,
            cwd=REPO,
        )
        found = RUNNER_ID.search(done.stdout)
        return Enrolled(done.returncode, done.stdout, done.stderr, found.group(0) if found else "")

    def enroll(
        self,
        name: str | None = None,
        *,
        labels: dict[str, str] | None = None,
        admin_labels: dict[str, str] | None = None,
        token: str | None = None,
        start: bool = True,
    ) -> Agent:
        """A new agent, enrolled with a fresh token (labels: the runner's own; admin_labels: on the token) and started."""
        agent = self.new_agent(name)
        answer = self.create_token(admin_labels, token=token)
        done = self.enroll_command(
            agent, answer["token"], ca_sha256=answer["ca_sha256"], labels=labels
        )
        assert done.returncode == 0 and done.runner_id, (
            f"enroll failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n{self.tails()}"
        )
        agent.runner_id = done.runner_id
        agent.token = token
        if start:
            agent.start()
            agent.wait_status("online")
        return agent

    # -- jobs in the database ----------------------------------------------------

    def job(self, job_id: str) -> RunnerJob:
        with connection():
            return RunnerJob.get_by_id(job_id)

    def jobs_of(self, runner_id: str) -> list[RunnerJob]:
        with connection():
            return list(
                RunnerJob.select().where(RunnerJob.runner == runner_id).order_by(RunnerJob.id)
            )

    def log_seqs(self, job_id: str) -> list[int]:
        """The seq of every stored log chunk of ``job_id``, in seq order (duplicates kept)."""
        with connection():
            return [
                row.seq
                for row in RunnerJobLog.select(RunnerJobLog.seq)
                .where(RunnerJobLog.job == job_id)
                .order_by(RunnerJobLog.seq)
            ]

    def log_rows(self, job_id: str) -> list[RunnerJobLog]:
        with connection():
            return list(
                RunnerJobLog.select().where(RunnerJobLog.job == job_id).order_by(RunnerJobLog.seq)
            )

    def signed_job(
        self,
        runner: Runner,
        *,
        argv: list[str],
        job_id: str | None = None,
        nonce: str | None = None,
        not_after: datetime | None = None,
        timeout_seconds: int = 30,
        signing_key: Any = None,
        signature: bytes | None = None,
    ) -> RunnerJob:
        """Write a queued job for ``runner`` outside any step, signed by Core's key unless told otherwise.

        The row is what ``shared.runners.jobs.create_job`` writes, so the gateway
        dispatches it like any other; a test bends one part (signature, expiry, nonce).
        """
        from shared.keyring import keyring
        from shared.runner_keys import load_job_signing_key
        from shared.runners.jobs import seal_payload

        now = utcnow()
        job_id = job_id or new_sortable_id("job")
        nonce = nonce or secrets.token_hex(16)
        not_after = not_after or now + timedelta(seconds=job_signing.MAX_JOB_VALIDITY_SECONDS)
        payload = job_signing.job_payload(
            job_id=job_id,
            tenant_id=runner.tenant_id,
            runner_id=runner.id,
            argv=argv,
            script=None,
            shell=None,
            env={},
            cwd=None,
            timeout_seconds=timeout_seconds,
            not_after=unix_seconds(not_after),
            nonce=nonce,
        )
        key = signing_key or load_job_signing_key(self.settings)
        signature = signature if signature is not None else job_signing.sign(key, payload)
        with connection(), write_transaction():
            return RunnerJob.create(
                id=job_id,
                tenant=runner.tenant_id,
                runner=runner.id,
                status="queued",
                payload=seal_payload(payload, keyring(self.settings)),
                signature=signature.hex(),
                nonce=nonce,
                not_after=not_after,
                deadline_at=now + timedelta(seconds=timeout_seconds + 60),
                timeout_seconds=timeout_seconds,
            )

    def nudge(self, runner_id: str, job_id: str) -> None:
        """Tell the gateways a job is queued, as the worker does after its commit."""
        from shared.runners import signals

        signals.publish(
            self.settings,
            signals.jobs_channel(self.settings),
            {"runner_id": runner_id, "job_id": job_id},
        )

    def wait_job(
        self, job_id: str, statuses: tuple[str, ...], timeout_s: float = 30.0
    ) -> RunnerJob:
        """Poll the job row until its status is one of ``statuses``."""
        row: RunnerJob | None = None

        def reached() -> bool:
            nonlocal row
            row = self.job(job_id)
            return row.status in statuses

        try:
            wait_until(f"job {job_id} in {statuses}", reached, timeout_s, 0.05)
        except AssertionError as error:
            status = row.status if row else "?"
            raise AssertionError(f"{error} (is {status})\n{self.tails(*self.agents)}") from None
        assert row is not None
        return row


def unix_seconds(naive_utc: datetime) -> int:
    """Unix seconds of a naive UTC datetime (as every table stores)."""
    return int(naive_utc.replace(tzinfo=timezone.utc).timestamp())


def runner_workflow(
    workflow_id: str,
    selector: dict[str, Any],
    argv: list[str],
    *,
    expect_exit: list[int] | None = None,
    retry: dict[str, Any] | None = None,
    timeout_seconds: int = 60,
) -> str:
    """A workflow (webhook trigger) of one `runner` step running ``argv`` on the runner ``selector`` names."""
    step: dict[str, Any] = {
        "id": "run",
        "type": "runner",
        "runner": selector,
        "command": argv,
        "timeout_seconds": timeout_seconds,
    }
    if expect_exit is not None:
        step["expect_exit"] = expect_exit
    if retry is not None:
        step["retry"] = retry
    # JSON is YAML: no quoting surprises in a shell snippet.
    document = {
        "id": workflow_id,
        "name": workflow_id,
        "triggers": [{"type": "webhook"}],
        "steps": [step],
    }
    return json.dumps(document, indent=2)
