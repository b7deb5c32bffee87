"""A duration is dumped as text a spec validates again: each run keeps its flow's dump, and a
run resumed after its flow was edited is run by that dump."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlink.spec._base import parse_duration
from interlink.spec.flow import FlowSpec


def _flow(delay: str) -> FlowSpec:
    return FlowSpec.model_validate({
        "name": "f", "trigger": {"type": "manual"}, "retry": {"delay": delay},
        "steps": [{"id": "a", "type": "map", "value": "payload"}]})


@pytest.mark.parametrize(("written", "seconds"), [
    ("14d", 1_209_600.0),  # past 1e6 seconds: `:g` wrote 1.2096e+06s, which is no duration
    ("30d", 2_592_000.0),
    ("365d", 31_536_000.0),
    ("0.01ms", 0.00001),   # below 1e-4: `:g` wrote 1e-05s
    ("500ms", 0.5),
])
def test_a_dumped_flow_validates_again_with_the_same_durations(written: str,
                                                                seconds: float) -> None:
    dumped = _flow(written).model_dump(mode="json", by_alias=True)
    again = FlowSpec.model_validate(dumped)
    assert again.retry.delay == pytest.approx(seconds, rel=1e-12)
    assert again.model_dump(mode="json", by_alias=True) == dumped


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_every_duration_survives_its_dump(seconds: float) -> None:
    flow = _flow("1s")
    flow = flow.model_copy(update={"retry": flow.retry.model_copy(update={"delay": seconds})})
    text = flow.model_dump(mode="json")["retry"]["delay"]
    assert parse_duration(text) == seconds
