"""A real gateway process: enrollment with single-use tokens, mTLS, per-RPC checks, renewal, cuts."""

from __future__ import annotations

import _ssl
import dataclasses
import json
import os
import signal
import socket
import ssl
import time

import grpc
import pytest

from ops.rpc import runner_pb2
from shared import pki
from shared.db import connection, write_transaction
from shared.models import (
    AuditLog,
    Runner,
    RunnerCertificate,
    RunnerControl,
    RunnerDenial,
    RunnerEnrollmentToken,
    utcnow,
)
from shared.runner_keys import load_ca


def _status(runner_id: str) -> str:
    with connection():
        return Runner.get_by_id(runner_id).status


def _wait_status(runner_id: str, status: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _status(runner_id) != status:
        assert time.monotonic() < deadline, f"runner {runner_id} not {status} in {timeout} s"
        time.sleep(0.1)


def _deny(runner_id: str, tenant_id: str, reason: str) -> None:
    """What the denylist does to the tables: a denial row and a bumped control version."""
    with connection(), write_transaction():
        RunnerDenial.create(runner=runner_id, tenant=tenant_id, reason=reason, created_by="admin")
        if not RunnerControl.update(version=RunnerControl.version + 1).execute():
            RunnerControl.create(id=1, version=1)


def _revoke(fingerprint: str) -> None:
    with connection(), write_transaction():
        RunnerCertificate.update(revoked_at=utcnow(), revoked_by="admin").where(
            RunnerCertificate.fingerprint == fingerprint
        ).execute()
        if not RunnerControl.update(version=RunnerControl.version + 1).execute():
            RunnerControl.create(id=1, version=1)


def test_enroll_gives_a_certificate_naming_the_runner_and_merges_labels(gateway, new_token):
    token = new_token(labels={"role": "db", "zone": "admin-zone"})

    enrolled = gateway.enroll(token, labels={"zone": "mine", "disk": "ssd"})

    name = pki.runner_name(enrolled.certificate_pem)
    assert (name.tenant_id, name.runner_id) == (enrolled.tenant_id, enrolled.runner_id)
    response = enrolled.response
    assert response.ca_certificate_pem == gateway.ca_pem
    assert len(response.job_signing_public_key) == 32
    assert response.gateway_address == f"127.0.0.1:{gateway.port}"
    assert abs(response.not_after - (time.time() + 3600)) < 60
    with connection():
        runner = Runner.get_by_id(enrolled.runner_id)
        assert json.loads(runner.labels_json) == {"role": "db", "zone": "admin-zone", "disk": "ssd"}
        assert '"hostname": "host-1"' in runner.inventory_json
        assert runner.session_token_hash != enrolled.session_token  # stored hashed
        certificate = RunnerCertificate.get_by_id(pki.fingerprint(enrolled.certificate_pem))
        assert certificate.runner_id == enrolled.runner_id
        actions = [row.action for row in AuditLog.select().order_by(AuditLog.seq)]
        assert "runner.enroll" in actions
        assert enrolled.session_token not in str(
            [row.metadata_redacted for row in AuditLog.select()]
        )


def test_the_same_token_again_is_refused(gateway, new_token):
    token = new_token()
    gateway.enroll(token)

    with pytest.raises(grpc.RpcError) as refused:
        gateway.enroll(token)

    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.details() == "enrollment token already used"
    with connection():
        assert AuditLog.select().where(AuditLog.action == "runner.enroll_refused").count() == 1


def test_an_expired_or_unknown_token_is_refused(gateway, new_token):
    expired = new_token(ttl_seconds=-1)

    with pytest.raises(grpc.RpcError) as refused:
        gateway.enroll(expired)
    assert refused.value.details() == "enrollment token expired"

    with pytest.raises(grpc.RpcError) as unknown:
        gateway.enroll("not-a-token")
    assert unknown.value.details() == "unknown enrollment token"
    with connection():
        assert RunnerEnrollmentToken.get().used_at is None
        assert Runner.select().count() == 0


def test_the_enroll_port_presents_the_chain_with_the_ca(gateway):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", gateway.enroll_port), timeout=5) as raw:
        with context.wrap_socket(raw) as tls:
            # Python 3.13 has SSLSocket.get_unverified_chain(); before, only the _sslobj does.
            chain = tls._sslobj.get_unverified_chain()  # noqa: SLF001

    # The DER constant lives in _ssl before 3.13 too.
    ders = [certificate.public_bytes(_ssl.ENCODING_DER) for certificate in chain]
    assert len(ders) == 2
    assert pki.fingerprint(ders[-1]) == load_ca(gateway.settings).sha256


def test_connect_marks_the_runner_online_and_its_end_offline(gateway, new_token):
    enrolled = gateway.enroll(new_token())

    stream = gateway.connect(enrolled)
    _wait_status(enrolled.runner_id, "online")
    with connection():
        runner = Runner.get_by_id(enrolled.runner_id)
        assert runner.session_epoch == 1 and runner.gateway_id and runner.last_seen_at
    stream.send(runner_pb2.RunnerMessage(heartbeat=runner_pb2.Heartbeat(sent_at_ms=1)))
    stream.close()

    assert stream.wait_ended(10) is None
    _wait_status(enrolled.runner_id, "offline")


def test_a_newer_stream_supersedes_and_the_old_ones_end_keeps_it_online(gateway, new_token):
    enrolled = gateway.enroll(new_token())
    first = gateway.connect(enrolled)
    _wait_status(enrolled.runner_id, "online")
    gateway.renew(enrolled)
    second = gateway.connect(enrolled)
    deadline = time.monotonic() + 10
    while True:
        with connection():
            if Runner.get_by_id(enrolled.runner_id).session_epoch == 2:
                break
        assert time.monotonic() < deadline
        time.sleep(0.1)

    first.close()
    first.wait_ended(10)
    time.sleep(0.5)

    assert _status(enrolled.runner_id) == "online"
    second.close()
    second.wait_ended(10)
    _wait_status(enrolled.runner_id, "offline")


def test_mtls_without_a_client_certificate_is_refused(gateway):
    stub = gateway.gateway_stub()

    with pytest.raises(grpc.RpcError) as refused:
        stub.Renew(runner_pb2.RenewRequest(csr_pem=b"x"), timeout=10)

    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # the handshake fails


def test_a_bad_session_token_is_refused(gateway, new_token):
    enrolled = gateway.enroll(new_token())

    with pytest.raises(grpc.RpcError) as refused:
        gateway.renew(enrolled, token="wrong")

    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "bad session token" in refused.value.details()


def test_renew_gives_a_new_certificate_for_the_same_runner(gateway, new_token):
    enrolled = gateway.enroll(new_token())
    old_fingerprint = pki.fingerprint(enrolled.certificate_pem)

    response = gateway.renew(enrolled)

    assert pki.runner_name(response.certificate_pem).runner_id == enrolled.runner_id
    assert pki.fingerprint(response.certificate_pem) != old_fingerprint
    with connection():
        assert (
            RunnerCertificate.select().where(RunnerCertificate.runner == enrolled.runner_id).count()
            == 2
        )
        assert Runner.get_by_id(enrolled.runner_id).cert_fingerprint == pki.fingerprint(
            response.certificate_pem
        )
    gateway.renew(enrolled)  # the new certificate works too


def test_a_denied_runner_is_cut_within_5_s_and_refused_after(gateway, new_token):
    enrolled = gateway.enroll(new_token())
    stream = gateway.connect(enrolled)
    _wait_status(enrolled.runner_id, "online")

    started = time.monotonic()
    _deny(enrolled.runner_id, enrolled.tenant_id, "compromised host")
    error = stream.wait_ended(10)

    assert time.monotonic() - started <= 5
    assert error is not None and error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == f"runner {enrolled.runner_id} is on the denylist: compromised host"
    again = gateway.connect(enrolled)
    refused = again.wait_ended(10)
    assert refused is not None and refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "denylist" in refused.details()
    _wait_status(enrolled.runner_id, "offline")


def test_a_revoked_certificate_is_cut_and_refused(gateway, new_token):
    enrolled = gateway.enroll(new_token())
    stream = gateway.connect(enrolled)
    _wait_status(enrolled.runner_id, "online")
    fingerprint = pki.fingerprint(enrolled.certificate_pem)

    _revoke(fingerprint)

    error = stream.wait_ended(6)
    assert error is not None and error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == f"certificate {fingerprint[:16]} was revoked"
    with pytest.raises(grpc.RpcError) as refused:
        gateway.renew(enrolled)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "was revoked" in refused.value.details()


def test_a_stream_ends_when_its_certificate_expires(gateway_settings, start_gateway, new_token):
    settings = dataclasses.replace(gateway_settings, runner_cert_ttl_seconds=4)
    gateway = start_gateway(settings)
    enrolled = gateway.enroll(new_token())
    stream = gateway.connect(enrolled)

    error = stream.wait_ended(10)

    assert error is not None and error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == "certificate expired"
    with pytest.raises(grpc.RpcError):
        gateway.renew(enrolled)  # the handshake refuses the expired certificate now


def test_session_tokens_rotate_over_the_stream_and_the_old_one_has_grace(
    gateway_settings, start_gateway, new_token
):
    settings = dataclasses.replace(gateway_settings, runner_token_rotation_seconds=2)
    gateway = start_gateway(settings)
    enrolled = gateway.enroll(new_token())
    stream = gateway.connect(enrolled)

    rotation = stream.wait_for(lambda message: message.HasField("token_rotation"), 10)
    stream.send(runner_pb2.RunnerMessage(ack=runner_pb2.Ack(kind="token")))

    new_token_value = rotation.token_rotation.token
    assert new_token_value and new_token_value != enrolled.session_token
    assert rotation.token_rotation.previous_valid_until > time.time()
    gateway.renew(enrolled)  # the old token, within its grace
    gateway.renew(enrolled, token=new_token_value)
    stream.close()


def test_sigterm_ends_the_streams_and_stops_the_gateway(gateway, new_token):
    enrolled = gateway.enroll(new_token())
    stream = gateway.connect(enrolled)
    _wait_status(enrolled.runner_id, "online")
    process = gateway.process.process

    started = time.monotonic()
    os.killpg(process.pid, signal.SIGTERM)
    code = process.wait(10)

    assert code == 0, gateway.process.output()[-3000:]
    assert time.monotonic() - started < 8
    error = stream.wait_ended(5)
    assert error is not None and error.code() == grpc.StatusCode.UNAVAILABLE
    assert _status(enrolled.runner_id) == "offline"
    output = gateway.process.output()
    assert f"runner {enrolled.runner_id} connected" in output
    assert f"runner {enrolled.runner_id} disconnected" in output
    assert enrolled.session_token not in output


def test_a_runner_back_with_its_rotated_out_token_gets_a_new_one_at_once(
    gateway_settings, start_gateway, new_token
):
    settings = dataclasses.replace(
        gateway_settings, runner_token_rotation_seconds=2, runner_token_grace_seconds=60
    )
    gateway = start_gateway(settings)
    enrolled = gateway.enroll(new_token())
    stream = gateway.connect(enrolled)
    stream.wait_for(lambda message: message.HasField("token_rotation"), 10)
    stream.close()  # as if the rotation was lost with the connection: never stored
    stream.wait_ended(5)

    again = gateway.connect(enrolled)  # still the old token, within its grace
    rotation = again.wait_for(lambda message: message.HasField("token_rotation"), 4)

    gateway.renew(enrolled)  # the old token stays valid through that rotation too
    gateway.renew(enrolled, token=rotation.token_rotation.token)
    again.close()
