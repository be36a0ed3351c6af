"""Which address a request came from (kmsconsole.core.client_address): the peer, unless the peer is a trusted
proxy, whose X-Forwarded-For then names the client: its right-most address that is not itself a trusted proxy."""

from __future__ import annotations

from typing import Any

import pytest

from kmsconsole.core.client_address import ProxySettingError, client_address, parse_trusted_proxies

PROXIES = "10.0.0.0/8, 192.0.2.10, fd00::/8"


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        # Not a trusted proxy: the header is the client's to write, and ignored.
        ("198.51.100.9", "203.0.113.7", "198.51.100.9"),
        ("198.51.100.9", "", "198.51.100.9"),
        # A trusted proxy: the address it appended.
        ("10.0.0.5", "203.0.113.7", "203.0.113.7"),
        # What the client wrote before the proxy appended its peer is never taken.
        ("10.0.0.5", "6.6.6.6, 203.0.113.7", "203.0.113.7"),
        # Two proxies: skip the trusted hops from the right, stop at the first other address.
        ("192.0.2.10", "6.6.6.6, 203.0.113.7, 10.1.2.3", "203.0.113.7"),
        # A trusted proxy that forwarded nothing: itself.
        ("10.0.0.5", "", "10.0.0.5"),
        # Not what a proxy writes (the client's own text reached the end): the last proxy stands.
        ("10.0.0.5", "203.0.113.7, not-an-address", "10.0.0.5"),
        ("10.0.0.5", "6.6.6.6, bogus, 10.9.9.9", "10.9.9.9"),
        # Every hop trusted (a client inside the proxies' network): the left-most.
        ("10.0.0.5", "10.7.7.7, 10.8.8.8", "10.7.7.7"),
        # Ports, brackets, IPv6 and IPv4-mapped forms.
        ("10.0.0.5", "203.0.113.7:51234", "203.0.113.7"),
        ("10.0.0.5", "[2001:db8::7]:443", "2001:db8::7"),
        ("fd00::1", "2001:db8::7", "2001:db8::7"),
        ("::ffff:10.0.0.5", "::ffff:203.0.113.7", "203.0.113.7"),
        # A peer that is no address at all (a Unix socket): itself, the header ignored.
        ("", "203.0.113.7", ""),
    ],
)
def test_the_client_behind_trusted_proxies(settings: Any, peer: str, forwarded: str, expected: str) -> None:
    settings.KMS_TRUSTED_PROXY_ADDRESSES = PROXIES
    meta = {"REMOTE_ADDR": peer, "HTTP_X_FORWARDED_FOR": forwarded}
    assert client_address(meta) == expected


def test_without_trusted_proxies_the_header_is_never_read(settings: Any) -> None:
    settings.KMS_TRUSTED_PROXY_ADDRESSES = ""
    assert client_address({"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "203.0.113.7"}) == "10.0.0.5"


def test_a_long_header_is_read_from_its_end_only(settings: Any) -> None:
    settings.KMS_TRUSTED_PROXY_ADDRESSES = "10.0.0.0/8"
    hops = ", ".join(["10.1.1.1"] * 10_000)
    # 32 trusted hops read, then it stops: the left-most of those, never an address further left.
    assert (
        client_address({"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": f"6.6.6.6, {hops}"}) == "10.1.1.1"
    )


def test_the_setting_is_parsed_or_refused() -> None:
    assert [
        str(net) for net in parse_trusted_proxies(" 10.0.0.0/8 ,192.0.2.10,, ::ffff:172.16.0.0/108 ")
    ] == [
        "10.0.0.0/8",
        "192.0.2.10/32",
        "172.16.0.0/12",
    ]
    with pytest.raises(ProxySettingError, match=r"'proxy\.example\.com' is neither"):
        parse_trusted_proxies("10.0.0.0/8,proxy.example.com")
