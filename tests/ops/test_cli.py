"""The aisopsflow command as an operator runs it: a real subprocess on a temp data dir."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]


@pytest.fixture
def run(tmp_path):
    """Run ``aisopsflow ARGS`` with a fresh data dir; returns CompletedProcess."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("AISOPSFLOW_")}
    environ.update({"AISOPSFLOW_DATA_DIR": str(tmp_path / "data"), "AISOPSFLOW_ENV_FILE": ""})
    environ.pop("AISOPSFLOW_ENV_FILE")

    def invoke(
        *args: str, stdin: str | None = None, **overrides: str
    ) -> subprocess.CompletedProcess:
        env = {
            **environ,
            **{f"AISOPSFLOW_{key.upper()}": value for key, value in overrides.items()},
        }
        return subprocess.run(
            [sys.executable, "-m", "ops.cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )

    return invoke


@pytest.mark.parametrize(
    "args",
    [
        ["no-such-command"],
        ["db", "sideways"],
        ["up", "--bogus"],
        ["user", "create", "--role", "king"],
    ],
)
def test_unknown_subcommand_or_bad_option_is_usage_and_exit_2(run, args):
    result = run(*args)

    assert result.returncode == 2
    assert "Usage:" in result.stderr


def test_bad_setting_is_one_line_naming_it(run):
    result = run("db", "upgrade", api_port="http")

    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "AISOPSFLOW_API_PORT" in result.stderr


def test_db_upgrade_is_idempotent_and_creates_the_key_file_0600(run, tmp_path):
    first = run("db", "upgrade")
    second = run("db", "upgrade")

    assert first.returncode == 0 and "applied migrations 1" in first.stdout
    assert second.returncode == 0 and "nothing to do" in second.stdout
    key_file = tmp_path / "data" / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_users_tenants_and_secrets_from_the_command_line(run, tmp_path):
    assert (
        run("tenant", "create", "--name", "Acme", "--slug", "acme").returncode == 1
    )  # onprem: one tenant

    created = run("tenant", "create", "--name", "Acme", "--slug", "acme", mode="saas")
    user = run(
        "user",
        "create",
        "--email",
        "ops@acme.test",
        "--password",
        "long-enough-1",
        "--role",
        "admin",
        "--tenant",
        "acme",
        mode="saas",
    )
    secret = run(
        "secret",
        "set",
        "PAGER_TOKEN",
        "--tenant",
        "acme",
        stdin="pager-canary-value\n",
        mode="saas",
    )

    assert created.returncode == 0, created.stderr
    assert user.returncode == 0 and "ops@acme.test" in user.stdout, user.stderr
    assert secret.returncode == 0 and "pager-canary-value" not in secret.stdout + secret.stderr
    database = (tmp_path / "data" / "aisopsflow.db").read_bytes()
    assert b"pager-canary-value" not in database


def test_secret_rotate_key_keeps_values_readable(run, tmp_path):
    run("secret", "set", "A", stdin="alpha-value")

    result = run("secret", "rotate-key")

    assert result.returncode == 0 and "re-encrypted 1" in result.stdout
    keys = (tmp_path / "data" / "secret.key").read_text().split()
    assert len(keys) == 2
    assert run("audit", "verify").returncode == 0


def test_audit_verify_passes_then_names_an_edited_row(run, tmp_path):
    run("user", "create", "--email", "a@x.test", "--password", "long-enough-1", "--role", "viewer")
    run("secret", "set", "B", stdin="beta-value")

    clean = run("audit", "verify")
    with sqlite3.connect(tmp_path / "data" / "aisopsflow.db") as connection:
        row_id = connection.execute(
            "SELECT id FROM audit_log WHERE action = 'user.create'"
        ).fetchone()[0]
        connection.execute("UPDATE audit_log SET actor = 'someone-else' WHERE id = ?", (row_id,))
    tampered = run("audit", "verify")

    assert clean.returncode == 0 and "OK" in clean.stdout
    assert tampered.returncode == 1
    assert f"row id={row_id}" in tampered.stderr


def test_workflow_validate(run, tmp_path):
    good = run("workflow", "validate", str(REPO / "examples" / "github-push-deploy.yaml"))
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text("id: x\nname: y\ntriggers: []\nsteps:\n  - id: s\n    type: teleport\n")
    bad = run("workflow", "validate", str(bad_file))

    assert good.returncode == 0
    assert bad.returncode == 1 and "steps[0].type (line 6, column 5)" in bad.stderr


def test_workflow_validate_applies_the_installation_step_limit(run, tmp_path):
    steps = "".join(f"  - id: s{n}\n    type: condition\n    expr: 'true'\n" for n in range(3))
    three_steps = tmp_path / "three.yaml"
    three_steps.write_text(
        "id: x\nname: y\ntriggers:\n  - type: webhook\n    path: x\nsteps:\n" + steps
    )

    default = run("workflow", "validate", str(three_steps))
    capped = run("workflow", "validate", str(three_steps), max_steps_per_workflow="2")

    assert default.returncode == 0, default.stderr
    assert capped.returncode == 1 and "AISOPSFLOW_MAX_STEPS_PER_WORKFLOW" in capped.stderr


def test_kakao_register_mock_is_idempotent(run):
    first = run("kakao", "register-mock", plugin_urls="kakao-mock=http://plugin-kakao:8095")
    second = run("kakao", "register-mock", plugin_urls="kakao-mock=http://plugin-kakao:8095")

    assert first.returncode == 0, first.stderr
    assert "provider mock at http://plugin-kakao:8095: registered" in first.stdout
    assert "already registered" in second.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        # Python refuses to read an integer this long; PyYAML raised its ValueError.
        (b"id: x\nname: y\nvars:\n  big: " + b"1" * 4301 + b"\n", "(line 4, column 8)"),
        (b"id: x\nname: \xff\xfe\n", "not UTF-8 (byte 12"),
    ],
    ids=["4301-digit-integer", "not-utf-8"],
)
def test_workflow_validate_reports_unreadable_files_without_a_traceback(
    run, tmp_path, content, expected
):
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_bytes(content)

    result = run("workflow", "validate", str(bad_file))

    assert result.returncode == 1 and expected in result.stderr
    assert "Traceback" not in result.stderr
