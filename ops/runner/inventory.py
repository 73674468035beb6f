"""What the runner tells Core about its host: names, OS, CPUs, memory, addresses (stdlib only)."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

from ops.rpc import runner_pb2

#: Reported in every inventory; bumped with the agent's wire behaviour.
RUNNER_VERSION = "0.1.0"


def memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> int:
    """Total memory in bytes (0 when the host does not say)."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def addresses() -> list[str]:
    """The host's non-loopback IP addresses, best effort, sorted."""
    found: set[str] = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            found.add(str(info[4][0]))
    except OSError:
        pass
    # The address of the default route's interface, without sending anything (UDP connect).
    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.connect((probe, 9))
                found.add(sock.getsockname()[0])
        except OSError:
            pass
    return sorted(a for a in found if not a.startswith("127.") and a not in ("::1", "0.0.0.0"))


def collect(labels: dict[str, str] | None = None) -> runner_pb2.Inventory:
    """This host's inventory, with the runner's own labels."""
    uname = platform.uname()
    return runner_pb2.Inventory(
        hostname=socket.gethostname(),
        os=platform.platform(terse=True) if uname.system != "Linux" else _linux_name(),
        kernel=uname.release,
        arch=uname.machine,
        cpus=os.cpu_count() or 0,
        memory_bytes=memory_bytes(),
        ips=addresses(),
        runner_version=RUNNER_VERSION,
        labels=dict(labels or {}),
    )


def _linux_name() -> str:
    """The distribution's PRETTY_NAME (e.g. "Debian GNU/Linux 12 (bookworm)"), else "Linux"."""
    try:
        release = platform.freedesktop_os_release()
    except OSError:
        return "Linux"
    return release.get("PRETTY_NAME") or release.get("NAME") or "Linux"
