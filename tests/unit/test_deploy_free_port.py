"""deploy/servers.free_port: a port handed to a server that starts later must not be one the kernel can give
to an outgoing connection meanwhile (a full test run lost odoo_sync's health server to EADDRINUSE that way)."""

from __future__ import annotations

import socket
from pathlib import Path

from deploy.servers import free_port


def test_ports_come_from_below_the_ephemeral_range_and_never_twice() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    tcp = [free_port() for _ in range(100)]
    udp = [free_port(socket.SOCK_DGRAM) for _ in range(100)]
    assert len(set(tcp + udp)) == 200
    assert all(1024 < port < low for port in tcp + udp)


def test_the_port_is_free_to_bind() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
