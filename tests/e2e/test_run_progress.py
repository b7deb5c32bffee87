"""`interlink run FLOW` tells its progress on stderr (step, attempts, waits); stdout keeps the
ended run alone (`--json` stays clean)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from tests.integration.test_store import a_run
from tests.processes import cli
from tests.projects import push_to, write_project
from tests.upstream import Upstream

from interlink.cli.progress import Progress
from interlink.store import (
    UNKNOWN_DECISION,
    AttemptRecord,
    InsertRun,
    SaveAttempt,
    SaveStep,
    StepRecord,
    Store,
    UpdateRun,
)


async def test_attempts_and_in_place_waits_are_told_on_stderr(tmp_path: Path) -> None:
    """503 then 201: each attempt sent and answered, the step's end, the run's end."""
    async with Upstream() as up:
        up.route("/orders", statuses=[503, 201])
        write_project(tmp_path, push_to(up.url, retry="{max_attempts: 3, initial: 300ms, "
                                                      "jitter: none}"))
        (tmp_path / "order.json").write_text('{"id": 1}')
        code, out, err = await cli("run", "push", str(tmp_path), "--payload",
                                   str(tmp_path / "order.json"), "--json")
    assert code == 0, err
    run = json.loads(out)  # nothing but the run on stdout
    assert run["status"] == "succeeded"
    lines = err.splitlines()
    url = f"{up.url}/orders"
    expected = [
        f"step push (1 of 1): attempt 1: POST {url}",
        "step push: attempt 1: HTTP 503 → retry_step, waiting 0.3s",
        f"step push (1 of 1): attempt 2: POST {url}",
        "step push: attempt 2: HTTP 201 → continue",
    ]
    told = [line for line in lines if line.startswith("step push") and "attempt" in line]
    # An attempt may be sent and answered between two looks: then its two lines come together.
    assert told == expected, lines
    assert lines[:2] == [f"run {run['id']} queued (flow push)",
                         f"run {run['id']} running (flow push)"]
    assert any(line.startswith("step push: succeeded in ") for line in lines)
    assert lines[-1].startswith(f"run {run['id']} succeeded in ")


async def test_a_durable_wait_is_told_with_its_reason(tmp_path: Path) -> None:
    """A wait over a second goes to the queue: the run's `waiting` line says why and how long."""
    async with Upstream() as up:
        up.route("/orders", statuses=[503, 201])
        write_project(tmp_path, push_to(up.url, retry="{max_attempts: 2, initial: 1500ms, "
                                                      "jitter: none}"))
        code, out, err = await cli("run", "push", str(tmp_path))
    assert code == 0, err
    assert out.startswith("run r_")  # the text form of the run, on stdout only
    waiting = [line for line in err.splitlines() if " waiting: " in line]
    assert len(waiting) == 1, err
    assert waiting[0].endswith("HTTP 503 (attempt 1 of 2); retrying in 1.5s")


async def test_a_delay_is_told_with_its_time(tmp_path: Path) -> None:
    """A delay over a second: the `waiting` line gives the time it waits until (an info line
    of the run log: waiting as told is no warning)."""
    write_project(tmp_path, {"flows/later.yaml": "name: later\nsteps:\n"
                                                 "  - {id: pause, type: delay, for: 1200ms}\n"})
    code, _, err = await cli("run", "later", str(tmp_path))
    assert code == 0, err
    waiting = [line for line in err.splitlines() if " waiting: " in line]
    assert len(waiting) == 1, err
    assert re.search(r"waiting: step pause: waiting until \d{4}-\d\d-\d\dT[\d:.]+Z$",
                     waiting[0]), waiting


async def test_quiet_says_nothing_while_it_waits(tmp_path: Path) -> None:
    """`--quiet`: stderr stays empty."""
    async with Upstream() as up:
        write_project(tmp_path, push_to(up.url))
        code, out, err = await cli("run", "push", str(tmp_path), "--quiet", "--json")
    assert (code, err) == (0, "")
    assert json.loads(out)["status"] == "succeeded"


async def first_look(store: Store, run_id: str) -> list[str]:
    """What one look of `interlink run`'s progress at `run_id` tells."""
    said: list[str] = []
    await Progress(store, run_id, said.append).look()
    return said


async def test_one_look_tells_a_steps_attempts_before_its_end(store: Store) -> None:
    """Two steps sent, answered and ended between two looks: attempts, end, attempts, end —
    it told every step's end first, then the attempts."""
    run = replace(a_run("r1", created_at=100.0),
                  flow_spec={"steps": [{"id": "a"}, {"id": "b"}]})
    sent = {"method": "POST", "url": "http://up/x"}
    await store.write(
        InsertRun(run),
        SaveAttempt(AttemptRecord("r1", "a", 1, sent, {"status": 201}, 0, "continue", 101.0)),
        SaveStep(StepRecord("r1", 0, "a", "succeeded", 100.5, 101.5)),
        SaveAttempt(AttemptRecord("r1", "b", 1, sent, {"status": 200}, 0, "continue", 102.0)),
        SaveStep(StepRecord("r1", 1, "b", "succeeded", 101.6, 102.5)))
    said = await first_look(store, "r1")
    assert said[2:] == [
        "step a (1 of 2): attempt 1: POST http://up/x", "step a: attempt 1: HTTP 201 → continue",
        "step a: succeeded in 1.00s",
        "step b (2 of 2): attempt 1: POST http://up/x", "step b: attempt 1: HTTP 200 → continue",
        "step b: succeeded in 0.90s"]


async def test_a_late_first_look_tells_the_run_queued_and_started_before_its_attempts(
        store: Store) -> None:
    """The run was queued, started and sent its first attempt before the first look: told in
    that order (a newcomer saw `running` after attempt 1, and no `queued` at all)."""
    run = replace(a_run("r1", created_at=100.0), status="running", started_at=100.2,
                  flow_spec={"steps": [{"id": "a"}]})
    sent = {"method": "POST", "url": "http://up/x"}
    await store.write(InsertRun(run), SaveAttempt(AttemptRecord(
        "r1", "a", 1, sent, None, -1, UNKNOWN_DECISION, 100.3)))
    said = await first_look(store, "r1")
    assert said == ["run r1 queued (flow orders)", "run r1 running (flow orders)",
                    "step a (1 of 1): attempt 1: POST http://up/x"]


async def test_a_run_started_between_the_reads_of_one_look_is_told_running_first(
        store: Store) -> None:
    """The look read the run `queued`, then its first attempt (committed with `running`
    meanwhile): `running` still comes before the attempt, not at the next look after it."""
    run = replace(a_run("r1", created_at=100.0), status="queued", started_at=None,
                  flow_spec={"steps": [{"id": "a"}]})
    await store.write(InsertRun(run))
    sent = {"method": "POST", "url": "http://up/x"}
    reads = {"n": 0}
    original = store.get_run

    async def get_run(run_id: str) -> Any:
        found = await original(run_id)
        reads["n"] += 1
        if reads["n"] == 1:  # the run starts right after the look read it
            await store.write(UpdateRun("r1", {"status": "running", "started_at": 100.2}),
                              SaveAttempt(AttemptRecord("r1", "a", 1, sent, None, -1,
                                                        UNKNOWN_DECISION, 100.3)))
        return found

    store.get_run = get_run  # type: ignore[method-assign]
    said = await first_look(store, "r1")
    assert said == ["run r1 queued (flow orders)", "run r1 running (flow orders)",
                    "step a (1 of 1): attempt 1: POST http://up/x"]


async def test_a_run_that_ended_before_the_first_look_is_still_told_started(
        store: Store) -> None:
    run = replace(a_run("r1", created_at=100.0), status="succeeded", started_at=100.2,
                  finished_at=100.5, flow_spec={"steps": [{"id": "a"}]})
    await store.write(InsertRun(run))
    said = await first_look(store, "r1")
    assert said == ["run r1 queued (flow orders)", "run r1 running (flow orders)",
                    "run r1 succeeded in 0.30s"]
