"""Secrets never reach a log line: one filter on the root handler masks every record."""

from __future__ import annotations

import json
import logging
import logging.config
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn.config
from tests.projects import write_project

from interlink import server_processes
from interlink.errors import ServerError
from interlink.redaction import RedactingFilter, Redactor
from interlink.server import configure_logging, redact_logs

SECRET = "s3cret-admin-token-value"
LATER = "token-fetched-at-run-time"


def record(msg: object, *args: object, exc: bool = False) -> logging.LogRecord:
    """A log record, with the current exception when `exc`."""
    import sys

    return logging.LogRecord("x", logging.ERROR, __file__, 1, msg, args,
                             sys.exc_info() if exc else None)


def test_message_args_and_exception_text_are_masked() -> None:
    """The rendered message, its arguments and the traceback lose every secret."""
    redactor = Redactor([SECRET])
    masking = RedactingFilter(redactor)
    plain = record(f"login with {SECRET}")
    with_args = record("calling %s with %r", "warehouse", {"token": SECRET})
    try:
        raise RuntimeError(f"refused {SECRET}")
    except RuntimeError:
        failed = record("failed", exc=True)
    for each in (plain, with_args, failed):
        assert masking.filter(each) is True
    assert plain.getMessage() == "login with ***"
    assert with_args.getMessage() == "calling warehouse with {'token': '***'}"
    assert failed.exc_info is None and failed.exc_text is not None
    assert "RuntimeError: refused ***" in failed.exc_text and SECRET not in failed.exc_text


def test_secrets_learnt_at_run_time_are_masked_too() -> None:
    """A token the redactor learns after the filter was installed is masked from then on."""
    redactor = Redactor([SECRET])
    masking = RedactingFilter(redactor)
    redactor.replace("warehouse", [LATER])
    later = record("got %s", LATER)
    masking.filter(later)
    assert later.getMessage() == "got ***"


UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Restore the root and uvicorn loggers (handlers, level, propagation) after the test."""
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in UVICORN)]
    saved = [(lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    yield
    for lg, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        lg.handlers[:], lg.level, lg.propagate = handlers, level, propagate


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_serve_logging_masks_every_logger(
        root_logging: None, fmt: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """As `serve` sets it up, a library's record (uvicorn's, say) is masked, traceback too."""
    monkeypatch.setenv("INTERLINK_LOG_FORMAT", fmt)
    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)  # as a uvicorn run leaves them
    configure_logging()
    redact_logs(Redactor([SECRET]))
    try:
        raise ValueError(f"bad header Authorization: Bearer {SECRET}")
    except ValueError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI app %s", SECRET)
    logging.getLogger("some.library").warning("token=%s", SECRET)
    err = capsys.readouterr().err
    assert SECRET not in err
    assert err.count("***") >= 3
    assert "ValueError: bad header Authorization: Bearer ***" in err
    if fmt == "json":
        lines = [json.loads(line) for line in err.splitlines()]
        assert "ValueError" in lines[0]["exception"]


def test_serve_workers_parent_masks_what_its_children_say(
        root_logging: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`serve --workers` logs a child's reason in the parent: the project's secrets are masked
    there too."""
    project = write_project(tmp_path, {"interlink.yaml": f"""
        name: test
        store: postgresql://app@127.0.0.1:9/app
        admin: {{token: {SECRET}}}
        """})

    def a_child_said(self: server_processes._Supervisor) -> None:
        server_processes.log.warning("server process 7 could not start: %s",
                                     f"login refused for {SECRET}")

    monkeypatch.setattr(server_processes._Supervisor, "run", a_child_said)
    server_processes.serve_processes(project, 2, port=0)
    err = capsys.readouterr().err
    assert "login refused for ***" in err and SECRET not in err


def test_a_serve_workers_child_masks_why_it_could_not_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A replacement loads the project anew, maybe with a secret the parent never saw: the
    child masks its reason with its own project before telling the parent."""
    import multiprocessing
    import signal

    url = "postgresql://app@127.0.0.1:9/app"
    write_project(tmp_path, {"interlink.yaml": f"""
        name: test
        store: {url}
        admin: {{token: {SECRET}}}
        """})

    def refuses(*args: object, **kwargs: object) -> None:
        raise ServerError(f"binding 127.0.0.1:8080 as {SECRET}")

    monkeypatch.setattr(server_processes, "serve_sockets", refuses)
    monkeypatch.setattr(server_processes, "_die_with_parent", lambda parent: None)
    heard, said = multiprocessing.Pipe(duplex=False)
    sigint = signal.getsignal(signal.SIGINT)
    listener, other = socket.socketpair()
    try:
        with pytest.raises(SystemExit):
            server_processes._child_main(
                server_processes._ChildArgs(tmp_path, [listener], True, None, 0, url), said)
    finally:
        signal.signal(signal.SIGINT, sigint)
        listener.close()
        other.close()
    assert heard.recv() == "binding 127.0.0.1:8080 as ***"
