"""Campus network ranges: which address a check-in came from, and whether a session accepts it."""

from __future__ import annotations

import ipaddress

import pytest

from tend_checkin.networks import allowed_from, client_address, normalise_networks, parse_networks

PROXIES = parse_networks(["10.0.0.0/8", "2001:db8:ffff::/48"])
CAMPUS = parse_networks(["192.0.2.0/24", "2001:db8:1::/48"])


def test_the_connection_address_counts_unless_it_is_a_trusted_proxy() -> None:
    assert client_address("203.0.113.5", "192.0.2.9", PROXIES) == ipaddress.ip_address("203.0.113.5")
    assert client_address("10.1.1.1", "192.0.2.9", PROXIES) == ipaddress.ip_address("192.0.2.9")
    # Proxies chained: skip every trusted hop from the right.
    assert client_address("10.1.1.1", "192.0.2.9, 10.2.2.2, 10.3.3.3", PROXIES) == ipaddress.ip_address("192.0.2.9")
    # What the phone wrote itself (left of the first untrusted hop) is ignored.
    assert client_address("10.1.1.1", "192.0.2.9, 203.0.113.7", PROXIES) == ipaddress.ip_address("203.0.113.7")


@pytest.mark.parametrize("forwarded", [None, "", "not-an-address", "10.2.2.2"])
def test_an_unknowable_address_is_none(forwarded: str | None) -> None:
    assert client_address("10.1.1.1", forwarded, PROXIES) is None
    assert not allowed_from(client_address("10.1.1.1", forwarded, PROXIES), CAMPUS)


def test_allowed_from() -> None:
    assert allowed_from(ipaddress.ip_address("192.0.2.200"), CAMPUS)
    assert allowed_from(ipaddress.ip_address("::ffff:192.0.2.200"), CAMPUS)  # IPv4 on a dual-stack socket
    assert allowed_from(ipaddress.ip_address("2001:db8:1::42"), CAMPUS)
    assert not allowed_from(ipaddress.ip_address("198.51.100.1"), CAMPUS)
    assert allowed_from(None, ())  # an unrestricted session accepts anyone


def test_ranges_are_checked_and_normalised() -> None:
    assert normalise_networks([" 192.0.2.7/24", "192.0.2.0/24", "198.51.100.1", ""]) == (
        "192.0.2.0/24",
        "198.51.100.1/32",
    )
    with pytest.raises(ValueError, match="'campus' is not a network range"):
        normalise_networks(["campus"])
    with pytest.raises(ValueError, match="at most 50"):
        normalise_networks([f"192.0.2.{n}" for n in range(51)])
