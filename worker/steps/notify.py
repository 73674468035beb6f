"""The `notify` step: send the message to each direct target through its channel plugin."""

from __future__ import annotations

from typing import Any

from shared.domain.engine_rules import Outcome
from shared.domain.targets import parse_target
from shared.domain.templating import render
from shared.errors import ChannelError, ValidationError
from worker.steps.base import StepCall, StepFailure


def deliver(
    call: StepCall,
    targets: list[Any],
    message: str,
    title: str,
    severity: str,
    extra: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Send to every target; one result per target (ok, message_id or error, retryable)."""
    results = []
    for item in targets:
        name = item if isinstance(item, str) else "kakao"
        try:
            target = parse_target(render(item, call.context)) if isinstance(item, str) else None
            if target is None:
                raise ChannelError("kakao targets arrive with the Kakao issue; not sent")
            answer = call.plugins.send(
                target.plugin,
                {
                    "target": target.address,
                    "message": message,
                    "title": title,
                    "severity": severity,
                    "execution_id": call.execution_id,
                    "step_id": call.step.id,
                    **(extra or {}),
                },
                timeout_seconds=call.step.timeout_seconds,
            )
            results.append({"target": name, "ok": True, "message_id": answer.get("message_id")})
        except (ChannelError, ValidationError) as error:
            results.append(
                {
                    "target": name,
                    "ok": False,
                    "error": error.message,
                    "retryable": getattr(error, "retryable", False),
                }
            )
    return results


def run_notify(call: StepCall) -> Outcome:
    """Fails (retryably if any failure was) unless at least ``min_success`` targets got it."""
    params = call.step.params
    message = render(params["message"], call.context)
    title = render(params.get("title") or "", call.context)
    severity = params.get("severity", "info")
    targets = list(params["targets"])
    results = deliver(call, targets, message, title, severity)
    delivered = sum(1 for result in results if result["ok"])
    needed = params.get("min_success")
    needed = len(targets) if needed is None else needed
    output = {"output": {"results": results, "delivered": delivered}}
    shown = {"targets": targets, "title": title, "message": message}
    if delivered >= needed:
        return Outcome("succeeded", output=output, input=shown)
    failures = [result for result in results if not result["ok"]]
    retryable = any(result.get("retryable") for result in failures)
    raise StepFailure(
        f"delivered to {delivered} of {len(targets)} target(s), needed {needed}: {failures[0]['error']}",
        reason="connection" if retryable else None,
        output=output,
        input=shown,
    )
