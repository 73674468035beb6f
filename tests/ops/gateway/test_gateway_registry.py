"""Enrollment and the runner registry on every database backend: single use under concurrency, re-enrollment, authentication."""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from datetime import timedelta

import pytest

from shared import pki
from shared.db import connection
from shared.domain import job_signing
from shared.models import (
    AuditLog,
    Runner,
    RunnerCertificate,
    RunnerDenial,
    RunnerEnrollmentToken,
    Tenant,
    utcnow,
)
from shared.runner_keys import load_ca
from shared.runners import enrollment, registry
from shared.runners.enrollment import EnrollmentRefused, EnrollmentRequest
from shared.runners.registry import RunnerRefused

pytestmark = pytest.mark.backends


@pytest.fixture
def tenant(db):
    return Tenant.create(name="Acme", slug="acme", mode="saas")


@pytest.fixture
def ca(settings):
    return load_ca(settings)


def _token(tenant, *, labels=None, ttl_seconds=600) -> str:
    token = secrets.token_urlsafe(32)
    RunnerEnrollmentToken.create(
        tenant=tenant.id,
        token_hash=hashlib.sha256(token.encode()).hexdigest(),
        labels_json=json.dumps(labels or {}),
        created_by="admin",
        expires_at=utcnow() + timedelta(seconds=ttl_seconds),
    )
    return token


def _request(token, *, identity=None, runner_id="", labels=None, proof=None):
    identity = identity or job_signing.new_signing_key()
    csr = pki.create_csr(pki.new_private_key(), "host")
    if runner_id and proof is None:
        proof = identity.sign(
            job_signing.reenroll_proof_message(runner_id, token, hashlib.sha256(csr).hexdigest())
        )
    return (
        EnrollmentRequest(
            token=token,
            csr_pem=csr,
            identity_public_key=job_signing.public_key_raw(identity),
            inventory={"hostname": "db-1"},
            labels=labels or {},
            runner_id=runner_id,
            proof=proof or b"",
        ),
        identity,
    )


def test_two_enrollments_with_one_token_exactly_one_wins(settings, tenant, ca, database_url):
    token = _token(tenant)
    outcomes: list[object] = []
    barrier = threading.Barrier(2)

    def attempt() -> None:
        request, _ = _request(token)
        barrier.wait()
        with connection():
            try:
                outcomes.append(enrollment.enroll(settings, ca, request))
            except EnrollmentRefused as refusal:
                outcomes.append(str(refusal))

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["Enrollment", "str"]
    assert "enrollment token already used" in outcomes
    assert Runner.select().count() == 1
    assert RunnerCertificate.select().count() == 1


def test_re_enrollment_keeps_the_runner_id_with_a_valid_proof(settings, tenant, ca):
    first_request, identity = _request(_token(tenant), labels={"role": "web"})
    first = enrollment.enroll(settings, ca, first_request)
    token = _token(tenant, labels={"zone": "b"})

    again = enrollment.enroll(
        settings, ca, _request(token, identity=identity, runner_id=first.runner_id)[0]
    )

    assert again.runner_id == first.runner_id and again.reenrolled
    assert pki.runner_name(again.certificate_pem).runner_id == first.runner_id
    assert RunnerEnrollmentToken.get(
        RunnerEnrollmentToken.token_hash == enrollment.token_hash(token)
    ).used_at
    assert json.loads(Runner.get_by_id(first.runner_id).labels_json) == {"role": "web", "zone": "b"}
    assert RunnerCertificate.select().count() == 2
    actions = [row.action for row in AuditLog.select().order_by(AuditLog.seq)]
    assert actions.count("runner.enroll") == 1 and actions.count("runner.reenroll") == 1


def test_re_enrollment_with_another_key_or_a_bad_proof_is_refused(settings, tenant, ca):
    first = enrollment.enroll(settings, ca, _request(_token(tenant))[0])

    with pytest.raises(EnrollmentRefused, match="identity key differs"):
        enrollment.enroll(settings, ca, _request(_token(tenant), runner_id=first.runner_id)[0])
    identity_public = bytes.fromhex(Runner.get_by_id(first.runner_id).identity_public_key)
    token = _token(tenant)
    request, _ = _request(token, runner_id=first.runner_id, proof=b"\x00" * 64)
    request = EnrollmentRequest(**{**request.__dict__, "identity_public_key": identity_public})
    with pytest.raises(EnrollmentRefused, match="proof does not verify"):
        enrollment.enroll(settings, ca, request)
    # A refused re-enrollment does not use the token up.
    assert (
        RunnerEnrollmentToken.get(
            RunnerEnrollmentToken.token_hash == enrollment.token_hash(token)
        ).used_at
        is None
    )


def test_a_denied_runner_cannot_re_enroll(settings, tenant, ca):
    request, identity = _request(_token(tenant))
    first = enrollment.enroll(settings, ca, request)
    RunnerDenial.create(
        runner=first.runner_id, tenant=tenant.id, reason="stolen", created_by="admin"
    )

    with pytest.raises(EnrollmentRefused, match="is on the denylist: stolen"):
        enrollment.enroll(
            settings, ca, _request(_token(tenant), identity=identity, runner_id=first.runner_id)[0]
        )


def test_authenticate_refuses_with_a_reason(settings, tenant, ca):
    enrolled = enrollment.enroll(settings, ca, _request(_token(tenant))[0])
    runner_id, token = enrolled.runner_id, enrolled.session_token
    fingerprint = pki.fingerprint(enrolled.certificate_pem)

    assert registry.authenticate(tenant.id, runner_id, fingerprint, token).id == runner_id
    cases = [
        (("t_other", runner_id, fingerprint, token), f"unknown runner {runner_id}"),
        ((tenant.id, runner_id, "ab" * 32, token), "is not one issued to"),
        ((tenant.id, runner_id, fingerprint, "wrong"), "bad session token"),
    ]
    for arguments, message in cases:
        with pytest.raises(RunnerRefused, match=message):
            registry.authenticate(*arguments)
    later = utcnow() + timedelta(seconds=settings.runner_cert_ttl_seconds + 60)
    with pytest.raises(RunnerRefused, match="certificate expired") as expired:
        registry.authenticate(tenant.id, runner_id, fingerprint, token, now=later)
    assert expired.value.code == registry.UNAUTHENTICATED
    RunnerCertificate.update(revoked_at=utcnow()).execute()
    with pytest.raises(RunnerRefused, match=f"certificate {fingerprint[:16]} was revoked"):
        registry.authenticate(tenant.id, runner_id, fingerprint, token)
    Runner.update(retired_at=utcnow()).execute()
    with pytest.raises(RunnerRefused, match="was retired") as retired:
        registry.authenticate(tenant.id, runner_id, fingerprint, token)
    assert retired.value.code == registry.PERMISSION_DENIED


def test_a_rotated_out_token_is_valid_for_its_grace_only(settings, tenant, ca):
    enrolled = enrollment.enroll(settings, ca, _request(_token(tenant))[0])
    fingerprint = pki.fingerprint(enrolled.certificate_pem)
    old = enrolled.session_token

    new = registry.rotate_token(enrolled.runner_id, 120)

    registry.authenticate(tenant.id, enrolled.runner_id, fingerprint, new)
    registry.authenticate(tenant.id, enrolled.runner_id, fingerprint, old)
    after_grace = utcnow() + timedelta(seconds=121)
    with pytest.raises(RunnerRefused, match="bad session token"):
        registry.authenticate(tenant.id, enrolled.runner_id, fingerprint, old, now=after_grace)
    registry.authenticate(tenant.id, enrolled.runner_id, fingerprint, new, now=after_grace)


def test_only_the_current_epochs_end_marks_a_runner_offline(settings, tenant, ca):
    runner_id = enrollment.enroll(settings, ca, _request(_token(tenant))[0]).runner_id

    first = registry.mark_online(runner_id, "gw-1", {"hostname": "db-1"})
    second = registry.mark_online(runner_id, "gw-2", {})
    registry.mark_offline(runner_id, first)

    runner = Runner.get_by_id(runner_id)
    assert (first, second) == (1, 2)
    assert (runner.status, runner.gateway_id) == ("online", "gw-2")
    registry.mark_offline(runner_id, second)
    assert Runner.get_by_id(runner_id).status == "offline"


def test_touch_refreshes_online_runners_in_one_update(settings, tenant, ca):
    ids = [enrollment.enroll(settings, ca, _request(_token(tenant))[0]).runner_id for _ in range(3)]
    for runner_id in ids[:2]:
        registry.mark_online(runner_id, "gw", {})
    later = utcnow() + timedelta(seconds=30)

    assert registry.touch(ids, now=later) == 2
    assert Runner.get_by_id(ids[0]).last_seen_at == later
    assert Runner.get_by_id(ids[2]).last_seen_at is None


def test_standing_refusals_name_denied_revoked_and_retired_runners(settings, tenant, ca):
    runners = [enrollment.enroll(settings, ca, _request(_token(tenant))[0]) for _ in range(4)]
    streams = [(r.runner_id, pki.fingerprint(r.certificate_pem)) for r in runners]
    RunnerDenial.create(runner=streams[0][0], tenant=tenant.id, reason="why", created_by="a")
    RunnerCertificate.update(revoked_at=utcnow()).where(
        RunnerCertificate.fingerprint == streams[1][1]
    ).execute()
    Runner.update(retired_at=utcnow()).where(Runner.id == streams[2][0]).execute()

    refusals = registry.standing_refusals(streams)

    assert refusals == {
        streams[0]: f"runner {streams[0][0]} is on the denylist: why",
        streams[1]: f"certificate {streams[1][1][:16]} was revoked",
        streams[2]: f"runner {streams[2][0]} was retired",
    }
