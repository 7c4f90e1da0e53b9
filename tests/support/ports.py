"""Loopback ports for the servers the tests start (fake vendors, moto, Airflow's API server)."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range.

    Ports from bind(0) are ephemeral ones, the range the kernel also hands to every outgoing
    connection (and to the rest of the test suite): on a busy machine one can be taken between our
    look and the server's bind, seconds later. Below the range only explicit binds compete.
    """
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError("no free loopback port below the ephemeral range")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768
