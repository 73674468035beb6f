"""`aisopsflow runner token create` as an operator runs it: a real subprocess on a temp data dir."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[2]


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("AISOPSFLOW_")}
    environ.update(
        AISOPSFLOW_DATA_DIR=str(tmp_path / "data"),
        AISOPSFLOW_GATEWAY_ADVERTISE_HOST="core.example.test",
        PYTHONPATH=str(REPO),
    )
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", "runner", "token", "create", *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=tmp_path,
        timeout=60,
    )


def test_it_prints_a_token_and_the_enroll_command_and_stores_only_the_hash(tmp_path):
    result = run(tmp_path, "--label", "role=db", "--ttl-seconds", "120")

    assert result.returncode == 0, result.stderr
    token = re.search(r"^token: +(\S+)$", result.stdout, re.MULTILINE).group(1)
    command = result.stdout.strip().splitlines()[-1].strip()
    assert command.startswith("aisopsflow runner enroll --gateway core.example.test:7443")
    assert f"--token {token}" in command and command.endswith("--label role=db")
    with sqlite3.connect(tmp_path / "data" / "aisopsflow.db") as db:
        stored = db.execute(
            "SELECT token_hash, created_by FROM runner_enrollment_tokens"
        ).fetchall()
    assert stored == [(hashlib.sha256(token.encode()).hexdigest(), "cli")]


def test_a_bad_label_is_one_line_and_exit_1(tmp_path):
    result = run(tmp_path, "--label", "bad key=x")

    assert result.returncode == 1
    assert result.stderr.startswith("aisopsflow: error: labels are name=value")


def test_a_label_without_a_value_sign_or_a_long_ttl_is_usage_and_exit_2(tmp_path):
    assert run(tmp_path, "--label", "novalue").returncode == 2
    assert run(tmp_path, "--ttl-seconds", "601").returncode == 2
