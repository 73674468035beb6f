"""Kakao tables on every backend: migration 2, the message uniqueness, events and the fallback claim."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import peewee
import pytest

from shared import migrations
from shared.db import write_transaction
from shared.domain.kakao import SendResult
from shared.engine.executions import start_execution
from shared.kakao.events import store_events
from shared.kakao.fallback import KAKAO_FALLBACK, KAKAO_QUEUE, claim, requeue_lost
from shared.kakao.messages import (
    Fallback,
    Origin,
    claim_fallback,
    earlier_send,
    kakao_messages_by_step,
    record_fallback,
    record_send,
    send_error_group,
)
from shared.models import KakaoMessage, KakaoProvider, SchemaMigration, Tenant
from shared.workflows import put_workflow

ACCEPTED = SendResult(
    True, "m-1", 2, 0, None, recipients={"01011112222": ("accepted", None), "01033334444": ("accepted", None)}
)  # fmt: skip
DOWN = SendResult(False, None, 0, 1, "HTTP 503", True)
WORKFLOW = """
id: wf
name: one step
triggers: [{type: webhook}]
steps:
  - id: tell
    type: condition
    expr: "true"
"""


def tenant(slug: str = "acme") -> Tenant:
    return Tenant.create(name=slug, slug=slug, mode="saas")


def send(
    tenant_id: str, result: SendResult, to: list[str], trace_id: str = "tr-1", **fallback
) -> list[str]:
    return record_send(
        tenant_id,
        provider_key="mock",
        template_id="t1",
        result=result,
        to=to,
        trace_id=trace_id,
        origin=Origin(),
        fallback=Fallback(**fallback),
    )


def failed_event(to: str) -> dict:
    return {
        "provider_message_id": "m-1",
        "to": to,
        "status": "failed",
        "reason": "blocked",
        "occurred_at": datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc),
    }


def test_migration_2_recreates_missing_kakao_tables_and_is_idempotent(db):
    db.drop_tables([KakaoMessage, KakaoProvider])
    SchemaMigration.delete().where(SchemaMigration.version == 2).execute()

    assert migrations.upgrade() == [2]
    assert {"kakao_providers", "kakao_messages"} <= set(db.get_tables())
    assert migrations.upgrade() == []
    migrations.MIGRATIONS[1].apply(db)  # re-running it on existing tables changes nothing


def test_one_row_per_message_and_phone_and_failed_sends_may_repeat(db):
    owner = tenant()
    send(owner.id, ACCEPTED, ["01011112222", "01033334444"])
    send(owner.id, ACCEPTED, ["01011112222"])  # the same message reported twice: ignored
    send(owner.id, DOWN, ["01011112222"])
    send(owner.id, DOWN, ["01011112222"])  # no provider message id: NULLs are distinct

    assert KakaoMessage.select().where(KakaoMessage.provider_message_id == "m-1").count() == 2
    assert KakaoMessage.select().where(KakaoMessage.provider_message_id.is_null()).count() == 2
    with pytest.raises(peewee.IntegrityError), write_transaction():
        KakaoMessage.create(
            tenant=owner, provider_id="mock", provider_message_id="m-1", template_id="t1",
            to="01011112222", status="accepted", trace_id="x",
        )  # fmt: skip
    with pytest.raises(peewee.IntegrityError), write_transaction():
        KakaoMessage.create(
            tenant=owner, provider_id="mock", template_id="t1", to="01099990000",
            status="sent", trace_id="x",
        )  # fmt: skip


def test_a_failed_event_queues_one_fallback_and_the_claim_is_taken_once(db):
    owner = tenant()
    send(
        owner.id,
        ACCEPTED,
        ["01011112222", "01033334444"],
        on=("delivery_failed",),
        targets=("slack.ops",),
    )

    first = store_events(owner.id, "mock", [failed_event("010-1111-2222")], actor="test")
    again = store_events(owner.id, "mock", [failed_event("01011112222")], actor="test")
    [queued] = first.fallbacks

    assert (first.stored, again.duplicates, again.fallbacks) == (1, 1, [])
    assert claim(queued) is not None
    assert claim(queued) is None
    row = KakaoMessage.get_by_id(queued)
    assert (row.status, row.fallback_status, row.reason) == (
        "delivery_failed",
        "sending",
        "blocked",
    )


class RecordingDispatcher:
    """Stands in for the Redis dispatcher: keeps what would have been enqueued."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple, dict]] = []

    def send(self, actor_name: str, *args, **options) -> None:
        self.sent.append((actor_name, args, options))


def test_a_fallback_whose_message_was_lost_is_enqueued_again_later(db):
    owner = tenant()
    send(owner.id, ACCEPTED, ["01011112222"], on=("delivery_failed",), targets=("slack.ops",))
    [queued] = store_events(owner.id, "mock", [failed_event("01011112222")], actor="t").fallbacks
    dispatcher = RecordingDispatcher()
    queued_at = KakaoMessage.get_by_id(queued).updated_at

    soon = requeue_lost(dispatcher, queued_at + timedelta(seconds=5))
    late = requeue_lost(dispatcher, queued_at + timedelta(seconds=31))
    again = requeue_lost(dispatcher, queued_at + timedelta(seconds=32))

    assert (soon, late, again) == (0, 1, 0)
    assert dispatcher.sent == [(KAKAO_FALLBACK, (queued,), {"queue_name": KAKAO_QUEUE})]


def test_a_message_reported_again_returns_the_stored_ids_and_a_bad_row_is_never_dropped(db):
    owner = tenant()
    first = send(owner.id, ACCEPTED, ["01011112222", "01033334444"])
    again = send(owner.id, ACCEPTED, ["01033334444", "01055556666"])
    bad = SendResult(True, "m-2", 1, 0, None, recipients={"01011112222": ("sent", None)})

    with pytest.raises(peewee.IntegrityError):  # a CHECK violation, on MySQL too
        send(owner.id, bad, ["01011112222"])

    assert again[0] == first[1]
    assert KakaoMessage.get_by_id(again[1]).to == "01055556666"
    assert KakaoMessage.select().where(KakaoMessage.provider_message_id == "m-2").count() == 0


def test_a_failed_send_stores_its_send_error_fallback_queued_and_one_claim_wins(db):
    owner = tenant()
    phones = ["01011112222", "01033334444"]
    ids = send(owner.id, DOWN, phones, on=("send_error",), targets=("slack.ops",))
    no_fallback = send(owner.id, DOWN, phones, trace_id="tr-2", on=("send_error",))

    group = send_error_group(owner.id, "tr-1")
    assert sorted(row.id for row in group) == sorted(ids)
    assert {row.fallback_status for row in group} == {"queued"}
    assert {KakaoMessage.get_by_id(i).fallback_status for i in no_fallback} == {None}
    assert claim_fallback(owner.id, ids, ("queued", "failed")) is True
    assert claim_fallback(owner.id, ids, ("queued", "failed")) is False
    record_fallback(ids, "failed", {"delivered": 0})
    assert claim_fallback(owner.id, ids, ("queued",)) is False  # the actor leaves failed ones
    assert claim_fallback(owner.id, ids, ("queued", "failed")) is True  # the step retry takes it


def test_earlier_sends_and_step_messages_are_read_within_the_tenant(db):
    owner, other = tenant(), tenant("other")
    workflow = put_workflow(owner.id, "wf", WORKFLOW, actor="test")[0]
    execution = start_execution(
        workflow, trigger_type="webhook", trigger_ref="", context={}, dedupe_key="k", actor="t"
    ).execution
    for tenant_id, result in ((owner.id, DOWN), (other.id, ACCEPTED)):
        record_send(
            tenant_id,
            provider_key="mock",
            template_id="t1",
            result=result,
            to=["01011112222"],
            trace_id="tr-1",
            origin=Origin(execution.id, "tell"),
            fallback=Fallback(("send_error",), ("slack.ops",)),
        )

    assert [row.tenant_id for row in earlier_send(owner.id, "tr-1")] == [owner.id]
    assert [row.tenant_id for row in send_error_group(other.id, "tr-1")] == []
    [mine] = kakao_messages_by_step(execution.id, owner.id)["tell"]
    [theirs] = kakao_messages_by_step(execution.id, other.id)["tell"]
    assert (mine["status"], theirs["status"]) == ("failed", "accepted")
