"""Which network addresses chute may fetch artifacts from (S-6 of RELIABILITY.md, SSRF).

Every URL or endpoint taken from a spec (an ``http`` artifact URL and each redirect, an
``s3`` endpoint, a ``git`` repository over HTTP) goes through :func:`check_url` or
:func:`check_host` before chute connects. Refused always: link-local addresses
(169.254.0.0/16, fe80::/10, which hold the cloud metadata services), the known metadata
addresses and names, unspecified, multicast and reserved addresses, also when written as
IPv4-mapped IPv6 or as a bare integer. Loopback stays allowed, because a local MinIO is
the common case. ``CHUTE_EGRESS_ALLOW`` (comma-separated ``host`` or ``host:port``), when
set, is an allow-list: every other host is refused.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from urllib.parse import urlsplit

from chute.errors import UserError

METADATA_IPS = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
    ipaddress.ip_address("169.254.170.2"),  # ECS task metadata
    ipaddress.ip_address("fd00:ec2::254"),  # AWS IMDS over IPv6
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
}
METADATA_NAMES = {"metadata", "metadata.google.internal", "instance-data",
                  "instance-data.ec2.internal", "metadata.azure.com"}


class EgressRefused(UserError):
    """A URL or host that chute refuses to contact."""

    code = "egress_refused"


def _refused(ip: ipaddress._BaseAddress) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip in METADATA_IPS:
        return "a cloud metadata address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_unspecified or ip.is_multicast or (ip.is_reserved and not ip.is_loopback):
        return "not a routable unicast address"
    return None


def _allowed(host: str, port: int | None) -> bool:
    allow = os.environ.get("CHUTE_EGRESS_ALLOW", "").strip()
    if not allow:
        return True
    for item in (a.strip().lower() for a in allow.split(",") if a.strip()):
        h, _, p = item.rpartition(":") if item.count(":") == 1 else (item, "", "")
        if h == host.lower() and (not p or (port is not None and p == str(port))):
            return True
    return False


def check_host(host: str, port: int | None, what: str) -> None:
    """Refuse ``host`` (and every address it resolves to) if it is off limits."""
    if not host:
        raise EgressRefused(f"{what}: no host")
    h = host.strip("[]").rstrip(".").lower()
    if h in METADATA_NAMES:
        raise EgressRefused(f"{what}: host {host!r} is a cloud metadata service")
    if not _allowed(h, port):
        raise EgressRefused(f"{what}: host {host!r} is not in CHUTE_EGRESS_ALLOW")
    try:
        infos = socket.getaddrinfo(h, port or 0, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise UserError(f"{what}: cannot resolve host {host!r} ({exc.strerror})") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        reason = _refused(ip)
        if reason:
            raise EgressRefused(f"{what}: host {host!r} resolves to {ip}, {reason}")


def check_url(url: str, what: str, schemes: tuple[str, ...] = ("http", "https")) -> None:
    """Refuse ``url`` unless its scheme is allowed and its host passes :func:`check_host`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UserError(f"{what}: malformed URL") from None
    if parts.scheme.lower() not in schemes:
        raise EgressRefused(f"{what}: scheme {parts.scheme!r} is not allowed ({', '.join(schemes)})")
    check_host(parts.hostname or "", port, what)


def redact_url(url: str) -> str:
    """``url`` without user info or query string, for messages and logs."""
    try:
        p = urlsplit(url)
    except ValueError:
        return "<malformed URL>"
    host = p.hostname or ""
    if p.port:
        host = f"{host}:{p.port}"
    return f"{p.scheme}://{host}{p.path}"
