"""Fixtures of the runner agent's tests: a stand-in Core and an enrolled state dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.runner.config import RunnerConfig
from ops.runner.state import RunnerState
from shared import pki
from tests.ops.runner.fakes import FakeCore, enrolled_state


@pytest.fixture(scope="session")
def core() -> FakeCore:
    ca_pem, ca_key_pem = pki.create_ca("test runner CA")
    return FakeCore(ca_pem, ca_key_pem)


@pytest.fixture
def state(core: FakeCore, tmp_path: Path) -> RunnerState:
    return enrolled_state(core, tmp_path / "state")


@pytest.fixture
def config(state: RunnerState) -> RunnerConfig:
    return RunnerConfig(
        state_dir=state.directory, heartbeat_ms=200, kill_grace_ms=500, reconnect_max_ms=500
    )
