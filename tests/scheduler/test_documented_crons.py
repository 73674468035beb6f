"""Every cron expression the README and the examples show is accepted and fires as described."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from scheduler.due import CronSpec, Schedule
from shared.domain.workflow_spec import parse_workflow, validate_document

REPO = Path(__file__).parents[2]
START = datetime(2026, 3, 1, 0, 0, 0, tzinfo=timezone.utc)


def _readme_expressions() -> list[tuple[str, str]]:
    """(expr, tz) of every cron expression written in README.md (inline or in YAML)."""
    readme = (REPO / "README.md").read_text()
    found = []
    for match in re.finditer(r'expr: "([^"]+)"(?:, tz: ([A-Za-z_/]+))?', readme):
        found.append((match.group(1), match.group(2) or "UTC"))
    # Examples quoted alone in prose, e.g. (`"* * * * * */10"`).
    for match in re.finditer(r'`"((?:\S+ ){4,5}\S+)"`', readme):
        found.append((match.group(1), "UTC"))
    return found


def _example_expressions() -> list[tuple[str, str]]:
    found = []
    for path in sorted((REPO / "examples").glob("*.yaml")):
        text = path.read_text()
        assert validate_document(text) == [], path.name
        found.extend((trigger.expr, trigger.tz) for trigger in parse_workflow(text).cron_triggers())
    return found


DOCUMENTED = sorted(set(_readme_expressions() + _example_expressions()))


def _fires(expr: str, tz: str, *, count: int, step: timedelta) -> list[datetime]:
    """The first ``count`` slots the scheduler fires, ticking every ``step`` from START."""
    schedule = Schedule()
    schedule.upsert(CronSpec(("wf", 1, 0), expr, tz), last_slot=None, now=START)
    fired: list[datetime] = []
    now = START
    for _ in range(200_000):
        if len(fired) >= count:
            break
        next_at = schedule.next_due_at()
        assert next_at is not None, f"{expr!r} never fires again"
        now = max(now + step, next_at)
        fired.extend(slot for _, slot in schedule.due(now))
    return fired[:count]


def test_the_readme_and_the_examples_show_cron_expressions():
    assert any(len(expr.split()) == 6 for expr, _ in DOCUMENTED)
    assert any(len(expr.split()) == 5 for expr, _ in DOCUMENTED)


@pytest.mark.parametrize(("expr", "tz"), DOCUMENTED)
def test_a_documented_expression_is_valid_and_fires(expr, tz):
    document = f"id: doc\nname: doc\ntriggers:\n  - type: cron\n    expr: \"{expr}\"\n    tz: {tz}\nsteps:\n  - {{id: s, type: condition, expr: 'true'}}\n"

    assert validate_document(document) == []
    fired = _fires(expr, tz, count=3, step=timedelta(seconds=1))
    assert len(fired) == 3 and fired == sorted(fired) and fired[0] > START


@pytest.mark.parametrize(
    ("expr", "tz"), [(expr, tz) for expr, tz in DOCUMENTED if len(expr.split()) == 6]
)
def test_a_documented_seconds_expression_fires_at_a_steady_pace(expr, tz):
    # "Seconds last" is shown to fire every N seconds: every gap between slots is the same.
    # Enough slots to cross minute boundaries: an expression stepping its minutes instead
    # (`*/10 * * * * *`) fires every second for a minute, then waits nine.
    fired = _fires(expr, tz, count=200, step=timedelta(seconds=1))
    gaps = {later - earlier for earlier, later in zip(fired, fired[1:], strict=False)}

    assert len(gaps) == 1, f"{expr!r} fires unevenly: {sorted(gaps)}"
    assert gaps.pop() < timedelta(minutes=1)
