"""The `runner_stack` fixture: API, worker, scheduler, gateway and runner agents as real processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.runner_stack import RunnerStack, stack_settings


@pytest.fixture
def runner_stack(tmp_path: Path, redis_url: str) -> Iterator[Callable[..., RunnerStack]]:
    """Start a stack: ``start(tenants=(), **settings)`` (settings as lower-case names without
    the AISOPSFLOW_ prefix, e.g. ``runner_cert_ttl_seconds="60"``); every process is stopped
    after the test, agents included."""
    stacks: list[RunnerStack] = []

    def start(*, tenants: tuple[str, ...] = (), **overrides: str) -> RunnerStack:
        root = tmp_path / f"stack-{len(stacks) + 1}"
        root.mkdir()
        if tenants:
            overrides.setdefault("mode", "saas")
        stack = RunnerStack(stack_settings(root / "data", redis_url, **overrides), root)
        stacks.append(stack)
        return stack.start(tenants=tenants)

    yield start
    for stack in stacks:
        stack.stop()


@pytest.fixture
def stack(runner_stack: Callable[..., RunnerStack]) -> RunnerStack:
    """A stack with default settings (onprem, one tenant)."""
    return runner_stack()
