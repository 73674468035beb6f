"""`aisopsflow up`: every process of the stack in the foreground, one output, stopped as one."""

from __future__ import annotations

import fcntl
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import requests

from ops.children import DEFAULT_STOP_TIMEOUT_MS, POLL_INTERVAL_MS, Child, stop_all
from ops.embedded_redis import redis_server_argv, wait_until_ready
from ops.prefix import PrefixedOutput
from ops.processes import PLUGIN_NAMES, child_environ
from shared.errors import SettingsError
from shared.settings import Settings

#: Name `up` uses for its own lines in the shared output.
SELF = "up"
#: How long to wait for the API's /healthz before printing the banner anyway, in ms.
READY_TIMEOUT_MS = 60_000
#: Timeout of one /healthz request while waiting, in milliseconds.
HEALTH_REQUEST_TIMEOUT_MS = 1000
#: Lock file in the data dir: two `up` on one data dir would share one Redis socket.
LOCK_FILE_NAME = "up.lock"
#: Signals that stop the stack; a second one skips the graceful wait.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def http_url(host: str, port: int) -> str:
    """A URL a browser on this machine can open for a server bound to host:port."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def cli_argv(*args: str) -> list[str]:
    """``aisopsflow ARGS`` run by this interpreter, independent of PATH."""
    return [sys.executable, "-m", "ops.cli", *args]


def plugin_ports(settings: Settings) -> dict[str, int]:
    """Port of each bundled plugin under `up`: plugin_base_port + its index."""
    return {name: settings.plugin_base_port + index for index, name in enumerate(PLUGIN_NAMES)}


def plan_children(settings: Settings) -> list[Child]:
    """The application processes, in start order (the embedded Redis comes before them)."""
    children = [Child(name, cli_argv(name)) for name in ("api", "worker", "scheduler")]
    for name, port in plugin_ports(settings).items():
        argv = cli_argv("plugin", name, "--host", settings.plugin_host, "--port", str(port))
        children.append(Child(f"plugin-{name}", argv))
    return children


def banner_lines(settings: Settings) -> list[str]:
    """What `up` prints once the API answers: where everything is and how to log in."""
    api = http_url(settings.api_host, settings.api_port)
    lines = ["AisOpsFlow is up.", f"  API      {api}  (API docs: {api}/api/docs)"]
    if settings.bootstrap_admin_email:
        lines.append(
            f"  Log in   as {settings.bootstrap_admin_email} with the password in "
            f"AISOPSFLOW_BOOTSTRAP_ADMIN_PASSWORD (POST {api}/api/login)"
        )
    else:
        lines.append(
            "  Log in   with a user you create first: aisopsflow user create "
            "--email you@example.com --role admin"
        )
    for name, port in plugin_ports(settings).items():
        lines.append(f"  Plugin   {name:<11}{http_url(settings.plugin_host, port)}")
    slack = http_url(settings.plugin_host, plugin_ports(settings)["slack"])
    lines.append(
        f"  Slack    interactions URL (Request URL in your Slack app): {slack}/slack/interactions"
    )
    lines.append(
        f"  Telegram webhook URL (setWebhook): {http_url(settings.plugin_host, plugin_ports(settings)['telegram'])}/telegram/webhook"
    )
    lines.append("  Stop     Ctrl-C (or SIGTERM)")
    return lines


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


class Stack:
    """The embedded Redis (if any) and the application processes, supervised together."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis: Child | None = None
        if settings.embedded_redis:
            self.redis = Child("redis", redis_server_argv(settings))
        self.apps = plan_children(settings)
        names = [SELF, *(child.name for child in self.all_children)]
        self.output = PrefixedOutput(sys.stdout, max(len(name) for name in names))
        self.signals = _StopSignals()
        self._pumps: dict[str, threading.Thread] = {}
        self._stopping = threading.Event()

    @property
    def all_children(self) -> list[Child]:
        """Every child, the embedded Redis first."""
        return ([self.redis] if self.redis else []) + self.apps

    def say(self, message: str) -> None:
        """Print one of `up`'s own lines."""
        self.output.write(SELF, message)

    def run(self) -> int:
        """Start everything, supervise until a signal or a crash, stop everything.

        Returns 0 after a requested stop, 1 when a child exited on its own.
        """
        self.signals.install()
        try:
            self._start()
            failed = self._supervise()
        finally:
            self._stop()
            self.signals.restore()
        if failed is None:
            self.say("stopped")
            return 0
        self.say(f"stopped because {failed.name} exited with code {failed.poll()}")
        return 1

    def _start(self) -> None:
        env = child_environ(self.settings)
        # No thread may run while children are forked (see Child.start), so output
        # pumps start only once every child is running.
        redis = self.redis
        if redis:
            redis.start(env)
            wait_until_ready(self.settings.embedded_redis_socket, alive=lambda: redis.running)
        for child in self.apps:
            child.start(env)
        self._start_pumps()
        threading.Thread(target=self._announce, name="announce", daemon=True).start()

    def _start_pumps(self) -> None:
        for child in self.all_children:
            if child.process and child.process.stdout and child.name not in self._pumps:
                self._pumps[child.name] = self.output.start_pump(child.name, child.process.stdout)

    def _supervise(self) -> Child | None:
        """Wait for a stop signal (None) or for a child to exit on its own (that child)."""
        while True:
            if self.signals.count:
                self.say(f"received {self.signals.last}, stopping (again to kill at once)")
                return None
            for child in self.all_children:
                if not child.running:
                    self.say(f"{child.name} exited unexpectedly (code {child.poll()}), stopping")
                    return child
            self.signals.wake.wait(POLL_INTERVAL_MS / 1000)

    def _stop(self) -> None:
        """Stop the applications, then the Redis they use; kill whatever outlives the timeout."""
        self._stopping.set()
        self._start_pumps()  # if start failed half way, still show what the children said
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

    def _announce(self) -> None:
        """Print the banner once /healthz answers 200 (or after READY_TIMEOUT_MS anyway)."""
        url = http_url(self.settings.api_host, self.settings.api_port) + "/healthz"
        deadline = time.monotonic() + READY_TIMEOUT_MS / 1000
        while not self._stopping.is_set():
            try:
                response = requests.get(url, timeout=HEALTH_REQUEST_TIMEOUT_MS / 1000)
                if response.status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() >= deadline:
                self.say(f"{url} did not answer 200 within {READY_TIMEOUT_MS} ms; see api lines")
                break
            self._stopping.wait(POLL_INTERVAL_MS * 2 / 1000)
        if not self._stopping.is_set():
            for line in banner_lines(self.settings):
                self.say(line)


def run_stack(settings: Settings) -> int:
    """Run `aisopsflow up` in the foreground after the database is prepared.

    Starts the embedded Redis when AISOPSFLOW_REDIS_URL is unset, then the API, the
    worker pool, the scheduler and every bundled plugin; returns the exit code.
    """
    with data_dir_lock(settings.data_dir):
        return Stack(settings).run()
