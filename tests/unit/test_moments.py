"""`--since` / `--until` take what the runs API takes: a duration ago, an ISO 8601 time, Unix
seconds; anything else is a usage error naming the forms."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click
import pytest
from click.testing import CliRunner

from interlink.cli.moments import Moment


@click.command()
@click.option("--since", type=Moment())
def echo_since(since: float) -> None:
    """Print the moment `--since` was read as."""
    click.echo(repr(since))


def read(text: str) -> float:
    """`--since TEXT` as the command gets it."""
    done = CliRunner().invoke(echo_since, ["--since", text])
    assert done.exit_code == 0, done.output
    return float(done.stdout)


@pytest.mark.parametrize(("text", "ago"), [("90s", 90), ("30m", 1800), ("1h", 3600),
                                           ("2d", 2 * 86400)])
def test_durations_count_back_from_now(text: str, ago: float) -> None:
    """A duration means that long before the command started."""
    before = time.time()
    moment = read(text)
    assert before - ago - 1 <= moment <= time.time() - ago


def test_iso_times_are_utc_unless_they_say_otherwise() -> None:
    """A time without a zone is UTC (every time Interlink prints is); offsets count."""
    base = datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp()
    assert read("2026-12-01T09:00:00Z") == base
    assert read("2026-12-01T09:00") == base
    assert read("2026-12-01T10:00:00+01:00") == base
    assert read(str(base)) == base


@pytest.mark.parametrize("text", ["yesterday", "5x", "h"])
def test_anything_else_is_a_usage_error(text: str) -> None:
    """An unreadable moment exits 2 and names the forms accepted."""
    done = CliRunner().invoke(echo_since, ["--since", text])
    assert done.exit_code == 2
    assert "expected an ISO-8601 time" in done.stderr
