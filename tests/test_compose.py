"""docker-compose.yml and the Dockerfile describe a stack `aisopsflow` can actually run.

No Docker engine runs here, so each service's command is resolved against the real
`aisopsflow` click group (arguments and options validated) and run with --help.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from ops.cli import main
from ops.processes import PLUGIN_NAMES
from shared.settings import Settings

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = {name: spec for name, spec in SERVICES.items() if "build" in spec}
PLUGIN_SERVICES = {
    "slack": "plugin-slack",
    "email": "plugin-email",
    "telegram": "plugin-telegram",
    "teams": "plugin-teams",
    "kakao-mock": "plugin-kakao-provider-mock",
}


def resolve(args: list[str]) -> click.Context:
    """Parse ``aisopsflow ARGS`` down to the leaf command without running it."""
    context = main.make_context("aisopsflow", list(args))
    command: click.Command = main
    remaining = list(args)
    while isinstance(command, click.Group):
        name, found, remaining = command.resolve_command(context, remaining)
        assert found is not None, f"aisopsflow has no command {name!r}"
        command = found
        context = command.make_context(name, list(remaining), parent=context)
    return context


def test_the_spec_services_are_all_there():
    assert {"core-api", "worker", "scheduler", "redis", *PLUGIN_SERVICES.values()} <= set(SERVICES)
    assert SERVICES["redis"]["image"].startswith("redis:7")


@pytest.mark.parametrize("service", sorted(APP_SERVICES))
def test_each_command_is_a_real_aisopsflow_subcommand(service):
    command = APP_SERVICES[service]["command"]

    context = resolve(command)

    assert not isinstance(context.command, click.Group)
    help_run = subprocess.run(
        [sys.executable, "-m", "ops.cli", *command, "--help"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert help_run.returncode == 0, help_run.stderr


@pytest.mark.parametrize(("plugin", "service"), PLUGIN_SERVICES.items())
def test_each_plugin_listens_where_up_would_put_it(plugin, service):
    assert plugin in PLUGIN_NAMES
    params = resolve(SERVICES[service]["command"]).params

    assert params["name"] == plugin
    assert params["host"] == "0.0.0.0"
    assert params["port"] == Settings().plugin_base_port + PLUGIN_NAMES.index(plugin)


def test_one_service_per_bundled_plugin():
    assert sorted(PLUGIN_SERVICES) == sorted(PLUGIN_NAMES)


@pytest.mark.parametrize("service", sorted(APP_SERVICES))
def test_app_services_share_the_data_volume_and_the_compose_redis(service):
    spec = APP_SERVICES[service]
    environment = spec["environment"]

    assert environment["AISOPSFLOW_REDIS_URL"] == "redis://redis:6379/0"
    assert f"data:{environment['AISOPSFLOW_DATA_DIR']}" in spec["volumes"]
    assert environment["AISOPSFLOW_DATABASE_URL"].startswith("sqlite:////data/")


def test_the_api_listens_on_all_interfaces_and_sees_the_workflows():
    api = SERVICES["core-api"]

    assert api["environment"]["AISOPSFLOW_API_HOST"] == "0.0.0.0"
    assert any(volume.startswith("./workflows:") for volume in api["volumes"])
    assert "data" in COMPOSE["volumes"]


def test_the_dockerfile_installs_the_package_and_runs_as_a_user():
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]

    assert "FROM python:3.11-slim" in lines
    assert any(line.startswith("RUN pip install /src") for line in lines)
    assert "USER aisopsflow" in lines
    assert 'ENTRYPOINT ["aisopsflow"]' in lines


@pytest.mark.parametrize(
    "command",
    [["nope"], ["plugin", "pager"], ["plugin", "slack", "--port", "http"], ["db"], ["api", "-x"]],
)
def test_the_check_catches_a_wrong_command(command):
    with pytest.raises(click.UsageError):
        resolve(command)
