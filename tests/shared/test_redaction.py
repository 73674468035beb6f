"""Secret masking: every documented transformation of a secret is masked, little else is."""

from __future__ import annotations

import base64
import codecs
import json
from urllib.parse import quote, quote_plus

import pytest

from shared.domain.templating import render
from shared.redaction import MASK, mask_secrets, redact, secret_forms, secret_masker

SECRET = "Sk/9f3Kq7Lw2Xe8Rt+Zm=Q"
KNOWN = (SECRET,)
CONTEXT = {"secrets": {"API_KEY": SECRET}, "body": {"n": 1}}


def _b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode()


# Templates a workflow may write: what the sandbox renders must not survive masking.
TEMPLATES = [
    "{{ secrets.API_KEY }}",
    "before {{ secrets.API_KEY }} after",
    "{{ secrets.API_KEY[:4] }}",
    "{{ secrets.API_KEY[:6] }}",
    "{{ secrets.API_KEY[:-1] }}",
    "{{ secrets.API_KEY[-4:] }}",
    "{{ secrets.API_KEY[-9:] }}",
    "{{ secrets.API_KEY | reverse }}",
    "{{ (secrets.API_KEY | reverse)[:5] }}",
    "{{ secrets.API_KEY | upper }}",
    "{{ secrets.API_KEY | lower }}",
    "{{ secrets.API_KEY | title }}",
    "{{ secrets.API_KEY.swapcase() }}",
    "{{ secrets.API_KEY[:7] | upper }}",
    "{{ secrets.API_KEY | join('-') }}",
    "{{ secrets.API_KEY | join(', ') }}",
    "{{ secrets.API_KEY | list }}",
    "{{ ['x', secrets.API_KEY, 'y'] | join }}",
    "{{ secrets.API_KEY | urlencode }}",
    "{{ {'k': secrets.API_KEY} | urlencode }}",
    "{{ secrets.API_KEY | e }}",
    "{{ secrets.API_KEY | tojson }}",
    "{{ {'key': secrets.API_KEY} | tojson }}",
    "{{ secrets.API_KEY | replace('/', '%2F') }}",
]


@pytest.mark.parametrize("template", TEMPLATES)
def test_what_a_template_makes_of_a_secret_is_masked(template):
    rendered = render(template, CONTEXT)

    masked = mask_secrets(rendered, KNOWN)

    assert MASK in masked, rendered
    for form in (SECRET, SECRET[:4], SECRET[-4:], SECRET[::-1][:4], SECRET.upper()[:4]):
        assert form.lower() not in masked.lower(), (rendered, masked)


# What a remote server may echo back: encodings a template cannot produce itself.
ECHOES = {
    "base64": _b64(SECRET),
    "base64 unpadded": _b64(SECRET).rstrip("="),
    "base64 url-safe": base64.urlsafe_b64encode(SECRET.encode()).decode(),
    "Basic credential, offset 0": "Basic " + _b64("usr:" + SECRET),
    "Basic credential, offset 1": "Basic " + _b64("user:" + SECRET),
    "Basic credential, offset 2": "Basic " + _b64("us:" + SECRET + "\n"),
    "hex": SECRET.encode().hex(),
    "hex upper": SECRET.encode().hex().upper(),
    "quote": quote(SECRET, safe=""),
    "quote_plus": quote_plus(SECRET),
    "quote lower-case escapes": quote(SECRET, safe="").lower(),
    "a prefix": SECRET[:5],
    "json escaped": json.dumps({"v": SECRET}),
}


@pytest.mark.parametrize("name", ECHOES)
def test_an_encoded_echo_of_a_secret_is_masked(name):
    echoed = f'{{"seen": "{ECHOES[name]}", "ok": true}}'

    masked = mask_secrets(echoed, KNOWN)

    assert ECHOES[name] not in masked
    assert masked.startswith('{"seen": "') and masked.endswith('", "ok": true}')


def test_the_base64_of_a_secret_inside_longer_base64_is_masked_at_every_alignment():
    for prefix in ("", "a", "ab", "abc", "abcd"):
        encoded = _b64(prefix + SECRET + "tail")

        masked = mask_secrets(encoded, KNOWN)

        # Left: the characters that also encode the prefix or the tail, at most.
        left = masked.replace(MASK, "")
        assert MASK in masked and len(left) <= len(_b64(prefix)) + len(_b64("tail")), masked


@pytest.mark.parametrize(
    "text",
    [
        "nothing secret here",
        "Sk/ is only three characters of it",
        f"{SECRET[1:-1]} in the middle is not a prefix or suffix",  # a middle slice: not matched
        "-----BEGIN CERTIFICATE-----",
        "",
    ],
)
def test_text_without_a_prefix_suffix_or_form_of_a_secret_is_left_alone(text):
    assert mask_secrets(text, KNOWN) == text


def test_a_fragment_of_few_different_characters_is_not_masked_alone():
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----"

    assert mask_secrets("a line ----- and ====", (pem,)) == "a line ----- and ===="
    assert mask_secrets(pem, (pem,)) == MASK
    assert MASK in mask_secrets("-----BEGIN PRIVATE KEY-----\nMIIE", (pem,))


@pytest.mark.parametrize(
    ("secret", "kept", "masked"),
    [
        ("relay-credential-1", "relay Relay relay- RELAY", "relay-c lay-credential-1 dential-1"),
        ("key-2024", "key- 2024 key", "key-2 y-2024"),
        ("sk-live-4f9Qx2Lm8Zt", "sk-live sk-live-", "sk-live-4f9 9Qx2Lm8Zt"),
        (SECRET, "", "Sk/9f Zm=Q zm=q Rt+Zm=Q"),
    ],
)
def test_a_plain_word_at_either_end_of_a_secret_is_not_masked_alone(secret, kept, masked):
    text = f"{kept} | {masked}"

    result = mask_secrets(text, (secret,))

    assert result == f"{kept} | " + " ".join(MASK for _ in masked.split())


def test_a_secret_shorter_than_four_characters_is_not_masked():
    assert mask_secrets("pin 123 and 1234", ("123",)) == "pin 123 and 1234"
    assert mask_secrets("pin 123 and 1234", ("1234",)) == f"pin 123 and {MASK}"


def test_several_secrets_are_masked_in_one_text_and_the_rest_is_kept():
    other = "hunter2-Pw-77zz"
    text = f"a={SECRET}&b={other.upper()}&c={other[-5:]}&d=plain"

    assert mask_secrets(text, (SECRET, other)) == f"a={MASK}&b={MASK}&c={MASK}&d=plain"


def test_redact_masks_values_keys_and_nested_items_and_sensitive_keys():
    value = {
        "url": f"https://x.test/?k={SECRET}",
        SECRET[:6]: [SECRET.upper(), {"deep": SECRET[::-1]}, 7, None],
        "password": "anything",
    }

    redacted = redact(value, known_secrets=KNOWN)

    assert redacted == {
        "url": f"https://x.test/?k={MASK}",
        MASK: [MASK, {"deep": MASK}, 7, None],
        "password": MASK,
    }
    assert redact(value) == {**value, "password": MASK}  # no known secrets: keys only
    assert redact({(1, 2): SECRET, 3: "x"}, known_secrets=KNOWN) == {(1, 2): MASK, 3: "x"}


def test_secret_forms_lists_the_whole_forms_and_the_masker_is_built_once_per_set():
    forms = secret_forms(SECRET)

    assert {SECRET, _b64(SECRET), quote_plus(SECRET), SECRET.encode().hex()} <= forms
    assert codecs.encode(SECRET, "rot13") not in forms
    assert secret_masker((SECRET, "other-secret")) is secret_masker((SECRET, "other-secret"))
    assert secret_masker(("abc",)) is None


@pytest.mark.parametrize(
    "template", ["{{ s }}", "{{ s | e }}", "{{ s | tojson }}", "{{ s | urlencode }}"]
)
def test_escaped_forms_of_a_secret_with_markup_characters_are_masked_whole(template):
    secret = "p<Q&r'9xT\"2v>W"

    masked = mask_secrets(f"[{render(template, {'s': secret})}]", (secret,))

    assert masked.replace('"', "") == f"[{MASK}]"  # tojson's quotes are its own
