"""Webhook requests decoded for templates, and the headers an execution keeps."""

from __future__ import annotations

import pytest

from shared.domain.hook_request import (
    HookRequest,
    HookRequestError,
    parse_hook_request,
    stored_headers,
)
from shared.errors import BadRequest

FORM = "application/x-www-form-urlencoded"

ALERTMANAGER_BODY = (
    b'{"status": "firing", "alerts": [{"labels": {"alertname": "DiskFull",'
    b' "severity": "critical"}}]}'
)


@pytest.mark.parametrize(
    ("raw_body", "content_type", "expected"),
    [
        (
            ALERTMANAGER_BODY,
            "application/json",
            {
                "status": "firing",
                "alerts": [{"labels": {"alertname": "DiskFull", "severity": "critical"}}],
            },
        ),
        (b'{"a": 1}', "application/json; charset=utf-8", {"a": 1}),
        (b'{"a": 1}', "Application/JSON", {"a": 1}),
        (b'{"a": 1}', "application/vnd.github+json", {"a": 1}),
        (b'{"a": 1}', "application/cloudevents+json; charset=utf-8", {"a": 1}),
        (b"[1, 2]", "application/json", [1, 2]),
        ('{"msg": "d\u00e9j\u00e0 vu"}'.encode(), "application/json", {"msg": "d\u00e9j\u00e0 vu"}),
        ('{"msg": "\u00e9"}'.encode("utf-16"), "application/json", {"msg": "\u00e9"}),
        (b"", "application/json", None),
        (b" \n", "application/json", None),
        (b"a=1&b=two", FORM, {"a": "1", "b": "two"}),
        (
            b"a=1&a=2&a=3&b=",
            FORM,
            {"a": ["1", "2", "3"], "b": ""},
        ),
        (
            b"text=hello+world%21&x=%C3%A9",
            f"{FORM}; charset=utf-8",
            {"text": "hello world!", "x": "\u00e9"},
        ),
        (b"", FORM, {}),
        (b"disk /var is 97% full", "text/plain", "disk /var is 97% full"),
        (b'{"a": 1}', "text/plain", '{"a": 1}'),
        (b"<alert/>", "application/xml", "<alert/>"),
        (b"caf\xc3\xa9 \xff", "", "caf\u00e9 \ufffd"),
        (b"", "", ""),
    ],
    ids=[
        "alertmanager-json",
        "json-with-charset",
        "json-any-case",
        "vendor-plus-json",
        "plus-json-with-charset",
        "json-array",
        "json-utf8",
        "json-utf16",
        "json-empty",
        "json-blank",
        "form",
        "form-repeated-and-blank",
        "form-escapes-with-charset",
        "form-empty",
        "text",
        "json-looking-text-stays-text",
        "other-type-is-text",
        "undecodable-bytes-replaced",
        "nothing",
    ],
)
def test_body_is_decoded_by_content_type(raw_body, content_type, expected):
    request = parse_hook_request(raw_body, content_type, {}, [])

    assert request.body == expected
    assert request.raw_body == raw_body
    assert request.content_type == content_type


@pytest.mark.parametrize(
    ("raw_body", "place"),
    [
        (b'{"a": 1', "line 1, column 8 (char 7)"),
        (b'{\n  "a": 1,\n  "b": oops\n}', "line 3, column 8 (char 19)"),
        (b"{'a': 1}", "line 1, column 2 (char 1)"),
        (b"not json", "line 1, column 1 (char 0)"),
    ],
    ids=["truncated", "multi-line", "single-quotes", "plain-text"],
)
def test_invalid_json_names_the_position(raw_body, place):
    with pytest.raises(HookRequestError) as caught:
        parse_hook_request(raw_body, "application/json", {}, [])

    assert "not valid JSON" in caught.value.message
    assert place in caught.value.message


@pytest.mark.parametrize(
    ("raw_body", "fragment"),
    [
        (b'{"a": "\xff"}', "undecodable byte at position"),
        (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
    ],
    ids=["bad-utf8", "deep-nesting"],
)
def test_unparseable_json_is_a_bad_request_not_a_crash(raw_body, fragment):
    with pytest.raises(HookRequestError, match=fragment) as caught:
        parse_hook_request(raw_body, "application/json", {}, [])

    assert isinstance(caught.value, BadRequest) and caught.value.status_code == 400


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, {}),
        (
            {"Content-Type": "application/json", "X-GitHub-Event": "push"},
            {"content-type": "application/json", "x-github-event": "push"},
        ),
        ({"X-Request-Id": "1", "x-request-id": "2"}, {"x-request-id": "1, 2"}),
    ],
    ids=["none", "lower-cased", "repeated-joined"],
)
def test_header_names_are_lower_cased(headers, expected):
    request = parse_hook_request(b"", "", headers, [])

    assert request.headers == expected


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([], {}),
        ([("env", "prod")], {"env": "prod"}),
        ([("host", "a"), ("host", "b"), ("env", "")], {"host": ["a", "b"], "env": ""}),
        ([("x", "1"), ("x", "2"), ("x", "3")], {"x": ["1", "2", "3"]}),
    ],
    ids=["none", "single", "repeated-and-blank", "three-times"],
)
def test_query_groups_repeated_names(pairs, expected):
    request = parse_hook_request(b"", "", {}, iter(pairs))

    assert request.query == expected


def test_result_is_frozen():
    request = parse_hook_request(b"{}", "application/json", {}, [])

    assert isinstance(request, HookRequest)
    with pytest.raises(AttributeError):
        request.body = "changed"


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("Content-Type", True),
        ("User-Agent", True),
        ("X-GitHub-Event", True),
        ("X-GitHub-Delivery", True),
        ("X-Slack-Request-Timestamp", True),
        ("Authorization", False),
        ("Proxy-Authorization", False),
        ("Cookie", False),
        ("X-Hub-Signature", False),
        ("X-Hub-Signature-256", False),
        ("X-Slack-Signature", False),
        ("Stripe-Signature", False),
        ("X-Gitlab-Token", False),
        ("X-Auth-Token", False),
        ("X-Webhook-Secret", False),
        ("X-Api-Key", False),
        ("X-ApiKey", False),
        ("X-Shopify-Hmac-Sha256", False),
    ],
)
def test_stored_headers_drop_credentials(name, kept):
    headers = {name: "value", "Accept": "*/*"}

    stored = stored_headers(headers)

    assert (name.lower() in stored) is kept
    assert stored["accept"] == "*/*"


def test_stored_headers_also_drop_named_headers_in_any_case():
    headers = {"X-Custom-Auth": "abc", "X-Tenant": "t1", "Content-Type": "text/plain"}

    stored = stored_headers(headers, drop=["x-CUSTOM-auth"])

    assert stored == {"x-tenant": "t1", "content-type": "text/plain"}
