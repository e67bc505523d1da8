"""Campus network ranges: the network address a check-in came from, and whether a session accepts it.

A session may be restricted to campus networks (a list of CIDR ranges). The address is the connection's own, unless
that connection comes from a trusted proxy: then X-Forwarded-For is read from the right, skipping trusted proxies,
and the first address not a trusted proxy is the student's. Addresses are used for this decision only, never stored
or logged.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_NETWORKS = 50


def parse_networks(ranges: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDR ranges (or single addresses); raises ValueError naming the first that is not one."""
    parsed = []
    for text in ranges:
        try:
            parsed.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{text!r} is not a network range such as 192.0.2.0/24") from None
    return tuple(parsed)


def normalise_networks(ranges: Iterable[str]) -> tuple[str, ...]:
    """Validated ranges in canonical form (host bits cleared), duplicates removed, order kept."""
    texts = [text for text in (r.strip() for r in ranges) if text]
    if len(texts) > MAX_NETWORKS:
        raise ValueError(f"at most {MAX_NETWORKS} network ranges per session")
    return tuple(dict.fromkeys(str(network) for network in parse_networks(texts)))


def _address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_address(
    remote_addr: str | None, forwarded_for: str | None, trusted_proxies: Sequence[IPNetwork]
) -> IPAddress | None:
    """The student's address, or None when it cannot be told (the caller then refuses a restricted session)."""
    address = _address(remote_addr or "")
    if address is None or not _within(address, trusted_proxies):
        return address
    hops = [part for part in (forwarded_for or "").split(",") if part.strip()]
    for hop in reversed(hops):
        hop_address = _address(hop)
        if hop_address is None:
            # A proxy we trust wrote something that is not an address: believe nothing to its left.
            return None
        if not _within(hop_address, trusted_proxies):
            return hop_address
    return None


def _within(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(address.version == network.version and address in network for network in networks)


def allowed_from(address: IPAddress | None, networks: Sequence[IPNetwork]) -> bool:
    """True if the session has no ranges, or the address is inside one of them."""
    if not networks:
        return True
    return address is not None and _within(_unmapped(address), networks)


def _unmapped(address: IPAddress) -> IPAddress:
    # A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; compare them as the IPv4 addresses they are.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
