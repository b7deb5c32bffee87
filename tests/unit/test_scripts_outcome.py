"""The script call contract: validation of what scripts return, shared by both modes."""

from __future__ import annotations

from typing import Any

import pytest

import interlink.scripts
from interlink.errors import ScriptError
from interlink.scripts import (
    ScriptCallError,
    ScriptOutcome,
    parse_function_ref,
    validate_function_value,
    validate_outcome,
)


def test_public_api_is_locked() -> None:
    """The package exports exactly its curated names."""
    assert sorted(interlink.scripts.__all__) == [
        "FailureKind",
        "FunctionValue",
        "Isolation",
        "ScriptCallError",
        "ScriptOutcome",
        "ScriptPool",
        "parse_function_ref",
        "validate_function_value",
        "validate_outcome",
    ]


def test_control_keys_are_lifted_out_of_the_data() -> None:
    """response_code, message and logs become fields; the rest stays data."""
    outcome = validate_outcome(
        "scripts/x.py",
        {"payload": {"id": 1}, "response_code": 2, "message": "m", "logs": ["a", "b"]},
    )
    assert outcome == ScriptOutcome(
        data={"payload": {"id": 1}}, response_code=2, message="m", logs=["a", "b"]
    )


def test_control_keys_are_optional() -> None:
    """A script that only returns data has no code, no message and no logs."""
    outcome = validate_outcome("scripts/x.py", {"payload": "text"})
    assert outcome == ScriptOutcome(data={"payload": "text"})


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ([1, 2], "script scripts/x.py: handle() returned list, expected a dict"),
        (None, "script scripts/x.py: handle() returned NoneType, expected a dict"),
        ({1: "a"}, "script scripts/x.py: handle() returned a dict with key 1, keys must be str"),
        (
            {"response_code": 7},
            "script scripts/x.py: response_code must be an int from 0 to 4, got int 7",
        ),
        (
            {"response_code": "1"},
            "script scripts/x.py: response_code must be an int from 0 to 4, got str '1'",
        ),
        (
            {"response_code": True},
            "script scripts/x.py: response_code must be an int from 0 to 4, got bool True",
        ),
        ({"message": 5}, "script scripts/x.py: message must be a str, got int"),
        ({"logs": "line"}, "script scripts/x.py: logs must be a list of str, got str"),
        ({"logs": ["a", 2]}, "script scripts/x.py: logs must be a list of str, item 1 is int"),
    ],
)
def test_garbage_is_refused_with_its_reason(value: Any, reason: str) -> None:
    """Each way of breaking the contract fails with a reason naming the script."""
    with pytest.raises(ScriptCallError) as caught:
        validate_outcome("scripts/x.py", value)
    assert str(caught.value) == reason
    assert caught.value.kind == "malformed"
    assert caught.value.script == "scripts/x.py"
    assert isinstance(caught.value, ScriptError)


@pytest.mark.parametrize("value", ["s", b"b", 1, 1.5, True, None, [1], {"a": 1}])
def test_function_values_of_allowed_types_pass(value: Any) -> None:
    """A named function may return str, bytes, numbers, bool, None, list or dict."""
    assert validate_function_value("scripts/x.py:f", value) == value


def test_function_value_of_another_type_is_refused() -> None:
    """A set is not something a service can send."""
    with pytest.raises(ScriptCallError, match=r"scripts/x.py:f: returned set, expected str"):
        validate_function_value("scripts/x.py:f", {1})


def test_function_reference_is_parsed() -> None:
    """`scripts/x.py:name` splits into the script and the function."""
    assert parse_function_ref("scripts/sub/x.py:make_body") == ("scripts/sub/x.py", "make_body")


@pytest.mark.parametrize("ref", ["scripts/x.py", "scripts/x:name", "scripts/x.py:1name"])
def test_bad_function_reference_is_refused(ref: str) -> None:
    """A reference without `.py:identifier` is an error naming it."""
    with pytest.raises(ValueError, match="bad function reference"):
        parse_function_ref(ref)
