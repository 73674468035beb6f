"""`aisopsflow up` end to end: a real stack on an empty data dir, stopped without orphans."""

from __future__ import annotations

import re
import signal
import sys
import time

import pytest
import requests

from ops.processes import PLUGIN_NAMES
from tests.support.up_stack import (
    HEALTHY_WITHIN_S,
    STOPPED_WITHIN_S,
    assert_all_gone,
    descendants,
    free_port_range,
    start_up,
    stop_up,
    up_environ,
)


def test_up_serves_everything_and_stops_cleanly_on_sigterm(stack):
    assert stack.healthy_after_s < HEALTHY_WITHIN_S, stack.output()
    token = (stack.data_dir / "plugin.token").read_text().strip()
    for index, name in enumerate(PLUGIN_NAMES):
        url = f"http://127.0.0.1:{stack.plugin_base_port + index}/probe"
        assert requests.post(url, timeout=5).status_code == 401
        answer = requests.post(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert answer.status_code == 200
        assert answer.json()["plugin"] == name
    login = requests.post(
        f"{stack.api}/api/login",
        json={"email": "admin@example.com", "password": "admin-password-1"},
        timeout=5,
    )
    assert login.status_code == 200
    providers = requests.get(
        f"{stack.api}/api/kakao/providers",
        headers={"Authorization": f"Bearer {login.json()['token']}"},
        timeout=5,
    ).json()
    mock_url = f"http://127.0.0.1:{stack.plugin_base_port + PLUGIN_NAMES.index('kakao-mock')}"
    assert [(p["id"], p["auth"], p["base_url"]) for p in providers] == [
        ("mock", "plugin_token", mock_url)
    ]
    children = descendants(stack.process)
    names = " ".join(" ".join(p.cmdline()) for p in children)
    assert "redis-server" in names and "gunicorn" in names and "dramatiq" in names

    began = time.monotonic()
    stack.process.send_signal(signal.SIGTERM)
    code = stack.process.wait(timeout=STOPPED_WITHIN_S)

    output = stack.output()
    assert code == 0, output
    assert time.monotonic() - began < STOPPED_WITHIN_S
    assert_all_gone(children, output)
    assert not (stack.data_dir / "redis.sock").exists()
    assert "AisOpsFlow is up." in output
    assert "admin@example.com" in output
    assert "Runner CA sha256 " in output
    for prefix in ("redis", "api", "worker", "scheduler", "gateway", "plugin-kakao-mock", "up"):
        assert f"\n{prefix.ljust(17)} | " in output


def test_a_message_sent_by_name_reaches_the_worker_of_up(stack):
    import dramatiq

    from shared.settings import Settings
    from worker.broker import build_broker

    broker = build_broker(Settings(data_dir=stack.data_dir))
    broker.enqueue(dramatiq.Message(queue_name="default", actor_name="aisopsflow.ping",
                                    args=("through-up",), kwargs={}, options={}))  # fmt: skip
    broker.close()

    deadline = time.monotonic() + 15
    while "pong through-up" not in stack.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "pong through-up" in stack.output()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs PR_SET_PDEATHSIG")
def test_children_die_with_up_even_when_it_is_killed(stack):
    children = descendants(stack.process)
    assert len(children) >= 1 + 3 + len(PLUGIN_NAMES)

    stack.process.kill()
    stack.process.wait()

    assert_all_gone(children, stack.output())


def test_a_child_that_keeps_crashing_stops_the_stack_naming_it(stack):
    children = descendants(stack.process)
    pid = 0
    for _ in range(5):
        scheduler = stack.wait_for_new_child("scheduler", pid, timeout_s=20)
        children += descendants(stack.process)
        pid = scheduler.pid
        scheduler.kill()
    code = stack.process.wait(timeout=STOPPED_WITHIN_S)

    output = stack.output()
    assert code == 1, output
    pauses = re.findall(r"scheduler killed by SIGKILL; restarting it in (\d+) ms", output)
    assert pauses == ["500", "1000", "2000", "4000"], output
    assert (
        "scheduler crashed 5 times within 60 s (killed by SIGKILL, killed by SIGKILL, "
        "killed by SIGKILL, killed by SIGKILL, killed by SIGKILL); not restarting it"
    ) in output
    last_words = output[output.index("lines of scheduler:") :]
    assert "scheduler started, ticking every" in last_words
    assert_all_gone(children, output)


def test_a_second_up_on_a_taken_api_port_fails_and_never_says_up(stack, tmp_path):
    api_port = int(stack.api.rsplit(":", 1)[1])
    folder = tmp_path / "second"
    folder.mkdir()
    environ = up_environ(folder / "data", api_port, free_port_range(len(PLUGIN_NAMES)))

    second = start_up(environ, folder)
    try:
        code = second.wait(timeout=60)
    finally:
        stop_up(second)

    output = (folder / "up.log").read_text(errors="replace")
    assert code == 1, output
    assert "AisOpsFlow is up." not in output
    assert (
        f"AISOPSFLOW_API_PORT: port {api_port} on '127.0.0.1', wanted by the API, is already "
        "in use (another `aisopsflow up`, or another program)"
    ) in output
    assert requests.get(f"{stack.api}/healthz", timeout=5).status_code == 200
