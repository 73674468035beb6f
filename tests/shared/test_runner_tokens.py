"""Enrollment tokens: stored as a hash, at most 600 s, labels checked, audited without the token."""

from __future__ import annotations

import hashlib
import json
import shlex

import pytest

from shared.errors import ValidationError
from shared.models import AuditLog, RunnerEnrollmentToken, Tenant
from shared.runner_keys import load_ca
from shared.runners import tokens


@pytest.fixture
def tenant(db):
    return Tenant.create(name="Acme", slug="acme", mode="saas")


def test_only_the_hash_is_stored_and_the_audit_row_has_no_token(tenant, make_settings):
    settings = make_settings()

    token, row = tokens.create_token(tenant.id, "admin", {"role": "db"}, None, settings)

    stored = RunnerEnrollmentToken.get_by_id(row.id)
    audit_rows = list(AuditLog.select())
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps([row.__data__ for row in audit_rows], default=str)
    assert [row.action for row in audit_rows] == ["runner.enrollment_token_created"]
    assert json.loads(stored.labels_json) == {"role": "db"}


@pytest.mark.parametrize(
    ("setting", "requested", "expected"),
    [("600", None, 600), ("3600", None, 600), ("300", 60, 60), ("300", 500, 300)],
)
def test_the_lifetime_is_at_most_the_setting_and_600_s(make_settings, setting, requested, expected):
    settings = make_settings(runner_enrollment_token_ttl_seconds=setting)

    assert tokens.token_ttl_seconds(settings, requested) == expected


@pytest.mark.parametrize("labels", [{"bad key": "x"}, {"role": "has space"}, {"k": ""}])
def test_bad_labels_are_refused(tenant, make_settings, labels):
    with pytest.raises(ValidationError, match="labels are name=value"):
        tokens.create_token(tenant.id, "admin", labels, None, make_settings())


def test_the_answer_carries_the_gateway_the_ca_fingerprint_and_a_command(tenant, make_settings):
    settings = make_settings(gateway_advertise_host="core.example.test", gateway_enroll_port="9443")
    token, row = tokens.create_token(tenant.id, "admin", {"zone": "a", "role": "db"}, 60, settings)

    answer = tokens.enrollment_answer(token, row, settings)

    ca = load_ca(settings).sha256
    assert answer["gateway"] == "core.example.test:9443" and answer["ca_sha256"] == ca
    assert shlex.split(answer["command"]) == [
        "aisopsflow",
        "runner",
        "enroll",
        "--gateway",
        "core.example.test:9443",
        "--token",
        token,
        "--ca-sha256",
        ca,
        "--label",
        "role=db",
        "--label",
        "zone=a",
    ]
