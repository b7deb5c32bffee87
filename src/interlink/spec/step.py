"""What every flow step kind's spec has, and how it tells `check` what it refers to.

Each step kind is one module under `interlink/flows/steps/` holding its model (a `StepSpec`),
its behaviour and its registration. The loader cannot know every kind, so a step describes
itself: `refs()` names the scripts, connectors, flows and templates it uses (checked across
files, each with its line), `children()` the step lists it nests (`route`, `try`), and
`warnings()` what is valid but risky.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, NamedTuple

from pydantic import Field

from interlink.spec._base import Name, Spec

__all__ = ["FieldPath", "Ref", "StepSpec"]

FieldPath = tuple[str | int, ...]
"""Where in a step's YAML a value is, for its line (`("steps", 0, "connector")` …)."""


class Ref(NamedTuple):
    """A name a step uses that another file must define."""

    kind: Literal["script", "connector", "flow", "template", "channel"]
    #: the field holding it, relative to the step
    at: FieldPath
    name: str
    #: the connector's endpoint, or the script's function (`handle`)
    member: str | None = None


class StepSpec(Spec):
    """The fields every step has; step kinds subclass it with a `type: Literal[...]`."""

    id: Name = Field(description="unique within the flow (nested steps included)")
    description: str = ""

    def refs(self) -> Iterator[Ref]:
        """The scripts, connectors, flows, templates and notification channels this step uses."""
        return iter(())

    def children(self) -> Iterator[tuple[FieldPath, list[StepSpec]]]:
        """The step lists nested in this step, with the field holding each."""
        return iter(())

    def warnings(self) -> Iterator[tuple[FieldPath, str]]:
        """What is valid but deserves a second look, with the field it is about."""
        return iter(())
