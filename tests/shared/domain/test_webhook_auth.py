"""Webhook auth: GitHub's and Slack's published vectors, replay windows, tokens, failures."""

from __future__ import annotations

import hashlib
import hmac
from types import SimpleNamespace

import pytest

from shared.domain.webhook_auth import (
    ReplayGuard,
    WebhookAuthFailure,
    signature_base_problem,
    verify_webhook,
)
from shared.errors import Unauthorized

# GitHub's documented example ("Validating webhook deliveries").
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

# Slack's documented example ("Verifying requests from Slack").
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TIMESTAMP = 1531420618
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
    b"&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
    b"&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com"
    b"%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

NOW = 1_700_000_000.0


def hmac_auth(**overrides):
    fields = {
        "type": "hmac",
        "secret": "GITHUB_HOOK",
        "header": "X-Hub-Signature-256",
        "algorithm": "sha256",
        "prefix": "sha256=",
        "timestamp_header": None,
        "tolerance_seconds": 300,
        "signature_base": None,
    }
    return SimpleNamespace(**{**fields, **overrides})


def slack_auth(**overrides):
    return hmac_auth(
        header="X-Slack-Signature",
        prefix="v0=",
        timestamp_header="X-Slack-Request-Timestamp",
        **overrides,
    )


def token_auth(header="X-Gitlab-Token"):
    return SimpleNamespace(type="token", secret="HOOK_TOKEN", header=header)


def sign(secret, message, algorithm="sha256"):
    return hmac.new(secret.encode(), message, getattr(hashlib, algorithm)).hexdigest()


def slack_headers(timestamp=SLACK_TIMESTAMP, signature=SLACK_SIGNATURE):
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": signature}


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Hub-Signature-256": GITHUB_SIGNATURE},
        {"x-hub-signature-256": GITHUB_SIGNATURE},
        {"X-HUB-SIGNATURE-256": GITHUB_SIGNATURE},
    ],
    ids=["as-sent", "lower", "upper"],
)
def test_github_published_vector_verifies(headers):
    verify_webhook(hmac_auth(), GITHUB_SECRET, headers, GITHUB_BODY, now_seconds=NOW)


@pytest.mark.parametrize(
    "now_seconds",
    [SLACK_TIMESTAMP, SLACK_TIMESTAMP + 30, SLACK_TIMESTAMP - 30, SLACK_TIMESTAMP + 300],
    ids=["same-second", "30s-later", "30s-earlier", "at-tolerance"],
)
def test_slack_documented_example_verifies_within_tolerance(now_seconds):
    verify_webhook(slack_auth(), SLACK_SECRET, slack_headers(), SLACK_BODY, now_seconds=now_seconds)


@pytest.mark.parametrize(
    ("auth", "secret", "headers", "body", "now_seconds", "reason"),
    [
        (
            slack_auth(),
            SLACK_SECRET,
            slack_headers(),
            SLACK_BODY,
            SLACK_TIMESTAMP + 600,
            "stale timestamp",
        ),
        (
            slack_auth(),
            SLACK_SECRET,
            slack_headers(),
            SLACK_BODY,
            SLACK_TIMESTAMP - 600,
            "stale timestamp",
        ),
        (
            slack_auth(tolerance_seconds=10),
            SLACK_SECRET,
            slack_headers(),
            SLACK_BODY,
            SLACK_TIMESTAMP + 11,
            "stale timestamp",
        ),
        (
            slack_auth(),
            SLACK_SECRET,
            slack_headers(timestamp=SLACK_TIMESTAMP + 1),
            SLACK_BODY,
            SLACK_TIMESTAMP,
            "signature mismatch",
        ),
        (
            slack_auth(),
            SLACK_SECRET,
            slack_headers(timestamp="1531420618.5"),
            SLACK_BODY,
            SLACK_TIMESTAMP,
            "header X-Slack-Request-Timestamp is not an integer timestamp",
        ),
        (
            slack_auth(),
            SLACK_SECRET,
            {"X-Slack-Signature": SLACK_SIGNATURE},
            SLACK_BODY,
            SLACK_TIMESTAMP,
            "missing header X-Slack-Request-Timestamp",
        ),
        (
            hmac_auth(),
            GITHUB_SECRET,
            {"X-Hub-Signature-256": "sha256=" + "0" * 64},
            GITHUB_BODY,
            NOW,
            "signature mismatch",
        ),
        (
            hmac_auth(),
            GITHUB_SECRET,
            {"X-Hub-Signature-256": GITHUB_SIGNATURE},
            b"Hello, World?",
            NOW,
            "signature mismatch",
        ),
        (
            hmac_auth(),
            "another secret",
            {"X-Hub-Signature-256": GITHUB_SIGNATURE},
            GITHUB_BODY,
            NOW,
            "signature mismatch",
        ),
        (
            hmac_auth(),
            GITHUB_SECRET,
            {"X-Hub-Signature-256": GITHUB_SIGNATURE.replace("sha256=", "sha1=")},
            GITHUB_BODY,
            NOW,
            "signature mismatch",
        ),
        (
            hmac_auth(),
            GITHUB_SECRET,
            {"X-Hub-Signature-256": GITHUB_SIGNATURE.removeprefix("sha256=")},
            GITHUB_BODY,
            NOW,
            "signature mismatch",
        ),
        (
            hmac_auth(),
            GITHUB_SECRET,
            {"X-Hub-Signature-256": "sha256=\u00e9"},
            GITHUB_BODY,
            NOW,
            "signature mismatch",
        ),
        (
            hmac_auth(),
            GITHUB_SECRET,
            {"X-Hub-Signature": GITHUB_SIGNATURE},
            GITHUB_BODY,
            NOW,
            "missing header X-Hub-Signature-256",
        ),
        (
            hmac_auth(),
            GITHUB_SECRET,
            {"X-Hub-Signature-256": ""},
            GITHUB_BODY,
            NOW,
            "missing header X-Hub-Signature-256",
        ),
        (
            hmac_auth(algorithm="md5"),
            GITHUB_SECRET,
            {"X-Hub-Signature-256": GITHUB_SIGNATURE},
            GITHUB_BODY,
            NOW,
            "unsupported algorithm 'md5'",
        ),
        (
            hmac_auth(),
            "",
            {"X-Hub-Signature-256": "sha256=" + sign("", GITHUB_BODY)},
            GITHUB_BODY,
            NOW,
            "the configured secret is empty",
        ),
        (
            SimpleNamespace(type="basic", header="Authorization"),
            "s3cret",
            {"Authorization": "s3cret"},
            b"",
            NOW,
            "unsupported auth type 'basic'",
        ),
    ],
    ids=[
        "slack-10-minutes-later",
        "slack-10-minutes-earlier",
        "custom-tolerance",
        "timestamp-tampered",
        "timestamp-not-integer",
        "timestamp-missing",
        "wrong-signature",
        "body-tampered",
        "wrong-secret",
        "wrong-prefix",
        "prefix-missing",
        "non-ascii-signature",
        "signature-header-missing",
        "signature-header-empty",
        "unknown-algorithm",
        "empty-secret",
        "unknown-type",
    ],
)
def test_failures_carry_a_short_reason(auth, secret, headers, body, now_seconds, reason):
    with pytest.raises(WebhookAuthFailure) as caught:
        verify_webhook(auth, secret, headers, body, now_seconds=now_seconds)

    assert caught.value.reason == reason


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
def test_each_algorithm_signs_the_raw_body(algorithm):
    body = b'{"zen": "Keep it logically awesome.", "bytes": "\xff\xfe"}'
    auth = hmac_auth(algorithm=algorithm, prefix=f"{algorithm}=")
    headers = {"X-Hub-Signature-256": f"{algorithm}={sign('k3y', body, algorithm)}"}

    verify_webhook(auth, "k3y", headers, body, now_seconds=NOW)


def test_missing_prefix_and_algorithm_default_to_plain_sha256():
    auth = SimpleNamespace(type="hmac", secret="S", header="X-Signature")
    headers = {"X-Signature": sign("k3y", b"payload")}

    verify_webhook(auth, "k3y", headers, b"payload", now_seconds=NOW)


@pytest.mark.parametrize(
    ("signature_base", "signed"),
    [
        ("{timestamp}.{body}", b"1700000000.\xffraw"),  # Stripe's layout
        ("v1:{{literal}}:{timestamp}:{body}", b"v1:{literal}:1700000000:\xffraw"),
        ("{body}", b"\xffraw"),
    ],
    ids=["stripe-layout", "escaped-braces", "body-only"],
)
def test_custom_signature_base_inserts_raw_body_bytes(signature_base, signed):
    auth = hmac_auth(
        header="X-Sig", prefix="", timestamp_header="X-Ts", signature_base=signature_base
    )
    headers = {"X-Ts": "1700000000", "X-Sig": sign("k3y", signed)}

    verify_webhook(auth, "k3y", headers, b"\xffraw", now_seconds=NOW)


@pytest.mark.parametrize(
    "signature_base",
    ["{timestamp}.{body.__class__}", "{secret}", "{timestamp!r}", "{body:>10}", "{unclosed"],
)
def test_bad_signature_base_fails_closed(signature_base):
    auth = hmac_auth(header="X-Sig", timestamp_header="X-Ts", signature_base=signature_base)
    headers = {"X-Ts": "1700000000", "X-Sig": "sha256=whatever"}

    assert signature_base_problem(signature_base) is not None
    with pytest.raises(WebhookAuthFailure, match="signature_base"):
        verify_webhook(auth, "k3y", headers, b"", now_seconds=NOW)


@pytest.mark.parametrize(
    ("header", "headers"),
    [
        ("X-Gitlab-Token", {"X-Gitlab-Token": "t0ken-value"}),
        ("X-Gitlab-Token", {"x-gitlab-token": "t0ken-value"}),
        ("Authorization", {"Authorization": "Bearer t0ken-value"}),
        ("Authorization", {"authorization": "bearer t0ken-value"}),
        ("Authorization", {"Authorization": "t0ken-value"}),
    ],
    ids=["exact", "lower-case-name", "bearer", "bearer-any-case", "authorization-bare"],
)
def test_token_verifies(header, headers):
    verify_webhook(token_auth(header), "t0ken-value", headers, b"{}", now_seconds=NOW)


@pytest.mark.parametrize(
    ("header", "headers", "reason"),
    [
        ("X-Gitlab-Token", {"X-Gitlab-Token": "wrong"}, "token mismatch"),
        ("X-Gitlab-Token", {"X-Gitlab-Token": "t0ken-value-and-more"}, "token mismatch"),
        # "Bearer " is only an Authorization scheme; elsewhere it is part of the token.
        ("X-Gitlab-Token", {"X-Gitlab-Token": "Bearer t0ken-value"}, "token mismatch"),
        ("Authorization", {"Authorization": "Basic t0ken-value"}, "token mismatch"),
        (
            "X-Gitlab-Token",
            {"Authorization": "Bearer t0ken-value"},
            "missing header X-Gitlab-Token",
        ),
        ("Authorization", {}, "missing header Authorization"),
    ],
    ids=["wrong", "longer", "bearer-outside-authorization", "basic-scheme", "other-header", "none"],
)
def test_token_failures(header, headers, reason):
    with pytest.raises(WebhookAuthFailure) as caught:
        verify_webhook(token_auth(header), "t0ken-value", headers, b"{}", now_seconds=NOW)

    assert caught.value.reason == reason


def test_reason_never_contains_the_secret_or_what_was_presented():
    presented = "sha256=" + sign("guess", GITHUB_BODY)

    with pytest.raises(WebhookAuthFailure) as caught:
        verify_webhook(
            hmac_auth(),
            GITHUB_SECRET,
            {"X-Hub-Signature-256": presented},
            GITHUB_BODY,
            now_seconds=NOW,
        )

    text = f"{caught.value.reason} {caught.value}"
    assert GITHUB_SECRET not in text and presented not in text and GITHUB_SIGNATURE not in text


def test_failure_is_an_unauthorized_error():
    assert issubclass(WebhookAuthFailure, Unauthorized)
    assert WebhookAuthFailure("stale timestamp").status_code == 401


# --- replay guards ---------------------------------------------------------------------


def test_a_timestamp_signature_is_guarded_for_twice_its_tolerance():
    guard = verify_webhook(
        slack_auth(tolerance_seconds=120),
        SLACK_SECRET,
        slack_headers(),
        SLACK_BODY,
        now_seconds=SLACK_TIMESTAMP,
    )

    signed = f"v0:{SLACK_TIMESTAMP}:".encode() + SLACK_BODY
    assert guard == ReplayGuard(hashlib.sha256(signed).hexdigest(), 240)


def test_a_new_timestamp_makes_a_new_guard_key():
    later = SLACK_TIMESTAMP + 1
    signature = "v0=" + sign(SLACK_SECRET, f"v0:{later}:".encode() + SLACK_BODY)

    first = verify_webhook(
        slack_auth(), SLACK_SECRET, slack_headers(), SLACK_BODY, now_seconds=SLACK_TIMESTAMP
    )
    second = verify_webhook(
        slack_auth(),
        SLACK_SECRET,
        slack_headers(later, signature),
        SLACK_BODY,
        now_seconds=SLACK_TIMESTAMP,
    )

    assert first.key != second.key


@pytest.mark.parametrize(
    ("window", "expected"),
    [(None, None), (3600, ReplayGuard(hashlib.sha256(GITHUB_BODY).hexdigest(), 3600))],
    ids=["no-window", "window"],
)
def test_a_body_signature_is_guarded_only_with_a_replay_window(window, expected):
    guard = verify_webhook(
        hmac_auth(replay_window_seconds=window),
        GITHUB_SECRET,
        {"X-Hub-Signature-256": GITHUB_SIGNATURE, "X-GitHub-Delivery": "any"},
        GITHUB_BODY,
        now_seconds=NOW,
    )

    assert guard == expected


def test_a_shared_token_cannot_be_guarded():
    assert (
        verify_webhook(token_auth(), "t0ken", {"X-Gitlab-Token": "t0ken"}, b"{}", now_seconds=NOW)
        is None
    )
