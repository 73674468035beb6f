"""Runner agent settings, from flags and ``AISOPSFLOW_RUNNER_*`` environment variables.

The agent runs on hosts without Core, so it reads its few settings here rather
than through ``shared.settings`` (which describes a whole Core installation).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: Bytes of stdout (and, separately, of stderr) a job may send; the rest is counted, not sent.
DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024
#: Milliseconds between heartbeats on the stream.
DEFAULT_HEARTBEAT_MS = 10_000
#: Milliseconds between inventory reports (one is also sent in every Hello).
DEFAULT_INVENTORY_MS = 600_000
#: Milliseconds between SIGTERM and SIGKILL when a job's process group is stopped.
DEFAULT_KILL_GRACE_MS = 2_000
#: Longest wait between two connection attempts, in milliseconds.
DEFAULT_RECONNECT_MAX_MS = 5_000


class ConfigError(ValueError):
    """A runner setting that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class RunnerConfig:
    """Everything the agent is configured with (times in milliseconds)."""

    state_dir: Path
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    heartbeat_ms: int = DEFAULT_HEARTBEAT_MS
    inventory_ms: int = DEFAULT_INVENTORY_MS
    kill_grace_ms: int = DEFAULT_KILL_GRACE_MS
    reconnect_max_ms: int = DEFAULT_RECONNECT_MAX_MS
    renewal_hook: str | None = None


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/aisopsflow/runner``, else ``~/.local/state/aisopsflow/runner``."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "aisopsflow" / "runner"


def _positive_int(environ: Mapping[str, str], name: str, default: int, scale: int = 1) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be greater than 0")
    return value * scale


def load_config(
    *,
    state_dir: str | Path | None = None,
    renewal_hook: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> RunnerConfig:
    """Settings from flags (when given) over the environment over defaults.

    Variables: AISOPSFLOW_RUNNER_STATE_DIR, AISOPSFLOW_RUNNER_MAX_OUTPUT_BYTES,
    AISOPSFLOW_RUNNER_RENEWAL_HOOK, AISOPSFLOW_RUNNER_HEARTBEAT_SECONDS and
    AISOPSFLOW_RUNNER_INVENTORY_SECONDS.
    """
    environ = os.environ if environ is None else environ
    directory = state_dir or environ.get("AISOPSFLOW_RUNNER_STATE_DIR") or None
    hook = renewal_hook or environ.get("AISOPSFLOW_RUNNER_RENEWAL_HOOK") or None
    return RunnerConfig(
        state_dir=Path(directory).expanduser() if directory else default_state_dir(environ),
        max_output_bytes=_positive_int(
            environ, "AISOPSFLOW_RUNNER_MAX_OUTPUT_BYTES", DEFAULT_MAX_OUTPUT_BYTES
        ),
        heartbeat_ms=_positive_int(
            environ, "AISOPSFLOW_RUNNER_HEARTBEAT_SECONDS", DEFAULT_HEARTBEAT_MS, 1000
        ),
        inventory_ms=_positive_int(
            environ, "AISOPSFLOW_RUNNER_INVENTORY_SECONDS", DEFAULT_INVENTORY_MS, 1000
        ),
        renewal_hook=hook,
    )
