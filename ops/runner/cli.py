"""``aisopsflow runner``: enroll this host with Core, then run the agent.

A plain click group so Core's own subcommands (``runner token create``) can be
added to it from ``ops/cli.py``. The agent's modules are imported inside the
commands: ``aisopsflow --help`` should not load gRPC.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from dataclasses import replace

import click


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"aisopsflow: error: {message}", err=True)
    sys.exit(code)


def _labels(pairs: tuple[str, ...]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="--label")
        labels[key.strip()] = value.strip()
    return labels


@click.group(name="runner")
def runner_group() -> None:
    """Runner agent: enroll this host with Core and run its jobs."""


@runner_group.command("enroll")
@click.option("--gateway", required=True, help="HOST:PORT of Core's enrollment server.")
@click.option("--token", required=True, help="Single-use enrollment token from an admin.")
@click.option("--ca-sha256", required=True, help="SHA-256 of Core's CA certificate (hex).")
@click.option("--label", "labels", multiple=True, help="key=value label; repeatable.")
@click.option("--state-dir", default=None, help="State directory (AISOPSFLOW_RUNNER_STATE_DIR).")
@click.option("--renewal-hook", default=None, help="Command printing a fresh enrollment token.")
def enroll_command(
    gateway: str,
    token: str,
    ca_sha256: str,
    labels: tuple[str, ...],
    state_dir: str | None,
    renewal_hook: str | None,
) -> None:
    """Enroll this host (pinning Core's CA) and print the runner id."""
    from ops.runner.config import ConfigError, load_config
    from ops.runner.enroll import EnrollError, enroll
    from ops.runner.state import HOOK_FILE, RunnerState

    try:
        config = load_config(state_dir=state_dir, renewal_hook=renewal_hook)
        state = RunnerState(config.state_dir)
        runner_id = enroll(state, gateway, token, ca_sha256, _labels(labels))
    except (ConfigError, EnrollError) as error:
        _fail(str(error))
    if renewal_hook:
        # Kept with the enrollment, so `runner start` finds it without the flag.
        state.write(HOOK_FILE, renewal_hook.encode())
    click.echo(runner_id)


@runner_group.command("start")
@click.option("--state-dir", default=None, help="State directory (AISOPSFLOW_RUNNER_STATE_DIR).")
@click.option("--renewal-hook", default=None, help="Command printing a fresh enrollment token.")
def start_command(state_dir: str | None, renewal_hook: str | None) -> None:
    """Connect to Core and run jobs until SIGTERM."""
    from ops.runner.agent import Agent, FatalError
    from ops.runner.config import ConfigError, load_config
    from ops.runner.state import HOOK_FILE, NotEnrolled, RunnerState, StateLocked

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_config(state_dir=state_dir, renewal_hook=renewal_hook)
        state = RunnerState(config.state_dir)
        if not config.renewal_hook and (config.state_dir / HOOK_FILE).exists():
            config = replace(config, renewal_hook=state.read(HOOK_FILE).decode())
        if not state.is_enrolled():
            raise NotEnrolled(
                f"{config.state_dir} holds no enrollment: run `aisopsflow runner enroll` first"
            )
        state.lock()
    except (ConfigError, NotEnrolled, StateLocked) as error:
        _fail(str(error))

    async def main() -> None:
        agent = Agent(config, state)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, agent.stop)
        await agent.run()

    try:
        asyncio.run(main())
    except (FatalError, NotEnrolled) as error:
        _fail(str(error))


if __name__ == "__main__":
    # `python -m ops.runner.cli start`: the agent without Core's `aisopsflow` command around it.
    runner_group()
