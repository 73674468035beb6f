"""Conversions between protocol messages and the plain values the registry stores."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ops.rpc import runner_pb2


def inventory_dict(inventory: runner_pb2.Inventory) -> dict[str, Any]:
    """An Inventory message as the JSON object ``Runner.inventory_json`` holds."""
    return {
        "hostname": inventory.hostname,
        "os": inventory.os,
        "kernel": inventory.kernel,
        "arch": inventory.arch,
        "cpus": inventory.cpus,
        "memory_bytes": inventory.memory_bytes,
        "ips": list(inventory.ips),
        "runner_version": inventory.runner_version,
        "labels": dict(inventory.labels),
    }


def ack(kind: str, job_id: str, seq: int, error: str = "") -> runner_pb2.CoreMessage:
    """Core's acknowledgement of one stored (or refused) outbox item."""
    return runner_pb2.CoreMessage(
        ack=runner_pb2.Ack(kind=kind, job_id=job_id, seq=seq, error=error)
    )


def unix_seconds(naive_utc: datetime) -> int:
    """A naive UTC datetime (as the tables store them) as unix seconds."""
    return int(naive_utc.replace(tzinfo=timezone.utc).timestamp())
