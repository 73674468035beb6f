"""Re-sends what the queue lost: expired leases, overdue pending steps, approval and runner-job timeouts.

A Dramatiq message on Redis can vanish (a SIGKILLed worker's message returns
only after a heartbeat timeout and a random maintenance pass) or be
delivered twice; the database decides what should run, and this pass wakes
it up. Duplicates are harmless: a claim finds nothing to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.db import write_transaction
from shared.engine import approvals
from shared.engine.outbox import Wakeup, send, wakeup_for
from shared.engine.specs import spec_of_execution
from shared.kakao import fallback as kakao_fallback
from shared.models import Approval, Execution, StepRun, utcnow
from shared.runners import jobs as runner_jobs

log = logging.getLogger(__name__)

#: Milliseconds a pending step may sit past its due time before its message counts as lost.
PENDING_RESEND_AFTER_MS = 15_000
#: Milliseconds between two re-sends of the same step run.
RESEND_INTERVAL_MS = 10_000
#: Most step runs re-sent in one pass.
BATCH_SIZE = 500


@dataclass(frozen=True)
class Pass:
    """What one reconciliation pass did."""

    expired_leases: int
    overdue_pending: int
    approvals_timed_out: int
    runner_jobs_expired: int = 0


def _wakeups(runs: list[StepRun], now: datetime) -> list[Wakeup]:
    wakeups = []
    for run in runs:
        execution = Execution.get_by_id(run.execution_id)
        wakeups.append(wakeup_for(run.id, spec_of_execution(execution).step(run.step_id)))
    if runs:
        with write_transaction():
            StepRun.update(enqueued_at=now).where(
                StepRun.id.in_([run.id for run in runs])
            ).execute()
    return wakeups


def escalate(notify: Callable[[Approval, dict[str, Any]], dict[str, Any]], now: datetime) -> int:
    """Send every due escalation rung once; ``notify(approval, rung)`` delivers and returns results."""
    sent = 0
    for approval, index, rung in approvals.due_escalations(now):
        if approvals.claim_escalation(approval.id, index, now):
            approvals.record_escalation_results(approval.id, index, notify(approval, rung))
            sent += 1
    return sent


def reconcile_once(
    dispatcher,
    *,
    now: datetime | None = None,
    notify: Callable[[Approval, dict[str, Any]], dict[str, Any]] | None = None,
) -> Pass:  # noqa: ANN001 - a Dispatcher
    """One pass: re-send expired leases and overdue pending steps, time out approvals, escalate.

    Runner jobs past their deadline are ended first, so their steps are retried or
    failed by the job's rule before the step's own lease (30 s later) runs out.
    """
    now = now or utcnow()
    expired_jobs = runner_jobs.expire_overdue(dispatcher, now)
    resend_before = now - timedelta(milliseconds=RESEND_INTERVAL_MS)
    not_recently_sent = (StepRun.enqueued_at.is_null()) | (StepRun.enqueued_at < resend_before)
    expired = list(
        StepRun.select()
        .where(StepRun.status == "running", StepRun.lease_expires_at < now, not_recently_sent)
        .limit(BATCH_SIZE)
    )
    overdue = list(
        StepRun.select()
        .where(
            StepRun.status == "pending",
            StepRun.next_attempt_at < now - timedelta(milliseconds=PENDING_RESEND_AFTER_MS),
            not_recently_sent,
        )
        .limit(BATCH_SIZE)
    )
    send(dispatcher, _wakeups(expired + overdue, now))
    timed_out = approvals.expire_due(now)
    send(dispatcher, timed_out)
    if notify is not None:
        escalate(notify, now)
    kakao_fallback.requeue_lost(dispatcher, now)
    result = Pass(len(expired), len(overdue), len(timed_out), expired_jobs)
    if expired or overdue:
        log.info(
            "reconciler re-sent %d expired lease(s) and %d overdue step(s)",
            len(expired),
            len(overdue),
        )
    return result
