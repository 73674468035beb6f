"""Reading workflow YAML field by field, and the fields of each step type.

:class:`Fields` reads one mapping with typed getters and records every problem with its
path, line and column; ``STEP_READERS`` turns a step's type-specific fields into its
``params``. :mod:`shared.domain.workflow_spec` builds the whole model on top.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shared.domain.kakao import DEFAULT_FALLBACK_ON, FALLBACK_ON
from shared.domain.permissions import APPROVALS_RESOLVE, ROLE_PERMISSIONS, allows
from shared.domain.templating import (
    CONTEXT_NAMES,
    check_expression,
    check_template,
    referenced_keys,
    referenced_steps,
)

#: Longest a step may run, or an approval wait, in seconds (7 days).
MAX_TIMEOUT_SECONDS = 7 * 86_400
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
SEVERITIES = ("info", "warning", "critical")
APPROVER_ROLES = tuple(role for role in ROLE_PERMISSIONS if allows(role, APPROVALS_RESOLVE))

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_TARGET = re.compile(r"(?:(slack)\.|(email|telegram|teams|group|recipient):)(.*)", re.DOTALL)
_TARGET_VALUE = {
    "slack": (re.compile(r"[A-Za-z0-9#@._-]+"), "a channel name or id"),
    "email": (re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+"), "an email address"),
    "telegram": (re.compile(r"-?[0-9]+|@?[A-Za-z0-9_-]+"), "a chat id or alias"),
    "teams": (re.compile(r"\S+"), "a webhook URL or suffix"),
    "group": (re.compile(r"\S+"), "a group name"),
    "recipient": (re.compile(r"\S+"), "a recipient id"),
}
_TARGET_FORMS = (
    "slack.<channel>, email:<address>, telegram:<chat>, teams:<url-or-suffix>, "
    "group:<name>, recipient:<id> or {kakao: {...}}"
)
_PHONE = re.compile(r"\+?[0-9][0-9 -]{6,19}")
_APPROVER = re.compile(r"(role|user|recipient|group):(\S+)")


@dataclass(frozen=True)
class SpecProblem:
    """One thing wrong with a workflow document."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def describe(self) -> str:
        """``path (line L, column C): message``."""
        where = f" (line {self.line}, column {self.column})" if self.line else ""
        return f"{self.path or '<document>'}{where}: {self.message}"


class Invalid(Exception):
    """A value is unacceptable; the message says what was expected."""


@dataclass(frozen=True)
class Spot:
    """Where a value was written: its path and place."""

    path: str
    line: int | None = None
    column: int | None = None

    def problem(self, message: str) -> SpecProblem:
        return SpecProblem(self.path, message, self.line, self.column)

    def key(self, container: Any, key: Any) -> Spot:
        marks = getattr(container, "key_marks", {})
        place = marks.get(key) or getattr(container, "mark", (self.line, self.column))
        if isinstance(key, str) and _KEY.fullmatch(key):
            return Spot(f"{self.path}.{key}" if self.path else key, *place)
        return Spot(f"{self.path}[{key!r}]", *place)

    def item(self, container: Any, index: int) -> Spot:
        marks = getattr(container, "item_marks", ())
        place = marks[index] if index < len(marks) else (self.line, self.column)
        return Spot(f"{self.path}[{index}]", *place)


@dataclass(frozen=True)
class Scope:
    """What a template may read where it is written: context names and earlier steps."""

    names: frozenset[str] = CONTEXT_NAMES
    #: Ids of the steps before this one (a set or a dict's keys view).
    earlier_steps: AbstractSet[str] = frozenset()
    #: The keys of the workflow's ``vars``; None when they are unknown (not checked).
    variables: frozenset[str] | None = None

    def problems(self, text: str, *, expression: bool = False) -> list[str]:
        checker = check_expression if expression else check_template
        found = checker(text, names=self.names)
        if found:
            return found
        if "steps" in self.names:
            for step in sorted(referenced_steps(text, expression=expression)):
                if step not in self.earlier_steps:
                    found.append(f"refers to steps.{step}, which is not an earlier step")
        if "vars" in self.names and self.variables is not None:
            for key in sorted(referenced_keys(text, "vars", expression=expression)):
                if key not in self.variables:
                    found.append(f"refers to vars.{key}, which vars does not define")
        return found


def kind_of(value: Any) -> str:
    """How a YAML value reads in a message: ``a string``, ``a list``, ..."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true/false"
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "a mapping",
    }
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    return f"a {type(value).__name__}"


# ---- value checks: each returns the value (normalised) or raises Invalid ----------------


def str_value(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(f"expected a string, got {kind_of(value)}")
    return value


def non_empty(value: Any) -> str:
    """A string with something in it besides spaces."""
    if not str_value(value).strip():
        raise Invalid("expected a non-empty string")
    return value


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {kind_of(value)}")
    return value


def one_of(*choices: str, fold: Callable[[str], str] = str.lower) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if isinstance(value, str) and fold(value) in choices:
            return fold(value)
        raise Invalid(f"expected one of {', '.join(choices)}, got {value!r}")

    return check


def matching(pattern: re.Pattern[str], description: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not pattern.fullmatch(str_value(value)):
            raise Invalid(f"expected {description}, got {value!r}")
        return value

    return check


def integer(minimum: int | None = None, maximum: int | None = None) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise Invalid(f"expected an integer{_range(minimum, maximum)}, got {kind_of(value)}")
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise Invalid(f"expected an integer{_range(minimum, maximum)}, got {value}")
        return value

    return check


def seconds(maximum: float) -> Callable[[Any], float]:
    """A number of seconds > 0 and at most ``maximum``."""

    def check(value: Any) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise Invalid(f"expected a number of seconds, got {kind_of(value)}")
        if not 0 < value <= maximum:
            raise Invalid(f"expected a number of seconds > 0 and at most {maximum:g}, got {value}")
        return float(value)

    return check


def _range(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" from {minimum} to {maximum}"
    if minimum is not None:
        return f" >= {minimum}"
    return f" <= {maximum}" if maximum is not None else ""


_MISSING = object()


class Fields:
    """One YAML mapping read field by field; each problem lands in ``problems`` with its place."""

    def __init__(self, mapping: Mapping, spot: Spot, problems: list[SpecProblem]) -> None:
        self.mapping = mapping
        self.spot = spot
        self.problems = problems
        self.read: set[Any] = set()

    @classmethod
    def of(cls, value: Any, spot: Spot, problems: list[SpecProblem]) -> Fields | None:
        """Fields over ``value``, or None after reporting that it is not a mapping."""
        if isinstance(value, Mapping):
            return cls(value, spot, problems)
        problems.append(spot.problem(f"expected a mapping, got {kind_of(value)}"))
        return None

    def __contains__(self, key: str) -> bool:
        return key in self.mapping

    def at(self, key: str) -> Spot:
        return self.spot.key(self.mapping, key)

    def report(self, key: str, message: str) -> None:
        self.problems.append(self.at(key).problem(message))

    def raw(self, key: str, *, required: bool = False) -> Any:
        """The value of ``key`` unchecked, or _MISSING (reported when required)."""
        self.read.add(key)
        if key in self.mapping:
            return self.mapping[key]
        if required:
            self.report(key, "required field is missing")
        return _MISSING

    def get(
        self,
        key: str,
        check: Callable[[Any], Any],
        default: Any = None,
        *,
        required: bool = False,
    ) -> Any:
        """``check(value)`` of ``key``; ``default`` when it is absent or has a problem."""
        value = self.raw(key, required=required)
        if value is _MISSING:
            return default
        try:
            return check(value)
        except Invalid as error:
            self.report(key, str(error))
            return default

    def fields(self, key: str, *, required: bool = False) -> Fields | None:
        value = self.raw(key, required=required)
        return None if value is _MISSING else Fields.of(value, self.at(key), self.problems)

    def items(self, key: str, *, required: bool = False, non_empty: bool = False) -> list | None:
        """``[(item, spot), ...]`` of list ``key``; None when absent or not a list."""
        value = self.raw(key, required=required)
        if value is _MISSING:
            return None
        if not isinstance(value, list):
            self.report(key, f"expected a list, got {kind_of(value)}")
            return None
        if non_empty and not value:
            self.report(key, "expected at least one item")
        return [(item, self.at(key).item(value, index)) for index, item in enumerate(value)]

    def template(self, key: str, scope: Scope, *, required: bool = False) -> str | None:
        value = self.get(key, str_value, required=required)
        if value is not None:
            self._check(key, scope.problems(value))
        return value

    def expression(self, key: str, scope: Scope, *, required: bool = False) -> str | None:
        value = self.get(key, str_value, required=required)
        if value is not None:
            self._check(key, scope.problems(value, expression=True))
        return value

    def _check(self, key: str, messages: list[str]) -> None:
        for message in messages:
            self.report(key, message)

    def finish(self, *, strict: bool = True) -> None:
        """Report every key nobody read as an unknown field (all of them are read when not strict)."""
        if not strict:
            return
        for key in self.mapping:
            if key in self.read:
                continue
            known = sorted(name for name in self.read if isinstance(name, str))
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.report(key, f"unknown field{hint}")


# ---- nested values ------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """``value`` with the loader's position-keeping mappings and lists made plain."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def check_data(
    value: Any, spot: Spot, problems: list[SpecProblem], scope: Scope | None = None
) -> None:
    """Report what JSON cannot carry in ``value``; check its strings as templates in ``scope``."""
    if isinstance(value, str):
        if scope is not None:
            problems.extend(spot.problem(message) for message in scope.problems(value))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(spot.key(value, key).problem("keys must be strings (quote it)"))
            check_data(item, spot.key(value, key), problems, scope)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_data(item, spot.item(value, index), problems, scope)
    elif not (value is None or isinstance(value, (bool, int, float))):
        problems.append(spot.problem(f"{kind_of(value)} cannot be sent as JSON (quote it)"))


def template_map(fields: Fields, key: str, scope: Scope) -> dict[str, str]:
    """A mapping of names to templates; numbers are taken as their text."""
    mapping = fields.fields(key)
    if mapping is None:
        return {}
    result = {}
    for name, value in mapping.mapping.items():
        spot = mapping.at(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            fields.problems.append(spot.problem(f"{name!r} is not a valid name"))
        elif not isinstance(value, str):
            fields.problems.append(spot.problem(f"expected a string, got {kind_of(value)}"))
        else:
            fields.problems.extend(spot.problem(message) for message in scope.problems(value))
            result[name] = value
    return result


# ---- notify targets -----------------------------------------------------------------------


def read_targets(
    fields: Fields, key: str, scope: Scope, *, required: bool = False, kakao: bool = True
) -> list:
    """Notify targets: strings like ``slack.ops`` and (when ``kakao``) ``{kakao: {...}}``."""
    targets = []
    for item, spot in fields.items(key, required=required, non_empty=required) or []:
        if isinstance(item, Mapping) and kakao:
            target = _kakao_target(item, spot, fields.problems, scope)
        else:
            target = _string_target(item, spot, fields.problems, scope)
        if target is not None:
            targets.append(target)
    return targets


def _string_target(item: Any, spot: Spot, problems: list[SpecProblem], scope: Scope) -> str | None:
    match = _TARGET.fullmatch(item) if isinstance(item, str) else None
    if match is None:
        problems.append(spot.problem(f"unknown target {item!r}; use {_TARGET_FORMS}"))
        return None
    channel = match.group(1) or match.group(2)
    rest = match.group(3)
    if "{" in rest:
        problems.extend(spot.problem(message) for message in scope.problems(item))
    else:
        pattern, description = _TARGET_VALUE[channel]
        if not pattern.fullmatch(rest):
            problems.append(spot.problem(f"{channel} target needs {description}, got {rest!r}"))
            return None
    return item


def _kakao_target(
    item: Mapping, spot: Spot, problems: list[SpecProblem], scope: Scope
) -> dict | None:
    outer = Fields(item, spot, problems)
    kakao = outer.fields("kakao", required=True)
    outer.finish()
    if kakao is None:
        return None
    target = {
        "mode": kakao.get("mode", one_of("alimtalk"), "alimtalk"),
        "provider": kakao.get("provider", non_empty, required=True),
        "template_id": kakao.get("template_id", non_empty, required=True),
        "to": [],
        "vars": {},
        "fallback": read_targets(kakao, "fallback", scope, kakao=False),
        "fallback_on": list(DEFAULT_FALLBACK_ON),
    }
    fallback_on = kakao.items("fallback_on")
    if fallback_on is not None:
        check = one_of(*FALLBACK_ON, fold=str)
        target["fallback_on"] = []
        for when, when_spot in fallback_on:
            try:
                target["fallback_on"].append(check(when))
            except Invalid as error:
                problems.append(when_spot.problem(str(error)))
    for to, to_spot in kakao.items("to", required=True, non_empty=True) or []:
        if not isinstance(to, str):
            problems.append(to_spot.problem(f"expected a string, got {kind_of(to)}"))
        elif "{" in to:
            problems.extend(to_spot.problem(message) for message in scope.problems(to))
        elif not (_PHONE.fullmatch(to) or re.fullmatch(r"(group|recipient):\S+", to)):
            problems.append(
                to_spot.problem(
                    f"expected a phone number, group:<name> or recipient:<id>, got {to!r}"
                )
            )
        target["to"].append(to)
    variables = kakao.fields("vars")
    if variables is not None:
        check_data(variables.mapping, variables.spot, problems, scope)
        target["vars"] = plain(variables.mapping)
    kakao.finish()
    return {"kakao": target}


# ---- step types ---------------------------------------------------------------------------


def _http_method(value: Any) -> str:
    return one_of(*HTTP_METHODS, fold=str.upper)(value)


def _codes(value: Any, low: int, high: int, expected: str) -> list[int]:
    """A code from ``low`` to ``high``, or a non-empty list of them, as a list; Invalid naming ``expected``."""
    codes = value if isinstance(value, list) else [value]
    code = integer(low, high)
    try:
        if not codes:
            raise Invalid("empty")
        return [code(item) for item in codes]
    except Invalid:
        raise Invalid(f"expected {expected}, got {value!r}") from None


def _expect_status(value: Any) -> str | list[int]:
    """ "2xx", or the exact statuses accepted (a single code becomes a list of one)."""
    if value == "2xx":
        return value
    return _codes(value, 100, 599, "'2xx', a status code or a list of them")


def read_http(fields: Fields, scope: Scope, timeout_seconds: float) -> dict[str, Any]:
    params: dict[str, Any] = {
        "method": fields.get("method", _http_method, "GET"),
        "url": fields.template("url", scope, required=True),
        "headers": template_map(fields, "headers", scope),
        "query": template_map(fields, "query", scope),
        "json": None,
        "body": fields.template("body", scope),
        "expect_status": fields.get("expect_status", _expect_status, "2xx"),
        "follow_redirects": fields.get("follow_redirects", boolean, False),
    }
    url = params["url"]
    literal = (url or "").split("{", 1)[0]
    if "://" in literal or (url and "{" not in url):
        parts = urlsplit(literal)
        if parts.scheme not in ("http", "https") or ("{" not in url and not parts.netloc):
            fields.report("url", f"expected an http:// or https:// URL, got {url!r}")
    if "json" in fields:
        check_data(fields.raw("json"), fields.at("json"), fields.problems, scope)
        params["json"] = plain(fields.raw("json"))
        if "body" in fields:
            fields.report("body", "json and body cannot both be set; keep one")
    return params


def read_condition(fields: Fields, scope: Scope, timeout_seconds: float) -> dict[str, Any]:
    return {
        "expr": fields.expression("expr", scope, required=True),
        "on_false": fields.get("on_false", one_of("skip", "fail"), "skip"),
    }


def read_notify(fields: Fields, scope: Scope, timeout_seconds: float) -> dict[str, Any]:
    return {
        "targets": read_targets(fields, "targets", scope, required=True),
        "message": fields.template("message", scope, required=True),
        "title": fields.template("title", scope),
        "severity": fields.get("severity", one_of(*SEVERITIES), "info"),
        "min_success": fields.get("min_success", integer(0), None),
    }


def _approvers(fields: Fields) -> list[str]:
    approvers = []
    for item, spot in fields.items("approvers") or []:
        match = _APPROVER.fullmatch(item) if isinstance(item, str) else None
        if isinstance(item, str) and "{" in item:
            message = "approvers cannot be templates: the request would choose who approves"
        elif match is None:
            message = (
                f"expected role:<role>, user:<email>, recipient:<id> or group:<name>, got {item!r}"
            )
        elif match.group(1) == "role" and match.group(2) not in APPROVER_ROLES:
            message = (
                f"role {match.group(2)!r} cannot resolve approvals; use {', '.join(APPROVER_ROLES)}"
            )
        else:
            approvers.append(item)
            continue
        fields.problems.append(spot.problem(message))
    return approvers


def read_approval(fields: Fields, scope: Scope, timeout_seconds: float) -> dict[str, Any]:
    approvers = _approvers(fields)
    params: dict[str, Any] = {
        "notify": read_targets(fields, "notify", scope),
        "approvers": approvers,
        "required_approvals": fields.get("required_approvals", integer(1, 100), 1),
        "on_timeout": fields.get("on_timeout", one_of("fail", "approve", "reject"), "fail"),
        "message": fields.template("message", scope),
        "escalation": [],
    }
    users = {item for item in approvers if item.startswith("user:")}
    if approvers and len(users) == len(approvers) < params["required_approvals"]:
        fields.report(
            "required_approvals",
            f"needs {params['required_approvals']} approvals but only {len(users)} users may approve",
        )
    for item, spot in fields.items("escalation") or []:
        level = Fields.of(item, spot, fields.problems)
        if level is None:
            continue
        after = level.get("after_seconds", integer(1), required=True)
        if after is not None and after >= timeout_seconds:
            level.report(
                "after_seconds",
                f"never reached: the approval times out after {timeout_seconds:g} s",
            )
        notify = read_targets(level, "notify", scope, required=True)
        level.finish()
        params["escalation"].append({"after_seconds": after, "notify": notify})
    return params


#: Shells a ``runner`` step's ``shell`` may name.
RUNNER_SHELLS = ("bash", "sh")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def runner_retry_trigger(value: Any) -> str | int:
    """One ``retry_on`` item of a runner step: an exit code (0-255) or no_runner/lost/timeout."""
    if isinstance(value, str) and value.lower() in ("no_runner", "lost", "timeout"):
        return value.lower()
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
        return value
    raise Invalid(f"expected an exit code (0-255), 'no_runner', 'lost' or 'timeout', got {value!r}")


def _runner_selector(fields: Fields) -> dict[str, Any]:
    """``runner: {id: rn_...}`` or ``runner: {labels: {k: v}}`` (exactly one)."""
    selector = fields.fields("runner", required=True)
    if selector is None:
        return {}
    runner_id = selector.get("id", non_empty)
    labels: dict[str, str] = {}
    label_fields = selector.fields("labels")
    if label_fields is not None:
        for key, value in label_fields.mapping.items():
            spot = label_fields.at(key)
            if not isinstance(key, str) or not _LABEL.fullmatch(key):
                fields.problems.append(spot.problem(f"{key!r} is not a valid label name"))
            elif not isinstance(value, str) or not _LABEL.fullmatch(value):
                fields.problems.append(
                    spot.problem(f"expected a label value (letters, digits, '_.-'), got {value!r}")
                )
            else:
                labels[key] = value
        if not label_fields.mapping:
            selector.report("labels", "expected at least one label")
    if ("id" in selector) == ("labels" in selector):
        fields.report("runner", "expected exactly one of id or labels")
    selector.finish()
    return {"id": runner_id} if runner_id is not None else {"labels": labels}


def _argv(fields: Fields, scope: Scope) -> list[str] | None:
    items = fields.items("command", non_empty=True)
    if items is None:
        return None
    argv = []
    for item, spot in items:
        if not isinstance(item, str):
            fields.problems.append(spot.problem(f"expected a string, got {kind_of(item)}"))
            continue
        fields.problems.extend(spot.problem(message) for message in scope.problems(item))
        argv.append(item)
    return argv


def _env(fields: Fields, scope: Scope) -> dict[str, str]:
    mapping = fields.fields("env")
    if mapping is None:
        return {}
    env = {}
    for name, value in mapping.mapping.items():
        spot = mapping.at(name)
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            fields.problems.append(spot.problem(f"{name!r} is not a valid environment name"))
        elif not isinstance(value, str):
            fields.problems.append(spot.problem(f"expected a string, got {kind_of(value)}"))
        else:
            fields.problems.extend(spot.problem(message) for message in scope.problems(value))
            env[name] = value
    return env


def _expect_exit(value: Any) -> list[int]:
    """The exit codes that count as success (a single code becomes a list of one)."""
    return _codes(value, 0, 255, "an exit code (0-255) or a list of them")


def read_runner(fields: Fields, scope: Scope, timeout_seconds: float) -> dict[str, Any]:
    """A command run on a runner: argv (or a script for a shell), env, cwd and accepted exits."""
    params: dict[str, Any] = {
        "runner": _runner_selector(fields),
        "command": _argv(fields, scope),
        "script": fields.template("script", scope),
        "shell": fields.get("shell", one_of(*RUNNER_SHELLS)),
        "env": _env(fields, scope),
        "cwd": fields.template("cwd", scope),
        "expect_exit": fields.get("expect_exit", _expect_exit, [0]),
        "retry_on": None,
    }
    if ("command" in fields) == ("script" in fields):
        fields.report("command", "expected exactly one of command or script")
    if "script" in fields and "shell" not in fields:
        fields.report("shell", f"required with script: one of {', '.join(RUNNER_SHELLS)}")
    retry_on = fields.items("retry_on")
    if retry_on is not None:
        params["retry_on"] = []
        for item, spot in retry_on:
            try:
                params["retry_on"].append(runner_retry_trigger(item))
            except Invalid as error:
                fields.problems.append(spot.problem(str(error)))
    return params


#: Each step type's reader: (fields, scope, timeout_seconds) -> params.
STEP_READERS: dict[str, Callable[[Fields, Scope, float], dict[str, Any]]] = {
    "http": read_http,
    "condition": read_condition,
    "notify": read_notify,
    "approval": read_approval,
    "runner": read_runner,
}
