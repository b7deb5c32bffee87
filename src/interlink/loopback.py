"""Loopback addresses: who counts as "this machine" when no admin token is set.

127.0.0.0/8 and ::1 are loopback, and so is an IPv4-mapped IPv6 address of 127.0.0.0/8
(`::ffff:127.0.0.1`, what a dual-stack socket reports for an IPv4 caller). Anything else —
another address, a name other than `localhost`, no address at all (a Unix socket) — is not.
Behind a reverse proxy on the same machine every caller looks like loopback: set a token.
"""

from __future__ import annotations

import ipaddress

__all__ = ["is_loopback"]


def is_loopback(host: str | None) -> bool:
    """Whether `host` (a caller's address, or an address to bind) is a loopback address."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
