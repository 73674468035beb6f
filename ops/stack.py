"""`aisopsflow up`: every process of the stack in the foreground, one output, stopped as one."""

from __future__ import annotations

import fcntl
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import requests

from ops.banner import banner_lines, http_url, plugin_ports
from ops.children import DEFAULT_STOP_TIMEOUT_MS, POLL_INTERVAL_MS, Child, stop_all
from ops.embedded_redis import redis_server_argv, wait_until_ready
from ops.ports import listens_on, port_is_free
from ops.prefix import PrefixedOutput
from ops.processes import child_environ
from ops.restarts import (
    CrashHistory,
    RestartPolicy,
    after_crash,
    crash_loop_report,
    describe_exit,
)
from shared.errors import SettingsError
from shared.settings import Settings

#: Name `up` uses for its own lines in the shared output.
SELF = "up"
#: How long the API may take to answer /healthz before `up` says it is late, in ms.
READY_TIMEOUT_MS = 60_000
#: Timeout of one /healthz request while waiting, in milliseconds.
HEALTH_REQUEST_TIMEOUT_MS = 1000
#: Lock file in the data dir: two `up` on one data dir would share one Redis socket.
LOCK_FILE_NAME = "up.lock"
#: Signals that stop the stack; a second one skips the graceful wait.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: How long to wait for a dead child's last output lines before deciding about it, in ms.
LAST_WORDS_TIMEOUT_MS = 1000


def monotonic_ms() -> int:
    """Milliseconds on a clock that never goes back."""
    return time.monotonic_ns() // 1_000_000


def cli_argv(*args: str) -> list[str]:
    """``aisopsflow ARGS`` run by this interpreter, independent of PATH."""
    return [sys.executable, "-m", "ops.cli", *args]


def plan_children(settings: Settings) -> list[Child]:
    """The application processes, in start order (the embedded Redis comes before them)."""
    names = ("api", "worker", "scheduler", "gateway")
    children = [Child(name, cli_argv(name)) for name in names]
    for name, port in plugin_ports(settings).items():
        argv = cli_argv("plugin", name, "--host", settings.plugin_host, "--port", str(port))
        children.append(Child(f"plugin-{name}", argv))
    return children


@contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the data dir, or raise SettingsError if another `up` has it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE_NAME
    # open() makes the descriptor non-inheritable, so children never hold the lock.
    with open(path, "a", encoding="ascii") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SettingsError(
                f"AISOPSFLOW_DATA_DIR={str(data_dir)!r}: another `aisopsflow up` is running "
                "on it; stop it first or use another data dir"
            ) from None
        yield


class _StopSignals:
    """Counts SIGTERM / SIGINT / SIGHUP and wakes the supervisor loop."""

    def __init__(self) -> None:
        self.count = 0
        self.last: str | None = None
        self.wake = threading.Event()
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        self.last = signal.Signals(signum).name
        self.wake.set()

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            # None: the old handler was not set from Python and cannot be put back.
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)  # type: ignore[arg-type]


def check_ports_free(settings: Settings) -> None:
    """Raise SettingsError naming the setting when a port `up` needs is already taken.

    Checked before anything starts: the server already there would answer our
    health check, and `up` would claim a stack is up that never bound its port.
    """
    wanted = [
        ("API_PORT", "the API", settings.api_host, settings.api_port),
        (
            "GATEWAY_ENROLL_PORT",
            "the runner enrollment server",
            settings.gateway_host,
            settings.gateway_enroll_port,
        ),
        ("GATEWAY_PORT", "the runner gateway", settings.gateway_host, settings.gateway_port),
    ]
    wanted += [
        ("PLUGIN_BASE_PORT", f"plugin {name}", settings.plugin_host, port)
        for name, port in plugin_ports(settings).items()
    ]
    for variable, what, host, port in wanted:
        if not port_is_free(host, port):
            raise SettingsError(
                f"AISOPSFLOW_{variable}: port {port} on {host!r}, wanted by {what}, is already "
                "in use (another `aisopsflow up`, or another program); stop that or choose "
                "another port"
            )


class Stack:
    """The embedded Redis (if any) and the application processes, supervised together.

    A child that dies is restarted after an exponential backoff while the others keep
    running; one that crashes ``policy.crash_limit`` times within the window stops
    everything, with its exit codes and last lines.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        admins: Sequence[str] = (),
        policy: RestartPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.admins = list(admins)
        self.policy = policy or RestartPolicy()
        self.redis: Child | None = None
        if settings.embedded_redis:
            self.redis = Child("redis", redis_server_argv(settings))
        self.apps = plan_children(settings)
        names = [SELF, *(child.name for child in self.all_children)]
        self.output = PrefixedOutput(sys.stdout, max(len(name) for name in names))
        self.signals = _StopSignals()
        self._environ: dict[str, str] = {}
        self._pumps: dict[str, threading.Thread] = {}
        self._started_at_ms: dict[str, int] = {}
        self._crashes: dict[str, CrashHistory] = {}
        self._restart_at_ms: dict[str, int] = {}
        self._stopping = threading.Event()

    @property
    def all_children(self) -> list[Child]:
        """Every child, the embedded Redis first."""
        return ([self.redis] if self.redis else []) + self.apps

    def say(self, message: str) -> None:
        """Print one of `up`'s own lines."""
        self.output.write(SELF, message)

    def run(self) -> int:
        """Start everything, supervise until a signal or a crash loop, stop everything.

        Returns 0 after a requested stop, 1 when a child kept crashing.
        """
        check_ports_free(self.settings)
        self.signals.install()
        try:
            self._start()
            failure = self._supervise()
        finally:
            self._stop()
            self.signals.restore()
        if failure is None:
            self.say("stopped")
            return 0
        for line in failure:
            self.say(line)
        return 1

    def _launch(self, child: Child) -> None:
        """Start ``child`` and copy its output.

        Always called from the main thread: PR_SET_PDEATHSIG fires when the *thread*
        that forked a child ends, and the main thread lives as long as `up`.
        """
        process = child.start(self._environ)
        self._started_at_ms[child.name] = monotonic_ms()
        if process.stdout:
            self._pumps[child.name] = self.output.start_pump(child.name, process.stdout)

    def _start(self) -> None:
        self._environ = child_environ(self.settings)
        redis = self.redis
        if redis:
            self._launch(redis)
            wait_until_ready(self.settings.embedded_redis_socket, alive=lambda: redis.running)
        for child in self.apps:
            self._launch(child)
        threading.Thread(target=self._announce, name="announce", daemon=True).start()

    def _supervise(self) -> list[str] | None:
        """Restart children that die until a stop signal (None) or a crash loop (its report)."""
        while True:
            if self.signals.count:
                self.say(f"received {self.signals.last}, stopping (again to kill at once)")
                return None
            for child in self.all_children:
                now = monotonic_ms()
                due = self._restart_at_ms.get(child.name)
                if due is not None:
                    if now >= due:
                        del self._restart_at_ms[child.name]
                        self._launch(child)
                        self.say(f"restarted {child.name} (pid {child.pid})")
                elif not child.running:
                    report = self._after_exit(child, now)
                    if report:
                        return report
            self.signals.wake.wait(POLL_INTERVAL_MS / 1000)

    def _after_exit(self, child: Child, now_ms: int) -> list[str] | None:
        """Clean up after a child that exited; schedule its restart, or return why not."""
        exit_code = child.poll()
        # Whatever it left behind (gunicorn or Dramatiq worker processes) must not
        # outlive it: orphans would hold its port or keep taking messages.
        child.kill_group()
        pump = self._pumps.get(child.name)
        if pump:
            pump.join(timeout=LAST_WORDS_TIMEOUT_MS / 1000)
        verdict = after_crash(
            self._crashes.get(child.name, CrashHistory()),
            at_ms=now_ms,
            up_for_ms=now_ms - self._started_at_ms.get(child.name, now_ms),
            exit_code=exit_code,
            policy=self.policy,
        )
        self._crashes[child.name] = verdict.history
        if verdict.restart_in_ms is None:
            return crash_loop_report(
                child.name, verdict.history, self.output.tail(child.name), self.policy
            )
        self.say(
            f"{child.name} {describe_exit(exit_code)}; restarting it in {verdict.restart_in_ms} ms"
        )
        self._restart_at_ms[child.name] = now_ms + verdict.restart_in_ms
        return None

    def _stop(self) -> None:
        """Stop the applications, then the Redis they use; kill whatever outlives the timeout."""
        self._stopping.set()
        impatient = self.signals.count
        for group in (self.apps, [self.redis] if self.redis else []):
            late = stop_all(
                group,
                DEFAULT_STOP_TIMEOUT_MS,
                give_up=lambda: self.signals.count > impatient,
            )
            if late:
                self.say(f"killed {', '.join(child.name for child in late)}")
        for pump in self._pumps.values():
            pump.join(timeout=POLL_INTERVAL_MS * 10 / 1000)

    def our_api_answers(self, url: str) -> bool:
        """True when /healthz answers 200 from our own API process (not another on the port)."""
        try:
            response = requests.get(url, timeout=HEALTH_REQUEST_TIMEOUT_MS / 1000)
        except requests.RequestException:
            return False
        api = next(child for child in self.apps if child.name == "api")
        pid = api.pid
        if response.status_code != 200 or pid is None or not api.running:
            return False
        # gunicorn's master (the api child itself) holds the listening socket.
        return listens_on(pid, self.settings.api_port) is not False

    def _ca_sha256(self) -> str | None:
        """The runner CA's SHA-256 for the banner (the gateway child made the CA at its start)."""
        from shared.runner_keys import load_ca

        try:
            return load_ca(self.settings).sha256
        except (SettingsError, OSError) as error:
            self.say(f"cannot read the runner CA: {error}")
            return None

    def _announce(self) -> None:
        """Print the banner once our API's /healthz answers 200; say so if that takes long."""
        url = http_url(self.settings.api_host, self.settings.api_port) + "/healthz"
        deadline = time.monotonic() + READY_TIMEOUT_MS / 1000
        while not self._stopping.is_set():
            if self.our_api_answers(url):
                for line in banner_lines(self.settings, self.admins, self._ca_sha256()):
                    self.say(line)
                return
            if deadline and time.monotonic() >= deadline:
                self.say(f"{url} did not answer 200 within {READY_TIMEOUT_MS} ms; see api lines")
                deadline = 0.0  # said once; keep waiting
            self._stopping.wait(POLL_INTERVAL_MS * 2 / 1000)


def run_stack(settings: Settings, admins: Sequence[str] = ()) -> int:
    """Run `aisopsflow up` in the foreground after the database is prepared.

    Starts the embedded Redis when AISOPSFLOW_REDIS_URL is unset, then the API, the
    worker pool, the scheduler and every bundled plugin; returns the exit code.
    ``admins`` (emails of the default tenant's admins) choose the banner's login hint.
    """
    with data_dir_lock(settings.data_dir):
        return Stack(settings, admins=admins).run()
