"""How the device reaches the edge: an edge address (``--edge`` / ``SJSCC_EDGE``) -> a gRPC target and its
channel options (reconnect backoff, keepalive), and the default deadline of every RPC.

Several edges are gRPC's business, not ours: :func:`edge_target` turns the address into a target and options
so that a list of addresses, or a DNS name with several records (a Compose service scaled out, a Kubernetes
headless Service), is served by gRPC's own client-side ``round_robin`` policy. Keepalive pings notice a dead
connection (a frozen or vanished edge) without waiting for a request to time out.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from dataclasses import dataclass

import grpc

DEFAULT_KEEPALIVE_S = 10.0
# Reconnect quickly after the edge restarts, instead of gRPC's default backoff of up to two minutes.
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # No bandwidth-delay-product PINGs: small unary messages never need a bigger window, and the probes cost
    # ~1-6 bytes per request on the uplink (measured by sjscc bench's counting proxy).
    ("grpc.http2.bdp_probe", 0),
)


def keepalive_options(interval_s: float) -> list[tuple[str, int]]:
    """Ping every ``interval_s`` even when idle; no answer within ``interval_s`` closes the connection."""
    interval_ms = max(1, int(interval_s * 1000))
    return [("grpc.keepalive_time_ms", interval_ms), ("grpc.keepalive_timeout_ms", interval_ms),
            ("grpc.keepalive_permit_without_calls", 1), ("grpc.http2.max_pings_without_data", 0),
            ("grpc.http2.min_time_between_pings_ms", interval_ms),
            ("grpc.http2.ping_timeout_ms", interval_ms)]  # newer gRPC times a keepalive ping out by this one


# gRPC's own client-side load balancing: one subchannel per resolved address, requests spread in turn over
# those that are READY; a replica that goes away drops out of the rotation until it is back.
ROUND_ROBIN_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
# How soon the DNS resolver may look again after a replica disappears (gRPC's default is 30 s), so a
# replacement replica with a new address is found quickly.
DNS_MIN_RERESOLUTION_MS = 1000


@dataclass(frozen=True)
class EdgeTarget:
    """What :func:`edge_target` made of an edge address: the gRPC target and the channel options it needs."""

    target: str
    options: tuple[tuple[str, object], ...]
    balanced: bool


def _split_host_port(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` into its parts, with an error that names what is wrong."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port:
        raise ValueError(f"edge address {address!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"edge address {address!r}: write an IPv6 address in brackets, [addr]:port")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"edge address {address!r}: port {port!r} is not a number") from None
    if not 0 < number < 65536:
        raise ValueError(f"edge address {address!r}: port {number} is outside 1..65535")
    return host, number


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """A host name's addresses, IPv4 first (a gRPC ``ipv4:``/``ipv6:`` target takes one family)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ValueError(f"edge host {host!r} does not resolve: {error.strerror}") from None
    found = {ipaddress.ip_address(info[4][0]) for info in infos}
    v4 = sorted(a for a in found if a.version == 4)
    return v4 or sorted(a for a in found if a.version == 6)


def edge_target(address: str) -> EdgeTarget:
    """The gRPC target and channel options for an edge address (``--edge`` / ``SJSCC_EDGE``).

    - ``h1:p1,h2:p2,...``: an ``ipv4:``/``ipv6:`` target listing every address, balanced by ``round_robin``.
      Host names in the list are resolved once, here; for replicas that come and go use one DNS name.
    - ``name:port`` (a DNS name): ``dns:///name:port`` with ``round_robin``, so every address the name
      resolves to gets requests, and gRPC re-resolves when a replica goes away.
    - ``ip:port``, or a target already in gRPC's syntax (``dns:``, ``ipv4:``, ``unix:``...): as given, with
      gRPC's default policy (one connection), as a single edge always was.
    """
    address = address.strip()
    if not address:
        raise ValueError("edge address is empty; give host:port, a comma-separated list of them, or a DNS name")
    options: tuple[tuple[str, object], ...] = CHANNEL_OPTIONS
    if address.startswith(("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:")):
        return EdgeTarget(address, options, False)
    if "," in address:
        parts = [part.strip() for part in address.split(",")]
        if not all(parts):
            raise ValueError(f"edge address list {address!r} has an empty entry")
        endpoints: list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]] = []
        for part in parts:
            host, port = _split_host_port(part)
            ip = _ip(host)
            endpoints += [(ip, port)] if ip is not None else [(a, port) for a in _resolve(host, port)]
        families = {ip.version for ip, _ in endpoints}
        if len(families) > 1:
            raise ValueError(f"edge address list {address!r} mixes IPv4 and IPv6; gRPC balances one family")
        if families == {4}:
            target = "ipv4:" + ",".join(f"{ip}:{port}" for ip, port in endpoints)
        else:
            target = "ipv6:" + ",".join(f"[{ip}]:{port}" for ip, port in endpoints)
        return EdgeTarget(target, (*options, ("grpc.service_config", ROUND_ROBIN_CONFIG)), True)
    host, port = _split_host_port(address)
    if _ip(host) is not None:
        return EdgeTarget(address, options, False)
    return EdgeTarget(f"dns:///{host}:{port}",
                      (*options, ("grpc.service_config", ROUND_ROBIN_CONFIG),
                       ("grpc.dns_min_time_between_resolutions_ms", DNS_MIN_RERESOLUTION_MS)), True)


class DeadlineInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Gives every RPC made without a timeout the default one, so no call can hang on a dead edge."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        if client_call_details.timeout is None:
            client_call_details = client_call_details._replace(timeout=self.timeout_s)
        return await continuation(client_call_details, request)
