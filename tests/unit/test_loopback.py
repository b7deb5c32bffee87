"""The address check of loopback-only mode (no admin token): which callers are "this machine"."""

from __future__ import annotations

import pytest

from interlink.loopback import is_loopback


@pytest.mark.parametrize(("address", "loopback"), [
    ("127.0.0.1", True), ("127.3.4.5", True), ("::1", True), ("[::1]", True),
    ("::ffff:127.0.0.1", True), ("localhost", True),
    ("10.0.0.1", False), ("0.0.0.0", False), ("::", False), ("192.168.1.20", False),
    ("::ffff:10.0.0.1", False), ("example.com", False), ("", False), (None, False),
])
def test_loopback_addresses(address: str | None, loopback: bool) -> None:
    """127.0.0.0/8, ::1 (and 127/8 mapped into IPv6) are loopback; nothing else is."""
    assert is_loopback(address) is loopback
