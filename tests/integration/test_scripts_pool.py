"""ScriptPool with real worker processes running real script files."""

from __future__ import annotations

import asyncio
import os
import re
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

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


def config(**fields: Any) -> ScriptsConfig:
    """Pool settings for tests: small memory limit, generous default time limit."""
    return ScriptsConfig.model_validate({"processes": 2, "memory": 256, "timeout": "10s"} | fields)


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[ScriptPool]:
    """A pool of two worker processes for a project in tmp_path."""
    async with ScriptPool(tmp_path, config()) as pool:
        yield pool


OK = """
    def handle(data):
        return data
"""


async def test_handle_returns_data_code_message_and_logs(pool: ScriptPool, write: Write) -> None:
    """A script's data, response_code, message and logs come back as an outcome."""
    script = write(
        "check.py",
        """
        def handle(data):
            data["payload"]["checked"] = True
            data["response_code"] = 1
            data["message"] = "upstream busy"
            data["logs"] = ["first", "second"]
            return data
        """,
    )
    outcome = await pool.run(script, {"payload": {"id": 7}, "variables": {}})
    assert outcome == ScriptOutcome(
        data={"payload": {"id": 7, "checked": True}, "variables": {}},
        response_code=1,
        message="upstream busy",
        logs=["first", "second"],
    )


async def test_script_sees_everything_in_data(pool: ScriptPool, write: Write) -> None:
    """payload, variables, meta, flow and response reach the script as given."""
    script = write(
        "echo.py",
        """
        def handle(data):
            r = data["response"]
            data["payload"] = [r["status"], r["json"]["ok"], data["flow"]["variables"]["n"]]
            return data
        """,
    )
    data = {
        "payload": None,
        "variables": {"a": 1},
        "meta": {"attempt": 1},
        "flow": {"name": "f", "variables": {"n": 3}},
        "response": {"status": 200, "headers": {}, "body": '{"ok": true}', "json": {"ok": True}},
    }
    outcome = await pool.run(script, data)
    assert outcome.data["payload"] == [200, True, 3]
    assert outcome.data["meta"] == {"attempt": 1}
    assert outcome.response_code is None


async def test_raising_script_names_type_message_and_line(pool: ScriptPool, write: Write) -> None:
    """A raise is one line: script, exception type, message and the script's line."""
    script = write(
        "x.py",
        """
        def handle(data):
            value = data["payload"]
            raise ValueError("boom")
        """,
    )
    with pytest.raises(ScriptCallError) as caught:
        await pool.run(script, {"payload": 1})
    assert str(caught.value) == "script scripts/x.py raised ValueError: boom (line 4)"
    assert caught.value.kind == "raised"
    assert caught.value.line == 4
    assert "Traceback" not in str(caught.value)


async def test_error_inside_a_library_points_at_the_scripts_line(
    pool: ScriptPool, write: Write
) -> None:
    """An exception raised by library code is reported at the script line that called it."""
    script = write(
        "parse.py",
        """
        import json

        def handle(data):
            data["payload"] = json.loads("{not json")
            return data
        """,
    )
    with pytest.raises(ScriptCallError, match=r"raised JSONDecodeError: .* \(line 5\)$"):
        await pool.run(script, {})


async def test_load_failures_are_reported(pool: ScriptPool, write: Write) -> None:
    """A syntax error, a missing handle() and a missing file each say so."""
    broken = write("broken.py", "def handle(data)\n    return data\n")
    with pytest.raises(ScriptCallError, match=r"^script scripts/broken.py: syntax error: .*line 1"):
        await pool.run(broken, {})
    nameless = write("nameless.py", "x = 1\n")
    with pytest.raises(
        ScriptCallError, match=r"^script scripts/nameless.py: has no function handle"
    ):
        await pool.run(nameless, {})
    with pytest.raises(ScriptCallError, match=r"^script scripts/gone.py: file not found$"):
        await pool.run("scripts/gone.py", {})


async def test_endless_loop_times_out_and_next_call_succeeds(
    pool: ScriptPool, write: Write
) -> None:
    """A runaway script is killed at its time limit and the pool keeps serving."""
    loop = write("loop.py", "def handle(data):\n    while True:\n        pass\n")
    ok = write("ok.py", OK)
    with pytest.raises(ScriptCallError) as caught:
        await pool.run(loop, {}, time_limit=1)
    assert str(caught.value) == "script scripts/loop.py: timed out after 1s"
    assert caught.value.kind == "timeout"
    results = await asyncio.gather(*(pool.run(ok, {"payload": n}) for n in range(2)))
    assert [r.data["payload"] for r in results] == [0, 1]


SPAWNS = """
    import os, subprocess, time

    def handle(data):
        child = subprocess.Popen(["sleep", "100"])
        with open(data["pidfile"], "w") as f:
            f.write(str(child.pid))
        if data["then"] == "sleep":
            time.sleep(100)
        elif data["then"] == "exit":
            os._exit(1)
        return data
"""


def _running(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for init to reap it does not)."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z"


async def _gone(pid: int) -> bool:
    """True once `pid` has stopped running, within 5 seconds (a SIGKILL lands at once)."""
    for _ in range(50):
        if not _running(pid):
            return True
        await asyncio.sleep(0.1)
    return False


@pytest.mark.parametrize("ending", ["timeout", "cancel", "crash", "close"])
async def test_processes_a_script_started_die_with_its_worker(
    tmp_path: Path, write: Write, ending: str
) -> None:
    """A child the script started is killed with the worker's whole process group."""
    script = write("spawns.py", SPAWNS)
    pidfile = tmp_path / "child.pid"
    data = {"pidfile": str(pidfile), "then": {"crash": "exit", "close": "return"}.get(
        ending, "sleep")}
    async with ScriptPool(tmp_path, config()) as pool:
        if ending == "timeout":
            with pytest.raises(ScriptCallError, match="timed out after 1s"):
                await pool.run(script, data, time_limit=1)
        elif ending == "cancel":
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(pool.run(script, data), 1)
        elif ending == "crash":
            with pytest.raises(ScriptCallError, match="exited with code 1"):
                await pool.run(script, data)
        else:
            await pool.run(script, data)
            child = int(pidfile.read_text())
            assert _running(child)  # a call that returned leaves its children be
            await pool.close()
        child = int(pidfile.read_text())
        assert await _gone(child)


async def test_memory_hog_fails_with_memory_reason_and_next_call_succeeds(
    pool: ScriptPool, write: Write
) -> None:
    """Allocating 2 GB under a 256 MB limit fails the call, not the pool."""
    hog = write("hog.py", "def handle(data):\n    data['big'] = bytearray(2 * 1024**3)\n")
    ok = write("ok.py", OK)
    with pytest.raises(ScriptCallError) as caught:
        await pool.run(hog, {})
    assert str(caught.value) == "script scripts/hog.py: ran out of memory (limit 256 MB)"
    assert caught.value.kind == "memory"
    assert (await pool.run(ok, {"payload": "after"})).data == {"payload": "after"}


async def test_dying_process_is_replaced(pool: ScriptPool, write: Write) -> None:
    """A script that ends its process fails with how it ended; the next call works."""
    dies = write("dies.py", "import os\n\ndef handle(data):\n    os._exit(3)\n")
    ok = write("ok.py", OK)
    with pytest.raises(ScriptCallError) as caught:
        await pool.run(dies, {})
    assert str(caught.value) == "script scripts/dies.py: the script process exited with code 3"
    assert caught.value.kind == "crashed"
    assert (await pool.run(ok, {"payload": 1})).data == {"payload": 1}


async def test_sys_exit_is_an_error_not_an_exit(pool: ScriptPool, write: Write) -> None:
    """SystemExit from a script is reported like any exception."""
    script = write("quit.py", "import sys\n\ndef handle(data):\n    sys.exit(2)\n")
    with pytest.raises(ScriptCallError, match=r"raised SystemExit: 2 \(line 4\)"):
        await pool.run(script, {})


GARBAGE = [
    ("return [1, 2]", "handle() returned list, expected a dict"),
    ('return {"response_code": 7}', "response_code must be an int from 0 to 4, got int 7"),
    ('return {"response_code": "1"}', "response_code must be an int from 0 to 4, got str '1'"),
    ('return {"logs": "not a list"}', "logs must be a list of str, got str"),
    ('return {"message": ["x"]}', "message must be a str, got list"),
    ('return {"payload": {1, 2}}', "handle() returned data that is not JSON: "),
    ('return {"payload": object()}', "handle() returned data that is not JSON: "),
]


@pytest.mark.parametrize("isolation", ["process", "inline"])
@pytest.mark.parametrize(("body", "reason"), GARBAGE)
async def test_garbage_fails_with_the_same_reason_in_both_modes(
    pool: ScriptPool, write: Write, body: str, reason: str, isolation: Any
) -> None:
    """Process and inline mode refuse the same garbage with the same reason."""
    script = write("garbage.py", f"def handle(data):\n    {body}\n")
    with pytest.raises(ScriptCallError) as caught:
        await pool.run(script, {}, isolation=isolation)
    assert str(caught.value).startswith(f"script scripts/garbage.py: {reason}")
    assert caught.value.kind == "malformed"


async def test_printing_does_not_disturb_the_protocol(pool: ScriptPool, write: Write) -> None:
    """print() and reading stdin in a script cannot corrupt the worker's pipes."""
    script = write(
        "chatty.py",
        """
        import sys

        def handle(data):
            print("x" * 100000)
            data["stdin"] = sys.stdin.read()
            return data
        """,
    )
    assert (await pool.run(script, {})).data == {"stdin": ""}


async def test_four_calls_at_once_on_a_pool_of_two(pool: ScriptPool, write: Write) -> None:
    """Extra calls wait for a free worker; all complete, on at most two processes."""
    script = write(
        "slow.py",
        """
        import os, time

        def handle(data):
            time.sleep(0.2)
            data["pid"] = os.getpid()
            return data
        """,
    )
    results = await asyncio.gather(*(pool.run(script, {"payload": n}) for n in range(4)))
    assert [r.data["payload"] for r in results] == [0, 1, 2, 3]
    assert len({r.data["pid"] for r in results}) <= 2
    assert os.getpid() not in {r.data["pid"] for r in results}


SLEEPS = """
    import time

    def handle(data):
        time.sleep(data["seconds"])
        return data
"""


async def _occupy(pool: ScriptPool, script: str, calls: int, seconds: float) -> list[Any]:
    """Start `calls` calls that sleep `seconds`; return once they hold their workers."""
    tasks = [asyncio.create_task(pool.run(script, {"seconds": seconds})) for _ in range(calls)]
    await asyncio.sleep(0)  # each task takes a free worker before its first real wait
    return tasks


async def test_a_call_waiting_for_a_busy_pool_times_out_naming_the_wait(
    pool: ScriptPool, write: Write
) -> None:
    """With both workers busy past its limit, a third call fails saying it waited in vain."""
    script = write("slow.py", SLEEPS)
    busy = await _occupy(pool, script, 2, 2.0)
    with pytest.raises(ScriptCallError) as caught:
        await pool.run(script, {"seconds": 0}, time_limit=1)
    assert str(caught.value) == (
        "script scripts/slow.py: timed out after 1s waiting for a free script process "
        "(all 2 busy)"
    )
    assert caught.value.kind == "timeout"
    assert [r.waited for r in await asyncio.gather(*busy)] == [0.0, 0.0]


async def test_a_call_that_waited_reports_the_wait(
    pool: ScriptPool, write: Write, caplog: pytest.LogCaptureFixture
) -> None:
    """The third of three slow calls on two workers runs late and says how long it waited."""
    script = write("slow.py", SLEEPS)
    busy = await _occupy(pool, script, 2, 1.0)
    with caplog.at_level("INFO", logger="interlink.scripts"):
        late = await pool.run(script, {"seconds": 0})
    assert late.waited >= 1.0
    assert [r.waited for r in await asyncio.gather(*busy)] == [0.0, 0.0]
    [record] = caplog.records
    assert record.getMessage() == (
        f"scripts/slow.py waited {late.waited:.1f}s for a free script process (all 2 busy)"
    )


async def test_the_wait_counts_in_the_time_limit(pool: ScriptPool, write: Write) -> None:
    """A call that waited 1s of its 1.5s limit is stopped 0.5s into its run, and says so."""
    script = write("slow.py", SLEEPS)
    busy = await _occupy(pool, script, 2, 1.0)
    with pytest.raises(ScriptCallError) as raised:
        await pool.run(script, {"seconds": 1.0}, time_limit=1.5)
    await asyncio.gather(*busy)
    found = re.fullmatch(r"script scripts/slow.py: timed out after 1.5s "
                         r"\((\d\.\d)s of it waiting for a free script process\)",
                         str(raised.value))
    assert found is not None, str(raised.value)
    # About 1s; a loaded machine starts the occupying calls late, so the wait may be longer
    # (up to the whole limit) but never none.
    assert 0.5 <= float(found[1]) <= 1.5


async def test_module_is_loaded_once_per_process_and_reloaded_when_edited(
    tmp_path: Path, write: Write
) -> None:
    """Module state survives between calls; an edited file is loaded afresh."""
    source = """
        CALLS = []

        def handle(data):
            CALLS.append(1)
            data["calls"] = len(CALLS)
            data["version"] = {version}
            return data
        """
    script = write("counter.py", source.format(version=1))
    async with ScriptPool(tmp_path, config(processes=1)) as pool:
        first = await pool.run(script, {})
        second = await pool.run(script, {})
        assert (first.data["calls"], second.data["calls"]) == (1, 2)
        write("counter.py", source.format(version=22))
        edited = await pool.run(script, {})
        assert edited.data == {"calls": 1, "version": 22}


async def test_cancelled_call_does_not_confuse_the_next(pool: ScriptPool, write: Write) -> None:
    """A call cancelled mid-flight kills its worker, so its late reply is never misread."""
    slow = write(
        "slow.py", "import time\n\ndef handle(data):\n    time.sleep(5)\n    return data\n"
    )
    ok = write("ok.py", OK)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(pool.run(slow, {"payload": "slow"}), 0.3)
    results = await asyncio.gather(*(pool.run(ok, {"payload": n}) for n in range(2)))
    assert [r.data for r in results] == [{"payload": 0}, {"payload": 1}]


async def test_data_that_is_not_json_is_refused_before_the_call(
    pool: ScriptPool, write: Write
) -> None:
    """The engine cannot pass values that are not JSON; the reason says so."""
    script = write("ok.py", OK)
    with pytest.raises(ScriptCallError, match="cannot pass the data to the script") as caught:
        await pool.run(script, {"payload": {1, 2}})
    assert caught.value.kind == "input"


async def test_call_function_returns_its_value(pool: ScriptPool, write: Write) -> None:
    """A named function gets the context and may return text, bytes or JSON data."""
    script = write(
        "body.py",
        """
        def text(context):
            return "order " + str(context["page"]["id"])

        def raw(context):
            return b"\\x00\\x01"

        def data(context):
            return {"id": context["page"]["id"], "tags": ("a", "b")}

        def weird(context):
            return {1, 2}

        def fails(context):
            return context["nope"]
        """,
    )
    context = {"page": {"id": 9}}
    assert await pool.call_function(script, "text", context) == "order 9"
    assert await pool.call_function(script, "raw", context) == b"\x00\x01"
    assert await pool.call_function(script, "data", context) == {"id": 9, "tags": ["a", "b"]}
    with pytest.raises(ScriptCallError, match=r"^script scripts/body.py:weird: returned set"):
        await pool.call_function(script, "weird", context)
    with pytest.raises(
        ScriptCallError, match=r"^script scripts/body.py:fails raised KeyError: 'nope' \(line 15\)"
    ):
        await pool.call_function(script, "fails", context)
    with pytest.raises(ScriptCallError, match=r"^script scripts/body.py:missing: has no function"):
        await pool.call_function(script, "missing", context)


async def test_call_function_is_killed_at_its_time_limit(pool: ScriptPool, write: Write) -> None:
    """Functions obey the same time limit as handle()."""
    script = write("spin.py", "def spin(context):\n    while True:\n        pass\n")
    with pytest.raises(
        ScriptCallError, match=r"^script scripts/spin.py:spin: timed out after 0.5s"
    ):
        await pool.call_function(script, "spin", {}, time_limit=0.5)


async def test_close_stops_the_workers_and_refuses_calls(tmp_path: Path, write: Write) -> None:
    """After close() the worker processes are gone and calls fail with a reason."""
    script = write("ok.py", OK)
    pool = ScriptPool(tmp_path, config())
    assert pool.pids == []  # nothing starts before the first call
    await pool.run(script, {})
    pids = pool.pids
    assert len(pids) == 1
    await pool.close()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(ScriptCallError, match="the script pool is closed") as caught:
        await pool.run(script, {})
    assert caught.value.kind == "unavailable"
    await pool.close()
