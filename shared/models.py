"""Peewee models: the canonical schema (SPEC §8 plus tokens, workflow versions, audit chain).

Every row but the pre-login throttle belongs to a tenant; :class:`TenantScoped`
is the one way to query by tenant. Invariants (uniqueness, allowed values,
references) are declared here so the database enforces them on every backend.
Timestamps are naive UTC datetimes.
"""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import datetime, timezone
from typing import Any, TypeVar

import peewee
from peewee import (
    AutoField,
    BooleanField,
    CharField,
    Check,
    CompositeKey,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from shared.db import database
from shared.errors import NotFound

ROLES = ("admin", "operator", "approver", "viewer")
MODES = ("onprem", "saas")
EXECUTION_STATUSES = (
    "queued",
    "running",
    "waiting_approval",
    "succeeded",
    "failed",
    "rejected",
    "timed_out",
    "cancelled",
)
STEP_STATUSES = (
    "pending",
    "running",
    "waiting_approval",
    "succeeded",
    "failed",
    "rejected",
    "timed_out",
    "skipped",
    "cancelled",
)
APPROVAL_STATUSES = ("pending", "approved", "rejected", "timed_out", "cancelled")
DECISIONS = ("approve", "reject")
TRIGGER_TYPES = ("webhook", "cron", "manual")
KAKAO_AUTH_SCHEMES = ("bearer", "plugin_token")
KAKAO_MESSAGE_STATUSES = ("accepted", "failed", "delivered", "delivery_failed")
#: Where a message's fallback is: queued (after a failed delivery event), sending, then
#: sent or failed; null while none was asked for.
KAKAO_FALLBACK_STATUSES = ("queued", "sending", "sent", "failed")
#: A runner job: queued (row written, signed), dispatched (sent on a stream), accepted
#: (the runner took it), then one ended status. ``lost``: its runner restarted or never
#: answered; ``refused``: the runner rejected it (signature, expiry, replay...);
#: ``denied``: its runner was put on the denylist or its certificate revoked.
RUNNER_JOB_STATUSES = (
    "queued",
    "dispatched",
    "accepted",
    "succeeded",
    "failed",
    "timed_out",
    "lost",
    "refused",
    "denied",
    "cancelled",
)
RUNNER_JOB_ENDED = ("succeeded", "failed", "timed_out", "lost", "refused", "denied", "cancelled")
LOG_STREAMS = ("stdout", "stderr")

Model = TypeVar("Model", bound="BaseModel")


def utcnow() -> datetime:
    """Now, as the naive UTC datetime every table stores."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_id(prefix: str) -> str:
    """A random, non-enumerable id such as ``u_3f2a...``."""
    return f"{prefix}_{uuid.uuid4().hex}"


def new_sortable_id(prefix: str) -> str:
    """An id that sorts by creation time (UUIDv7 layout: 48-bit ms clock, then random bits)."""
    millis = time.time_ns() // 1_000_000
    return f"{prefix}_{millis:012x}{secrets.token_hex(10)}"


def _one_of(column: str, values: tuple[str, ...]) -> Check:
    allowed = ", ".join(f"'{value}'" for value in values)
    return Check(f"{column} IN ({allowed})")


class BaseModel(peewee.Model):
    """Binds every model to the late-bound database proxy."""

    class Meta:
        database = database
        legacy_table_names = False


class Tenant(BaseModel):
    """An isolated customer; onprem mode has exactly one."""

    id = CharField(primary_key=True, max_length=64, default=lambda: new_id("t"))
    name = CharField(max_length=200)
    slug = CharField(max_length=63, unique=True)
    mode = CharField(max_length=16, constraints=[_one_of("mode", MODES)])
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "tenants"


class TenantScoped(BaseModel):
    """Base for rows that belong to a tenant; query them through ``for_tenant``."""

    tenant = ForeignKeyField(Tenant, column_name="tenant_id", on_delete="CASCADE")

    @classmethod
    def for_tenant(cls: type[Model], tenant_id: str, *fields: Any) -> peewee.ModelSelect:
        """Select this model's rows of one tenant."""
        return cls.select(*fields).where(cls.tenant == tenant_id)

    @classmethod
    def get_for_tenant(cls: type[Model], tenant_id: str, *conditions: Any, what: str) -> Model:
        """The one row matching ``conditions`` in ``tenant_id``; NotFound (404) otherwise.

        Another tenant's row is indistinguishable from a missing one.
        """
        query = cls.for_tenant(tenant_id)
        if conditions:
            query = query.where(*conditions)
        row = query.first()
        if row is None:
            raise NotFound(f"{what} not found")
        return row


class User(TenantScoped):
    """A person who logs in; an email belongs to exactly one tenant."""

    id = CharField(primary_key=True, max_length=64, default=lambda: new_id("u"))
    email = CharField(max_length=254, unique=True)
    password_hash = CharField(max_length=255)
    role = CharField(max_length=16, constraints=[_one_of("role", ROLES)])
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "users"


class ApiToken(TenantScoped):
    """A login session; only the SHA-256 of the bearer token is stored."""

    id = CharField(primary_key=True, max_length=64, default=lambda: new_id("tok"))
    user = ForeignKeyField(User, column_name="user_id", on_delete="CASCADE")
    token_hash = CharField(max_length=64, unique=True)
    created_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField()
    revoked_at = DateTimeField(null=True)

    class Meta:
        table_name = "api_tokens"


class LoginFailure(BaseModel):
    """A failed login, kept for the lockout window.

    Not tenant-scoped on purpose: before a login succeeds there is no tenant,
    and the email is stored only as a SHA-256 digest.
    """

    id = AutoField()
    email_hash = CharField(max_length=64)
    failed_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "login_failures"
        indexes = ((("email_hash", "failed_at"), False),)


class Workflow(TenantScoped):
    """A workflow; ``workflow_key`` is the YAML ``id``, unique within a tenant."""

    id = AutoField()
    workflow_key = CharField(max_length=128)
    name = CharField(max_length=200)
    yaml = TextField()
    enabled = BooleanField(default=True)
    version = IntegerField(default=1, constraints=[Check("version >= 1")])
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "workflows"
        indexes = ((("tenant", "workflow_key"), True),)


class WorkflowVersion(TenantScoped):
    """An immutable copy of each uploaded workflow; executions pin one."""

    id = AutoField()
    workflow = ForeignKeyField(Workflow, column_name="workflow_id", on_delete="CASCADE")
    version = IntegerField(constraints=[Check("version >= 1")])
    yaml = TextField()
    created_at = DateTimeField(default=utcnow)
    created_by = CharField(max_length=254, default="")

    class Meta:
        table_name = "workflow_versions"
        indexes = ((("workflow", "version"), True),)


class Execution(TenantScoped):
    """One run of a workflow, pinned to the workflow version it started with.

    Unique on (tenant, workflow, dedupe_key): every backend treats NULL keys as
    distinct, so only executions that carry a key are deduplicated, and the
    database, not Python, decides which of two racing triggers wins.
    ``trigger_context`` is what templates see of the trigger (body, headers
    without credentials, query, trigger).
    """

    id = CharField(primary_key=True, max_length=64, default=lambda: new_sortable_id("ex"))
    workflow = ForeignKeyField(Workflow, column_name="workflow_id", on_delete="CASCADE")
    workflow_version = ForeignKeyField(
        WorkflowVersion, column_name="workflow_version_id", on_delete="RESTRICT"
    )
    status = CharField(max_length=24, constraints=[_one_of("status", EXECUTION_STATUSES)])
    dedupe_key = CharField(max_length=255, null=True)
    trigger_type = CharField(max_length=16, constraints=[_one_of("trigger_type", TRIGGER_TYPES)])
    trigger_ref = CharField(max_length=255, default="")
    trigger_context = TextField(default="{}")
    created_at = DateTimeField(default=utcnow)
    started_at = DateTimeField(null=True)
    ended_at = DateTimeField(null=True)
    error_summary = TextField(null=True)

    class Meta:
        table_name = "executions"
        indexes = (
            (("tenant", "workflow", "dedupe_key"), True),
            (("tenant", "status"), False),
            (("status",), False),
        )


class StepRun(TenantScoped):
    """The state of one step of one execution; the database, not the queue, is the truth.

    A worker holds the step through a lease (``lease_owner`` until
    ``lease_expires_at``); ``attempt`` counts claims, so a message that keeps
    killing its worker still ends. ``next_attempt_at`` is when a pending step is
    due, which the reconciler uses to re-enqueue lost messages. Inputs and
    outputs are stored redacted.
    """

    id = CharField(primary_key=True, max_length=64, default=lambda: new_sortable_id("sr"))
    execution = ForeignKeyField(Execution, column_name="execution_id", on_delete="CASCADE")
    step_id = CharField(max_length=128)
    step_index = IntegerField(constraints=[Check("step_index >= 0")])
    status = CharField(max_length=24, constraints=[_one_of("status", STEP_STATUSES)])
    attempt = IntegerField(default=0, constraints=[Check("attempt >= 0")])
    max_attempts = IntegerField(default=1, constraints=[Check("max_attempts >= 1")])
    lost_attempts = IntegerField(default=0, constraints=[Check("lost_attempts >= 0")])
    lease_owner = CharField(max_length=128, null=True)
    lease_expires_at = DateTimeField(null=True)
    next_attempt_at = DateTimeField(null=True)
    enqueued_at = DateTimeField(null=True)
    started_at = DateTimeField(null=True)
    ended_at = DateTimeField(null=True)
    input_redacted = TextField(default="{}")
    output_redacted = TextField(default="{}")
    error = TextField(null=True)

    class Meta:
        table_name = "step_runs"
        indexes = (
            (("execution", "step_id"), True),
            (("status", "next_attempt_at"), False),
            (("status", "lease_expires_at"), False),
        )


class Approval(TenantScoped):
    """A human gate of one approval step; decisions are rows of ApprovalDecision."""

    id = CharField(primary_key=True, max_length=64, default=lambda: new_sortable_id("ap"))
    execution = ForeignKeyField(Execution, column_name="execution_id", on_delete="CASCADE")
    step_id = CharField(max_length=128)
    status = CharField(max_length=16, constraints=[_one_of("status", APPROVAL_STATUSES)])
    required_approvals = IntegerField(default=1, constraints=[Check("required_approvals >= 1")])
    approvers_json = TextField(default="[]")
    on_timeout = CharField(max_length=16, default="fail")
    message = TextField(default="")
    escalation_json = TextField(default="[]")  # the step's rungs: [{after_seconds, notify}]
    escalations_json = TextField(default="[]")  # rungs fired so far: [{rung, at, results}]
    created_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField(null=True)
    decided_at = DateTimeField(null=True)

    class Meta:
        table_name = "approvals"
        indexes = (
            (("execution", "step_id"), True),
            (("status", "expires_at"), False),
        )


class ApprovalDecision(TenantScoped):
    """One person's decision; unique per approval and actor, so a repeat counts once."""

    id = AutoField()
    approval = ForeignKeyField(Approval, column_name="approval_id", on_delete="CASCADE")
    actor = CharField(max_length=254)
    decision = CharField(max_length=8, constraints=[_one_of("decision", DECISIONS)])
    channel = CharField(max_length=32, default="api")
    comment = TextField(default="")
    decided_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "approval_decisions"
        indexes = ((("approval", "actor"), True),)


class Recipient(TenantScoped):
    """A person in the directory, with an address per channel."""

    id = CharField(primary_key=True, max_length=64, default=lambda: new_id("rc"))
    name = CharField(max_length=200)
    phone = CharField(max_length=32, null=True)
    email = CharField(max_length=254, null=True)
    slack_id = CharField(max_length=64, null=True)
    telegram_id = CharField(max_length=64, null=True)
    teams_id = CharField(max_length=254, null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "recipients"
        indexes = ((("tenant", "name"), True),)


class Group(TenantScoped):
    """A named set of recipients (``group:<name>`` in notify targets)."""

    id = CharField(primary_key=True, max_length=64, default=lambda: new_id("grp"))
    name = CharField(max_length=128)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "groups"
        indexes = ((("tenant", "name"), True),)


class GroupMember(TenantScoped):
    """Membership of a recipient in a group."""

    group = ForeignKeyField(Group, column_name="group_id", on_delete="CASCADE")
    recipient = ForeignKeyField(Recipient, column_name="recipient_id", on_delete="CASCADE")

    class Meta:
        table_name = "group_members"
        primary_key = CompositeKey("group", "recipient")


class KakaoTemplate(TenantScoped):
    """A registered AlimTalk template and the variables it requires."""

    id = CharField(primary_key=True, max_length=64, default=lambda: new_id("kt"))
    provider_id = CharField(max_length=64)
    template_id = CharField(max_length=128)
    required_vars_json = TextField(default="[]")
    description = TextField(default="")
    active = BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "kakao_templates"
        indexes = ((("tenant", "provider_id", "template_id"), True),)


class KakaoProvider(TenantScoped):
    """A Kakao AlimTalk provider a tenant sends through (a customer provider, SPEC §6).

    ``provider_key`` is the id users write (``provider: mock``). The credential is
    not here: it is in the secrets store under a reserved key
    (:func:`shared.kakao.providers.credential_key`). ``auth`` is ``bearer`` (that
    credential) or ``plugin_token`` (the shared plugin token; operator code only).
    """

    id = CharField(primary_key=True, max_length=64, default=lambda: new_id("kp"))
    provider_key = CharField(max_length=64)
    base_url = CharField(max_length=500)
    auth = CharField(
        max_length=16, default="bearer", constraints=[_one_of("auth", KAKAO_AUTH_SCHEMES)]
    )
    active = BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "kakao_providers"
        indexes = ((("tenant", "provider_key"), True),)


class KakaoMessage(TenantScoped):
    """One AlimTalk to one phone number, its delivery events and its fallback.

    ``provider_message_id`` is null when the send failed before the provider named
    one (NULLs are distinct in the unique index on every backend). The execution,
    step and step run are null for a send-test. ``trace_id`` is what Core sent as
    the provider's ``trace_id``: one per send, so a retried step finds its rows.
    """

    id = CharField(primary_key=True, max_length=64, default=lambda: new_sortable_id("km"))
    provider_id = CharField(max_length=64)
    provider_message_id = CharField(max_length=128, null=True)
    template_id = CharField(max_length=128)
    to = CharField(max_length=32)
    status = CharField(max_length=16, constraints=[_one_of("status", KAKAO_MESSAGE_STATUSES)])
    reason = TextField(null=True)
    trace_id = CharField(max_length=160)
    events_json = TextField(default="[]")
    execution = ForeignKeyField(
        Execution, column_name="execution_id", null=True, on_delete="CASCADE"
    )
    step_id = CharField(max_length=128, null=True)
    step_run = ForeignKeyField(StepRun, column_name="step_run_id", null=True, on_delete="CASCADE")
    fallback_on_json = TextField(default="[]")
    fallback_targets_json = TextField(default="[]")
    fallback_message_json = TextField(default="{}")
    fallback_status = CharField(
        max_length=16, null=True, constraints=[_one_of("fallback_status", KAKAO_FALLBACK_STATUSES)]
    )
    fallback_result_json = TextField(null=True)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "kakao_messages"
        indexes = (
            (("tenant", "provider_id", "provider_message_id", "to"), True),
            (("trace_id",), False),
            # The reconciler looks for fallbacks left queued: without it, a full scan a pass.
            (("fallback_status", "updated_at"), False),
        )


class Secret(TenantScoped):
    """A Fernet-encrypted value, read by workflows as ``{{ secrets.KEY }}``."""

    id = AutoField()
    key = CharField(max_length=128)
    ciphertext = TextField()
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    rotated_at = DateTimeField(null=True)

    class Meta:
        table_name = "secrets"
        indexes = ((("tenant", "key"), True),)


class AuditLog(TenantScoped):
    """One audited change, hash-chained per tenant: ``row_hash`` covers ``prev_hash``.

    Unique on (tenant, seq) so two writers can never fork a tenant's chain.
    """

    id = AutoField()
    seq = IntegerField(constraints=[Check("seq >= 1")])
    actor = CharField(max_length=254)
    action = CharField(max_length=64)
    target = CharField(max_length=255, default="")
    ts = DateTimeField(default=utcnow)
    metadata_redacted = TextField(default="{}")
    prev_hash = CharField(max_length=64)
    row_hash = CharField(max_length=64)

    class Meta:
        table_name = "audit_log"
        indexes = (
            (("tenant", "seq"), True),
            (("tenant", "ts"), False),
        )


class AuditHead(BaseModel):
    """The last row of a tenant's audit chain, locked by every append to it.

    Appends serialise on this row rather than on the tenant's: inserting any
    tenant row takes a key-share lock on ``tenants`` (its foreign key), and
    upgrading that to an update lock deadlocked concurrent writers. No foreign
    key points here, so nothing else ever locks it.
    """

    tenant = ForeignKeyField(Tenant, column_name="tenant_id", primary_key=True, on_delete="CASCADE")
    seq = IntegerField(constraints=[Check("seq >= 0")])
    row_hash = CharField(max_length=64)

    class Meta:
        table_name = "audit_heads"


class CronState(TenantScoped):
    """The newest slot fired for one cron trigger, so a restart knows what it missed."""

    id = AutoField()
    workflow = ForeignKeyField(Workflow, column_name="workflow_id", on_delete="CASCADE")
    trigger_index = IntegerField(constraints=[Check("trigger_index >= 0")])
    last_slot = DateTimeField()
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "cron_states"
        indexes = ((("workflow", "trigger_index"), True),)


class WebhookDelivery(TenantScoped):
    """A signed webhook request already accepted, kept while a copy of it would still verify.

    ``replay_key`` is the SHA-256 of what the sender signed; the unique index makes a
    second request with the same key fail, whichever API process receives it.
    """

    id = AutoField()
    workflow = ForeignKeyField(Workflow, column_name="workflow_id", on_delete="CASCADE")
    replay_key = CharField(max_length=64)
    received_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField()

    class Meta:
        table_name = "webhook_deliveries"
        indexes = (
            (("workflow", "replay_key"), True),
            (("workflow", "expires_at"), False),
        )


class RunnerEnrollmentToken(TenantScoped):
    """A single-use token an admin makes so one host can enroll; only its SHA-256 is kept."""

    id = CharField(primary_key=True, max_length=64, default=lambda: new_id("ret"))
    token_hash = CharField(max_length=64, unique=True)
    labels_json = TextField(default="{}")
    created_by = CharField(max_length=255)
    created_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField()
    used_at = DateTimeField(null=True)
    runner_id = CharField(max_length=64, null=True)  # who used it

    class Meta:
        table_name = "runner_enrollment_tokens"


class Runner(TenantScoped):
    """An enrolled runner agent on a host.

    ``status`` is what its gateway last said (online while a ``Connect`` stream is
    open); ``last_seen_at`` is refreshed by that gateway, so a runner whose gateway
    died reads as offline once it is stale (see shared/runners/registry.py).
    ``session_epoch`` grows with each stream, so an old stream closing after a
    newer one opened does not mark the runner offline.
    """

    id = CharField(primary_key=True, max_length=64, default=lambda: new_id("rn"))
    name = CharField(max_length=255)  # the host name it enrolled with
    labels_json = TextField(default="{}")
    inventory_json = TextField(default="{}")
    identity_public_key = CharField(max_length=64)  # hex of the raw Ed25519 key
    cert_fingerprint = CharField(max_length=64, null=True)  # SHA-256 of the newest certificate
    cert_not_after = DateTimeField(null=True)
    session_token_hash = CharField(max_length=64, null=True)
    previous_token_hash = CharField(max_length=64, null=True)
    previous_token_valid_until = DateTimeField(null=True)
    token_rotated_at = DateTimeField(null=True)
    status = CharField(
        max_length=16, default="offline", constraints=[_one_of("status", ("online", "offline"))]
    )
    session_epoch = IntegerField(default=0)
    gateway_id = CharField(max_length=128, null=True)
    last_seen_at = DateTimeField(null=True)
    enrolled_at = DateTimeField(default=utcnow)
    retired_at = DateTimeField(null=True)

    class Meta:
        table_name = "runners"
        indexes = ((("tenant", "status"), False),)


class RunnerCertificate(TenantScoped):
    """Every certificate issued to a runner, so one can be revoked by fingerprint."""

    fingerprint = CharField(primary_key=True, max_length=64)  # SHA-256 of the DER, hex
    runner = ForeignKeyField(Runner, column_name="runner_id", on_delete="CASCADE")
    not_after = DateTimeField()
    issued_at = DateTimeField(default=utcnow)
    revoked_at = DateTimeField(null=True)
    revoked_by = CharField(max_length=255, null=True)
    revoke_reason = TextField(null=True)

    class Meta:
        table_name = "runner_certificates"


class RunnerDenial(TenantScoped):
    """A runner on the denylist: its streams are cut and its connections refused."""

    runner = ForeignKeyField(Runner, column_name="runner_id", primary_key=True, on_delete="CASCADE")
    reason = TextField(default="")
    created_by = CharField(max_length=255)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "runner_denials"


class RunnerControl(BaseModel):
    """One row: a version bumped by every denial, revocation and retirement.

    Gateways learn of a change by a Redis message and, as a backstop for a lost
    message, by polling this version.
    """

    id = IntegerField(primary_key=True, default=1)
    version = IntegerField(default=0)

    class Meta:
        table_name = "runner_control"


class RunnerJob(TenantScoped):
    """One command sent to one runner: the signed job as dispatched and what came back.

    ``payload`` is what the runner receives, sealed with Core's secret keys (it
    carries the env as rendered, secrets included; see ``jobs.seal_payload``), and
    ``signature`` is Core's over the unsealed payload; ``step_run`` and ``attempt``
    tie the job to the step attempt it resumes. Outputs are stored masked.
    """

    id = CharField(primary_key=True, max_length=64, default=lambda: new_sortable_id("job"))
    runner = ForeignKeyField(Runner, column_name="runner_id", on_delete="CASCADE")
    execution = ForeignKeyField(
        Execution, column_name="execution_id", null=True, on_delete="CASCADE"
    )
    step_run = ForeignKeyField(StepRun, column_name="step_run_id", null=True, on_delete="CASCADE")
    attempt = IntegerField(default=0)
    status = CharField(max_length=16, constraints=[_one_of("status", RUNNER_JOB_STATUSES)])
    payload = TextField()  # sealed canonical JSON (shared/domain/job_signing.py)
    signature = CharField(max_length=128)  # hex
    nonce = CharField(max_length=64)
    not_after = DateTimeField()
    deadline_at = DateTimeField()  # Core gives up on it (lost/timed out) after this
    timeout_seconds = IntegerField()
    exit_code = IntegerField(null=True)
    error = TextField(null=True)
    stdout_tail = TextField(default="")
    stderr_tail = TextField(default="")
    stdout_bytes = IntegerField(default=0)
    stderr_bytes = IntegerField(default=0)
    stdout_capped = BooleanField(default=False)
    stderr_capped = BooleanField(default=False)
    result_json = TextField(null=True)  # the runner's signed result payload as received
    created_at = DateTimeField(default=utcnow)
    dispatched_at = DateTimeField(null=True)
    accepted_at = DateTimeField(null=True)
    ended_at = DateTimeField(null=True)
    duration_ms = IntegerField(null=True)

    class Meta:
        table_name = "runner_jobs"
        indexes = (
            (("runner", "status"), False),
            (("status", "deadline_at"), False),
            (("step_run", "attempt"), False),
        )


class RunnerJobLog(TenantScoped):
    """One numbered chunk of a job's stdout or stderr, stored once per (runner, job, seq)."""

    id = AutoField()
    runner = ForeignKeyField(Runner, column_name="runner_id", on_delete="CASCADE")
    job = ForeignKeyField(RunnerJob, column_name="job_id", on_delete="CASCADE")
    seq = IntegerField(constraints=[Check("seq >= 1")])
    stream = CharField(max_length=8, constraints=[_one_of("stream", LOG_STREAMS)])
    data = TextField()  # masked text (bytes decoded as UTF-8 with replacement)
    at = DateTimeField()

    class Meta:
        table_name = "runner_job_logs"
        indexes = ((("runner", "job", "seq"), True),)


class SchemaMigration(BaseModel):
    """A forward migration that has been applied."""

    version = IntegerField(primary_key=True)
    name = CharField(max_length=128)
    applied_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "schema_migrations"


#: Every table, in dependency order (create in this order, drop in reverse).
ALL_MODELS: tuple[type[BaseModel], ...] = (
    Tenant,
    User,
    ApiToken,
    LoginFailure,
    Workflow,
    WorkflowVersion,
    Execution,
    StepRun,
    Approval,
    ApprovalDecision,
    Recipient,
    Group,
    GroupMember,
    KakaoTemplate,
    KakaoProvider,
    KakaoMessage,
    Secret,
    AuditLog,
    AuditHead,
    CronState,
    WebhookDelivery,
    RunnerEnrollmentToken,
    Runner,
    RunnerCertificate,
    RunnerDenial,
    RunnerControl,
    RunnerJob,
    RunnerJobLog,
)
#: The tables of the runner plane (migration 5).
RUNNER_MODELS: tuple[type[BaseModel], ...] = ALL_MODELS[-7:]
