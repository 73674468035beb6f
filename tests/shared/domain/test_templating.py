"""Templates and expressions: rendering, native values, the sandbox, size caps, static checks."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.domain.templating import (
    CONTEXT_NAMES,
    MAX_RENDER_CHARS,
    STEP_BUDGET,
    TRIGGER_BUDGET,
    Budget,
    TemplateError,
    check_expression,
    check_template,
    evaluate,
    referenced_steps,
    render,
    render_value,
)
from shared.errors import PermanentStepError

CONTEXT = {
    "body": {
        "severity": "critical",
        "host": {"id": 7, "name": "web-1"},
        "items": ["a", "b"],
        "labels": {},
        "_id": "es-1",
        "count": 3,
        "note": None,
    },
    "headers": {"x-github-event": "push"},
    "query": {"dry_run": "1"},
    "trigger": {"type": "webhook", "path": ""},
    "vars": {"region": "kr"},
    "secrets": {"TOKEN": "s3cret"},
    "execution": {"id": "exec-1"},
    "steps": {"fetch": {"status_code": 200, "body": {"items": [{"cn": "a.example"}]}}},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("plain text, no template", "plain text, no template"),
        ("{{ body.host.name }} in {{ vars.region }}", "web-1 in kr"),
        ("{{ body['host']['id'] + 1 }}", "8"),
        ("{{ body.items | length }}", "2"),  # a payload key wins over dict.items
        ("{{ body.items | join(',') }}", "a,b"),
        ("{{ body.missing | default('none') }}", "none"),
        ("{{ body.labels.team | default('ops') }}", "ops"),  # missing in the middle too
        ("{{ body['_id'] }}", "es-1"),
        ("{{ body.host | tojson }}", '{"id": 7, "name": "web-1"}'),
        ("{{ '디스크' | tojson }}", '"디스크"'),
        ("{{ headers['x-github-event'] }}", "push"),
        ("{{ steps.fetch.body['items'][0].cn }}", "a.example"),
        ("{% for item in body['items'] %}{{ loop.index }}{{ item }}{% endfor %}", "1a2b"),
        ("{{ 'x' * 3 }}{{ 2 ** 10 }}", "xxx1024"),
        ("{{ '%.1f' % 2.25 }} {{ '{:>4}'.format(7) }}", "2.2    7"),
        (
            "{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}"
            "{% endfor %}{{ ns.n }}",
            "3",
        ),
    ],
)
def test_render(template, expected):
    assert render(template, CONTEXT) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("body.severity == 'critical'", True),
        ("{{ body.severity == 'critical' }}", True),
        ("  {{- body.severity == 'warning' -}}\n", False),
        ("body.count * 2", 6),
        ("body.items", ["a", "b"]),
        ("body.note", None),
        ("steps.fetch.status_code in [200, 201]", True),
        ("body['items'] | map('upper')", ["A", "B"]),  # iterators come back as lists
        ("body.labels.team is defined", False),
        ("query.dry_run == '1' and trigger.type == 'webhook'", True),
    ],
)
def test_evaluate_gives_native_values(expression, expected):
    assert evaluate(expression, CONTEXT) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "{{ body.host.nick }}",
            "template error in \"{{ body.host.nick }}\": 'dict object' has no attribute 'nick'",
        ),
        ("{{ nobody }}", "template error in \"{{ nobody }}\": 'nobody' is undefined"),
        ("{{ body.labels.team.name }}", "'dict object' has no attribute 'team'"),
        ("{{ body.note.text }}", "'None' has no attribute 'text'"),
        ("{{ body.labels.team == 'x' }}", "has no attribute 'team'"),
        ("{% if body.labels.team %}x{% endif %}", "has no attribute 'team'"),
        ("{{ 1 / 0 }}", 'template error in "{{ 1 / 0 }}": ZeroDivisionError: division by zero'),
        ("{{ body.host + 1 }}", "TypeError"),
        ("{{ x }", "template syntax error in \"{{ x }\": unexpected '}'"),
        ("{{ x | no_such_filter }}", "No filter named 'no_such_filter'"),
        ("{% include 'other' %}", "no loader"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "RecursionError"),
        ("first\n{{ body.nope }}\nthird", '"first\\n{{ body.nope }}\\nthird" (line 2)'),
    ],
)
def test_render_errors_name_the_template(template, message):
    with pytest.raises(TemplateError) as raised:
        render(template, CONTEXT)

    assert message in str(raised.value)
    assert raised.value.source == template


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "{{ ''.__class__ }}",
            "unsafe access refused in \"{{ ''.__class__ }}\": "
            "access to attribute '__class__' of 'str' object is unsafe",
        ),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "'__class__' of 'str' object"),
        ("{{ cycler.__init__.__globals__ }}", "'__init__' of 'type' object is unsafe"),
        ("{{ joiner.__call__.__globals__ }}", "is unsafe"),
        ("{{ body._id }}", "'_id' of 'dict' object is unsafe"),
        ("{{ body._private }}", "'_private' of 'dict' object is unsafe"),
        ("{{ ''['__class__'] }}", "is unsafe"),
        ("{{ (1).__class__.__base__.__subclasses__() }}", "is unsafe"),
        ("{{ '{0.__class__}'.format(1) }}", "is unsafe"),
        ("{{ body['items'].append('c') }}", "'append' of 'list' object is unsafe"),
        ("{{ vars.update({'region': 'us'}) }}", "'update' of 'dict' object is unsafe"),
        ("{{ range.__self__ }}", "is unsafe"),
        ("{{ self.__init__ }}", "is unsafe"),
        ("{{ lipsum.__globals__ }}", "'lipsum' is undefined"),
    ],
)
def test_sandbox_escapes_are_refused(template, message):
    with pytest.raises(TemplateError) as raised:
        render(template, CONTEXT)

    assert message in str(raised.value)
    assert CONTEXT["vars"] == {"region": "kr"} and CONTEXT["body"]["items"] == ["a", "b"]


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'x' * 10 ** 9 }}",
        "{{ [0] * 10 ** 9 }}",
        "{{ 10 ** 1000000 }}",
        "{{ (2 ** 4000) * (2 ** 4000) }}",
        "{{ 'x' * 40000 + 'y' * 40000 }}",
        "{% set a = 'x' * 40000 %}{{ a ~ a }}",
        "{{ 'x' | center(10 ** 9) }}",
        "{{ 'x'.ljust(10 ** 9) }}",
        "{{ ('x' * 60000).replace('x', 'xx') }}",
        "{{ ('x' * 60000) | replace('x', 'xx') }}",
        "{{ range(100000) | join('x' * 1000) }}",
        "{{ 'x'.join(range(100000) | map('string')) }}",
        "{{ [1] | batch(10 ** 9, 'x') | list }}",
        "{{ '%999999999d' % 1 }}",
        "{{ '%*d' | format(10 ** 9, 1) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{% for i in range(100000) %}0123456789{% endfor %}",
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}",
        "x" * (MAX_RENDER_CHARS + 1),
    ],
    ids=lambda template: template[:48],
)
def test_output_and_blowups_are_capped(template):
    with pytest.raises(TemplateError, match="output too large in"):
        render(template, CONTEXT)


# Each would run for seconds (most for hours) unbounded while writing little output.
EXPENSIVE = [
    "{% for a in range(3000) %}{% for b in range(3000) %}{% endfor %}{% endfor %}",
    "{% for a in range(100000) %}{% for b in range(100000) %}{% set c = a + b %}{% endfor %}"
    "{% endfor %}",
    "{% for a in body.many %}{% for b in body.many %}{% if a == b %}{% endif %}{% endfor %}"
    "{% endfor %}",
    "{% for a in range(300) recursive %}{% if loop.depth < 4 %}{{ loop(range(300)) }}{% endif %}"
    "{% endfor %}",
    "{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}{{ m(40) }}",
    "{% for i in range(3000) %}{{ (range(100000) | list | sort)[0] }}{% endfor %}",
    "{% for i in range(3000) %}{{ body.many | map('string') | join | length }}{% endfor %}",
    "{% for i in range(3000) %}{{ {}.fromkeys(body.many) | length }}{% endfor %}",
]
BIG = {"body": {"many": list(range(3000))}}


@pytest.mark.parametrize("template", EXPENSIVE, ids=lambda template: template[:48])
def test_work_is_bounded_by_the_trigger_budget(template):
    started = time.monotonic()
    with pytest.raises(TemplateError, match="too much work in .* the limit for trigger templates"):
        render(template, BIG, budget=TRIGGER_BUDGET)

    assert time.monotonic() - started < 1


def test_step_templates_have_a_larger_budget_and_still_end():
    started = time.monotonic()
    with pytest.raises(TemplateError, match="too much work in .* the limit for step templates"):
        render(EXPENSIVE[0], {})  # the default budget

    assert time.monotonic() - started < STEP_BUDGET.milliseconds / 1000 + 1
    assert render(EXPENSIVE[0].replace("3000", "100"), {}) == ""


def test_expressions_are_bounded_too():
    with pytest.raises(TemplateError, match="more than 10000 operations"):
        evaluate("range(100000) | list | sort | first", BIG, budget=TRIGGER_BUDGET)


def test_the_wall_clock_bounds_what_the_count_allows():
    slow = Budget("test", operations=10**9, milliseconds=50)
    started = time.monotonic()

    with pytest.raises(TemplateError, match="runs for more than 50 ms, the limit for test"):
        render(EXPENSIVE[0], {}, budget=slow)

    assert time.monotonic() - started < 1


def test_filters_on_constants_are_counted_when_rendering_not_run_when_compiling():
    small = Budget("test", operations=100, milliseconds=1000)

    with pytest.raises(TemplateError, match="more than 100 operations"):
        render("{{ [0] | batch(60000, 0) | first | join | length }}", {}, budget=small)


def test_a_long_filter_chain_is_checked_in_linear_time():
    chain = "{{ body.x" + " | string" * 150 + " }}"  # Jinja's optimizer took ~20 s here
    started = time.monotonic()

    assert check_template(chain) == []
    assert time.monotonic() - started < 2


def test_render_value_shares_one_budget_across_its_strings():
    small = Budget("test", operations=40, milliseconds=1000)
    one = "{% for i in range(10) %}{{ i }}{% endfor %}"

    assert render(one, {}, budget=small) == "0123456789"
    with pytest.raises(TemplateError, match="more than 40 operations"):
        render_value({"a": one, "b": [one, one, one]}, {}, budget=small)


@pytest.mark.parametrize(
    "template",
    [
        "{{ body.alert.fingerprint }}",
        "{{ body.alerts | map(attribute='labels.host') | sort | join(',') }}",
        "{% for alert in body.alerts %}{{ alert.labels.host }}:{{ loop.index }};{% endfor %}",
    ],
)
def test_trigger_budget_fits_ordinary_dedupe_keys(template):
    alerts = [{"labels": {"host": f"web-{index}"}} for index in range(500)]
    context = {"body": {"alert": {"fingerprint": "f1"}, "alerts": alerts}}

    assert render(template, context, budget=TRIGGER_BUDGET)


def test_output_up_to_the_cap_renders():
    assert len(render(f"{{{{ 'x' * {MAX_RENDER_CHARS} }}}}", {})) == MAX_RENDER_CHARS


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("body.labels.team", "'dict object' has no attribute 'team'"),
        ("[body.labels.team]", "has no attribute 'team'"),
        ("body.severity ==", "template syntax error"),
        ("{{ body.severity }} == 'critical'", "template syntax error"),
        ("''.__class__", "unsafe access refused"),
        ("body.items * 10 ** 9", "output too large"),
        ("", "template syntax error"),
    ],
)
def test_evaluate_errors(expression, message):
    with pytest.raises(TemplateError) as raised:
        evaluate(expression, CONTEXT)

    assert message in str(raised.value)


@pytest.mark.parametrize("call", [render, evaluate])
def test_only_text_is_a_template(call):
    with pytest.raises(TemplateError, match="expected template text, got NoneType"):
        call(None, CONTEXT)


def test_template_error_is_a_permanent_step_error_and_quotes_at_most_200_characters():
    template = "{{ missing }}" + "x" * 500

    with pytest.raises(TemplateError) as raised:
        render(template, CONTEXT)

    assert isinstance(raised.value, PermanentStepError)
    quoted = str(raised.value).split('"')[1]
    assert len(quoted) == 200 and quoted.endswith("...")


def test_render_value_renders_every_string_inside():
    value = {
        "host": "{{ body.host.name }}",
        "tags": ["{{ vars.region }}", 3, None, True],
        "pair": ("{{ 1 + 1 }}",),
        "{{ key }}": {"deep": "{{ execution.id }}"},
    }

    assert render_value(value, CONTEXT) == {
        "host": "web-1",
        "tags": ["kr", 3, None, True],
        "pair": ("2",),
        "{{ key }}": {"deep": "exec-1"},
    }


def test_rendering_is_safe_from_many_threads():
    templates = [f"{{{{ body.count * {n} }}}}" for n in range(50)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda template: render(template, CONTEXT), templates * 4))

    assert results == [str(3 * n) for n in range(50)] * 4


@pytest.mark.parametrize(
    ("template", "problems"),
    [
        ("{{ body.host }} {{ steps.fetch.body }} {{ secrets.TOKEN }}", []),
        ("{% for item in body['items'] %}{{ loop.index }}{{ item }}{% endfor %}", []),
        ("{% set n = 1 %}{{ n }}{{ range(3) | list }}{{ namespace(a=1).a }}{{ dict(a=1) }}", []),
        ("{% macro m(a) %}{{ a }}{{ caller() }}{% endmacro %}", []),
        ("{{ bdy.host }}", ["unknown name 'bdy'; did you mean 'body'?"]),
        ("{{ payload }}", [f"unknown name 'payload'; use {', '.join(sorted(CONTEXT_NAMES))}"]),
        ("{{ body.host }", ["template syntax error: unexpected '}'"]),
        ("{% if x %}", ["template syntax error: Unexpected end of template."]),
        ("{{ x | nope }}", ["template syntax error: No filter named 'nope'."]),
        (
            "{{ ''.__class__ }}",
            ["attribute '__class__' starts with '_', which the sandbox refuses"],
        ),
        (
            "{{ body.__class__.__mro__ }}{{ vars._z }}",
            ["attributes '__mro__', '__class__', '_z' start"],
        ),
        (
            "{% include 'x' %}",
            ["extends, include and import are not available in workflow templates"],
        ),
    ],
)
def test_check_template(template, problems):
    found = check_template(template)

    assert len(found) == len(problems)
    assert all(
        found_one.startswith(problem) for found_one, problem in zip(found, problems, strict=True)
    )


@pytest.mark.parametrize(
    ("expression", "problems"),
    [
        ("body.severity == 'critical'", []),
        ("{{ body.severity == 'critical' }}", []),
        ("steps.fetch.status_code >= 200 and vars.region", []),
        ("body.severity = 'critical'", ["template syntax error"]),
        ("{{ a }} and {{ b }}", ["(write the whole expression inside one {{ }}, or none)"]),
        ("severity == 'critical'", ["unknown name 'severity'"]),
        ("body.__class__", ["attribute '__class__' starts with '_'"]),
    ],
)
def test_check_expression(expression, problems):
    found = check_expression(expression)

    assert len(found) == len(problems)
    assert all(problem in found_one for found_one, problem in zip(found, problems, strict=True))


def test_checks_can_narrow_the_names():
    names = frozenset({"body", "headers", "query", "trigger"})

    assert check_template("{{ body.id }}{{ headers['x-id'] }}", names=names) == []
    assert check_template("{{ steps.a.id }}", names=names) == [
        "unknown name 'steps'; use body, headers, query, trigger"
    ]


@pytest.mark.parametrize(
    ("text", "expression", "steps"),
    [
        (
            "{{ steps.fetch.body }} {{ steps['deploy-prod'].status }}",
            False,
            {"fetch", "deploy-prod"},
        ),
        ("steps.check.output and steps.ask.status == 'succeeded'", True, {"check", "ask"}),
        ("{{ steps.a.output }}", True, {"a"}),
        ("{{ steps[name] }} {{ body.steps }}", False, set()),
        ("{{ steps. }}", False, set()),
    ],
)
def test_referenced_steps(text, expression, steps):
    assert referenced_steps(text, expression=expression) == steps
