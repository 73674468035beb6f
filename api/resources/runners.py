"""Runners: list, read, retire, enrollment tokens, job results with their logs, denylist and revocations.

Everything is the caller's tenant's: another tenant's runner, job or
certificate answers 404. Reading runners and job results needs only ``read``
(outputs are stored masked); every change, and the ops lists, need ``ops:admin``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import marshmallow as ma
from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import actor, require, tenant_id
from api.schemas import StrictSchema
from shared.domain.permissions import OPS_ADMIN, READ
from shared.errors import ValidationError
from shared.models import (
    Runner,
    RunnerCertificate,
    RunnerDenial,
    RunnerJob,
    RunnerJobLog,
    StepRun,
    utcnow,
)
from shared.runners import denylist, tokens
from shared.runners.presence import is_online

blp = Blueprint("runners", __name__, url_prefix="/api", description="Runners (hosts that run jobs)")

_FINGERPRINT = re.compile(r"[0-9a-fA-F]{64}")


def _settings() -> Any:
    return current_app.config["SETTINGS"]


def _dispatcher() -> Any:
    return current_app.extensions["aisopsflow.dispatcher"]


# ---- schemas -------------------------------------------------------------------------------


class RunnerSchema(ma.Schema):
    id = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"description": "online or offline"})
    last_seen_at = ma.fields.DateTime(allow_none=True)
    labels = ma.fields.Dict(required=True)
    inventory = ma.fields.Dict(required=True)
    cert_not_after = ma.fields.DateTime(allow_none=True)
    enrolled_at = ma.fields.DateTime(required=True)
    retired_at = ma.fields.DateTime(allow_none=True)
    denied = ma.fields.Boolean(required=True)


class RunnerListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(RunnerSchema), required=True)


class CertificateSchema(ma.Schema):
    fingerprint = ma.fields.String(required=True)
    not_after = ma.fields.DateTime(required=True)
    issued_at = ma.fields.DateTime(required=True)
    revoked_at = ma.fields.DateTime(allow_none=True)


class RunnerDetailSchema(RunnerSchema):
    denial = ma.fields.Dict(allow_none=True)
    certificates = ma.fields.List(ma.fields.Nested(CertificateSchema), required=True)


class RunnerListQuerySchema(StrictSchema):
    include_retired = ma.fields.Boolean(load_default=False)


class TokenRequestSchema(StrictSchema):
    labels = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), load_default=dict)
    ttl_seconds = ma.fields.Integer(
        load_default=None, validate=ma.validate.Range(min=1, max=tokens.MAX_TOKEN_TTL_SECONDS)
    )


class TokenAnswerSchema(ma.Schema):
    token = ma.fields.String(required=True)
    expires_at = ma.fields.DateTime(required=True)
    gateway = ma.fields.String(required=True)
    ca_sha256 = ma.fields.String(required=True)
    command = ma.fields.String(required=True)


class TokenInfoSchema(ma.Schema):
    id = ma.fields.String(required=True)
    labels = ma.fields.Dict(required=True)
    created_by = ma.fields.String(required=True)
    created_at = ma.fields.DateTime(required=True)
    expires_at = ma.fields.DateTime(required=True)
    used_at = ma.fields.DateTime(allow_none=True)
    runner_id = ma.fields.String(allow_none=True)


class TokenListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(TokenInfoSchema), required=True)


class JobResultSchema(ma.Schema):
    id = ma.fields.String(required=True)
    runner_id = ma.fields.String(required=True)
    execution_id = ma.fields.String(allow_none=True)
    step_id = ma.fields.String(allow_none=True)
    attempt = ma.fields.Integer(required=True)
    status = ma.fields.String(required=True)
    exit_code = ma.fields.Integer(allow_none=True)
    error = ma.fields.String(allow_none=True)
    timeout_seconds = ma.fields.Integer(required=True)
    created_at = ma.fields.DateTime(required=True)
    dispatched_at = ma.fields.DateTime(allow_none=True)
    accepted_at = ma.fields.DateTime(allow_none=True)
    ended_at = ma.fields.DateTime(allow_none=True)
    duration_ms = ma.fields.Integer(allow_none=True)
    stdout = ma.fields.String(required=True, metadata={"description": "last 4 KiB, masked"})
    stderr = ma.fields.String(required=True, metadata={"description": "last 4 KiB, masked"})
    stdout_bytes = ma.fields.Integer(required=True)
    stderr_bytes = ma.fields.Integer(required=True)
    stdout_capped = ma.fields.Boolean(required=True)
    stderr_capped = ma.fields.Boolean(required=True)


class LogQuerySchema(StrictSchema):
    after_seq = ma.fields.Integer(load_default=0, validate=ma.validate.Range(min=0))
    limit = ma.fields.Integer(load_default=200, validate=ma.validate.Range(min=1, max=1000))


class LogChunkSchema(ma.Schema):
    seq = ma.fields.Integer(required=True)
    stream = ma.fields.String(required=True)
    data = ma.fields.String(required=True)
    at = ma.fields.DateTime(required=True)


class LogPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(LogChunkSchema), required=True)
    next_after_seq = ma.fields.Integer(
        allow_none=True, required=True, metadata={"description": "after_seq of the next page"}
    )


class ReasonSchema(StrictSchema):
    reason = ma.fields.String(load_default="", validate=ma.validate.Length(max=1000))


class DenialSchema(ma.Schema):
    runner_id = ma.fields.String(required=True)
    reason = ma.fields.String(required=True)
    created_by = ma.fields.String(required=True)
    created_at = ma.fields.DateTime(required=True)


class DenialListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(DenialSchema), required=True)


class RevocationSchema(ma.Schema):
    fingerprint = ma.fields.String(required=True)
    runner_id = ma.fields.String(required=True)
    not_after = ma.fields.DateTime(required=True)
    revoked_at = ma.fields.DateTime(allow_none=True)
    revoked_by = ma.fields.String(allow_none=True)
    reason = ma.fields.String(allow_none=True)


class RevocationListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(RevocationSchema), required=True)


# ---- views of rows -------------------------------------------------------------------------


def runner_view(runner: Runner, denied: bool) -> dict[str, Any]:
    """The API's view of a runner; ``status`` is online only while its gateway keeps it fresh."""
    return {
        "id": runner.id,
        "name": runner.name,
        "status": "online" if is_online(runner, utcnow()) else "offline",
        "last_seen_at": runner.last_seen_at,
        "labels": json.loads(runner.labels_json or "{}"),
        "inventory": json.loads(runner.inventory_json or "{}"),
        "cert_not_after": runner.cert_not_after,
        "enrolled_at": runner.enrolled_at,
        "retired_at": runner.retired_at,
        "denied": denied,
    }


def _denial_view(denial: RunnerDenial) -> dict[str, Any]:
    return {
        "runner_id": denial.runner_id,
        "reason": denial.reason,
        "created_by": denial.created_by,
        "created_at": denial.created_at,
    }


def _revocation_view(certificate: RunnerCertificate) -> dict[str, Any]:
    return {
        "fingerprint": certificate.fingerprint,
        "runner_id": certificate.runner_id,
        "not_after": certificate.not_after,
        "revoked_at": certificate.revoked_at,
        "revoked_by": certificate.revoked_by,
        "reason": certificate.revoke_reason,
    }


def _runner(runner_id: str) -> Runner:
    return Runner.get_for_tenant(tenant_id(), Runner.id == runner_id, what=f"runner {runner_id!r}")


def _fingerprint(value: str) -> str:
    if not _FINGERPRINT.fullmatch(value):
        raise ValidationError(
            f"expected a certificate SHA-256 as 64 hex digits, got {value[:80]!r}",
            errors={"sha256": ["expected 64 hex digits"]},
        )
    return value.lower()


# ---- runners -------------------------------------------------------------------------------


@blp.route("/runners")
class Runners(MethodView):
    @blp.arguments(RunnerListQuerySchema, location="query")
    @blp.response(200, RunnerListSchema)
    @require(READ)
    def get(self, query: dict[str, Any]) -> Any:
        """The tenant's runners (retired ones only with ``include_retired``), by name."""
        rows = Runner.for_tenant(tenant_id()).order_by(Runner.name, Runner.id)
        if not query["include_retired"]:
            rows = rows.where(Runner.retired_at.is_null())
        denied = {
            row[0] for row in RunnerDenial.for_tenant(tenant_id(), RunnerDenial.runner).tuples()
        }
        return {"items": [runner_view(runner, runner.id in denied) for runner in rows]}


@blp.route("/runners/<string:runner_id>")
class RunnerById(MethodView):
    @blp.response(200, RunnerDetailSchema)
    @require(READ)
    def get(self, runner_id: str) -> Any:
        """One runner with its denial and certificates."""
        runner = _runner(runner_id)
        denial = RunnerDenial.get_or_none(RunnerDenial.runner == runner.id)
        certificates = (
            RunnerCertificate.for_tenant(tenant_id())
            .where(RunnerCertificate.runner == runner.id)
            .order_by(RunnerCertificate.issued_at.desc())
        )
        return {
            **runner_view(runner, denial is not None),
            "denial": _denial_view(denial) if denial is not None else None,
            "certificates": list(certificates),
        }

    @blp.response(204)
    @require(OPS_ADMIN)
    def delete(self, runner_id: str) -> None:
        """Retire the runner: its stream is cut, it is never let in or chosen again."""
        denylist.retire(
            tenant_id(), runner_id, actor(), settings=_settings(), dispatcher=_dispatcher()
        )


@blp.route("/runners/enrollment-tokens")
class EnrollmentTokens(MethodView):
    @blp.response(200, TokenListSchema)
    @require(OPS_ADMIN)
    def get(self) -> Any:
        """The tenant's enrollment tokens (never the tokens themselves), newest first."""
        return {
            "items": [
                {
                    "id": row.id,
                    "labels": json.loads(row.labels_json),
                    "created_by": row.created_by,
                    "created_at": row.created_at,
                    "expires_at": row.expires_at,
                    "used_at": row.used_at,
                    "runner_id": row.runner_id,
                }
                for row in tokens.list_tokens(tenant_id())
            ]
        }

    @blp.arguments(TokenRequestSchema)
    @blp.response(201, TokenAnswerSchema)
    @require(OPS_ADMIN)
    def post(self, body: dict[str, Any]) -> Any:
        """A single-use enrollment token (at most 600 s) and the command line that uses it."""
        token, row = tokens.create_token(
            tenant_id(), actor(), body["labels"], body["ttl_seconds"], _settings()
        )
        return tokens.enrollment_answer(token, row, _settings())


# ---- job results ---------------------------------------------------------------------------


def _job(job_id: str) -> RunnerJob:
    return RunnerJob.get_for_tenant(tenant_id(), RunnerJob.id == job_id, what=f"job {job_id!r}")


@blp.route("/runner/job-results/<string:job_id>")
class JobResult(MethodView):
    @blp.response(200, JobResultSchema)
    @require(READ)
    def get(self, job_id: str) -> Any:
        """A job's status, exit code, timings and the masked tails of its output."""
        job = _job(job_id)
        step_id = None
        if job.step_run_id:
            step_id = StepRun.select(StepRun.step_id).where(StepRun.id == job.step_run_id).scalar()
        return {
            "id": job.id,
            "runner_id": job.runner_id,
            "execution_id": job.execution_id,
            "step_id": step_id,
            "attempt": job.attempt,
            "status": job.status,
            "exit_code": job.exit_code,
            "error": job.error,
            "timeout_seconds": job.timeout_seconds,
            "created_at": job.created_at,
            "dispatched_at": job.dispatched_at,
            "accepted_at": job.accepted_at,
            "ended_at": job.ended_at,
            "duration_ms": job.duration_ms,
            "stdout": job.stdout_tail,
            "stderr": job.stderr_tail,
            "stdout_bytes": job.stdout_bytes,
            "stderr_bytes": job.stderr_bytes,
            "stdout_capped": job.stdout_capped,
            "stderr_capped": job.stderr_capped,
        }


@blp.route("/runner/job-results/<string:job_id>/log")
class JobLog(MethodView):
    @blp.arguments(LogQuerySchema, location="query")
    @blp.response(200, LogPageSchema)
    @require(READ)
    def get(self, query: dict[str, Any], job_id: str) -> Any:
        """The job's output chunks in order (both streams), ``limit`` after ``after_seq``."""
        job = _job(job_id)
        rows = list(
            RunnerJobLog.select(
                RunnerJobLog.seq, RunnerJobLog.stream, RunnerJobLog.data, RunnerJobLog.at
            )
            .where(RunnerJobLog.job == job.id, RunnerJobLog.seq > query["after_seq"])
            .order_by(RunnerJobLog.seq)
            .limit(query["limit"] + 1)
        )
        more = len(rows) > query["limit"]
        rows = rows[: query["limit"]]
        return {
            "items": [
                {"seq": row.seq, "stream": row.stream, "data": row.data, "at": row.at}
                for row in rows
            ],
            "next_after_seq": rows[-1].seq if more else None,
        }


# ---- denylist and revocations ---------------------------------------------------------------


@blp.route("/ops/runner-denylist")
class Denylist(MethodView):
    @blp.response(200, DenialListSchema)
    @require(OPS_ADMIN)
    def get(self) -> Any:
        """The tenant's denied runners, newest first."""
        return {"items": [_denial_view(row) for row in denylist.denials(tenant_id())]}


@blp.route("/ops/runner-denylist/<string:runner_id>")
class DenylistEntry(MethodView):
    @blp.arguments(ReasonSchema)
    @blp.response(200, DenialSchema)
    @require(OPS_ADMIN)
    def put(self, body: dict[str, Any], runner_id: str) -> Any:
        """Deny the runner: its stream is cut, reconnects refused, its running job's step fails."""
        denial = denylist.deny(
            tenant_id(),
            runner_id,
            body["reason"],
            actor(),
            settings=_settings(),
            dispatcher=_dispatcher(),
        )
        return _denial_view(denial)

    @blp.response(204)
    @require(OPS_ADMIN)
    def delete(self, runner_id: str) -> None:
        """Take the runner off the denylist (it may connect again)."""
        denylist.allow(
            tenant_id(), runner_id, actor(), settings=_settings(), dispatcher=_dispatcher()
        )


@blp.route("/ops/runner-revocations")
class Revocations(MethodView):
    @blp.response(200, RevocationListSchema)
    @require(OPS_ADMIN)
    def get(self) -> Any:
        """The tenant's revoked runner certificates, newest first."""
        return {"items": [_revocation_view(row) for row in denylist.revocations(tenant_id())]}


@blp.route("/ops/runner-revocations/<string:sha256>")
class Revocation(MethodView):
    @blp.arguments(ReasonSchema)
    @blp.response(200, RevocationSchema)
    @require(OPS_ADMIN)
    def put(self, body: dict[str, Any], sha256: str) -> Any:
        """Revoke a runner certificate by its SHA-256: connections presenting it are cut and refused."""
        certificate = denylist.revoke_certificate(
            tenant_id(),
            _fingerprint(sha256),
            body["reason"],
            actor(),
            settings=_settings(),
            dispatcher=_dispatcher(),
        )
        return _revocation_view(certificate)

    @blp.response(204)
    @require(OPS_ADMIN)
    def delete(self, sha256: str) -> None:
        """Lift the revocation of a certificate."""
        denylist.unrevoke_certificate(
            tenant_id(),
            _fingerprint(sha256),
            actor(),
            settings=_settings(),
            dispatcher=_dispatcher(),
        )
