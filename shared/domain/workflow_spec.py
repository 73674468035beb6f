"""Workflow YAML: parse into a typed model, reporting every problem with its path and place.

``parse_workflow`` gives a :class:`WorkflowSpec` or raises :class:`SpecInvalid` with all the
problems; ``validate_document`` returns them. The CLI's ``workflow validate``, the
workflow API and the engine share both. Step types' own fields live in
:mod:`shared.domain.step_specs`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from croniter import croniter

from shared.domain.step_specs import (
    MAX_TIMEOUT_SECONDS,
    STEP_READERS,
    Fields,
    Invalid,
    Scope,
    SpecProblem,
    Spot,
    boolean,
    check_data,
    integer,
    matching,
    non_empty,
    one_of,
    plain,
    runner_retry_trigger,
    seconds,
    str_value,
)
from shared.domain.storable import unstorable_character
from shared.domain.workflow_yaml import MAX_DOCUMENT_VALUES, WorkflowLoader, YamlMap, load_yaml
from shared.errors import ValidationError

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "CronTrigger",
    "RetryPolicy",
    "SpecInvalid",
    "SpecProblem",
    "Step",
    "WebhookAuth",
    "WebhookTrigger",
    "WorkflowSpec",
    "parse_workflow",
    "validate_document",
]

STEP_TYPES = tuple(STEP_READERS)
TRIGGER_TYPES = ("webhook", "cron")
#: Each step type's time limit when the step sets no ``timeout_seconds``, in seconds.
DEFAULT_TIMEOUT_SECONDS = {
    "http": 30,
    "notify": 30,
    "condition": 10,
    "approval": 86_400,
    "runner": 300,
}
#: Most steps a workflow may have when the caller sets no limit of its own (the API uses
#: AISOPSFLOW_MAX_STEPS_PER_WORKFLOW).
DEFAULT_MAX_STEPS = 500
#: The context ``dedupe_key`` and ``resolve_when`` see: the request, before any step runs.
TRIGGER_NAMES = frozenset({"body", "headers", "query", "trigger"})

ID = matching(
    re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}"),
    "an id of letters, digits, '_' and '-' (at most 64, not starting with a digit or '-')",
)
_HOOK_PATH = matching(
    re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}|"), "a path of letters, digits, '_', '.', '-'"
)
_HEADER = matching(re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"), "an HTTP header name")
# The same rule as shared.secrets_store.KEY_PATTERN (which this pure module cannot import).
_SECRET = matching(re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}"), "a secret name")
_SIGNATURE_FIELDS = frozenset({"timestamp", "body"})


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed step is retried; delays in milliseconds."""

    max: int = 0
    backoff_ms: int = 1000
    max_backoff_ms: int = 60_000
    jitter: bool = True
    retry_on: tuple[str | int, ...] = ()


@dataclass(frozen=True)
class WebhookAuth:
    """How a webhook request proves where it came from (``secret`` names a tenant secret)."""

    type: str
    secret: str
    header: str
    algorithm: str = "sha256"
    prefix: str = ""
    timestamp_header: str | None = None
    tolerance_seconds: int = 300
    signature_base: str | None = None
    replay_window_seconds: int | None = None


@dataclass(frozen=True)
class WebhookTrigger:
    """``POST /api/hooks/{workflow}/{path}`` starts the workflow."""

    path: str = ""
    dedupe_key: str | None = None
    dedupe_window_seconds: int | None = None
    resolve_when: str | None = None
    auth: WebhookAuth | None = None
    type: str = "webhook"


@dataclass(frozen=True)
class CronTrigger:
    """A schedule; ``expr`` has 5 fields, or 6 with seconds last (croniter's order)."""

    expr: str
    tz: str = "UTC"
    misfire_grace_seconds: int = 60
    catch_up: bool = False
    catch_up_limit: int = 10
    type: str = "cron"


@dataclass(frozen=True)
class Step:
    """One step; ``params`` holds its type's own fields, checked, with defaults filled in."""

    id: str
    type: str
    when: str | None
    timeout_seconds: float
    retry: RetryPolicy
    continue_on_error: bool
    params: Mapping[str, Any]


@dataclass(frozen=True)
class WorkflowSpec:
    """A whole, valid workflow."""

    id: str
    name: str
    enabled: bool
    description: str
    vars: Mapping[str, Any]
    triggers: tuple[WebhookTrigger | CronTrigger, ...]
    steps: tuple[Step, ...]

    def step_index(self, step_id: str) -> int:
        """The position of step ``step_id``; KeyError when there is none."""
        for index, step in enumerate(self.steps):
            if step.id == step_id:
                return index
        raise KeyError(f"workflow {self.id!r} has no step {step_id!r}")

    def step(self, step_id: str) -> Step:
        """The step ``step_id``; KeyError when there is none."""
        return self.steps[self.step_index(step_id)]

    def webhook_trigger(self, path: str = "") -> WebhookTrigger | None:
        """The webhook trigger at ``path``; for "" the one without a path, or the only one."""
        hooks = [trigger for trigger in self.triggers if isinstance(trigger, WebhookTrigger)]
        for hook in hooks:
            if hook.path == path:
                return hook
        return hooks[0] if path == "" and len(hooks) == 1 else None

    def cron_triggers(self) -> tuple[CronTrigger, ...]:
        return tuple(trigger for trigger in self.triggers if isinstance(trigger, CronTrigger))


class SpecInvalid(ValidationError):
    """A workflow document has problems; ``problems`` lists them all."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        first = problems[0].describe() if problems else "unknown problem"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(
            f"workflow is not valid: {first}{more}",
            errors=[
                {"path": p.path, "message": p.message, "line": p.line, "column": p.column}
                for p in problems
            ],
        )
        self.problems = problems


# ---- reading the YAML ---------------------------------------------------------------------


def _too_many_steps(max_steps: int) -> str:
    return (
        f"has more than {max_steps} steps, the most a workflow may have "
        "(AISOPSFLOW_MAX_STEPS_PER_WORKFLOW); split it into smaller workflows"
    )


class _TooManySteps(Exception):
    """The top-level ``steps`` list passed the limit while the YAML was being read."""

    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__("too many steps")
        self.mark = mark


class _StepCountingLoader(WorkflowLoader):
    """A WorkflowLoader that stops as soon as the top-level ``steps`` list passes ``max_steps``.

    Reading YAML costs far more than anything after it, so an upload with 20 000 steps is
    refused after reading ``max_steps`` of them, not all. (An alias as the steps list is
    not counted here; :func:`_read_steps` counts it.)
    """

    def __init__(self, text: str, max_steps: int) -> None:
        super().__init__(text)
        self.max_steps = max_steps
        self._depth = 0  # 1 while composing the root's keys and values, 2 inside those
        self._in_steps = False

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self._in_steps and self._depth == 2 and isinstance(index, int):
            if index >= self.max_steps:
                raise _TooManySteps(self.peek_event().start_mark)
        opens_steps = (
            self._depth == 1 and isinstance(index, yaml.ScalarNode) and index.value == "steps"
        )
        self._depth += 1
        self._in_steps = self._in_steps or opens_steps
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if opens_steps:
                self._in_steps = False


def _load(text: str, max_steps: int | None = None) -> tuple[Any, list[SpecProblem]]:
    """The document, or the problems that stop it from being read at all."""
    try:
        if max_steps is None:
            document = load_yaml(text)
        else:
            document = load_yaml(text, lambda stream: _StepCountingLoader(stream, max_steps))
    except _TooManySteps as error:
        place = (error.mark.line + 1, error.mark.column + 1)
        return None, [SpecProblem("steps", _too_many_steps(max_steps or 0), *place)]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        place = (mark.line + 1, mark.column + 1) if mark else (None, None)
        return None, [SpecProblem("", f"not valid YAML: {problem}", *place)]
    if not isinstance(document, Mapping):
        return None, [SpecProblem("", "expected a mapping with id, name, triggers and steps", 1, 1)]
    problems = _document_problems(document)
    if problems is None:
        return None, [SpecProblem("", f"the document expands to over {MAX_DOCUMENT_VALUES} values")]
    return document, problems


def _document_problems(document: YamlMap) -> list[SpecProblem] | None:
    """Duplicate keys and unstorable text anywhere; None when aliases expand it too far."""
    problems: list[SpecProblem] = []
    pending: list[tuple[Any, Spot]] = [(document, Spot(""))]
    seen = 0
    while pending:
        value, spot = pending.pop()
        seen += 1
        if seen > MAX_DOCUMENT_VALUES:
            return None
        if isinstance(value, str) and (found := unstorable_character(value)):
            problems.append(spot.problem(f"contains {found}"))
        elif isinstance(value, YamlMap):
            for key, (line, column) in value.duplicates:
                problems.append(
                    SpecProblem(spot.key(value, key).path, f"duplicate key {key!r}", line, column)
                )
            for key in value:
                if isinstance(key, str) and (found := unstorable_character(key)):
                    problems.append(spot.key(value, key).problem(f"the key contains {found}"))
            pending.extend((item, spot.key(value, key)) for key, item in value.items())
        elif isinstance(value, list):
            pending.extend((item, spot.item(value, i)) for i, item in enumerate(value))
    return problems


# ---- the document -------------------------------------------------------------------------


def _read_document(
    text: str, max_steps: int | None
) -> tuple[WorkflowSpec | None, list[SpecProblem]]:
    try:
        return _read(text, max_steps)
    except RecursionError:  # PyYAML and the checks recurse once per level of nesting
        return None, [SpecProblem("", "the document is nested too deeply to read")]


def _read(text: str, max_steps: int | None) -> tuple[WorkflowSpec | None, list[SpecProblem]]:
    document, problems = _load(text, max_steps)
    if document is None:
        return None, problems
    top = Fields(document, Spot(""), problems)
    workflow_id = top.get("id", ID, required=True)
    name = top.get("name", non_empty, required=True)
    description = top.get("description", str_value, "")
    enabled = top.get("enabled", boolean, True)
    variables: dict[str, Any] = {}
    vars_fields = top.fields("vars")
    if vars_fields is not None:
        check_data(vars_fields.mapping, vars_fields.spot, problems)
        variables = plain(vars_fields.mapping)
    known_vars = None if "vars" in top and vars_fields is None else frozenset(variables)
    triggers = _read_triggers(top)
    steps = _read_steps(top, Scope(variables=known_vars), max_steps)
    top.finish()
    if problems:
        return None, sorted(problems, key=lambda problem: (problem.line or 0, problem.column or 0))
    spec = WorkflowSpec(
        workflow_id, name, enabled, description, variables, tuple(triggers), tuple(steps)
    )
    return spec, []


def parse_workflow(text: str, *, max_steps: int | None = DEFAULT_MAX_STEPS) -> WorkflowSpec:
    """The workflow in YAML ``text``; SpecInvalid lists every problem when it is not valid.

    More than ``max_steps`` steps is a problem; None means no limit (for versions already
    stored, which were checked when they were uploaded).
    """
    spec, problems = _read_document(text, max_steps)
    if spec is None:
        raise SpecInvalid(problems)
    return spec


def validate_document(text: str, *, max_steps: int | None = DEFAULT_MAX_STEPS) -> list[SpecProblem]:
    """Every problem found in a workflow YAML document; empty when it is valid."""
    return _read_document(text, max_steps)[1]


# ---- triggers -----------------------------------------------------------------------------


def _read_triggers(top: Fields) -> list[WebhookTrigger | CronTrigger]:
    triggers: list[WebhookTrigger | CronTrigger] = []
    paths: dict[str, str] = {}
    for item, spot in top.items("triggers", required=True, non_empty=True) or []:
        fields = Fields.of(item, spot, top.problems)
        if fields is None:
            continue
        kind = fields.get("type", one_of(*TRIGGER_TYPES), required=True)
        if kind == "webhook":
            hook = _read_webhook(fields)
            if hook.path in paths and fields.mapping.get("path", "") == hook.path:
                fields.report("path", f"path {hook.path!r} is already used by {paths[hook.path]}")
            paths.setdefault(hook.path, spot.path)
            triggers.append(hook)
        elif kind == "cron":
            triggers.append(_read_cron(fields))
        fields.finish(strict=kind is not None)
    return triggers


def _read_webhook(fields: Fields) -> WebhookTrigger:
    scope = Scope(names=TRIGGER_NAMES)
    hook = WebhookTrigger(
        path=fields.get("path", _HOOK_PATH, ""),
        dedupe_key=fields.template("dedupe_key", scope),
        dedupe_window_seconds=fields.get("dedupe_window_seconds", integer(1), None),
        resolve_when=fields.expression("resolve_when", scope),
        auth=_read_auth(fields),
    )
    for key in ("dedupe_window_seconds", "resolve_when"):
        if key in fields and "dedupe_key" not in fields:
            fields.report(key, "needs a dedupe_key: it applies to executions with the same key")
    return hook


def _signature_base(value: Any) -> str:
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(non_empty(value))
            if name is not None
        ]
    except ValueError:
        fields = [("", "", "")]
    names = {name for name, spec, conversion in fields if not (spec or conversion)}
    if len(names) != len(fields) or "body" not in names or not names <= _SIGNATURE_FIELDS:
        raise Invalid(
            "expected text with {body} and optionally {timestamp}, like 'v0:{timestamp}:{body}'"
            f", got {value!r}"
        )
    return value


def _read_auth(hook: Fields) -> WebhookAuth | None:
    fields = hook.fields("auth")
    if fields is None:
        return None
    kind = fields.get("type", one_of("hmac", "token"), required=True)
    secret = fields.get("secret", _SECRET, required=True)
    header = fields.get("header", _HEADER, required=True)
    prefix = fields.get("prefix", str_value, "")
    hmac_only = {}
    if kind == "hmac":
        hmac_only = {
            "algorithm": fields.get("algorithm", one_of("sha1", "sha256", "sha512"), "sha256"),
            "timestamp_header": fields.get("timestamp_header", _HEADER, None),
            "tolerance_seconds": fields.get("tolerance_seconds", integer(1, 86_400), 300),
            "signature_base": fields.get("signature_base", _signature_base, None),
            "replay_window_seconds": fields.get(
                "replay_window_seconds", integer(1, 7 * 86_400), None
            ),
        }
        for key in ("tolerance_seconds", "signature_base"):
            if key in fields and "timestamp_header" not in fields:
                fields.report(key, "needs a timestamp_header")
        if "replay_window_seconds" in fields and "timestamp_header" in fields:
            fields.report(
                "replay_window_seconds",
                "a timestamp_header already refuses replays within tolerance_seconds",
            )
    elif kind == "token":
        for key in (
            "algorithm",
            "timestamp_header",
            "tolerance_seconds",
            "signature_base",
            "replay_window_seconds",
        ):
            if key in fields:
                fields.raw(key)
                fields.report(key, "applies to type hmac only")
    fields.finish(strict=kind is not None)
    if kind is None or secret is None or header is None:
        return None
    return WebhookAuth(kind, secret, header, prefix=prefix, **hmac_only)


def _cron_expression(value: Any) -> str:
    expr = non_empty(value).strip()
    count = len(expr.split())
    if not expr.startswith("@") and count not in (5, 6):
        raise Invalid(
            f"expected 5 fields (minute hour day month weekday), or 6 with seconds last, "
            f"got {count} in {expr!r}"
        )
    try:
        valid = croniter.is_valid(expr)
    except Exception:  # croniter raises its own errors for some malformed input
        valid = False
    if not valid:
        raise Invalid(f"{expr!r} is not a valid cron expression")
    return expr


def _time_zone(value: Any) -> str:
    try:
        ZoneInfo(non_empty(value))
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise Invalid(f"unknown time zone {value!r}; use an IANA name like 'Asia/Seoul'") from None
    return value


def _read_cron(fields: Fields) -> CronTrigger:
    return CronTrigger(
        expr=fields.get("expr", _cron_expression, "", required=True),
        tz=fields.get("tz", _time_zone, "UTC"),
        misfire_grace_seconds=fields.get("misfire_grace_seconds", integer(0, 86_400), 60),
        catch_up=fields.get("catch_up", boolean, False),
        catch_up_limit=fields.get("catch_up_limit", integer(1, 1000), 10),
    )


# ---- steps --------------------------------------------------------------------------------


def _read_steps(top: Fields, workflow_scope: Scope, max_steps: int | None) -> list[Step]:
    steps: list[Step] = []
    earlier: dict[str, str] = {}
    items = top.items("steps", required=True, non_empty=True) or []
    if max_steps is not None and len(items) > max_steps:
        top.report("steps", _too_many_steps(max_steps))
        return steps
    # A live view, not a copy per step (that was quadratic): each step is checked before
    # its own id is added, so the view holds exactly the earlier steps.
    scope = replace(workflow_scope, earlier_steps=earlier.keys())
    for item, spot in items:
        fields = Fields.of(item, spot, top.problems)
        if fields is None:
            continue
        step = _read_step(fields, scope)
        step_id = fields.mapping.get("id")
        if isinstance(step_id, str) and step_id in earlier:
            fields.report("id", f"duplicate step id {step_id!r} (first used by {earlier[step_id]})")
        elif isinstance(step_id, str):
            earlier[step_id] = spot.path
        if step is not None:
            steps.append(step)
    return steps


def _read_step(fields: Fields, scope: Scope) -> Step | None:
    step_id = fields.get("id", ID, required=True)
    kind = fields.get("type", one_of(*STEP_TYPES), required=True)
    when = fields.expression("when", scope)
    timeout = fields.get(
        "timeout_seconds",
        seconds(MAX_TIMEOUT_SECONDS),
        float(DEFAULT_TIMEOUT_SECONDS.get(kind, 30)),
    )
    retry = _read_retry(fields, kind)
    continue_on_error = fields.get("continue_on_error", boolean, False)
    if kind is None:
        fields.finish(strict=False)
        return None
    params = STEP_READERS[kind](fields, scope, timeout)
    if params.get("retry_on") is not None:
        # A runner step may write retry_on beside retry; either way it lands in the policy.
        if retry.retry_on:
            fields.report("retry_on", "retry_on is also set under retry; keep one")
        retry = replace(retry, retry_on=tuple(dict.fromkeys(params.pop("retry_on"))))
    params.pop("retry_on", None)
    fields.finish()
    if step_id is None:
        return None
    return Step(step_id, kind, when, timeout, retry, continue_on_error, params)


def _retry_trigger(value: Any) -> str | int:
    if isinstance(value, str) and value.lower() in ("5xx", "4xx", "timeout", "connection"):
        return value.lower()
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    raise Invalid(f"expected a status code, '5xx', '4xx', 'timeout' or 'connection', got {value!r}")


def _read_retry(step: Fields, kind: str | None = None) -> RetryPolicy:
    fields = step.fields("retry")
    if fields is None:
        return RetryPolicy()
    backoff = fields.get("backoff_ms", integer(0, MAX_TIMEOUT_SECONDS * 1000), 1000)
    # A runner step's retry_on names exit codes and its own classes, not HTTP statuses.
    trigger = runner_retry_trigger if kind == "runner" else _retry_trigger
    retry_on = []
    for item, spot in fields.items("retry_on") or []:
        try:
            retry_on.append(trigger(item))
        except Invalid as error:
            fields.problems.append(spot.problem(str(error)))
    policy = RetryPolicy(
        max=fields.get("max", integer(0, 20), 0),
        backoff_ms=backoff,
        max_backoff_ms=fields.get(
            "max_backoff_ms", integer(0, MAX_TIMEOUT_SECONDS * 1000), max(60_000, backoff)
        ),
        jitter=fields.get("jitter", boolean, True),
        retry_on=tuple(dict.fromkeys(retry_on)),
    )
    if policy.max_backoff_ms < policy.backoff_ms:
        fields.report("max_backoff_ms", f"must be at least backoff_ms ({policy.backoff_ms})")
    fields.finish()
    return policy
