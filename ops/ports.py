"""Whether a TCP port is free, and whether a given process is the one listening on it."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterable
from pathlib import Path

#: Linux's tables of TCP sockets, IPv4 and IPv6.
PROC_NET_TCP = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
#: State column of a listening socket in those tables.
TCP_LISTEN = "0A"


def port_is_free(host: str, port: int) -> bool:
    """False when a server already listens on ``host:port``; True otherwise.

    Binds a probe socket with SO_REUSEADDR, as gunicorn does, so a connection lingering
    in TIME_WAIT does not count as taken. Other bind errors (an address not on this
    machine, a port below 1024) are left for the server itself to report.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, IndexError):
        return True
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            return error.errno != errno.EADDRINUSE
    return True


def _listening_inodes(port: int, tables: Iterable[Path]) -> set[int]:
    inodes = set()
    for table in tables:
        try:
            rows = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            columns = row.split()
            local, state, inode = columns[1], columns[3], columns[9]
            if state == TCP_LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(int(inode))
    return inodes


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    folder = f"/proc/{pid}/fd"
    try:
        names = os.listdir(folder)
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(f"{folder}/{name}")
        except OSError:
            continue  # closed since listdir
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def listens_on(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` holds a socket listening on TCP ``port``.

    None where the answer cannot be read (no Linux /proc): callers then trust the port.
    """
    if not PROC_NET_TCP[0].exists():
        return None
    return bool(_listening_inodes(port, PROC_NET_TCP) & _socket_inodes(pid))
