"""The `approval` step: open the gate, tell the approvers, and let the execution wait."""

from __future__ import annotations

from shared.db import write_transaction
from shared.domain.engine_rules import Outcome
from shared.domain.templating import render
from shared.engine.approvals import open_approval
from shared.models import utcnow
from worker.steps.base import StepCall
from worker.steps.notify import deliver


def run_approval(call: StepCall) -> Outcome:
    """Create the pending approval; notifications are best effort and listed in the output."""
    params = call.step.params
    message = render(
        params.get("message") or f"Approval needed for step {call.step.id}", call.context
    )
    with write_transaction():
        approval = open_approval(
            call.run, dict(params), call.step.timeout_seconds, message, utcnow()
        )
    notified = deliver(
        call,
        list(params.get("notify") or []),
        message,
        f"Approval needed: {call.step.id}",
        "warning",
        {
            "approval": {
                "execution_id": call.execution_id,
                "step_id": call.step.id,
                "approval_id": approval.id,
            }
        },
    )
    output = {
        "output": {
            "approval_id": approval.id,
            "notified": notified,
            "required_approvals": approval.required_approvals,
        }
    }
    return Outcome("waiting_approval", output=output, input={"message": message})
