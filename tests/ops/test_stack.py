"""What `up` plans, checks and locks, without starting it (tests/ops/test_up.py starts it)."""

from __future__ import annotations

import os
import socket
import sys

import pytest
import requests

from ops.children import stop_all
from ops.stack import Stack, check_ports_free, data_dir_lock, plan_children
from shared.errors import SettingsError
from shared.settings import Settings
from tests.support.loopback import Loopback
from tests.support.up_stack import free_port_range


def test_children_and_their_ports():
    children = plan_children(Settings(plugin_host="127.0.0.2", plugin_base_port=9100))

    assert [child.name for child in children] == [
        "api", "worker", "scheduler", "gateway", "plugin-slack", "plugin-email",
        "plugin-telegram", "plugin-teams", "plugin-kakao-mock",
    ]  # fmt: skip
    assert children[0].argv[1:] == ["-m", "ops.cli", "api"]
    assert children[-1].argv[3:] == [
        "plugin",
        "kakao-mock",
        "--host",
        "127.0.0.2",
        "--port",
        "9104",
    ]


def test_one_up_per_data_dir(tmp_path):
    with data_dir_lock(tmp_path / "data"):
        with pytest.raises(SettingsError, match="another `aisopsflow up`"):
            with data_dir_lock(tmp_path / "data"):
                pass
    with data_dir_lock(tmp_path / "data"):
        pass  # released with the first


SERVES_HEALTHZ = """
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *args): pass
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print("ready", flush=True)
server.serve_forever()
"""


def stack_with_api(tmp_path, port, *argv):
    """A Stack whose api child is ``argv`` (started), not gunicorn."""
    stack = Stack(Settings(data_dir=tmp_path, api_port=port, redis_url="redis://127.0.0.1:1"))
    stack.apps[0].argv = [sys.executable, *argv]
    stack.apps[0].start(dict(os.environ))
    return stack


def test_another_server_answering_on_the_api_port_is_not_our_api(tmp_path):
    with Loopback() as other:  # answers 200 on every path, as another stack's API would
        port = int(other.url.rsplit(":", 1)[1])
        stack = stack_with_api(tmp_path, port, "-c", "import time; time.sleep(60)")
        try:
            assert requests.get(f"{other.url}/healthz", timeout=5).status_code == 200
            assert not stack.our_api_answers(f"{other.url}/healthz")
        finally:
            stop_all(stack.apps[:1], 5000)


def test_our_api_answering_is_up(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stack = stack_with_api(tmp_path, port, "-c", SERVES_HEALTHZ, str(port))
    try:
        assert stack.apps[0].process.stdout.readline() == b"ready\n"
        assert stack.our_api_answers(f"http://127.0.0.1:{port}/healthz")
    finally:
        stop_all(stack.apps[:1], 5000)


def test_a_taken_plugin_port_is_named_before_anything_starts():
    base = free_port_range(6)
    settings = Settings(api_port=base, plugin_base_port=base + 1)
    check_ports_free(settings)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 3))
        taken.listen()

        with pytest.raises(SettingsError) as raised:
            check_ports_free(settings)

    assert raised.value.message == (
        f"AISOPSFLOW_PLUGIN_BASE_PORT: port {base + 3} on '127.0.0.1', wanted by plugin "
        "telegram, is already in use (another `aisopsflow up`, or another program); stop "
        "that or choose another port"
    )
