"""`interlink serve --workers N`: N server processes on one port, supervised by a parent.

Each child is an ordinary `interlink serve` (`server.serve_sockets`): services, webhooks, the
engine endpoints, a queue worker (unless `--no-worker`) and a scheduler, its own event loop
and store connections. The parent only binds, starts, watches and stops them. Why so:

- **The sockets are bound once, by the parent, and inherited.** A port in use is said once,
  before anything starts; `port: 0` is one port for all, logged once (when every child
  serves). The kernel gives each new
  connection to whichever child accepts first (the accept queue is shared), as gunicorn's and
  uvicorn's multi-process modes do, and while a child is being replaced the socket stays open,
  so connections wait in the backlog instead of being refused. `SO_REUSEPORT` (a socket per
  child, connections spread by a hash of the address) was not needed, and with port 0 the
  children would have to learn the first one's port; a dead child's queued connections would
  also be lost with its socket.
- **spawn, never fork.** A child is a fresh interpreter that loads the project and opens the
  store itself (so a replacement reads the project files as they are when it starts). The
  parent never opens the store or an event loop, so nothing half-shared (pool connections, a
  writer thread, uvloop's state) is copied. The sockets travel with the spawn:
  `multiprocessing` passes their descriptors to the new process.
- **Supervised, without spinning.** A child that ends unasked for is logged and replaced: at
  once if it had served `STABLE_S` or longer, else after 1 s, 2 s, 4 s … (at most
  `MAX_BACKOFF_S`) for each such early end in a row (a row ends when a child that served that
  long ends, or after `2 × (STABLE_S + MAX_BACKOFF_S)` without an early end), so a child that
  crashes under load does not make the parent spawn interpreters in a loop. A child that ends
  before it said it was ready (listening, its worker claiming) failed to start: during the first
  start that ends everything with its reason (exit 1, as a single `serve` would); later,
  replacements wait the same way, and after `MAX_START_FAILURES` failed starts in a row, with no
  child becoming ready between them and none left serving, the parent gives up with the last
  reason (while one serves, it keeps trying, every `MAX_BACKOFF_S` at most). A replacement reads
  the project files anew; one whose store or listeners are no longer those the parent started
  with (the store URL edited, `admin.listen` added or removed) refuses to start, saying so:
  those take a restart of `serve`.
- **Stopping.** SIGTERM or SIGINT to the parent: SIGTERM to every child, which stops taking
  connections and finishes what it holds (the single-process path), then exit 0; a second
  SIGINT kills them. On Linux each child asks for SIGTERM when the parent dies
  (`PR_SET_PDEATHSIG`), so even a SIGKILLed parent leaves no server running; elsewhere the
  children of a killed parent keep serving until stopped.

Only a PostgreSQL store is served this way (`check_store`); see docs/decisions/0012.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from interlink.errors import InterlinkError, ServerError
from interlink.redaction import Redactor
from interlink.server import (
    NO_WORKER_LINE,
    SAME_SIGNAL_S,
    admin_line,
    configure_logging,
    listeners,
    redact_logs,
    serve_sockets,
    url_of,
)
from interlink.spec import Project, load_project
from interlink.store import backend_of

__all__ = ["MAX_BACKOFF_S", "MAX_START_FAILURES", "check_store", "serve_processes"]

log = logging.getLogger("interlink.server")

#: failed starts in a row (no child became ready between them) before the parent gives up
MAX_START_FAILURES = 5
#: longest wait before replacing a child that failed to start (or ended soon after)
MAX_BACKOFF_S = 30.0
#: a child that served this long before it ended is replaced at once
STABLE_S = 10.0

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
#: what a child sends its parent once it serves (anything else it sends is why it cannot)
_READY = "ready"


def check_store(project: Project, workers: int, source: str) -> None:
    """Refuse `workers` > 1 on a SQLite store (`source` says where the number came from)."""
    if workers > 1 and backend_of(project.config.store) == "sqlite":
        raise ServerError(
            f"{source} {workers} needs a PostgreSQL store; on SQLite one process serves "
            "(run `interlink worker` beside it for more workers)")


def serve_processes(project: Project, workers: int, *, host: str | None = None,
                    port: int | None = None, with_worker: bool = True,
                    log_format: str | None = None, source: str = "server.workers:") -> None:
    """Serve `project` with `workers` server processes on one port until SIGINT/SIGTERM.

    Raises `ServerError` when a port cannot be bound or the processes cannot start, or when
    the store is SQLite (`source` names where `workers` came from).
    """
    check_store(project, workers, source)
    configure_logging(log_format)
    # What a child says (why it could not start) is logged here: masked as in the child.
    redact_logs(Redactor(project.masked()))
    with listeners(project, host, port) as sockets:

        def serving() -> None:
            log.info("serving %s on %s with %d processes", project.name, url_of(sockets[0]),
                     workers)
            admin_port = sockets[1].getsockname()[1] if len(sockets) > 1 else None
            log.info("%s", admin_line(project.config.admin, admin_port))
            if not with_worker:
                log.info("%s", NO_WORKER_LINE)

        # Whichever process a scrape reaches answers the numbers of them all (metrics.py).
        with tempfile.TemporaryDirectory(prefix="interlink-metrics-") as metrics_dir:
            child = _ChildArgs(project.root, sockets, with_worker, log_format, os.getpid(),
                               project.config.store, Path(metrics_dir))
            reason = _Supervisor(child, workers, serving).run()
    if reason is not None:
        raise ServerError(f"serving {project.name} with {workers} processes: {reason}")
    log.info("the %d server processes of %s have stopped", workers, project.name)


@dataclass(frozen=True)
class _ChildArgs:
    """What a child needs: it loads the project itself and serves the parent's sockets."""

    root: Path
    sockets: Sequence[socket.socket]
    with_worker: bool
    log_format: str | None
    parent: int
    #: the store URL the parent started with: a replacement must use the same
    store: str
    #: where the processes share their metrics (None: each its own)
    metrics_dir: Path | None = None


def _child_main(args: _ChildArgs, said: Connection) -> None:
    """A server process: serve the sockets until SIGTERM. Before it is ready, why it could not
    start goes to the parent (which tells it); after, to the log."""
    _die_with_parent(args.parent)
    # Ctrl-C reaches the whole process group; the parent turns it into SIGTERM for each child,
    # and the child's loop takes SIGINT over once it serves.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ready = False

    def say(message: str) -> None:
        with contextlib.suppress(OSError):  # the parent is gone
            said.send(message)

    def serves() -> None:
        nonlocal ready
        ready = True
        say(_READY)

    # The project as this child loaded it may hold secrets the parent's does not (edited
    # since): what it says is masked here, with its own.
    redactor = Redactor()
    try:
        project = load_project(args.root)
        redactor = Redactor(project.masked())
        _check_unchanged(project, args)
        serve_sockets(project, args.sockets, with_worker=args.with_worker,
                      log_format=args.log_format, ready=serves, metrics_dir=args.metrics_dir)
    except InterlinkError as exc:
        if ready:
            log.error("server process %s stopped: %s", os.getpid(), exc)
        say(redactor.text(str(exc)))
        sys.exit(1)
    except Exception as exc:
        say(redactor.text(f"{type(exc).__name__}: {exc}"))
        raise  # multiprocessing prints the traceback


def _check_unchanged(project: Project, args: _ChildArgs) -> None:
    """Refuse to serve a project whose store or listeners changed since the parent bound its
    sockets (a replacement reads the files anew): that takes a restart of `serve`."""
    listeners = 1 if project.config.admin.listen is None else 2
    if project.config.store != args.store:
        # Not the URLs themselves: they may hold a password.
        raise ServerError("the project's store changed since serve started; restart serve "
                          "to use the new one")
    if listeners != len(args.sockets):
        raise ServerError(f"admin.listen was {'added' if listeners > 1 else 'removed'} since "
                          "serve started; restart serve to apply it")


def _die_with_parent(parent: int) -> None:
    """SIGTERM this process when the parent dies (Linux; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request took effect
        sys.exit(0)


@dataclass
class _Child:
    process: BaseProcess
    said: Connection | None  # closed once the child is ready
    #: the pid of the ready child this one replaces (None: one of the first)
    replaces: int | None
    ready: bool = False
    #: when it became ready (monotonic)
    ready_at: float = 0.0
    reason: str = ""


class _Supervisor:
    """Starts `count` children, replaces those that end, stops them all on a signal;
    `serving()` is called once all of the first `count` are ready."""

    def __init__(self, args: _ChildArgs, count: int, serving: Callable[[], None]) -> None:
        self.args = args
        self.count = count
        self.serving: Callable[[], None] | None = serving
        self.context = multiprocessing.get_context("spawn")
        self.children: list[_Child] = []
        #: children to start: (monotonic time, the pid it replaces)
        self.due: list[tuple[float, int | None]] = []
        self.signals: list[int] = []
        self.stopping = False
        self.stopped_at = 0.0
        self.ever_ready = False
        self.failures = 0
        #: ready children in a row that ended within STABLE_S of becoming ready, and when
        #: the last did (monotonic)
        self.early_ends = 0
        self.last_early_end = 0.0
        self.gave_up: str | None = None

    def run(self) -> str | None:
        """Supervise until the children have ended; the reason it gave up, if it did."""
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        old_fd = signal.set_wakeup_fd(wake_w.fileno())
        try:
            self.due = [(time.monotonic(), None)] * self.count
            while self.children or self.due:
                self._start_due()
                timeout = None
                if self.due:
                    timeout = max(min(at for at, _ in self.due) - time.monotonic(), 0.0)
                watched: list[Connection | socket.socket | int] = [wake_r]
                for child in self.children:
                    watched.append(child.process.sentinel)
                    if child.said is not None:
                        watched.append(child.said)
                woke = wait(watched, timeout)
                if wake_r in woke:
                    with contextlib.suppress(BlockingIOError):
                        wake_r.recv(512)
                self._handle_signals()
                for child in list(self.children):
                    if child.said is not None and child.said in woke:
                        self._heard(child)
                    if child.process.sentinel in woke:
                        self._ended(child)
        finally:
            if self.children:  # something escaped the loop: leave no child serving
                self._stop()
                for child in self.children:
                    child.process.join(30)
                    if child.process.is_alive():
                        child.process.kill()
            signal.set_wakeup_fd(old_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            wake_r.close()
            wake_w.close()
        return self.gave_up

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)

    def _handle_signals(self) -> None:
        while self.signals:
            sig = self.signals.pop(0)
            if not self.stopping:
                log.info("stopping %d server processes", len(self.children))
                self._stop()
            elif sig == signal.SIGINT and time.monotonic() - self.stopped_at > SAME_SIGNAL_S:
                log.warning("killing %d server processes", len(self.children))
                for child in self.children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(_pid(child), signal.SIGKILL)

    def _stop(self) -> None:
        """SIGTERM to every child; start no more. The parent's copies of the sockets close
        too, so new connections are refused at once (as by one `serve`) rather than left in
        the backlog until the last child has finished what it holds."""
        self.stopping = True
        self.stopped_at = time.monotonic()
        self.due = []
        for sock in self.args.sockets:
            sock.close()
        for child in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(_pid(child), signal.SIGTERM)

    def _start_due(self) -> None:
        now = time.monotonic()
        for entry in [entry for entry in self.due if entry[0] <= now]:
            self.due.remove(entry)
            self._start(entry[1])

    def _start(self, replaces: int | None) -> None:
        reader, writer = self.context.Pipe(duplex=False)
        process = self.context.Process(target=_child_main, args=(self.args, writer),
                                       name="interlink-serve")
        try:
            process.start()
        except BaseException:
            reader.close()
            raise
        finally:
            writer.close()  # the child holds the other end: its end is our EOF
        self.children.append(_Child(process, reader, replaces))

    def _heard(self, child: _Child) -> None:
        """The child said it is ready, or why it cannot start; or its end closed the pipe."""
        assert child.said is not None
        try:
            message = child.said.recv()
        except (EOFError, OSError):
            message = None
        if isinstance(message, str) and message != _READY:
            child.reason = message  # its end follows
            return
        child.said.close()
        child.said = None
        if message == _READY:
            self._ready(child)

    def _ready(self, child: _Child) -> None:
        child.ready = self.ever_ready = True
        child.ready_at = time.monotonic()
        self.failures = 0
        if child.replaces is not None:
            log.info("server process %s serves in place of %s", child.process.pid,
                     child.replaces)
        if self.serving is not None and sum(c.ready for c in self.children) == self.count:
            self.serving()
            self.serving = None

    def _ended(self, child: _Child) -> None:
        while child.said is not None and child.said.poll():
            self._heard(child)  # what it said before it ended
        if child.said is not None:
            child.said.close()
            child.said = None
        child.process.join()
        self.children.remove(child)
        if self.stopping:
            return
        how, pid = _how(child.process.exitcode), _pid(child)
        if child.ready:
            served = time.monotonic() - child.ready_at
            if served >= STABLE_S:
                self.early_ends = 0
                log.warning("server process %s ended (%s); starting another", pid, how)
                self.due.append((time.monotonic(), pid))
                return
            # Twice the longest wait plus STABLE_S without an early end (a replacement at the
            # longest wait that starts and serves a few seconds ends well within it): the row
            # is over, though no child that served STABLE_S has ended to say so.
            now = time.monotonic()
            if now - self.last_early_end > 2 * (STABLE_S + MAX_BACKOFF_S):
                self.early_ends = 0
            self.early_ends += 1
            self.last_early_end = now
            delay = _backoff(self.early_ends)
            log.warning("server process %s ended (%s) %.1fs after it was ready; starting "
                        "another in %gs", pid, how, served, delay)
            self.due.append((time.monotonic() + delay, pid))
            return
        reason = child.reason or f"it ended ({how}) before it was ready"
        self.failures += 1
        # While another child serves, keep trying (every MAX_BACKOFF_S at most): a project
        # edited into a state that cannot start, or a store away for a while, is no reason
        # to stop the children that still serve.
        serving = any(c.ready for c in self.children)
        if not self.ever_ready or (self.failures >= MAX_START_FAILURES and not serving):
            self.gave_up = (f"a server process could not start: {reason}" if not self.ever_ready
                            else f"{self.failures} server processes in a row could not start; "
                            f"the last: {reason}")
            self._stop()
            return
        delay = _backoff(self.failures)
        log.warning("server process %s could not start (%s): %s; starting another in %gs",
                    pid, how, reason, delay)
        self.due.append((time.monotonic() + delay, child.replaces))


def _backoff(n: int) -> float:
    """The wait before the next start after `n` early ends or failed starts in a row: 1 s,
    2 s, 4 s … up to MAX_BACKOFF_S (the exponent capped: 2.0 ** 1024 overflows, and a child
    that serves lets failures go on for ever)."""
    return min(2.0 ** min(n - 1, 16), MAX_BACKOFF_S)


def _pid(child: _Child) -> int:
    pid = child.process.pid
    assert pid is not None  # started
    return pid


def _how(exitcode: int | None) -> str:
    """`signal 9` or `exit 1`, as a process's end is told."""
    if exitcode is not None and exitcode < 0:
        return f"signal {-exitcode}"
    return f"exit {exitcode}"
