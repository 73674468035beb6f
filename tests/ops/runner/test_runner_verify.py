"""A job runs only if Core signed it for this runner, it has not expired and its nonce is new."""

from __future__ import annotations

import time

import pytest

from ops.runner.verify import Job, Refusal, check_job
from shared.domain import job_signing
from tests.ops.runner.fakes import RUNNER, TENANT, FakeCore


def check(
    core: FakeCore,
    job_id: str,
    payload: bytes,
    signature: bytes,
    seen: dict[str, str] | None = None,
):
    return check_job(
        job_id,
        payload,
        signature,
        public_key=job_signing.public_key_raw(core.job_key),
        runner_id=RUNNER,
        tenant_id=TENANT,
        now_s=time.time(),
        nonce_owner=(seen or {}).get,
    )


def test_a_good_job_is_returned(core: FakeCore) -> None:
    job_id, payload, signature = core.signed_job(argv=["echo", "hi"], env={"A": "1"})

    job = check(core, job_id, payload, signature)

    assert isinstance(job, Job)
    assert job.job_id == job_id and job.argv == ["echo", "hi"] and job.env == {"A": "1"}


def test_a_signature_by_another_key_is_refused(core: FakeCore) -> None:
    job_id, payload, _ = core.signed_job()
    forged = job_signing.sign(job_signing.new_signing_key(), payload)

    assert check(core, job_id, payload, forged) == Refusal("bad signature")


def test_a_changed_payload_is_refused(core: FakeCore) -> None:
    job_id, payload, signature = core.signed_job(argv=["true"])
    tampered = payload.replace(b'"true"', b'"reboot"')

    assert check(core, job_id, tampered, signature) == Refusal("bad signature")


@pytest.mark.parametrize(
    ("overrides", "reason_start"),
    [
        ({"runner_id": "rn_other"}, "meant for runner rn_other"),
        ({"tenant_id": "tn_other"}, "meant for tenant tn_other"),
        ({"not_after": 1_700_000_000}, "expired at 2023-11-14T22:13:20Z"),
        ({"argv": None, "script": None}, "malformed job payload"),
    ],
)
def test_refusals_name_the_reason(core: FakeCore, overrides: dict, reason_start: str) -> None:
    job_id, payload, signature = core.signed_job(**overrides)

    refusal = check(core, job_id, payload, signature)

    assert isinstance(refusal, Refusal)
    assert refusal.reason.startswith(reason_start)


def test_a_seen_nonce_is_refused_as_replayed(core: FakeCore) -> None:
    job_id, payload, signature = core.signed_job(nonce="abc")

    refusal = check(core, job_id, payload, signature, seen={"abc": "jb_first"})

    assert refusal == Refusal("replayed nonce (first seen with job jb_first)")


def test_a_payload_delivered_under_another_job_id_is_refused(core: FakeCore) -> None:
    _, payload, signature = core.signed_job(job_id="jb_signed")

    refusal = check(core, "jb_envelope", payload, signature)

    assert isinstance(refusal, Refusal)
    assert refusal.reason == "job id mismatch: delivered as jb_envelope, signed for jb_signed"
