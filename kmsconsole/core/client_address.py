"""The address a request came from, behind reverse proxies the operator names.

Without `KMS_TRUSTED_PROXY_ADDRESSES` it is the peer (REMOTE_ADDR), whatever X-Forwarded-For says: a client can send
that header itself. Behind a proxy, the peer is the proxy, and every limit per address (failed authentication, console
sign-in) would apply to all its clients at once, the audit trail would name the proxy as every request's source,
and conditions on aws:SourceIp would test the proxy's address. So when the peer is one of the trusted proxies, the
client is the right-most address of X-Forwarded-For that is not itself a trusted proxy: each proxy appends the
address it received the request from, so everything to the right of that address was written by proxies we trust,
and everything to its left may have been written by the client (and is ignored).

Not python-ipware: it takes a client position from X-Forwarded-For without checking that the request really came
through a trusted proxy (the peer), so a client that reaches the server directly could name any address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from django.conf import settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# X-Forwarded-For holds one address per proxy; a longer header is a client's, and only its end is read.
MAX_HOPS = 32


class ProxySettingError(ValueError):
    """KMS_TRUSTED_PROXY_ADDRESSES holds something that is not an address or a network."""


def parse_trusted_proxies(value: str | Sequence[str]) -> tuple[Network, ...]:
    """The networks of `KMS_TRUSTED_PROXY_ADDRESSES` (comma-separated addresses or CIDR networks)."""
    entries = value.split(",") if isinstance(value, str) else list(value)
    networks = []
    for entry in (item.strip() for item in entries):
        if not entry:
            continue
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ProxySettingError(
                f"KMS_TRUSTED_PROXY_ADDRESSES: {entry[:64]!r} is neither an IP address nor a network "
                "such as 10.0.0.0/8."
            ) from None
        networks.append(_unmapped_network(network))
    return tuple(networks)


@lru_cache(maxsize=8)
def _trusted(value: str | tuple[str, ...]) -> tuple[Network, ...]:
    return parse_trusted_proxies(value)


def _unmapped_network(network: Network) -> Network:
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None:
        prefix = max(network.prefixlen - 96, 0)
        return ipaddress.ip_network(f"{network.network_address.ipv4_mapped}/{prefix}", strict=False)
    return network


def _address(text: str) -> Address | None:
    """An address as a proxy writes it (`192.0.2.1`, `192.0.2.1:443`, `2001:db8::1`, `[2001:db8::1]:443`), an
    IPv4-mapped IPv6 address as its IPv4 address; None for anything else."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(address: Address, proxies: tuple[Network, ...]) -> bool:
    return any(address in network for network in proxies)


def _configured_proxies() -> tuple[Network, ...]:
    configured = settings.KMS_TRUSTED_PROXY_ADDRESSES
    if not configured:
        return ()
    return _trusted(configured if isinstance(configured, str) else tuple(configured))


def from_untrusted_peer(meta: Mapping[str, Any]) -> bool:
    """Whether proxies are named (KMS_TRUSTED_PROXY_ADDRESSES) and the request's peer is none of them: then what
    it says in forwarding headers is the client's own claim."""
    proxies = _configured_proxies()
    if not proxies:
        return False
    peer = _address(str(meta.get("REMOTE_ADDR", "") or ""))
    return peer is None or not _is_trusted(peer, proxies)


def client_address(meta: Mapping[str, Any]) -> str:
    """The address the request came from (a WSGI environ or `request.META`): the peer, or behind trusted
    proxies the client they name (see the module docstring)."""
    peer = str(meta.get("REMOTE_ADDR", "") or "")
    proxies = _configured_proxies()
    if not proxies:
        return peer
    peer_address = _address(peer)
    if peer_address is None or not _is_trusted(peer_address, proxies):
        return peer
    chosen = peer_address
    for hop in reversed(str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",")[-MAX_HOPS:]):
        address = _address(hop)
        if address is None:
            break  # not what a proxy writes: the last proxy's address stands
        chosen = address
        if not _is_trusted(address, proxies):
            break
    return str(chosen)


def is_secure(meta: Mapping[str, Any]) -> bool:
    """Whether the request came over HTTPS, as Django's `request.is_secure()` decides it (SECURE_PROXY_SSL_HEADER,
    set by KMS_TRUSTED_PROXY) after ForwardedProtoMiddleware: for a WSGI environ that never reaches Django."""
    header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if header is not None and header[0] in meta and not from_untrusted_peer(meta):
        return str(meta[header[0]]).split(",")[0].strip() == header[1]
    return meta.get("wsgi.url_scheme") == "https"
