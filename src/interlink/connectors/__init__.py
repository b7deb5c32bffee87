"""Outbound HTTP to the systems a project integrates: auth, re-auth, retry policy, rate limit.

```
ConnectorClient.send(endpoint, context, body) → Exchange   (never raises for a status)
ConnectorClient.reauthenticate(seen_version)               (one refresh across processes)
RetryPolicy.delay(attempt, retry_after, rng)               (backoff with jitter, Retry-After)
```
"""

from interlink.connectors.auth import AppliedAuth, AuthProvider, auth_provider
from interlink.connectors.client import ConnectorClient
from interlink.connectors.credentials import SharedCredential
from interlink.connectors.exchange import Exchange, ExchangeRequest, ExchangeResponse
from interlink.connectors.ratelimit import RateLimiter
from interlink.connectors.retry import RetryPolicy, parse_retry_after

__all__ = [
    "AppliedAuth",
    "AuthProvider",
    "ConnectorClient",
    "Exchange",
    "ExchangeRequest",
    "ExchangeResponse",
    "RateLimiter",
    "RetryPolicy",
    "SharedCredential",
    "auth_provider",
    "parse_retry_after",
]
