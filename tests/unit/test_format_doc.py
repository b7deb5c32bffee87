"""The step kinds' examples in docs/format.md are valid steps, pagination and triggers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter
from ruamel.yaml import YAML

from interlink.flows.steps import Step
from interlink.spec.flow import Trigger
from interlink.spec.paginate import Paginate

FORMAT = Path(__file__).resolve().parents[2] / "docs" / "format.md"
_BLOCK = re.compile(r"^### (.+?)\n(.*?)(?=^### |^## )", re.DOTALL | re.MULTILINE)
_YAML = re.compile(r"```yaml\n(.*?)```", re.DOTALL)


def load(text: str) -> Any:
    """YAML 1.2 as the project loader reads it."""
    return YAML(typ="safe", pure=True).load(text)


def sections() -> dict[str, list[str]]:
    """Each `###` section of the flows chapter → its YAML blocks."""
    text = FORMAT.read_text()
    chapter = text[text.index("## flows/NAME.yaml"):text.index("## scripts/NAME.py")]
    return {title: _YAML.findall(body) for title, body in _BLOCK.findall(chapter + "## end")}


def test_every_step_kind_has_a_section_with_an_example() -> None:
    """Each registered step kind but connector and script has a section with YAML."""
    kinds = {"map", "filter", "split", "batch", "join", "set", "route", "dedupe", "assert",
             "try", "run_flow", "notify", "delay"}
    found = {kind for title, blocks in sections().items() for kind in kinds
             if blocks and re.search(rf"\b{kind}\b", title)}
    assert found == kinds


@pytest.mark.parametrize("title", [t for t, blocks in sections().items()
                                   if blocks and "Pagination" not in t
                                   and "respond" not in t])
def test_each_step_example_validates(title: str) -> None:
    """Every step in the section's YAML is a valid `Step` of the kind it shows."""
    for block in sections()[title]:
        steps: list[dict[str, Any]] = load(block)
        for step in steps:
            TypeAdapter(Step).validate_python(step)


def test_the_pagination_examples_validate() -> None:
    """Each `paginate:` line of the pagination section is valid, one per type."""
    (block,) = sections()["Pagination (`paginate:` on an endpoint or a connector step)"]
    kinds = []
    for line in block.strip().splitlines():
        spec = load(line)["paginate"]
        kinds.append(TypeAdapter(Paginate).validate_python(spec).type)
    assert kinds == ["page", "offset", "cursor", "next_url", "link_header"]


def test_the_respond_example_validates() -> None:
    """The webhook trigger with `respond` is a valid trigger."""
    (block,) = sections()["Answering a webhook with the run's output (`respond`)"]
    trigger = TypeAdapter(Trigger).validate_python(load(block)["trigger"])
    assert trigger.respond is not None and trigger.respond.status == 201
