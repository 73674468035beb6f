"""The `approval` step: open the gate, tell the approvers, and let the execution wait."""

from __future__ import annotations

from shared.db import write_transaction
from shared.domain.engine_rules import Outcome
from shared.domain.templating import render
from shared.engine.approvals import open_approval
from shared.keyring import load_keys
from shared.models import utcnow
from shared.notifications import deliver
from shared.redaction import mask_secrets
from worker.steps.base import StepCall


def run_approval(call: StepCall) -> Outcome:
    """Create the pending approval; notifications are best effort and listed in the output."""
    params = call.step.params
    message = render(
        params.get("message") or f"Approval needed for step {call.step.id}", call.context
    )
    # The approval page and API show the message to every role: the secrets it was
    # rendered with are masked there (the notifications carry what the author wrote).
    shown = mask_secrets(message, tuple(call.context.get("secrets", {}).values()))
    with write_transaction():
        approval = open_approval(call.run, dict(params), call.step.timeout_seconds, shown, utcnow())
    delivery = deliver(
        call.plugins,
        call.run.tenant_id,
        list(params.get("notify") or []),
        {
            "title": f"Approval needed: {call.step.id}",
            "message": message,
            "severity": "warning",
            "execution_id": call.execution_id,
            "step_id": call.step.id,
        },
        render=lambda text: render(text, call.context),
        timeout_seconds=min(call.step.timeout_seconds, 30),
        approval=approval,
        secret_key=load_keys(call.settings)[0],
    )
    output = {
        "output": {
            "approval_id": approval.id,
            "notified": delivery.as_output(),
            "required_approvals": approval.required_approvals,
        }
    }
    return Outcome("waiting_approval", output=output, input={"message": message})
