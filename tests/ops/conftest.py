"""The `stack` fixture: a real `aisopsflow up`, healthy, stopped after the test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from ops.processes import PLUGIN_NAMES
from tests.support.up_stack import (
    STOPPED_WITHIN_S,
    RunningStack,
    descendants,
    free_port_range,
    start_up,
    stop_up,
    up_environ,
    wait_healthy,
)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[RunningStack]:
    """`up` on an empty data dir, no Redis configured, healthy; killed if a test leaves it."""
    # One range for all: two separate picks could overlap, as nothing listens yet.
    api_port = free_port_range(1 + len(PLUGIN_NAMES))
    plugin_base_port = api_port + 1
    started = time.monotonic()
    process = start_up(up_environ(tmp_path / "data", api_port, plugin_base_port), tmp_path)
    running = RunningStack(
        process,
        f"http://127.0.0.1:{api_port}",
        plugin_base_port,
        tmp_path / "data",
        tmp_path / "up.log",
    )
    children: list[psutil.Process] = []
    try:
        running.healthy_after_s = wait_healthy(running, started)
        children = descendants(process)
        yield running
    finally:
        children += descendants(process) if process.poll() is None else []
        stop_up(process)
        psutil.wait_procs(children, timeout=STOPPED_WITHIN_S)
