"""SSRF: in saas mode http steps and Teams targets cannot reach the operator's network.

Real worker and scheduler processes, a real Teams plugin process, loopback servers on
127.0.0.1, 127.0.0.2 and ::1 standing in for what a tenant must not reach.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from shared.plugin_token import load_plugin_token
from tests.support.fake_teams import FakeTeams
from tests.support.loopback import Loopback
from tests.support.processes import Process, start_plugin

SETTING = "AISOPSFLOW_OUTBOUND_ALLOWED_NETWORKS"
#: A path and query a refusal must not repeat: a URL may carry a secret.
SECRET_PART = "/s3cr3t-path?token=hunter2"
HOOK = "/webhookb2/abc@def/IncomingWebhook/123/456"

FETCH = """
id: fetch
name: fetch a URL the sender names
triggers:
  - type: webhook
steps:
  - id: fetch
    type: http
    url: "{{ body.url }}"
    follow_redirects: FOLLOW
    timeout_seconds: 5
    retry: {max: 3, backoff_ms: 100}
"""

NOTIFY = """
id: tell
name: notify a Teams webhook the sender names
triggers:
  - type: webhook
steps:
  - id: tell
    type: notify
    targets: ["teams:{{ body.url }}"]
    message: disk almost full
    retry: {max: 3, backoff_ms: 100}
"""


@dataclass
class Teams:
    url: str
    token: str
    fake: FakeTeams
    process: Process

    def send(self, target: str) -> dict[str, Any]:
        response = requests.post(
            f"{self.url}/send",
            json={"target": target, "message": "disk almost full"},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def mode() -> str:
    """AISOPSFLOW_MODE of the stack; a test parametrizes it to change it."""
    return "saas"


@pytest.fixture
def allowed() -> str:
    """AISOPSFLOW_OUTBOUND_ALLOWED_NETWORKS of the stack; a test parametrizes it to change it."""
    return ""


@pytest.fixture
def servers() -> Iterator[dict[str, Loopback]]:
    """What a tenant must not reach: loopback servers on 127.0.0.1, 127.0.0.2 and ::1."""
    with Loopback() as v4, Loopback("127.0.0.2") as v4b, Loopback("::1") as v6:
        yield {"v4": v4, "v4b": v4b, "v6": v6}


@pytest.fixture
def teams(make_settings, monkeypatch, tmp_path, mode, allowed) -> Iterator[Teams]:
    """The Teams plugin process, configured like Core, with a fake webhook on 127.0.0.1."""
    with FakeTeams() as fake:
        monkeypatch.setenv("AISOPSFLOW_TEAMS_BASE_URL", f"{fake.url}/webhookb2")
        settings = make_settings(mode=mode, outbound_allowed_networks=allowed)
        url, process = start_plugin(settings, "teams", tmp_path / "teams.log")
        yield Teams(url, load_plugin_token(settings), fake, process)
        process.stop()


@pytest.fixture
def engine_overrides(mode, allowed, teams) -> dict[str, str]:
    return {"mode": mode, "outbound_allowed_networks": allowed, "plugin_urls": f"teams={teams.url}"}


def hits(servers: dict[str, Loopback]) -> int:
    return sum(sum(len(items) for items in server.hits.values()) for server in servers.values())


def run(engine, workflow: str, url: str) -> dict[str, Any]:
    response = engine.hook(workflow, {"url": url}, query_string={"tenant": "default"})
    assert response.status_code == 202, response.json
    return engine.wait_for(response.json["execution_id"])


def refused_urls(servers: dict[str, Loopback]) -> list[str]:
    """Every form of an internal address; the loopback ones lead to a live server."""
    v4, v4b, v6 = (servers[name].port for name in ("v4", "v4b", "v6"))
    return [
        f"http://127.0.0.1:{v4}",
        f"http://127.0.0.2:{v4b}",
        f"http://2130706433:{v4}",  # decimal
        f"http://0177.0.0.1:{v4}",  # octal
        f"http://0x7f.1:{v4}",  # hex
        f"http://localhost:{v4}",  # a name resolving to loopback (/etc/hosts)
        f"http://[::1]:{v6}",
        f"http://[::ffff:127.0.0.1]:{v4}",
        "http://10.0.0.1:9",
        "http://172.16.0.1:9",
        "http://192.168.0.1:9",
        "http://169.254.169.254",
        "http://[fd00::1]:9",
        "http://[fe80::1]:9",
    ]


def test_http_steps_in_saas_refuse_every_internal_address(engine, servers):
    engine.put_workflow("fetch", FETCH.replace("FOLLOW", "false"))

    for base in refused_urls(servers):
        view = run(engine, "fetch", base + SECRET_PART)

        step = engine.step(view, "fetch")
        assert view["status"] == "failed", (base, step)
        assert step["attempt"] == 1, (base, step)  # permanent: no retry
        assert "refused by the outbound policy" in step["error"], (base, step["error"])
        assert SETTING in step["error"] and "an address inside the network" in step["error"]
        assert "s3cr3t" not in step["error"] and "hunter2" not in view["error_summary"]
    assert hits(servers) == 0


def test_teams_targets_in_saas_refuse_every_internal_address(engine, servers, teams):
    engine.put_workflow("tell", NOTIFY)

    for base in [*refused_urls(servers), teams.fake.url]:
        view = run(engine, "tell", base + HOOK)

        step = engine.step(view, "tell")
        assert view["status"] == "failed", (base, step)
        assert step["attempt"] == 1, (base, step)
        (result,) = step["output"]["output"]["results"]
        assert result["ok"] is False and result["retryable"] is False
        assert result["error"].startswith("teams webhook URL refused by the outbound policy")
        assert SETTING in result["error"] and "IncomingWebhook" not in result["error"]
    # A recipient's teams_id is a URL the tenant chose too.
    response = engine.client.post(
        "/api/recipients",
        json={"name": "Kim", "teams_id": f"http://localhost:{servers['v4'].port}{HOOK}"},
        headers=engine.headers(),
    )
    assert response.status_code == 201, response.json
    engine.put_workflow(
        "page",
        NOTIFY.replace("id: tell\nname", "id: page\nname").replace(
            '"teams:{{ body.url }}"', f'"recipient:{response.json["id"]}"'
        ),
    )
    view = run(engine, "page", "")
    (result,) = engine.step(view, "tell")["output"]["output"]["results"]
    assert view["status"] == "failed" and "refused by the outbound policy" in result["error"]
    assert hits(servers) == 0 and teams.fake.posts == []


def test_the_teams_plugin_checks_the_url_itself(teams, servers):
    # Core checks before handing the URL over; the plugin checks again when it connects.
    for base in [*refused_urls(servers), teams.fake.url]:
        answer = teams.send(base + HOOK)

        assert answer["ok"] is False and answer["retryable"] is False, (base, answer)
        assert "refused by the outbound policy" in answer["error"], (base, answer)
        assert SETTING in answer["error"] and "IncomingWebhook" not in answer["error"]
    assert hits(servers) == 0 and teams.fake.posts == []
    # A suffix goes to the operator's AISOPSFLOW_TEAMS_BASE_URL, which the policy leaves alone.
    assert teams.send("abc@def/IncomingWebhook/123/456")["ok"] is True
    assert teams.fake.posts[0][0] == HOOK


@pytest.mark.parametrize("allowed", ["127.0.0.1/32"])
def test_allowed_networks_are_reached_but_a_redirect_out_of_them_is_refused(engine, servers, teams):
    servers["v4"].route("/data", body={"answer": 42})
    away = {"Location": f"{servers['v4b'].url}/latest/meta-data"}
    servers["v4"].route("/go", statuses=[302], headers=away)
    engine.put_workflow("fetch", FETCH.replace("FOLLOW", "true"))
    engine.put_workflow("tell", NOTIFY)

    fetched = run(engine, "fetch", f"{servers['v4'].url}/data")
    told = run(engine, "tell", teams.fake.url + HOOK)
    redirected = run(engine, "fetch", f"{servers['v4'].url}/go")
    # A webhook answering with a redirect: the Teams plugin does not follow it in saas.
    told_away = run(engine, "tell", f"{servers['v4'].url}/go")

    assert fetched["status"] == "succeeded", fetched["steps"]
    assert engine.step(fetched, "fetch")["output"]["body"] == {"answer": 42}
    assert told["status"] == "succeeded", told["steps"]
    assert teams.fake.posts[0][0] == HOOK
    assert redirected["status"] == "failed"
    error = engine.step(redirected, "fetch")["error"]
    assert "refused by the outbound policy" in error and "127.0.0.2 (loopback)" in error
    assert told_away["status"] == "failed"
    assert "teams answered HTTP 302" in engine.step(told_away, "tell")["error"]
    assert servers["v4"].count("/go") == 2 and servers["v4b"].count("/latest/meta-data") == 0


@pytest.mark.parametrize("allowed", ["127.0.0.0/8"])
def test_redirects_are_followed_only_when_the_step_asks(engine, servers):
    servers["v4"].route("/go", statuses=[302], headers={"Location": f"{servers['v4b'].url}/moved"})
    servers["v4b"].route("/moved", body={"here": True})
    engine.put_workflow("fetch", FETCH.replace("FOLLOW", "false"))
    engine.put_workflow(
        "follow", FETCH.replace("FOLLOW", "true").replace("id: fetch\nname", "id: follow\nname")
    )

    kept = run(engine, "fetch", f"{servers['v4'].url}/go")
    followed = run(engine, "follow", f"{servers['v4'].url}/go")

    assert kept["status"] == "failed" and "answered HTTP 302" in kept["error_summary"]
    assert followed["status"] == "succeeded", followed["steps"]
    assert engine.step(followed, "fetch")["output"]["body"] == {"here": True}
    assert servers["v4b"].count("/moved") == 1


@pytest.mark.parametrize("mode", ["onprem"])
def test_onprem_keeps_calling_internal_addresses(engine, servers, teams):
    servers["v4"].route("/data", body={"answer": 42})
    engine.put_workflow("fetch", FETCH.replace("FOLLOW", "false"))
    engine.put_workflow("tell", NOTIFY)

    fetched = run(engine, "fetch", f"http://2130706433:{servers['v4'].port}/data")
    told = run(engine, "tell", teams.fake.url + HOOK)

    assert fetched["status"] == "succeeded", fetched["steps"]
    assert told["status"] == "succeeded", told["steps"]
    assert teams.fake.posts[0][0] == HOOK
