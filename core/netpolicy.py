"""Which network addresses a tenant's settings may make Ulak connect to (the SSRF policy).

Outbound HTTP (channels/safe_http.py), SMTP hosts (channels/providers/email.py) and reverse ETL
database hosts (profiles/sources) all ask the same question here: an address is refused when it is
loopback, private, link-local (cloud metadata), unspecified, multicast, reserved, carrier-grade
NAT, or an IPv6 address that embeds one of those (IPv4-mapped/compatible, 6to4, Teredo, NAT64),
unless it lies inside settings.ULAK_SSRF_ALLOWLIST (CIDRs).

    address_problem(ip) -> str | None          why an IP address is refused, or None
    resolve_allowed(host, port) -> [ip, ...]   every address of a host name, each checked
    obvious_host_problem(host) -> str | None   a save-time check without DNS (literals, localhost)

Pure: no I/O but the DNS lookup of `resolve_allowed`.
"""

from __future__ import annotations

import ipaddress
import socket

from django.conf import settings

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class BlockedHost(ValueError):
    """The host may not be connected to: it is (or resolves to) an address the policy refuses."""


class UnresolvableHost(OSError):
    """The host name does not resolve (DNS may recover)."""


def _allowlist() -> list:
    return [ipaddress.ip_network(cidr, strict=False) for cidr in getattr(settings, "ULAK_SSRF_ALLOWLIST", [])]


def _ipv4_problem(ip: ipaddress.IPv4Address) -> str | None:
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_loopback:
        return "loopback address"
    if ip.is_link_local:
        return "link-local address (cloud metadata)"
    if ip in _CGNAT:
        return "carrier-grade NAT address"
    if ip.is_multicast:
        return "multicast address"
    if ip.is_private:
        return "private address"
    if ip.is_reserved or not ip.is_global:
        return "reserved address"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _ipv6_problem(ip: ipaddress.IPv6Address) -> str | None:
    for inner in _embedded_ipv4(ip):
        problem = _ipv4_problem(inner)
        if problem:
            return f"embeds {inner}, {'an' if problem[0] in 'aeiou' else 'a'} {problem}"
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_loopback:
        return "loopback address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_multicast:
        return "multicast address"
    if ip.is_site_local or ip.is_private:
        return "private address"
    if ip.is_reserved or not ip.is_global:
        return "reserved address"
    return None


def address_problem(address: str) -> str | None:
    """Why outbound connections may not reach this IP address, or None when they may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if any(ip.version == net.version and ip in net for net in _allowlist()):
        return None
    return _ipv4_problem(ip) if ip.version == 4 else _ipv6_problem(ip)


def describe(hostname: str, address: str, problem: str) -> str:
    """"db.example.com (10.0.0.5) is a private address": the refusal, in words."""
    shown = hostname if hostname == address else f"{hostname} ({address})"
    if problem.startswith("embeds"):
        return f"{shown} {problem}"
    return f"{shown} is {'an' if problem[0] in 'aeiou' else 'a'} {problem}"


def _literal(host: str) -> str | None:
    """The IP address a host written as an IP literal names (brackets and zone id dropped), or None."""
    bare = host.strip().strip("[]").split("%", 1)[0]
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return None


def obvious_host_problem(host: str) -> str | None:
    """A cheap save-time check without DNS: IP literals (every numeric spelling the resolver
    accepts) and localhost names. The full check (`resolve_allowed`) still runs on every connection."""
    host = host.strip().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        problem = address_problem("127.0.0.1")  # RFC 6761: always loopback
        return describe(host, "127.0.0.1", problem) if problem else None
    literal = _literal(host)
    candidates = [literal] if literal else []
    if not candidates:
        try:
            infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
        except (socket.gaierror, UnicodeError, ValueError):
            return None  # a name: checked when connecting
        candidates = [info[4][0] for info in infos]
    for address in candidates:
        problem = address_problem(address)
        if problem:
            return describe(host, address.split("%", 1)[0], problem)
    return None


def resolve_allowed(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's order, after checking each: BlockedHost
    if any is refused, UnresolvableHost if there is none. Connect to one of these addresses (not to
    the name again), so a second DNS answer cannot point the connection elsewhere."""
    host = host.strip()
    if not host:
        raise BlockedHost("no host given")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise UnresolvableHost(f"could not resolve {host}: {exc}") from exc
    addresses = list(dict.fromkeys(info[4][0].split("%", 1)[0] for info in infos))
    if not addresses:
        raise UnresolvableHost(f"could not resolve {host}")
    for address in addresses:
        problem = address_problem(address)
        if problem:
            raise BlockedHost(describe(host, address, problem))
    return addresses
