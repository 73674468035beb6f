"""The `condition` step: evaluate an expression; false skips the rest (or fails, with on_false: fail)."""

from __future__ import annotations

from shared.domain.engine_rules import Outcome
from shared.domain.templating import evaluate
from worker.steps.base import StepCall, StepFailure


def run_condition(call: StepCall) -> Outcome:
    """True -> succeeded; false -> the execution ends here (succeeded, or failed with on_false: fail)."""
    expression = call.step.params["expr"]
    result = bool(evaluate(expression, call.context))
    output = {"output": result}
    if result:
        return Outcome("succeeded", output=output, input={"expr": expression})
    if call.step.params.get("on_false", "skip") == "fail":
        raise StepFailure(
            f"condition {expression!r} is false", output=output, input={"expr": expression}
        )
    return Outcome("succeeded", output=output, input={"expr": expression}, stop_after=True)
