"""What every step executor receives and may raise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.domain.workflow_spec import Step
from shared.models import StepRun
from shared.plugin_client import PluginClient
from shared.settings import Settings


class StepFailure(Exception):
    """A step attempt failed; ``reason`` (an HTTP status, "timeout", "connection" or None) decides retry."""

    def __init__(
        self,
        message: str,
        *,
        reason: int | str | None = None,
        output: dict[str, Any] | None = None,
        input: dict[str, Any] | None = None,
    ) -> None:  # noqa: A002
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.output = output or {}
        self.input = input or {}


@dataclass(frozen=True)
class StepCall:
    """One attempt of one step: the step, its run row, the template context and the tools."""

    step: Step
    run: StepRun
    context: dict[str, Any]
    settings: Settings
    plugins: PluginClient
    execution_id: str
