"""How long to wait before retrying a connector step, and whether attempts remain.

Backoff before attempt `n + 1` (after attempt `n` failed) is `initial * multiplier**(n-1)`,
capped at `max`, then randomised:

- `full`  — uniform in `[0, backoff]` (spreads a thundering herd best);
- `equal` — `backoff/2 + uniform(0, backoff/2)` (never retries immediately);
- `none`  — exactly `backoff`.

**Retry-After wins.** When the server sent `Retry-After`, the wait is the server's value capped
at `retry_after_cap`, and the backoff is ignored: the server knows when it will be ready, waiting
longer only delays the work, and retrying sooner earns another 429/503. The cap stops a server
from parking a run for hours; the retry stays bounded by `max_attempts` either way.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Literal

from interlink.spec.connector import RetryPolicySpec

__all__ = ["RetryPolicy", "parse_retry_after"]

Jitter = Literal["full", "equal", "none"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The retry policy of a connector step (built from `RetryPolicySpec`)."""

    max_attempts: int = 4
    initial: float = 0.2
    max: float = 30.0
    multiplier: float = 2.0
    jitter: Jitter = "full"
    retry_after_cap: float = 60.0
    max_reauth: int = 1

    @classmethod
    def from_spec(cls, spec: RetryPolicySpec) -> RetryPolicy:
        """The policy a connector's `retry:` section describes."""
        return cls(
            max_attempts=spec.max_attempts,
            initial=spec.initial,
            max=spec.max,
            multiplier=spec.multiplier,
            jitter=spec.jitter,
            retry_after_cap=spec.retry_after_cap,
            max_reauth=spec.max_reauth,
        )

    def backoff(self, attempt_number: int) -> float:
        """The un-jittered backoff after attempt `attempt_number` (1-based) failed."""
        exponent = max(attempt_number, 1) - 1
        try:
            value = self.initial * self.multiplier**exponent
        except OverflowError:  # a huge attempt number: the cap applies anyway
            value = self.max
        return max(0.0, min(value, self.max))

    def delay(
        self,
        attempt_number: int,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float:
        """Seconds to wait after attempt `attempt_number` failed, before the next one.

        A server's `retry_after` (seconds) wins over the backoff, capped at `retry_after_cap`.
        """
        if retry_after is not None:
            return max(0.0, min(retry_after, self.retry_after_cap))
        backoff = self.backoff(attempt_number)
        uniform = (rng or _RANDOM).uniform
        if self.jitter == "full":
            return uniform(0.0, backoff)
        if self.jitter == "equal":
            return backoff / 2 + uniform(0.0, backoff / 2)
        return backoff

    def attempts_left(self, attempts_made: int) -> int:
        """How many more attempts may be made after `attempts_made` (never negative)."""
        return max(0, self.max_attempts - attempts_made)


_RANDOM = random.Random()


def parse_retry_after(value: str | None, now: float) -> float | None:
    """A `Retry-After` header (delay-seconds or an HTTP-date) as seconds from `now`.

    Returns None when the header is absent or unreadable; a date in the past gives 0.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive parse means "-0000"
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)
