"""Approval gates: open one, decide on it (with a quorum), and time it out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import peewee

from shared import audit
from shared.db import in_write_transaction, lock_for_update, write_transaction
from shared.domain.engine_rules import Outcome
from shared.engine.outbox import Wakeup
from shared.engine.progress import _apply, lock_execution
from shared.engine.specs import spec_of_execution
from shared.errors import Conflict, Forbidden, NotFound
from shared.models import (
    Approval,
    ApprovalDecision,
    Execution,
    GroupMember,
    Recipient,
    StepRun,
    User,
    utcnow,
)
from shared.models import Group as DirectoryGroup


@dataclass(frozen=True)
class Approver:
    """Who is deciding: a logged-in user, or a person a channel plugin vouches for."""

    name: str  # audit name: the user's email, or e.g. "slack:U123"
    user: User | None = None
    channel: str = "api"
    address_field: str | None = None  # recipient field a plugin identity matches (slack_id, ...)
    address: str | None = None


def open_approval(
    run: StepRun, params: dict[str, Any], timeout_seconds: float, message: str, now: datetime
) -> Approval:
    """Create the pending approval of an approval step run (idempotent for a re-run attempt)."""
    existing = Approval.get_or_none(
        Approval.execution == run.execution_id, Approval.step_id == run.step_id
    )
    if existing is not None:
        return existing
    return Approval.create(
        tenant=run.tenant_id,
        execution=run.execution_id,
        step_id=run.step_id,
        status="pending",
        required_approvals=params.get("required_approvals", 1),
        approvers_json=json.dumps(list(params.get("approvers", []))),
        on_timeout=params.get("on_timeout", "fail"),
        message=message,
        escalation_json=json.dumps(list(params.get("escalation") or [])),
        created_at=now,
        expires_at=now + timedelta(seconds=timeout_seconds),
    )


def _recipient_ids_of(approver: Approver, tenant_id: str) -> set[str]:
    if approver.user is not None:
        condition = Recipient.email == approver.user.email
    elif approver.address_field:
        condition = getattr(Recipient, approver.address_field) == approver.address
    else:
        return set()
    return {row.id for row in Recipient.for_tenant(tenant_id, Recipient.id).where(condition)}


def may_decide(approver: Approver, approvers: list[str], tenant_id: str) -> bool:
    """True when ``approver`` is one of the step's ``approvers`` (empty: any approver/admin user).

    An email-link approver whose address is a user of the tenant counts as that user.
    """
    if approver.user is None and approver.address_field == "email":
        user = User.get_or_none(
            User.tenant == tenant_id, User.email == (approver.address or "").lower()
        )
        if user is not None:
            approver = Approver(
                approver.name,
                user=user,
                channel=approver.channel,
                address_field="email",
                address=approver.address,
            )
    if not approvers:
        return approver.user is not None and approver.user.role in ("approver", "admin")
    recipients = _recipient_ids_of(approver, tenant_id)
    for entry in approvers:
        kind, _, value = entry.partition(":")
        if approver.user is not None and kind == "role" and approver.user.role == value:
            return True
        if approver.user is not None and kind == "user" and approver.user.email == value.lower():
            return True
        if kind == "recipient" and value in recipients:
            return True
        if kind == "group" and recipients:
            members = (
                GroupMember.for_tenant(tenant_id)
                .join(DirectoryGroup)
                .where(DirectoryGroup.name == value, GroupMember.recipient.in_(list(recipients)))
            )
            if members.exists():
                return True
    return False


def decisions_of(approval: Approval) -> list[dict[str, Any]]:
    """Who decided what, when, through which channel, with which comment."""
    return [
        {
            "actor": row.actor,
            "decision": row.decision,
            "channel": row.channel,
            "comment": row.comment,
            "decided_at": row.decided_at.isoformat(),
        }
        for row in ApprovalDecision.select()
        .where(ApprovalDecision.approval == approval.id)
        .order_by(ApprovalDecision.id)
    ]


def _finish(
    execution: Execution, approval: Approval, status: str, outcome: Outcome, now: datetime
) -> list[Wakeup]:
    """Decide ``approval`` (its execution locked already) and move the execution on."""
    Approval.update(status=status, decided_at=now).where(Approval.id == approval.id).execute()
    run = lock_for_update(
        StepRun.select().where(
            StepRun.execution == approval.execution_id, StepRun.step_id == approval.step_id
        )
    ).get()
    spec = spec_of_execution(execution)
    return _apply(execution, spec, run, outcome, now)


def _locked_approval(query: peewee.Select) -> Approval | None:
    return lock_for_update(query).first()


@in_write_transaction
def resolve(
    tenant_id: str,
    execution_id: str,
    step_id: str,
    approver: Approver,
    decision: str,
    comment: str = "",
) -> tuple[Approval, list[Wakeup]]:
    """Record a decision; approve continues once the quorum is met, one reject ends it.

    Conflict names the first decision when the approval is no longer pending;
    a repeat by the same approver counts once.
    """
    now = utcnow()
    # The execution first, as every transaction locks (see lock_execution).
    execution = lock_execution(tenant_id, execution_id)
    approval = (
        _locked_approval(
            Approval.for_tenant(tenant_id).where(
                Approval.execution == execution_id, Approval.step_id == step_id
            )
        )
        if execution is not None
        else None
    )
    if approval is None:
        raise NotFound(f"no approval for step {step_id!r} of execution {execution_id!r}")
    if approval.status != "pending":
        first = decisions_of(approval)
        who = f" by {first[-1]['actor']} at {first[-1]['decided_at']}" if first else ""
        raise Conflict(f"approval of step {step_id!r} was already resolved: {approval.status}{who}")
    if not may_decide(approver, json.loads(approval.approvers_json), tenant_id):
        raise Forbidden(f"{approver.name} is not among the approvers of step {step_id!r}")
    try:
        with write_transaction():
            ApprovalDecision.create(
                tenant=tenant_id,
                approval=approval.id,
                actor=approver.name,
                decision=decision,
                channel=approver.channel,
                comment=comment,
                decided_at=now,
            )
    except peewee.IntegrityError:
        return approval, []  # the same approver again: their first decision stands
    audit.record(
        tenant_id,
        approver.name,
        f"approval.{decision}",
        f"execution:{execution_id}/{step_id}",
        {"channel": approver.channel, "comment": comment},
    )
    decisions = decisions_of(approval)
    approvals = [row for row in decisions if row["decision"] == "approve"]
    output = {
        "output": {
            "decision": decision,
            "decided_by": [row["actor"] for row in approvals],
            "decisions": decisions,
        }
    }
    wakeups: list[Wakeup] = []
    if decision == "reject":
        output["output"]["decided_by"] = [approver.name]
        wakeups = _finish(
            execution,
            approval,
            "rejected",
            Outcome("rejected", output=output, error=f"rejected by {approver.name}"),
            now,
        )
    elif len(approvals) >= approval.required_approvals:
        wakeups = _finish(execution, approval, "approved", Outcome("succeeded", output=output), now)
    return Approval.get_by_id(approval.id), wakeups


def expire_due(now: datetime | None = None) -> list[Wakeup]:
    """Time out every pending approval past its expiry, per its ``on_timeout``."""
    now = now or utcnow()
    wakeups: list[Wakeup] = []
    due = list(
        Approval.select(Approval.id, Approval.tenant, Approval.execution).where(
            Approval.status == "pending", Approval.expires_at <= now
        )
    )
    for row in due:
        wakeups += _expire(row.tenant_id, row.execution_id, row.id, now)
    return wakeups


@in_write_transaction
def _expire(tenant_id: str, execution_id: str, approval_id: str, now: datetime) -> list[Wakeup]:
    """Time out one approval, unless it was decided meanwhile."""
    execution = lock_execution(tenant_id, execution_id)
    approval = _locked_approval(Approval.select().where(Approval.id == approval_id))
    if execution is None or approval is None or approval.status != "pending":
        return []
    decisions = decisions_of(approval)
    output = {
        "output": {
            "decision": approval.on_timeout,
            "decided_by": ["timeout"],
            "decisions": decisions,
        }
    }
    if approval.on_timeout == "approve":
        outcome, status = Outcome("succeeded", output=output), "approved"
    elif approval.on_timeout == "reject":
        outcome, status = (
            Outcome("rejected", output=output, error="rejected on timeout"),
            "rejected",
        )
    else:
        outcome, status = (
            Outcome(
                "timed_out",
                output=output,
                error="no decision before the approval timed out",
            ),
            "timed_out",
        )
    audit.record(
        approval.tenant_id,
        "engine",
        f"approval.{status}",
        f"execution:{approval.execution_id}/{approval.step_id}",
        {"reason": "timeout"},
    )
    return _finish(execution, approval, status, outcome, now)


def due_escalations(now: datetime | None = None) -> list[tuple[Approval, int, dict[str, Any]]]:
    """(approval, rung index, rung) for each rung now due on a pending approval, oldest first."""
    now = now or utcnow()
    due = []
    pending = Approval.select().where(
        Approval.status == "pending", Approval.escalation_json != "[]"
    )
    for approval in pending:
        fired = len(json.loads(approval.escalations_json))
        rungs = json.loads(approval.escalation_json)
        for index in range(fired, len(rungs)):
            if approval.created_at + timedelta(seconds=rungs[index]["after_seconds"]) <= now:
                due.append((approval, index, rungs[index]))
    return due


@in_write_transaction
def claim_escalation(approval_id: str, rung: int, now: datetime | None = None) -> bool:
    """Claim ``rung`` before sending it; False if another scheduler did, or it was decided meanwhile."""
    now = now or utcnow()
    approval = _locked_approval(Approval.select().where(Approval.id == approval_id))
    fired = json.loads(approval.escalations_json) if approval else []
    if approval is None or approval.status != "pending" or len(fired) != rung:
        return False
    fired.append({"rung": rung, "at": now.isoformat(), "results": None})
    Approval.update(escalations_json=json.dumps(fired)).where(Approval.id == approval_id).execute()
    audit.record(
        approval.tenant_id,
        "engine",
        "approval.escalated",
        f"execution:{approval.execution_id}/{approval.step_id}",
        {"rung": rung},
    )
    return True


@in_write_transaction
def record_escalation_results(approval_id: str, rung: int, results: dict[str, Any]) -> None:
    """Store what sending a claimed rung produced (shown with the execution)."""
    approval = _locked_approval(Approval.select().where(Approval.id == approval_id))
    fired = json.loads(approval.escalations_json)
    fired[rung]["results"] = results
    Approval.update(escalations_json=json.dumps(fired)).where(Approval.id == approval_id).execute()
