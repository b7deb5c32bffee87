"""Keep secrets out of everything a person can read: run logs, attempt records, error bodies.

A `Redactor` knows two kinds of secret values and replaces each with `***` wherever it appears,
also in its URL-encoded forms (an API key sent as a query parameter is recorded inside a URL)
and its JSON-escaped form (a secret with a `"` or `\\` inside a stored JSON document):

- *static* secrets — environment values substituted into the project's files, connector
  passwords and keys — given to `Redactor(secrets)` or `add()`, kept for the process's life;
- *dynamic* secrets — tokens obtained by logging in — given per source (a connector's name)
  to `replace()`, which keeps that source's current values and the previous ones only: a
  request sent with the old token may be recorded just after a refresh, but a token two
  refreshes old is not kept forever.

All forms are matched by one compiled alternation, rebuilt only when the set of values changes,
so the cost of `text()` depends on the static secrets and the sources, not on how many logins
happened. Credential-bearing headers are masked whatever their value.

`RedactingFilter(redactor)` applies the same masking to log records — the message with its
arguments, and the exception text — so that no secret the engine knows reaches a log line,
whichever library logged it. `interlink serve` and `interlink worker` install it on the root
logger's handlers at start.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

import orjson

__all__ = ["MASK", "MIN_SECRET_LENGTH", "SENSITIVE_HEADERS", "RedactingFilter", "Redactor"]

#: What a secret is replaced with.
MASK = "***"
#: Shorter values are not treated as secrets: masking every "id" or "1" would garble logs.
MIN_SECRET_LENGTH = 4
#: Headers masked whatever their value (compared lower-case).
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)


def _secret_forms(secret: str) -> frozenset[str]:
    """The ways `secret` can appear in recorded text: as is, URL-encoded, JSON-escaped."""
    json_escaped = orjson.dumps(secret)[1:-1].decode()
    return frozenset({secret, quote(secret, safe=""), quote_plus(secret, safe=""), json_escaped})


def _is_secret(value: str) -> bool:
    return len(value) >= MIN_SECRET_LENGTH


class Redactor:
    """Replaces known secret values with `***` in text, headers and JSON-like data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._static: set[str] = set()
        #: source → (its current values, its previous values)
        self._dynamic: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        self._forms: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        #: the values changed since the pattern was built; it is rebuilt when next used
        self._stale = False
        for secret in secrets:
            if _is_secret(secret):
                self._static.add(secret)
                self._stale = True

    @property
    def size(self) -> int:
        """How many strings are masked now (every form of every secret kept)."""
        if self._stale:
            self._rebuild()
        return len(self._forms)

    def add(self, secret: str | None) -> None:
        """Treat `secret` as a static secret from now on (for the life of this redactor)."""
        if secret is None or not _is_secret(secret) or secret in self._static:
            return
        self._static.add(secret)
        self._stale = True

    def replace(self, source: str, values: Iterable[str]) -> None:
        """Make `values` the current dynamic secrets of `source` (e.g. a connector's token).

        The values `source` had before stay masked as its *previous* ones; those before them
        are forgotten. Calling it again with the current values changes nothing (and is cheap,
        so callers may pass the token they hold on every request).
        """
        new = frozenset(v for v in values if _is_secret(v))
        current, _ = self._dynamic.get(source, (frozenset(), frozenset()))
        if new == current:
            return
        self._dynamic[source] = (new, current)
        self._stale = True

    def __contains__(self, value: object) -> bool:
        if self._stale:
            self._rebuild()
        return value in self._forms

    def found(self, value: str) -> bool:
        """True when `value` contains a secret (one regex search; False at once without any)."""
        if self._stale:
            self._rebuild()
        return self._pattern is not None and self._pattern.search(value) is not None

    def text(self, value: str) -> str:
        """`value` with every secret replaced by `***`."""
        if self._stale:
            self._rebuild()
        if self._pattern is None or not value:
            return value
        return self._pattern.sub(MASK, value)

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """A copy of `headers` with credential headers masked and secrets replaced."""
        # str(name): multidict's case-insensitive `istr` names are not plain str for JSON
        return {
            str(name): MASK if name.lower() in SENSITIVE_HEADERS else self.text(value)
            for name, value in headers.items()
        }

    def data(self, value: Any) -> Any:
        """A copy of JSON-like `value` whose strings (keys included) have secrets replaced."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.data(k): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value

    def _rebuild(self) -> None:
        # Called lazily, so that a burst of changes (connectors logging in) compiles once.
        self._stale = False
        secrets = set(self._static)
        for current, previous in self._dynamic.values():
            secrets |= current | previous
        forms = frozenset().union(*(_secret_forms(s) for s in secrets))
        if forms == self._forms:
            return
        self._forms = forms
        # Longest first, so a secret containing another is masked whole.
        alternatives = sorted(forms, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(re.escape(s) for s in alternatives)) if alternatives else None
        )


class RedactingFilter(logging.Filter):
    """A logging filter masking every secret `redactor` knows in each record it passes.

    The message is rendered with its arguments and masked (the arguments are then dropped);
    an exception is formatted, masked and kept as the record's `exc_text` (its `exc_info`
    dropped, so no formatter renders the unmasked traceback again). Records are never
    suppressed.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask `record` in place; always True."""
        redactor = self.redactor
        if isinstance(record.msg, dict) and not record.args:  # a structlog event dict
            record.msg = redactor.data(record.msg)
        else:
            if record.args or not isinstance(record.msg, str):
                record.msg, record.args = record.getMessage(), None
            record.msg = redactor.text(record.msg)
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = self._formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = redactor.text(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.text(record.stack_info)
        return True
