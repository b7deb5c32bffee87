"""Keep secrets out of everything a person can read: run logs, attempt records, error bodies.

A `Redactor` knows the secret values of a project (environment values substituted into its
files, connector passwords and keys) and, at run time, the tokens obtained by logging in. It
replaces each of them with `***` wherever it appears, also in its URL-encoded forms (an API key
sent as a query parameter is recorded inside a URL), and masks credential-bearing headers
whatever their value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "MIN_SECRET_LENGTH", "SENSITIVE_HEADERS", "Redactor"]

#: What a secret is replaced with.
MASK = "***"
#: Shorter values are not treated as secrets: masking every "id" or "1" would garble logs.
MIN_SECRET_LENGTH = 4
#: Headers masked whatever their value (compared lower-case).
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)


class Redactor:
    """Replaces known secret values with `***` in text, headers and JSON-like data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Treat `secret` (and its URL-encoded forms) as secret from now on."""
        if not secret or len(secret) < MIN_SECRET_LENGTH:
            return
        forms = {secret, quote(secret, safe=""), quote_plus(secret, safe="")}
        if forms <= self._secrets:
            return
        self._secrets |= forms
        # Longest first, so a secret containing another is masked whole.
        alternatives = sorted(self._secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in alternatives))

    def __contains__(self, value: object) -> bool:
        return value in self._secrets

    def text(self, value: str) -> str:
        """`value` with every secret replaced by `***`."""
        if self._pattern is None or not value:
            return value
        return self._pattern.sub(MASK, value)

    def found(self, value: str) -> bool:
        """Whether `value` holds a secret (one regex search; False at once with no secrets)."""
        return self._pattern is not None and self._pattern.search(value) is not None

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
