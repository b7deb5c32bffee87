"""Retry policy: exponential backoff, jitter modes, Retry-After parsing and capping."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from interlink.connectors.retry import RetryPolicy, parse_retry_after
from interlink.spec.connector import RetryPolicySpec


def test_from_spec_reads_every_field() -> None:
    """The policy mirrors the connector's `retry:` section, durations in seconds."""
    spec = RetryPolicySpec.model_validate(
        {"max_attempts": 6, "initial": "100ms", "max": "5s", "multiplier": 3.0,
         "jitter": "equal", "retry_after_cap": "20s", "max_reauth": 2}
    )
    assert RetryPolicy.from_spec(spec) == RetryPolicy(6, 0.1, 5.0, 3.0, "equal", 20.0, 2)


def test_backoff_grows_and_is_capped() -> None:
    """initial * multiplier**(n-1), never above max, even for absurd attempt numbers."""
    policy = RetryPolicy(initial=0.2, max=1.0, multiplier=2.0)
    assert [policy.backoff(n) for n in range(1, 6)] == [0.2, 0.4, 0.8, 1.0, 1.0]
    assert policy.backoff(10_000) == 1.0


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 8])
def test_jitter_bounds(attempt: int) -> None:
    """full ∈ [0, b], equal ∈ [b/2, b], none == b, for many random draws."""
    rng = random.Random(42)
    full = RetryPolicy(initial=0.5, max=3.0, jitter="full")
    equal = RetryPolicy(initial=0.5, max=3.0, jitter="equal")
    none = RetryPolicy(initial=0.5, max=3.0, jitter="none")
    b = full.backoff(attempt)
    full_draws = [full.delay(attempt, None, rng) for _ in range(500)]
    equal_draws = [equal.delay(attempt, None, rng) for _ in range(500)]
    assert all(0.0 <= d <= b for d in full_draws)
    assert min(full_draws) < b / 4  # really spread over the whole range
    assert all(b / 2 <= d <= b for d in equal_draws)
    assert none.delay(attempt, None, rng) == b


def test_retry_after_wins_capped() -> None:
    """A server's Retry-After replaces the backoff, capped at retry_after_cap."""
    policy = RetryPolicy(initial=5.0, max=30.0, retry_after_cap=10.0, jitter="none")
    assert policy.delay(1, 2.0) == 2.0
    assert policy.delay(3, 0.0) == 0.0
    assert policy.delay(1, 120.0) == 10.0
    assert policy.delay(1, -3.0) == 0.0


def test_attempts_left() -> None:
    """Attempts left after n made: never negative."""
    policy = RetryPolicy(max_attempts=3)
    assert [policy.attempts_left(n) for n in range(5)] == [3, 2, 1, 0, 0]


def test_parse_retry_after_seconds_and_dates() -> None:
    """Delay-seconds and HTTP-dates both become seconds from now; junk becomes None."""
    now = 1_700_000_000.0
    later = format_datetime(datetime.fromtimestamp(now + 90, UTC), usegmt=True)
    earlier = format_datetime(datetime.fromtimestamp(now - 90, UTC), usegmt=True)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 0 ", now) == 0.0
    assert parse_retry_after(later, now) == pytest.approx(90.0)
    assert parse_retry_after(earlier, now) == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 0.0
    for junk in (None, "", "soon", "-5", "1.5", "Wed, 99 Foo 2015"):
        assert parse_retry_after(junk, now) is None
