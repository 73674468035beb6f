"""The broker carries Dramatiq's default middleware, and a real worker consumes by name."""

from __future__ import annotations

import logging

import dramatiq
from dramatiq import Worker
from dramatiq.middleware import default_middleware

from worker.broker import build_broker
from worker.main import setup


def test_the_broker_keeps_the_default_middleware_in_order(make_settings):
    broker = build_broker(make_settings())

    assert [type(m) for m in broker.middleware] == list(default_middleware)
    broker.close()


def test_the_broker_uses_the_configured_redis(make_settings):
    settings = make_settings()
    broker = build_broker(settings)

    assert broker.client.ping()
    broker.close()


def test_setup_declares_the_actors_by_their_stable_names(make_settings):
    broker = setup(make_settings())

    assert dramatiq.get_broker() is broker
    assert "aisopsflow.ping" in broker.actors
    assert broker.get_actor("aisopsflow.ping").broker is broker
    broker.close()


def test_a_worker_consumes_a_message_sent_by_actor_name(make_settings, caplog):
    broker = setup(make_settings())
    broker.flush_all()
    worker = Worker(broker, worker_timeout=100)
    worker.start()
    try:
        with caplog.at_level(logging.INFO, logger="worker.actors"):
            # Sent by name, as the API and the scheduler will, without importing the actor.
            broker.enqueue(dramatiq.Message(queue_name="default", actor_name="aisopsflow.ping",
                                            args=("hello",), kwargs={}, options={}))  # fmt: skip
            broker.join("default", timeout=10_000)
            worker.join()
    finally:
        worker.stop()
        broker.close()

    assert "pong hello" in caplog.text
