"""Response rules: which are considered for an outcome, and which one matches first.

| outcome | rules considered, in file order (first match wins) | no match |
|---|---|---|
| security failed | `on: security_error` | 401 |
| mapping failed | `on: mapping_error` | 500 |
| activity failed | `when`, `queue_when`, `on: service_error` | 500 |
| success | `when`, `queue_when`, `on: default` | 200 |

So an unauthenticated caller never reaches a `when` or `default` answer, and a failed activity
never gets a `default` one. A condition is a `Condition`: a comparison involving a missing
value is false, so the next rule is tried; `when: high_value` names a condition of
`interlink.yaml`. A rule without `status` answers its outcome's (the handler decides).
When evaluating a condition fails for another reason, or building the chosen answer fails,
the request becomes a service error and only `on: service_error` rules are considered (never
`when` again, so a broken rule cannot loop).

A `queue_when` whose condition reads neither `result` nor `error` does not depend on the
activity, so it is decided *before* the activity runs (`queued_before_activity`): a request it
matches is queued and its activity runs once, in the request processor — never twice
(docs/decisions/0005-one-request-one-run.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from interlink.errors import ExpressionError
from interlink.expressions import Condition, Template, compile_condition, expression_names
from interlink.services.activity import FunctionCaller
from interlink.services.sources import (
    BodyBuilder,
    HeaderBuilder,
    ResponseBuildError,
    build_body,
    build_header,
)
from interlink.spec.service import ResponseRule, ServiceSpec

__all__ = ["CompiledRule", "Outcome", "RuleBook", "condition_source"]

Outcome = Literal["success", "security_error", "mapping_error", "service_error"]

#: context entries the activity fills: a condition reading them must wait for the activity
OUTCOME_NAMES = frozenset({"result", "error"})

#: rule kinds considered for each outcome (`when`/`queue_when` are kinds too)
CONSIDERED: dict[str, frozenset[str]] = {
    "security_error": frozenset({"security_error"}),
    "mapping_error": frozenset({"mapping_error"}),
    "service_error": frozenset({"when", "queue_when", "service_error"}),
    "success": frozenset({"when", "queue_when", "default"}),
}


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A response rule ready to evaluate: its condition, status, headers and body."""

    index: int
    kind: str
    condition: Condition | None
    #: None: the outcome's own status (200, 202 once queued, 401, 500)
    status: int | None
    headers: tuple[tuple[str, HeaderBuilder], ...]
    body: BodyBuilder | None
    #: the condition reads `result` or `error`, so it can only be decided after the activity
    reads_outcome: bool = False

    @property
    def queues(self) -> bool:
        """True for a `queue_when` rule: matching it queues the request."""
        return self.kind == "queue_when"

    def matches(self, context: dict[str, Any]) -> bool:
        """Whether the rule applies (a missing value makes a comparison false, see
        `Condition`); `ResponseBuildError` when its condition fails for another reason."""
        if self.condition is None:
            return True
        try:
            return self.condition.holds(context)
        except ExpressionError as exc:
            raise ResponseBuildError(f"responses[{self.index}]: {exc}") from None


def condition_source(written: str, conditions: Mapping[str, str]) -> str:
    """The expression a `when`/`queue_when` stands for: a named condition of
    `interlink.yaml` (`when: high_value`), or the text itself."""
    return conditions.get(written.strip(), written)


def _compile(
    index: int, rule: ResponseRule, service: str, templates: dict[str, Template],
    caller: FunctionCaller | None, conditions: Mapping[str, str],
) -> CompiledRule:
    written = rule.when if rule.when is not None else rule.queue_when
    source = condition_source(written, conditions) if written is not None else None
    if source is not None:
        kind = "when" if rule.when is not None else "queue_when"
        condition: Condition | None = compile_condition(source)
    else:
        kind, condition = str(rule.on), None
    reads_outcome = source is not None and bool(
        OUTCOME_NAMES & expression_names(source, interpolated=False))
    headers = tuple(
        (h.name, build_header(h, service=service, templates=templates, caller=caller))
        for h in rule.headers
    )
    body = (
        build_body(rule.body, service=service, templates=templates, caller=caller)
        if rule.body is not None else None
    )
    return CompiledRule(index, kind, condition, rule.status, headers, body, reads_outcome)


class RuleBook:
    """A service's compiled rules, pre-sorted by the outcome that considers them."""

    __slots__ = ("_before_activity", "_by_outcome", "has_queue_rules", "rules")

    def __init__(
        self, service: ServiceSpec, templates: dict[str, Template],
        caller: FunctionCaller | None, conditions: Mapping[str, str] | None = None,
    ) -> None:
        named = conditions or {}
        self.rules = tuple(
            _compile(i, r, service.name, templates, caller, named)
            for i, r in enumerate(service.responses)
        )
        self._by_outcome = {
            outcome: tuple(r for r in self.rules if r.kind in kinds)
            for outcome, kinds in CONSIDERED.items()
        }
        self._by_outcome["response_error"] = tuple(
            r for r in self.rules if r.kind == "service_error"
        )
        self.has_queue_rules = any(r.queues for r in self.rules)
        self._before_activity = _decidable_before_activity(self.rules)

    def queued_before_activity(self, context: dict[str, Any]) -> CompiledRule | None:
        """The `queue_when` rule that wins whatever the activity does, if one matches now.

        Rules are tried in file order while their outcome cannot depend on the activity
        (`when`/`queue_when` conditions that read neither `result` nor `error`); the first
        that matches decides. A condition that fails here is left for the response phase.
        """
        for rule in self._before_activity:
            try:
                matched = rule.matches(context)
            except ResponseBuildError:
                return None
            if matched:
                return rule if rule.queues else None
        return None

    def considered(self, outcome: str) -> tuple[CompiledRule, ...]:
        """The rules considered for `outcome`, in file order.

        `response_error` (a rule's condition or answer failed) considers only
        `on: service_error` rules.
        """
        return self._by_outcome[outcome]

    def first_match(self, outcome: str, context: dict[str, Any]) -> CompiledRule | None:
        """The first considered rule that matches, or None."""
        for rule in self._by_outcome[outcome]:
            if rule.matches(context):
                return rule
        return None


def _decidable_before_activity(rules: tuple[CompiledRule, ...]) -> tuple[CompiledRule, ...]:
    """The leading rules whose match does not depend on the activity (empty unless a
    `queue_when` is among them: without one there is nothing to decide early)."""
    leading: list[CompiledRule] = []
    for rule in rules:
        if rule.kind in ("mapping_error", "security_error"):
            continue  # never considered once the activity phase is reached
        if rule.kind not in ("when", "queue_when") or rule.reads_outcome:
            break  # `default`/`service_error` depend on the outcome, and so does this one
        leading.append(rule)
    return tuple(leading) if any(r.queues for r in leading) else ()
