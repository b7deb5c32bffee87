"""`serve --workers`' supervisor: what it does when a child ends, and what a replacement
refuses to serve (the end-to-end behaviour is in tests/e2e/test_serve_processes.py)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.projects import write_project

from interlink.errors import ServerError
from interlink.server_processes import (
    MAX_BACKOFF_S,
    STABLE_S,
    _check_unchanged,
    _Child,
    _ChildArgs,
    _Supervisor,
)

URL = "postgresql://app:pw-9@db.internal/app"


class _Ended:
    """A child process that has ended (killed), as `_ended` sees it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.exitcode = -9

    def join(self, timeout: float | None = None) -> None:
        pass


def args(root: Path, sockets: list[socket.socket], store: str = URL) -> _ChildArgs:
    return _ChildArgs(root, sockets, True, None, 1, store)


def ended_after(supervisor: _Supervisor, pid: int, served_s: float) -> float:
    """A ready child ends having served `served_s`; the delay before its replacement."""
    child = _Child(_Ended(pid), None, None, ready=True,  # type: ignore[arg-type]
                   ready_at=time.monotonic() - served_s)
    supervisor.children.append(child)
    before = time.monotonic()
    supervisor._ended(child)
    at, replaces = supervisor.due.pop()
    assert replaces == pid
    return round(at - before)


def test_children_ending_soon_after_they_served_are_replaced_later_and_later(
        tmp_path: Path) -> None:
    """A crash loop does not spawn interpreters in a loop: 1 s, 2 s, 4 s … up to the cap;
    a child that served STABLE_S resets it and is replaced at once."""
    supervisor = _Supervisor(args(tmp_path, []), 2, lambda: None)
    delays = [ended_after(supervisor, pid, 0.5) for pid in range(1, 9)]
    assert delays == [1, 2, 4, 8, 16, MAX_BACKOFF_S, MAX_BACKOFF_S, MAX_BACKOFF_S]
    assert ended_after(supervisor, 10, STABLE_S + 1) == 0
    assert ended_after(supervisor, 11, 0.5) == 1
    assert supervisor.gave_up is None  # children that served are never given up on


def test_an_early_end_long_after_the_last_starts_a_new_row(tmp_path: Path) -> None:
    """A crash loop of yesterday does not make today's first early end wait the longest."""
    supervisor = _Supervisor(args(tmp_path, []), 2, lambda: None)
    assert [ended_after(supervisor, pid, 0.5) for pid in range(1, 7)][-1] == MAX_BACKOFF_S
    supervisor.last_early_end -= 2 * (STABLE_S + MAX_BACKOFF_S) + 1  # the others served
    assert ended_after(supervisor, 7, 0.5) == 1
    assert ended_after(supervisor, 8, 0.5) == 2
    # A replacement started at the longest wait that served 9 s is still in the row.
    supervisor.early_ends = 6
    supervisor.last_early_end -= MAX_BACKOFF_S + 9 + 3
    assert ended_after(supervisor, 9, 9) == MAX_BACKOFF_S


@pytest.fixture
def two_sockets() -> Iterator[list[socket.socket]]:
    pair = list(socket.socketpair())
    yield pair
    for sock in pair:
        sock.close()


def test_a_replacement_refuses_a_changed_store_without_saying_its_url(
        tmp_path: Path, two_sockets: list[socket.socket]) -> None:
    project = write_project(tmp_path, {}, store="postgresql://app:pw-new@db.other/app")
    with pytest.raises(ServerError, match="store changed since serve started") as raised:
        _check_unchanged(project, args(tmp_path, two_sockets[:1]))
    assert "pw-" not in str(raised.value)
    _check_unchanged(project, args(tmp_path, two_sockets[:1], project.config.store))


def test_a_replacement_refuses_listeners_added_or_removed(
        tmp_path: Path, two_sockets: list[socket.socket]) -> None:
    project = write_project(tmp_path, {}, store=URL)
    with pytest.raises(ServerError, match=r"admin\.listen was removed"):
        _check_unchanged(project, args(tmp_path, two_sockets))
    with_admin = write_project(tmp_path, {"interlink.yaml": f"name: test\nstore: {URL}\n"
                                          "admin: {listen: {port: 9999}}\n"})
    with pytest.raises(ServerError, match=r"admin\.listen was added"):
        _check_unchanged(with_admin, args(tmp_path, two_sockets[:1]))
    _check_unchanged(with_admin, args(tmp_path, two_sockets))


def test_after_five_failed_starts_in_a_row_the_parent_gives_up(
        tmp_path: Path, two_sockets: list[socket.socket]) -> None:
    """Replacements that cannot start wait 1, 2, 4, 8 s; the fifth failure in a row stops the
    others (and closes the parent's sockets) and gives up with the last reason."""
    supervisor = _Supervisor(args(tmp_path, two_sockets), 2, lambda: None)
    supervisor.ever_ready = True  # the first children served: these are replacements
    delays = []
    for pid in range(1, 6):
        child = _Child(_Ended(pid), None, 99, reason=f"opening the store: no {pid}")  # type: ignore[arg-type]
        supervisor.children.append(child)
        before = time.monotonic()
        supervisor._ended(child)
        if supervisor.due:
            at, replaces = supervisor.due.pop()
            assert replaces == 99
            delays.append(round(at - before))
    assert delays == [1, 2, 4, 8]
    assert supervisor.stopping and supervisor.due == []
    assert supervisor.gave_up == ("5 server processes in a row could not start; the last: "
                                  "opening the store: no 5")
    assert all(sock.fileno() == -1 for sock in two_sockets)


def test_while_a_child_serves_failed_starts_are_tried_again_for_ever(
        tmp_path: Path, two_sockets: list[socket.socket]) -> None:
    """A replacement that cannot start (the project edited into a state it refuses) does not
    take down the child that still serves: it is tried again, every MAX_BACKOFF_S at most."""
    supervisor = _Supervisor(args(tmp_path, two_sockets), 2, lambda: None)
    supervisor.ever_ready = True
    serving = _Child(_Ended(50), None, None, ready=True,  # type: ignore[arg-type]
                     ready_at=time.monotonic())
    supervisor.children.append(serving)
    delays = []
    for pid in range(1, 1101):  # 2.0 ** 1024 would overflow: days of tries at 30 s
        child = _Child(_Ended(pid), None, 99, reason="the project's store changed")  # type: ignore[arg-type]
        supervisor.children.append(child)
        before = time.monotonic()
        supervisor._ended(child)
        at, _ = supervisor.due.pop()
        delays.append(round(at - before))
    assert delays[:7] == [1, 2, 4, 8, 16, MAX_BACKOFF_S, MAX_BACKOFF_S]
    assert set(delays[5:]) == {MAX_BACKOFF_S}
    assert supervisor.gave_up is None and not supervisor.stopping
    assert supervisor.children == [serving]
