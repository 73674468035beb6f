"""Kakao through the API: templates, providers, send-test and delivery events.

A loopback server speaks the provider contract (SPEC §6.4) here; the real mock
provider process is exercised end to end in tests/worker/test_kakao_flow.py.
"""

from __future__ import annotations

import json
import uuid

import pytest

from shared.db import connection
from shared.models import AuditLog, KakaoMessage, Secret
from shared.plugin_token import load_plugin_token
from tests.api.test_query_counts import queries_for
from tests.support.http_server import LocalServer, QuietHandler
from tests.support.loopback import Loopback

ADMIN = "acme-admin"
TOKEN = f"provider-token-{uuid.uuid4().hex}"
SEND = "/kakao/alimtalk/send"


def accepted_answer(count: int, message_id: str = "relay-1") -> dict:
    return {
        "ok": True,
        "provider_message_id": message_id,
        "result": {"accepted": count, "failed": 0},
        "error": None,
    }


@pytest.fixture
def relay():
    """A provider speaking the contract: accepts everything as message ``relay-1``."""
    with Loopback() as server:
        server.route(SEND, body=accepted_answer(3))
        yield server


@pytest.fixture
def registered(world, relay):
    """acme's provider `relay` (with a credential) and its template `ops_alert_v1`."""
    provider = world.call(
        ADMIN,
        "POST",
        "/api/kakao/providers",
        json={"id": "relay", "base_url": relay.url, "credentials": {"token": TOKEN}},
    )
    assert provider.status_code == 201, provider.json
    template = world.call(
        ADMIN,
        "POST",
        "/api/kakao/templates",
        json={
            "provider_id": "relay",
            "template_id": "ops_alert_v1",
            "required_vars": ["system", "host"],
            "description": "ops alert",
        },
    )
    assert template.status_code == 201, template.json
    return template.json


def send_test(world, who=ADMIN, **body):
    payload = {"provider": "relay", "template_id": "ops_alert_v1", "vars": {}, **body}
    return world.call(who, "POST", "/api/kakao/send-test", json=payload)


# ---- templates ----------------------------------------------------------------------------


def test_template_crud_is_unique_per_provider_and_audited(world):
    body = {"provider_id": "relay", "template_id": "t1", "required_vars": ["host", "host"]}

    created = world.call(ADMIN, "POST", "/api/kakao/templates", json=body)
    again = world.call(ADMIN, "POST", "/api/kakao/templates", json=body)
    other_provider = world.call(
        ADMIN, "POST", "/api/kakao/templates", json={**body, "provider_id": "mock"}
    )
    item = f"/api/kakao/templates/{created.json['id']}"
    patched = world.call(ADMIN, "PATCH", item, json={"required_vars": ["system"], "active": False})

    assert created.status_code == 201
    assert created.json["required_vars"] == ["host"] and created.json["active"] is True
    assert again.status_code == 409 and "'t1'" in again.json["message"]
    assert other_provider.status_code == 201
    assert patched.status_code == 200
    assert patched.json["required_vars"] == ["system"] and patched.json["active"] is False
    assert len(world.call(ADMIN, "GET", "/api/kakao/templates").json) == 2
    assert world.call(ADMIN, "DELETE", item).status_code == 204
    assert world.call(ADMIN, "GET", item).status_code == 404
    actions = [row["action"] for row in world.call(ADMIN, "GET", "/api/audit").json]
    for action in ("kakao_template.create", "kakao_template.update", "kakao_template.delete"):
        assert action in actions


def test_bad_template_input_names_each_field(world):
    response = world.call(
        ADMIN,
        "POST",
        "/api/kakao/templates",
        json={"provider_id": "", "template_id": "t1", "required_vars": ["1st"], "colour": "red"},
    )

    assert response.status_code == 422
    assert set(response.json["errors"]["json"]) == {"provider_id", "required_vars", "colour"}
    assert "json.provider_id" in response.json["message"]


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "allowed"),
    [
        ("acme-viewer", "POST", "/api/kakao/templates", {"provider_id": "p", "template_id": "t"}, False),
        ("acme-operator", "POST", "/api/kakao/templates", {"provider_id": "p", "template_id": "t"}, True),
        ("acme-operator", "POST", "/api/kakao/providers", {"id": "p", "base_url": "http://10.0.0.8"}, False),
        ("acme-approver", "POST", "/api/kakao/send-test", {"provider": "p", "template_id": "t", "to": ["01012345678"]}, False),
        ("acme-operator", "POST", "/api/kakao/send-test", {"provider": "p", "template_id": "t", "to": ["01012345678"]}, True),
        ("acme-viewer", "GET", "/api/kakao/providers", None, True),
    ],
)  # fmt: skip
def test_roles(world, who, method, path, body, allowed):
    response = world.call(who, method, path, json=body)

    assert response.status_code < 500, response.json
    assert (response.status_code != 403) is allowed, response.json


# ---- providers ----------------------------------------------------------------------------


def test_a_provider_credential_is_write_only_and_kept_in_the_secrets_store(world, saas_app):
    created = world.call(
        ADMIN,
        "POST",
        "/api/kakao/providers",
        json={
            "id": "relay",
            "base_url": "http://10.1.2.3:8080/",
            "credentials": {"token": TOKEN},
        },
    )
    bare = world.call(
        ADMIN,
        "POST",
        "/api/kakao/providers",
        json={"id": "bare", "base_url": "http://10.0.0.1:8080"},
    )
    patched = world.call(
        ADMIN, "PATCH", "/api/kakao/providers/relay", json={"credentials": {"token": TOKEN + "-2"}}
    )
    listed = world.call(ADMIN, "GET", "/api/kakao/providers")
    secrets = world.call(ADMIN, "GET", "/api/secrets")
    delete_secret = world.call(ADMIN, "DELETE", "/api/secrets/kakao.provider.relay.token")

    assert created.status_code == 201
    assert created.json == {
        **created.json,
        "id": "relay",
        "base_url": "http://10.1.2.3:8080",
        "auth": "bearer",
        "active": True,
        "credentials_set": True,
    }
    assert bare.json["credentials_set"] is False
    assert patched.status_code == 200 and patched.json["credentials_set"] is True
    assert [item["id"] for item in listed.json] == ["bare", "relay"]
    assert secrets.json == []  # Core's own credentials are not tenant secrets
    assert delete_secret.status_code == 404
    everything = json.dumps([created.json, bare.json, patched.json, listed.json])
    assert TOKEN not in everything
    with connection():
        assert not [row for row in AuditLog.select() if TOKEN in row.metadata_redacted + row.target]
        assert Secret.select().where(Secret.key == "kakao.provider.relay.token").count() == 1
    assert world.call(ADMIN, "DELETE", "/api/kakao/providers/relay").status_code == 204
    with connection():
        assert Secret.select().where(Secret.key == "kakao.provider.relay.token").count() == 0


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"id": "p", "base_url": "http://10.0.0.8", "auth": "plugin_token"}, "auth", 422),
        ({"id": "p", "base_url": "ftp://x.test"}, "base_url", 422),
        ({"id": "p", "base_url": "file:///etc/passwd"}, "base_url", 422),
        ({"id": "p"}, "base_url", 422),
        ({"id": "no spaces", "base_url": "http://10.0.0.8"}, "id", 422),
        ({"id": "p", "base_url": "http://10.0.0.8", "credentials": {"password": "x"}}, "credentials", 422),
    ],
)  # fmt: skip
def test_bad_provider_input_names_the_field(world, body, field, status):
    response = world.call(ADMIN, "POST", "/api/kakao/providers", json=body)

    assert response.status_code == status
    assert field in response.json["errors"]["json"]
    assert response.json["code"] == status and "message" in response.json


def test_plugin_token_providers_are_refused_with_the_reason(world):
    response = world.call(
        ADMIN,
        "POST",
        "/api/kakao/providers",
        json={"id": "mine", "base_url": "http://evil.test", "auth": "plugin_token"},
    )

    assert "registered by the operator" in response.json["errors"]["json"]["auth"][0]


def test_a_duplicate_provider_is_a_conflict(world):
    body = {"id": "relay", "base_url": "http://10.0.0.7"}
    world.call(ADMIN, "POST", "/api/kakao/providers", json=body)

    assert world.call(ADMIN, "POST", "/api/kakao/providers", json=body).status_code == 409


@pytest.mark.parametrize("path", ["/api/kakao/providers", "/api/kakao/templates"])
def test_kakao_lists_cost_a_fixed_number_of_queries(world, path):
    def add(number: int) -> None:
        world.call(
            ADMIN,
            "POST",
            "/api/kakao/providers",
            json={"id": f"p{number}", "base_url": "http://10.0.0.8", "credentials": {"token": "t"}},
        )
        world.call(
            ADMIN,
            "POST",
            "/api/kakao/templates",
            json={"provider_id": "p", "template_id": f"t{number}"},
        )

    add(0)
    few = queries_for(world, path)
    for number in range(1, 6):
        add(number)

    assert queries_for(world, path) == few


# ---- send-test ----------------------------------------------------------------------------


def test_missing_vars_are_named_and_nothing_is_sent(world, registered, relay):
    response = send_test(world, to=["01012345678"], vars={"system": "  "})

    assert response.status_code == 422
    assert set(response.json["errors"]["json"]["vars"]) == {"system", "host"}
    assert "system" in response.json["message"] and "host" in response.json["message"]
    assert relay.count(SEND) == 0


def test_inactive_or_unknown_template_and_provider_are_refused(world, registered, relay):
    world.call(ADMIN, "PATCH", f"/api/kakao/templates/{registered['id']}", json={"active": False})
    vars_ = {"system": "prod", "host": "db-1"}

    inactive = send_test(world, to=["01012345678"], vars=vars_)
    unknown = send_test(world, template_id="nope", to=["01012345678"], vars=vars_)
    no_provider = send_test(world, provider="ghost", to=["01012345678"], vars=vars_)
    world.call(ADMIN, "PATCH", "/api/kakao/providers/relay", json={"active": False})
    world.call(ADMIN, "PATCH", f"/api/kakao/templates/{registered['id']}", json={"active": True})
    provider_off = send_test(world, to=["01012345678"], vars=vars_)

    assert (
        inactive.status_code == 422
        and "inactive" in inactive.json["errors"]["json"]["template_id"][0]
    )
    assert (
        unknown.status_code == 422 and "unknown" in unknown.json["errors"]["json"]["template_id"][0]
    )
    assert no_provider.status_code == 422 and "provider" in no_provider.json["errors"]["json"]
    assert provider_off.status_code == 422
    assert "inactive" in provider_off.json["errors"]["json"]["provider"][0]
    assert relay.count(SEND) == 0


def test_groups_and_recipients_expand_to_phones_and_members_without_one_are_listed(
    world, registered, relay
):
    def recipient(**fields):
        return world.call(ADMIN, "POST", "/api/recipients", json=fields).json["id"]

    kim = recipient(name="Kim", phone="010-1111-2222")
    lee = recipient(name="Lee", email="lee@example.com")
    park = recipient(name="Park", phone="+82 10 3333 4444")
    world.call(ADMIN, "POST", "/api/groups", json={"name": "oncall", "members": [kim, lee]})

    response = send_test(
        world,
        to=["010-5555-6666", "group:oncall", f"recipient:{park}", "01011112222"],
        vars={"system": "prod", "host": "db-1"},
    )

    assert response.status_code == 200, response.json
    body = response.json
    assert body["ok"] is True and body["provider_message_id"] == "relay-1"
    assert body["to"] == ["01055556666", "01011112222", "01033334444"]
    assert body["missing_phones"] == [{"recipient_id": lee, "name": "Lee", "reason": "no phone"}]
    assert body["expanded"][1] == {"item": "group:oncall", "phones": ["01011112222"]}
    [hit] = relay.hits[SEND]
    assert hit["headers"]["Authorization"] == f"Bearer {TOKEN}"
    sent = json.loads(hit["body"])
    assert set(sent) == {"tenant_id", "provider_id", "template_id", "to", "vars", "trace_id"}
    assert sent["to"] == body["to"] and sent["provider_id"] == "relay"
    assert sent["tenant_id"] == world.tenants["acme"] and sent["trace_id"] == body["trace_id"]
    messages = world.call(ADMIN, "GET", "/api/kakao/messages").json
    assert sorted(item["to"] for item in messages) == sorted(body["to"])
    assert {item["status"] for item in messages} == {"accepted"}


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        (["group:nobody"], "group 'nobody' not found"),
        (["12-34"], "is not a phone number"),
        (["recipient:rc_missing"], "recipient 'rc_missing' not found"),
    ],
)
def test_a_bad_to_item_is_named(world, registered, to, expected):
    response = send_test(world, to=to, vars={"system": "prod", "host": "db-1"})

    assert response.status_code == 422
    assert expected in response.json["errors"]["json"]["to"][0]


def test_nobody_with_a_phone_is_refused_listing_who(world, registered):
    lee = world.call(ADMIN, "POST", "/api/recipients", json={"name": "Lee"}).json["id"]

    response = send_test(world, to=[f"recipient:{lee}"], vars={"system": "prod", "host": "db-1"})

    assert response.status_code == 422 and "Lee" in response.json["errors"]["json"]["to"][0]


@pytest.mark.parametrize(
    ("status", "answer", "error"),
    [
        (503, {"code": 503, "message": "down"}, "answered HTTP 503"),
        (200, {"ok": False, "provider_message_id": None, "result": {"accepted": 0, "failed": 1}, "error": "quota"}, "quota"),
        (200, {"ok": True, "provider_message_id": "r-2", "result": {"accepted": 0, "failed": 1}, "error": None, "recipients": [{"to": "01012345678", "status": "failed", "reason": "blocked"}]}, "every recipient failed: blocked"),
        (200, ["not", "an", "object"], "not an object"),
    ],
)  # fmt: skip
def test_a_provider_failure_is_an_answer_with_ok_false(
    world, registered, relay, status, answer, error
):
    relay.route(SEND, statuses=[status], body=answer)

    response = send_test(world, to=["01012345678"], vars={"system": "prod", "host": "db-1"})

    assert response.status_code == 200
    assert response.json["ok"] is False and error in response.json["error"]
    [message] = world.call(ADMIN, "GET", "/api/kakao/messages").json
    assert message["status"] == "failed"


def test_a_provider_without_credentials_is_not_called(world, registered, relay):
    world.call(ADMIN, "POST", "/api/kakao/providers", json={"id": "bare", "base_url": relay.url})
    world.call(
        ADMIN, "POST", "/api/kakao/templates", json={"provider_id": "bare", "template_id": "t"}
    )

    response = send_test(world, provider="bare", template_id="t", to=["01012345678"])

    assert response.json["ok"] is False and "no credentials" in response.json["error"]
    assert relay.count(SEND) == 0


# ---- delivery events ----------------------------------------------------------------------


def events_body(world, *events, provider="relay"):
    return {"tenant_id": world.tenants["acme"], "provider_id": provider, "events": list(events)}


def event(to="01012345678", status="delivered", message_id="relay-1", **extra):
    return {
        "provider_message_id": message_id,
        "to": to,
        "status": status,
        "reason": None,
        "occurred_at": "2026-11-26T10:00:00.123Z",
        **extra,
    }


@pytest.fixture
def plugin_headers(saas_settings):
    return {"Authorization": f"Bearer {load_plugin_token(saas_settings)}"}


def post_events(world, body, headers):
    return world.client.post("/api/kakao/delivery-events", json=body, headers=headers)


def test_delivery_events_need_the_plugin_token(world):
    body = events_body(world, event())

    anonymous = world.client.post("/api/kakao/delivery-events", json=body)
    user = world.call(ADMIN, "POST", "/api/kakao/delivery-events", json=body)
    wrong = world.client.post(
        "/api/kakao/delivery-events", json=body, headers={"Authorization": "Bearer nope"}
    )

    assert anonymous.status_code == user.status_code == wrong.status_code == 401
    assert "plugin token" in anonymous.json["message"]


def test_bad_delivery_events_name_the_field(world, plugin_headers):
    body = events_body(
        world, event(status="read", occurred_at="yesterday"), event(occurred_at="2026-11-26T10:00")
    )
    del body["provider_id"]

    response = post_events(world, body, plugin_headers)

    assert response.status_code == 422
    errors = response.json["errors"]["json"]
    assert set(errors) == {"provider_id", "events"}
    assert set(errors["events"]["0"]) == {"status", "occurred_at"}
    assert set(errors["events"]["1"]) == {"occurred_at"}  # a time without a zone is ambiguous


def test_events_update_messages_once_and_unknown_ones_are_reported(
    world, registered, plugin_headers
):
    send_test(world, to=["01012345678", "01099998888"], vars={"system": "prod", "host": "db-1"})

    first = post_events(
        world,
        events_body(
            world,
            event(to="010-1234-5678"),
            event(to="01099998888", status="failed", reason="blocked by user"),
            event(message_id="relay-404"),
        ),
        plugin_headers,
    )
    repeat = post_events(world, events_body(world, event()), plugin_headers)
    other_tenant = post_events(
        world, {**events_body(world, event()), "tenant_id": world.tenants["globex"]}, plugin_headers
    )

    assert first.status_code == 200, first.json
    assert first.json == {
        "stored": 2,
        "duplicates": 0,
        "unknown": [{"provider_message_id": "relay-404", "to": "01012345678", "reason": "no such message"}],
        "fallbacks_queued": 0,
    }  # fmt: skip
    assert repeat.json["stored"] == 0 and repeat.json["duplicates"] == 1
    assert other_tenant.json["stored"] == 0 and len(other_tenant.json["unknown"]) == 1
    messages = {item["to"]: item for item in world.call(ADMIN, "GET", "/api/kakao/messages").json}
    assert messages["01012345678"]["status"] == "delivered"
    assert messages["01012345678"]["events"] == [
        {"status": "delivered", "reason": None, "occurred_at": "2026-11-26T10:00:00.123000Z"}
    ]
    assert messages["01099998888"]["status"] == "delivery_failed"
    assert messages["01099998888"]["reason"] == "blocked by user"


def test_a_failed_event_queues_the_fallback_once_when_fallback_on_asks(world, plugin_headers):
    from shared.domain.kakao import SendResult
    from shared.kakao.messages import Fallback, Origin, record_send

    accepted = SendResult(True, "relay-9", 2, 0, None)
    with connection():
        for phone, on in (
            ("01011111111", ("send_error", "delivery_failed")),
            ("01022222222", ("send_error",)),
        ):
            record_send(
                world.tenants["acme"],
                provider_key="relay",
                template_id="t",
                result=accepted,
                to=[phone],
                trace_id=f"trace-{phone}",
                origin=Origin(),
                fallback=Fallback(on, ("slack.ops",), {"values": {}}),
            )  # fmt: skip

    failed = [
        event(to=phone, status="failed", message_id="relay-9", reason="blocked")
        for phone in ("01011111111", "01022222222")
    ]
    first = post_events(world, events_body(world, *failed), plugin_headers)
    later = post_events(
        world,
        events_body(world, {**failed[0], "occurred_at": "2026-11-26T10:05:00Z"}),
        plugin_headers,
    )

    assert first.json["fallbacks_queued"] == 1
    assert later.json["stored"] == 1 and later.json["fallbacks_queued"] == 0
    with connection():
        states = {row.to: row.fallback_status for row in KakaoMessage.select()}
    assert states == {"01011111111": "queued", "01022222222": None}


# ---- where Core may send a tenant's AlimTalk ------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "problem"),
    [
        ("http://user:pw@10.0.0.9", "must not contain credentials"),
        ("http://10.0.0.9/admin?x=", "must not have a query"),
        ("http://10.0.0.9/#frag", "must not have a query"),
        ("http://169.254.169.254", "an address inside the network"),
        ("http://192.168.1.5:8080", "an address inside the network"),
        ("http://no-such-host.invalid", "does not resolve"),
    ],
)
def test_a_provider_url_core_must_not_call_is_refused(world, base_url, problem):
    response = world.call(
        ADMIN, "POST", "/api/kakao/providers", json={"id": "relay", "base_url": base_url}
    )

    assert response.status_code == 422, response.json
    assert problem in response.json["errors"]["json"]["base_url"][0]
    assert "user:pw" not in json.dumps(response.json)  # a credential in the URL is not echoed


def test_an_internal_address_is_refused_when_changed_to_later_too(world):
    world.call(
        ADMIN, "POST", "/api/kakao/providers", json={"id": "relay", "base_url": "http://10.0.0.9"}
    )

    response = world.call(
        ADMIN,
        "PATCH",
        "/api/kakao/providers/relay",
        json={"base_url": "http://127.0.0.1.nip.invalid"},
    )
    metadata = world.call(
        ADMIN, "PATCH", "/api/kakao/providers/relay", json={"base_url": "http://169.254.169.254"}
    )

    assert response.status_code == 422 and metadata.status_code == 422
    assert (
        world.call(ADMIN, "GET", "/api/kakao/providers/relay").json["base_url"] == "http://10.0.0.9"
    )


def test_an_operator_provider_can_only_be_switched_on_or_off(world, saas_settings):
    from shared.kakao.providers import register_operator_provider

    with connection():
        register_operator_provider(
            world.tenants["acme"], "mock", "http://127.0.0.1:8095", actor="operator"
        )

    moved = world.call(
        ADMIN, "PATCH", "/api/kakao/providers/mock", json={"base_url": "http://10.6.6.6"}
    )
    keyed = world.call(
        ADMIN, "PATCH", "/api/kakao/providers/mock", json={"credentials": {"token": "mine"}}
    )
    paused = world.call(ADMIN, "PATCH", "/api/kakao/providers/mock", json={"active": False})

    assert moved.status_code == 403 and "registered by the operator" in moved.json["message"]
    assert keyed.status_code == 403
    assert paused.status_code == 200 and paused.json["active"] is False
    assert paused.json["base_url"] == "http://127.0.0.1:8095"


def test_a_provider_that_redirects_does_not_take_the_token_along(world, relay):
    with Loopback() as elsewhere:
        target = f"{elsewhere.url}{SEND}"

        class Redirecting(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 - the standard library's name
                self.read_body()
                self.reply(307, b'{"message": "moved"}', {"Location": target})

        with LocalServer(Redirecting) as redirecting:
            world.call(
                ADMIN,
                "POST",
                "/api/kakao/providers",
                json={"id": "hop", "base_url": redirecting.url, "credentials": {"token": TOKEN}},
            )
            world.call(
                ADMIN,
                "POST",
                "/api/kakao/templates",
                json={"provider_id": "hop", "template_id": "ops_alert_v1"},
            )

            response = world.call(
                ADMIN,
                "POST",
                "/api/kakao/send-test",
                json={"provider": "hop", "template_id": "ops_alert_v1", "to": ["01012345678"]},
            )

        assert response.status_code == 200, response.json
        assert response.json["ok"] is False and "HTTP 307" in response.json["error"]
        assert elsewhere.count(SEND) == 0
