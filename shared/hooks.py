"""A webhook request becoming an execution: tenant, auth, dedupe key, resolve-at-source."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import peewee

from shared import audit
from shared.db import PreparedSelect, write_transaction
from shared.domain.hook_request import HookRequest, stored_headers
from shared.domain.templating import TRIGGER_BUDGET, TemplateError, evaluate, render
from shared.domain.webhook_auth import ReplayGuard, WebhookAuthFailure, verify_webhook
from shared.domain.workflow_spec import WebhookTrigger
from shared.engine.executions import Started, cancel_execution, start_execution
from shared.engine.specs import spec_of
from shared.errors import Conflict, NotFound, ValidationError
from shared.models import (
    Execution,
    Secret,
    WebhookDelivery,
    Workflow,
    WorkflowVersion,
    utcnow,
)
from shared.redaction import redact

#: Executions a "resolved" request may still cancel.
RESOLVABLE = ("queued", "waiting_approval")


@dataclass(frozen=True)
class HookResult:
    """What the hook endpoint answers."""

    execution_id: str | None
    status: str | None
    deduplicated: bool
    resolved: bool
    started: Started | None = None


#: Read on every webhook: their SQL is generated once (see shared.db.PreparedSelect).
_WORKFLOW = PreparedSelect(
    lambda tenant_id, key: Workflow.for_tenant(tenant_id).where(Workflow.workflow_key == key),
    arity=2,
)
_VERSION = PreparedSelect(
    lambda workflow_pk, number: WorkflowVersion.select().where(
        WorkflowVersion.workflow == workflow_pk, WorkflowVersion.version == number
    ),
    arity=2,
)


def _trigger(workflow: Workflow, path: str) -> WebhookTrigger:
    version = _VERSION.first(workflow.id, workflow.version)
    if version is None:  # deleted between the two reads
        raise NotFound(f"workflow {workflow.workflow_key!r} not found")
    trigger = spec_of(version).webhook_trigger(path)
    if trigger is None:
        raise NotFound(
            f"workflow {workflow.workflow_key!r} has no webhook trigger with path {path!r}"
        )
    return trigger


def _authenticate(
    workflow: Workflow, trigger: WebhookTrigger, request: HookRequest, read_secret: Any
) -> ReplayGuard | None:
    if trigger.auth is None:
        return None
    try:
        secret_value = read_secret(workflow.tenant_id, trigger.auth.secret)
        return verify_webhook(
            trigger.auth,
            secret_value or "",
            request.headers,
            request.raw_body,
            now_seconds=time.time(),
        )
    except WebhookAuthFailure as failure:
        with write_transaction():
            audit.record(
                workflow.tenant_id,
                "webhook",
                "hook.auth_failed",
                f"workflow:{workflow.workflow_key}",
                {"reason": failure.reason},
            )
        raise


def _claim_delivery(workflow: Workflow, guard: ReplayGuard | None) -> int | None:
    """Record a signed request as received; Conflict if it already was (a replay). Its row id.

    Rows whose window has passed are dropped afterwards, so the table holds about one
    window of each workflow's deliveries.
    """
    if guard is None:
        return None
    now = utcnow()
    row_id = _insert_delivery(workflow, guard, now)
    if row_id is None:
        with write_transaction():
            audit.record(
                workflow.tenant_id,
                "webhook",
                "hook.replay_refused",
                f"workflow:{workflow.workflow_key}",
                {"window_seconds": guard.window_seconds},
            )
        raise Conflict(
            f"workflow {workflow.workflow_key!r} already received this signed request within "
            f"the last {guard.window_seconds} s: a replay is refused (a sender re-sending on "
            f"purpose must sign it anew)"
        )
    # Its own statement, not part of the insert's transaction: there, its range lock
    # would make two deliveries arriving together deadlock on MySQL/MariaDB.
    with write_transaction():
        WebhookDelivery.delete().where(
            WebhookDelivery.workflow == workflow.id, WebhookDelivery.expires_at < now
        ).execute()
    return row_id


def _insert_delivery(workflow: Workflow, guard: ReplayGuard, now: Any) -> int | None:
    """The new delivery row's id; None when an unexpired one with the same key exists."""
    for _ in range(2):
        try:
            with write_transaction():
                return WebhookDelivery.create(
                    tenant=workflow.tenant_id,
                    workflow=workflow.id,
                    replay_key=guard.key,
                    received_at=now,
                    expires_at=now + timedelta(seconds=guard.window_seconds),
                ).id
        except peewee.IntegrityError:
            # The same key is on record: a replay, unless that record's window has passed.
            with write_transaction():
                expired = (
                    WebhookDelivery.delete()
                    .where(
                        WebhookDelivery.workflow == workflow.id,
                        WebhookDelivery.replay_key == guard.key,
                        WebhookDelivery.expires_at < now,
                    )
                    .execute()
                )
            if not expired:
                return None
    return None


def _release_delivery(delivery_id: int | None) -> None:
    """Forget a claimed delivery whose request then failed, so the sender may retry it."""
    if delivery_id is not None:
        with write_transaction():
            WebhookDelivery.delete().where(WebhookDelivery.id == delivery_id).execute()


def _context(trigger: WebhookTrigger, request: HookRequest) -> dict[str, Any]:
    drop = (
        [name for name in (trigger.auth.header, trigger.auth.timestamp_header) if name]
        if trigger.auth
        else []
    )
    # Credentials a sender put in its payload (password, token, ... keys) are masked
    # before anything is stored or shown, like every other step input.
    return {
        "body": redact(request.body),
        "headers": stored_headers(request.headers, drop=drop),
        "query": request.query,
        "trigger": {"type": "webhook", "path": trigger.path, "received_at": utcnow().isoformat()},
    }


def receive(
    tenant_id: str, workflow_id: str, path: str, request: HookRequest, read_secret: Any
) -> HookResult:
    """Authenticate, deduplicate and start (or resolve) an execution for one webhook request."""
    workflow = _WORKFLOW.first(tenant_id, workflow_id)
    if workflow is None:
        raise NotFound(f"workflow {workflow_id!r} not found")
    trigger = _trigger(workflow, path)
    guard = _authenticate(workflow, trigger, request, read_secret)
    if not workflow.enabled:
        raise Conflict(f"workflow {workflow_id!r} is disabled; enable it to accept triggers")
    context = _context(trigger, request)
    # These run on the request thread for any sender: a small budget keeps a costly
    # template from holding an API worker (and every tenant behind it).
    try:
        dedupe_key = (
            render(trigger.dedupe_key, context, budget=TRIGGER_BUDGET).strip() or None
            if trigger.dedupe_key
            else None
        )
        resolving = bool(trigger.resolve_when) and bool(
            evaluate(trigger.resolve_when, context, budget=TRIGGER_BUDGET)
        )
    except TemplateError as error:
        raise ValidationError(f"trigger of workflow {workflow_id!r}: {error}") from None
    delivery_id = _claim_delivery(workflow, guard)
    try:
        if resolving:
            return _resolve(workflow, dedupe_key)
        started = start_execution(
            workflow,
            trigger_type="webhook",
            trigger_ref=path or "webhook",
            context=context,
            dedupe_key=dedupe_key,
            dedupe_window_seconds=trigger.dedupe_window_seconds,
            actor="webhook",
        )
    except BaseException:
        _release_delivery(delivery_id)
        raise
    return HookResult(
        started.execution.id, started.execution.status, started.deduplicated, False, started
    )


def _resolve(workflow: Workflow, dedupe_key: str | None) -> HookResult:
    """A "resolved" request: cancel the key's execution if it has not really started yet."""
    existing = (
        Execution.get_or_none(
            Execution.tenant == workflow.tenant_id,
            Execution.workflow == workflow.id,
            Execution.dedupe_key == dedupe_key,
        )
        if dedupe_key
        else None
    )
    if existing is None:
        return HookResult(None, None, False, True)
    if existing.status in RESOLVABLE:
        try:
            existing = cancel_execution(
                existing.id, workflow.tenant_id, actor="webhook", reason="resolved at source"
            )
        except Conflict:
            existing = Execution.get_by_id(existing.id)
    return HookResult(existing.id, existing.status, False, True)


def secret_reader(ring: Any) -> Any:
    """A function (tenant_id, key) -> plaintext or None, for webhook auth secrets."""

    def read(tenant_id: str, key: str) -> str | None:
        row = Secret.get_or_none(Secret.tenant == tenant_id, Secret.key == key)
        return ring.decrypt(row.ciphertext.encode("ascii")).decode("utf-8") if row else None

    return read
