"""Real processes for the benches: `interlink serve`/`worker`, the counting upstream, a store.

- `EngineProcess` starts `interlink serve|worker PROJECT` as a subprocess (output appended to a
  log file), SIGKILLs and restarts it, and for `serve` waits for `/_interlink/health`.
- `start_upstream` starts `bench/_counting_upstream.py` and returns it with its URL.
- `store_url` yields a fresh store: a SQLite file in a folder, or a PostgreSQL schema on the
  server named by `INTERLINK_TEST_POSTGRES_URL`, else on a throwaway server
  (`interlink.store._pgserver.TemporaryPostgres`, as `tests/conftest.py` does).
- `write_files` writes a generated project; `proc_sample` reads RSS and open fds from /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp

UPSTREAM_SCRIPT = Path(__file__).with_name("_counting_upstream.py")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_files(root: Path, files: dict[str, str]) -> None:
    """Write `files` (relative path → text, dedented) under `root`."""
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"))


class EngineProcess:
    """One `interlink serve` or `interlink worker` process that can be killed and restarted."""

    def __init__(self, role: str, project: Path, log: Path, port: int | None = None) -> None:
        self.role = role
        self.project = project
        self.log = log
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def name(self) -> str:
        """`serve` or `worker-N` as the log file is named."""
        return self.log.stem

    @property
    def pid(self) -> int:
        """The running process's id."""
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        """Start the process (its output goes to the log file)."""
        args = [sys.executable, "-m", "interlink.cli", self.role, str(self.project)]
        if self.port is not None:
            args += ["--port", str(self.port)]
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts + 1} ---\n".encode())
            out.flush()
            # JSON log lines, so a bench can count warnings and errors by message.
            env = {**os.environ, "INTERLINK_LOG_FORMAT": "json"}
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
        self.starts += 1

    async def ready(self, limit_s: float = 60.0) -> None:
        """Return once `serve` answers its health check (a worker: at once)."""
        if self.role != "serve":
            return
        url = f"http://127.0.0.1:{self.port}/_interlink/health"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            for _ in range(int(limit_s / 0.1)):
                if self.proc is None or self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited; see {self.log}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(url) as answer:
                        if answer.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become healthy in {limit_s:g}s")

    def kill(self) -> None:
        """SIGKILL the process and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self) -> subprocess.Popen[bytes] | None:
        """Ask the process to stop (SIGTERM) and let go of it: `start` may start the next one
        while it finishes what it holds (a rolling restart). Returns it, to wait for."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return None
        proc.terminate()
        return proc

    def stop(self) -> None:
        """Stop the process gracefully (SIGTERM), or kill it after 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()


@contextlib.contextmanager
def running(procs: list[EngineProcess]) -> Iterator[list[EngineProcess]]:
    """Start `procs`; whatever happens, none of them outlives the block."""
    try:
        for proc in procs:
            proc.start()
        yield procs
    finally:
        for proc in procs:
            proc.kill()


@contextlib.contextmanager
def start_upstream(*options: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Run the counting upstream with `options`; yields the process and its URL."""
    proc = subprocess.Popen([sys.executable, str(UPSTREAM_SCRIPT), *options],
                            stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the upstream did not start: {line!r}")
        yield proc, f"http://127.0.0.1:{int(line.split()[-1])}"
    finally:
        proc.kill()
        proc.wait(10)


@contextlib.contextmanager
def store_url(kind: str, folder: Path) -> Iterator[str]:
    """A fresh, empty store of `kind` (`sqlite` or `postgres`) for one bench run."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'store.db'}"
        return
    server = os.environ.get("INTERLINK_TEST_POSTGRES_URL")
    if server:
        with _schema(server) as url:
            yield url
        return
    from interlink.store._pgserver import TemporaryPostgres, find_pg_bin

    bin_dir = find_pg_bin()
    if bin_dir is None:
        sys.exit("no PostgreSQL: set INTERLINK_TEST_POSTGRES_URL or install it (initdb, pg_ctl)")
    with TemporaryPostgres(bin_dir, durable=True) as pg:
        yield pg.url


@contextlib.contextmanager
def _schema(server: str) -> Iterator[str]:
    """A URL whose connections use a fresh schema on `server`, dropped afterwards."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in server else "?"
    try:
        yield f"{server}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def proc_sample(pid: int) -> tuple[float, int]:
    """Resident memory (MB) and open file descriptors of process `pid`, from /proc."""
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd"))
