"""Runner settings from flags and environment, and the host inventory it reports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ops.runner import inventory
from ops.runner.config import (
    DEFAULT_INVENTORY_MS,
    DEFAULT_MAX_OUTPUT_BYTES,
    ConfigError,
    load_config,
)


def test_defaults_live_under_the_users_state_dir() -> None:
    config = load_config(environ={"XDG_STATE_HOME": "/var/lib/someone"})

    assert config.state_dir == Path("/var/lib/someone/aisopsflow/runner")
    assert config.max_output_bytes == DEFAULT_MAX_OUTPUT_BYTES == 1024 * 1024
    assert config.heartbeat_ms == 10_000 and config.inventory_ms == DEFAULT_INVENTORY_MS == 600_000
    assert config.renewal_hook is None


def test_without_xdg_the_state_dir_is_in_home() -> None:
    assert load_config(environ={}).state_dir == Path.home() / ".local/state/aisopsflow/runner"


def test_flags_win_over_the_environment() -> None:
    environ = {
        "AISOPSFLOW_RUNNER_STATE_DIR": "/from/env",
        "AISOPSFLOW_RUNNER_RENEWAL_HOOK": "env-hook",
        "AISOPSFLOW_RUNNER_MAX_OUTPUT_BYTES": "4096",
        "AISOPSFLOW_RUNNER_HEARTBEAT_SECONDS": "2",
    }

    assert load_config(environ=environ).state_dir == Path("/from/env")
    config = load_config(state_dir="/from/flag", renewal_hook="flag-hook", environ=environ)
    assert config.state_dir == Path("/from/flag") and config.renewal_hook == "flag-hook"
    assert config.max_output_bytes == 4096 and config.heartbeat_ms == 2000


@pytest.mark.parametrize("value", ["lots", "0", "-5"])
def test_a_bad_number_names_the_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="AISOPSFLOW_RUNNER_MAX_OUTPUT_BYTES"):
        load_config(environ={"AISOPSFLOW_RUNNER_MAX_OUTPUT_BYTES": value})


def test_memory_comes_from_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       2048 kB\nMemFree: 1 kB\n")

    assert inventory.memory_bytes(meminfo) == 2048 * 1024


def test_the_inventory_describes_this_host() -> None:
    found = inventory.collect({"role": "db"})

    assert found.hostname and found.os and found.kernel == os.uname().release
    assert found.arch == os.uname().machine and found.cpus == os.cpu_count()
    assert found.memory_bytes > 0
    assert found.runner_version == inventory.RUNNER_VERSION
    assert dict(found.labels) == {"role": "db"}
    assert all(not ip.startswith("127.") for ip in found.ips)
