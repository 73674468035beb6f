"""When `up` restarts a child that died, and when a crash loop means giving up (no I/O here).

The clock is an argument: every time is in milliseconds on a monotonic clock the
caller reads, so tests walk through crash sequences without sleeping.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass

from shared.domain.backoff import backoff_ms

#: Pause before restarting a child after its first crash, in milliseconds.
DEFAULT_FIRST_DELAY_MS = 500
#: Longest pause before a restart, in milliseconds (the pause doubles up to it).
DEFAULT_MAX_DELAY_MS = 30_000
#: A child that ran this long before it died starts its backoff afresh, in milliseconds.
DEFAULT_STABLE_AFTER_MS = 30_000
#: This many crashes of one child within the window stop the stack.
DEFAULT_CRASH_LIMIT = 5
#: The window in which crashes are counted, in milliseconds.
DEFAULT_CRASH_WINDOW_MS = 60_000


@dataclass(frozen=True)
class RestartPolicy:
    """Exponential backoff between restarts, and the crash count that ends them."""

    first_delay_ms: int = DEFAULT_FIRST_DELAY_MS
    max_delay_ms: int = DEFAULT_MAX_DELAY_MS
    stable_after_ms: int = DEFAULT_STABLE_AFTER_MS
    crash_limit: int = DEFAULT_CRASH_LIMIT
    crash_window_ms: int = DEFAULT_CRASH_WINDOW_MS


@dataclass(frozen=True)
class Crash:
    """One exit of a child: when (ms) and its exit code (negative: the signal that killed it)."""

    at_ms: int
    exit_code: int | None


@dataclass(frozen=True)
class CrashHistory:
    """A child's crashes within the window, oldest first, and its run of quick crashes."""

    crashes: tuple[Crash, ...] = ()
    #: Crashes in a row, each after less than ``stable_after_ms`` of running.
    streak: int = 0


@dataclass(frozen=True)
class Verdict:
    """What to do after a crash: restart after ``restart_in_ms``, or give up (None)."""

    history: CrashHistory
    restart_in_ms: int | None

    @property
    def give_up(self) -> bool:
        """True when the child crashed too often to be restarted again."""
        return self.restart_in_ms is None


def after_crash(
    history: CrashHistory,
    *,
    at_ms: int,
    up_for_ms: int,
    exit_code: int | None,
    policy: RestartPolicy,
) -> Verdict:
    """Decide about a child that exited at ``at_ms`` after running for ``up_for_ms``.

    The pause doubles with each quick crash in a row (``first_delay_ms``, twice that,
    ... up to ``max_delay_ms``) and starts over once the child had run for
    ``stable_after_ms``. The ``crash_limit``-th crash within ``crash_window_ms`` gives up.
    """
    recent = tuple(
        crash for crash in history.crashes if at_ms - crash.at_ms < policy.crash_window_ms
    )
    crashes = (*recent, Crash(at_ms, exit_code))
    streak = 1 if up_for_ms >= policy.stable_after_ms else history.streak + 1
    updated = CrashHistory(crashes, streak)
    if len(crashes) >= policy.crash_limit:
        return Verdict(updated, None)
    delay = backoff_ms(
        streak, base_ms=policy.first_delay_ms, max_ms=policy.max_delay_ms, jitter=False
    )
    return Verdict(updated, delay)


def describe_exit(exit_code: int | None) -> str:
    """How a process ended, in words: ``exited with code 1`` or ``killed by SIGKILL``."""
    if exit_code is None:
        return "still running"
    if exit_code < 0:
        try:
            return f"killed by {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"killed by signal {-exit_code}"
    return f"exited with code {exit_code}"


def crash_loop_report(
    name: str, history: CrashHistory, last_lines: Sequence[str], policy: RestartPolicy
) -> list[str]:
    """The lines `up` prints when it gives up on ``name``: why, how it ended, what it said."""
    endings = ", ".join(describe_exit(crash.exit_code) for crash in history.crashes)
    lines = [
        f"{name} crashed {len(history.crashes)} times within {policy.crash_window_ms / 1000:g} s "
        f"({endings}); not restarting it, stopping everything",
    ]
    if last_lines:
        lines.append(f"last {len(last_lines)} lines of {name}:")
        lines.extend(f"  {line}" for line in last_lines)
    else:
        lines.append(f"{name} printed nothing")
    return lines
