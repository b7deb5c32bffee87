"""`isolation: inline`: the same call contract, run in the engine's own process."""

from __future__ import annotations

import os
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from interlink.scripts import ScriptCallError, ScriptOutcome, ScriptPool
from interlink.spec.project import ScriptsConfig

Write = Callable[[str, str], str]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    """Write `scripts/<name>` under the project folder; return its project-relative path."""

    def write(name: str, source: str) -> str:
        path = tmp_path / "scripts" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        return f"scripts/{name}"

    return write


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[ScriptPool]:
    """A pool for a project in tmp_path; inline calls never start a worker process."""
    async with ScriptPool(tmp_path, ScriptsConfig.model_validate({"timeout": "5s"})) as pool:
        yield pool


async def test_inline_happy_path_runs_in_the_engine_process(pool: ScriptPool, write: Write) -> None:
    """An inline script returns the same outcome, from this very process."""
    script = write(
        "shape.py",
        """
        import os

        def handle(data):
            data["payload"] = {"erp_id": data["payload"]["id"], "pid": os.getpid()}
            data["response_code"] = 0
            data["message"] = "shaped"
            data["logs"] = ["one line"]
            return data
        """,
    )
    outcome = await pool.run(script, {"payload": {"id": 5}}, isolation="inline")
    assert outcome == ScriptOutcome(
        data={"payload": {"erp_id": 5, "pid": os.getpid()}},
        response_code=0,
        message="shaped",
        logs=["one line"],
    )
    assert pool.pids == []


async def test_inline_raising_script_has_the_same_reason(pool: ScriptPool, write: Write) -> None:
    """A raise inline reads exactly like a raise in a worker process."""
    script = write("x.py", "def handle(data):\n    raise ValueError('boom')\n")
    with pytest.raises(ScriptCallError) as caught:
        await pool.run(script, {}, isolation="inline")
    assert str(caught.value) == "script scripts/x.py raised ValueError: boom (line 2)"
    assert caught.value.kind == "raised"


async def test_inline_works_on_a_copy_of_the_data(pool: ScriptPool, write: Write) -> None:
    """An inline script cannot change the engine's objects it was given."""
    script = write(
        "mutate.py", "def handle(data):\n    data['payload'].append(2)\n    return data\n"
    )
    payload = [1]
    outcome = await pool.run(script, {"payload": payload}, isolation="inline")
    assert outcome.data["payload"] == [1, 2]
    assert payload == [1]


async def test_inline_time_limit_abandons_the_call(pool: ScriptPool, write: Write) -> None:
    """Over its limit an inline call fails at once; the reason says the thread runs on."""
    script = write(
        "slow.py", "import time\n\ndef handle(data):\n    time.sleep(1)\n    return data\n"
    )
    with pytest.raises(ScriptCallError) as caught:
        await pool.run(script, {}, isolation="inline", time_limit=0.2)
    assert str(caught.value).startswith("script scripts/slow.py: timed out after 0.2s (inline:")
    assert caught.value.kind == "timeout"
    ok = write("ok.py", "def handle(data):\n    return data\n")
    assert (await pool.run(ok, {"payload": 1}, isolation="inline")).data == {"payload": 1}


async def test_inline_sys_exit_does_not_end_the_engine(pool: ScriptPool, write: Write) -> None:
    """SystemExit in an inline script is a failed call, and the call still completes."""
    script = write("quit.py", "import sys\n\ndef handle(data):\n    sys.exit(1)\n")
    with pytest.raises(ScriptCallError, match=r"raised SystemExit: 1 \(line 4\)"):
        await pool.run(script, {}, isolation="inline")


async def test_inline_call_function(pool: ScriptPool, write: Write) -> None:
    """Named functions run inline under the same rules."""
    script = write(
        "body.py",
        "def raw(context):\n    return b'ok'\n\ndef bad(context):\n    return object()\n",
    )
    assert await pool.call_function(script, "raw", {}, isolation="inline") == b"ok"
    with pytest.raises(ScriptCallError, match=r"^script scripts/body.py:bad: returned object"):
        await pool.call_function(script, "bad", {}, isolation="inline")
