"""The `notify` step: send the message to each target (directory references expanded).

A structured ``kakao:`` target counts as one target, delivered by Kakao or by its
fallback (see :mod:`shared.kakao.notify`).
"""

from __future__ import annotations

from shared.domain.engine_rules import Outcome
from shared.domain.templating import render, render_value
from shared.notifications import deliver
from worker.steps.base import StepCall, StepFailure


def run_notify(call: StepCall) -> Outcome:
    """Fails (retryably if any failure was) unless at least ``min_success`` targets got it."""
    params = call.step.params
    message = {
        "title": render(params.get("title") or "", call.context),
        "message": render(params["message"], call.context),
        "severity": params.get("severity", "info"),
        "execution_id": call.execution_id,
        "step_id": call.step.id,
    }
    delivery = deliver(
        call.plugins,
        call.run.tenant_id,
        list(params["targets"]),
        message,
        render=lambda value: render_value(value, call.context),
        timeout_seconds=call.step.timeout_seconds,
        step_run_id=call.run.id,
        known_secrets=tuple(call.context.get("secrets", {}).values()),
    )
    attempted = len(delivery.results)
    needed = params.get("min_success")
    needed = attempted if needed is None else needed
    output = {"output": delivery.as_output()}
    shown = {
        "targets": list(params["targets"]),
        "title": message["title"],
        "message": message["message"],
    }
    if delivery.delivered >= needed and attempted > 0:
        return Outcome("succeeded", output=output, input=shown)
    failures = [result for result in delivery.results if not result["ok"]]
    reason = failures[0]["error"] if failures else "no target had an address to send to"
    raise StepFailure(
        f"delivered to {delivery.delivered} of {attempted} target(s), needed {needed}: {reason}",
        reason="connection" if delivery.retryable else None,
        output=output,
        input=shown,
    )
