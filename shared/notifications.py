"""Delivering one message to a list of notify targets through the channel plugins.

Used by the notify step, the approval step and approval escalations. Directory
references (``group:``, ``recipient:``) are expanded at send time to each member's
address on every channel they have; members with no address are reported, never
silently dropped. Email targets of an approval get their own signed links.
Structured ``{kakao: {...}}`` items go through :mod:`shared.kakao.notify`, whose
fallback comes back here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any

from shared.approval_links import LinkClaim, make_token
from shared.directory import expand_reference
from shared.domain.targets import Target, address_url, is_reference, parse_target
from shared.errors import ChannelError, NotFound, OutboundRefused, ValidationError
from shared.kakao.notify import send_target
from shared.models import Approval
from shared.outbound import OutboundPolicy, check_url
from shared.plugin_client import PluginClient
from shared.settings import Settings


@dataclass
class Delivery:
    """What one send to many targets produced."""

    results: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, str]] = field(default_factory=list)

    @property
    def delivered(self) -> int:
        """Targets that got the message."""
        return sum(1 for result in self.results if result["ok"])

    @property
    def retryable(self) -> bool:
        """True when some failure may go away on a retry."""
        return any(result.get("retryable") for result in self.results if not result["ok"])

    def as_output(self) -> dict[str, Any]:
        """The step output form."""
        return {
            "results": self.results,
            "delivered": self.delivered,
            "missing_addresses": self.missing,
        }


def resolve_targets(
    tenant_id: str, items: list[str], render: Callable[[str], str]
) -> tuple[list[tuple[Target, str]], Delivery]:
    """Direct targets with a label each; refused items and address-less members go in the Delivery."""
    delivery = Delivery()
    targets: list[tuple[Target, str]] = []
    for item in items:
        text = render(item)
        try:
            if is_reference(text):
                expanded, missing = expand_reference(tenant_id, text)
                targets.extend(expanded)
                delivery.missing.extend(missing)
            else:
                targets.append((parse_target(text), text))
        except (NotFound, ValidationError) as error:
            delivery.results.append(
                {"target": text, "ok": False, "error": error.message, "retryable": False}
            )
    return targets, delivery


def outbound_refusal(target: Target, policy: OutboundPolicy) -> str | None:
    """Why Core will not hand ``target``'s URL to its plugin (saas: an internal address), or None.

    The plugin checks again when it connects; checking here keeps a tenant's URL off
    the operator's network even when a plugin is not configured to.
    """
    url = address_url(target)
    if url is None:
        return None
    try:
        check_url(url, policy)
    except OutboundRefused as error:
        # The URL itself is not repeated: a webhook URL's path is its secret.
        return f"{target.plugin} webhook URL refused by the outbound policy: {error.message}"
    return None


def approval_payload(
    settings: Settings, approval: Approval, target: Target, secret_key: bytes
) -> dict[str, Any]:
    """The ``approval`` part of a send; email targets get signed single-use approve/reject links."""
    payload: dict[str, Any] = {
        "approval_id": approval.id,
        "execution_id": approval.execution_id,
        "step_id": approval.step_id,
    }
    if target.plugin == "email" and approval.expires_at is not None:
        expires = approval.expires_at.replace(tzinfo=timezone.utc).timestamp()
        for decision in ("approve", "reject"):
            token = make_token(
                secret_key, LinkClaim(approval.id, decision, target.address.lower(), expires)
            )
            payload[f"{decision}_url"] = f"{settings.resolved_core_url}/api/approval-links/{token}"
    return payload


def deliver(
    plugins: PluginClient,
    tenant_id: str,
    items: list[Any],
    message: dict[str, Any],
    *,
    render: Callable[[Any], Any] = lambda value: value,
    timeout_seconds: float,
    approval: Approval | None = None,
    secret_key: bytes = b"",
    step_run_id: str | None = None,
    known_secrets: tuple[str, ...] = (),
) -> Delivery:
    """Send ``message`` (title, message, severity, execution_id, step_id) to every target.

    ``step_run_id`` links Kakao messages to the step run and keeps their trace ids stable
    across its attempts; ``known_secrets`` are masked in what a Kakao fallback shows.
    """
    targets, delivery = resolve_targets(
        tenant_id, [item for item in items if isinstance(item, str)], render
    )
    policy = OutboundPolicy.for_tenants(plugins.settings)
    for target, label in targets:
        refused = outbound_refusal(target, policy)
        if refused is not None:
            delivery.results.append(
                {
                    "target": label,
                    "channel": target.plugin,
                    "address": target.address,
                    "ok": False,
                    "error": refused,
                    "retryable": False,
                }
            )
            continue
        payload = {**message, "target": target.address}
        if approval is not None:
            payload["approval"] = approval_payload(plugins.settings, approval, target, secret_key)
        try:
            answer = plugins.send(target.plugin, payload, timeout_seconds=timeout_seconds)
            delivery.results.append(
                {
                    "target": label,
                    "channel": target.plugin,
                    "address": target.address,
                    "ok": True,
                    "message_id": answer.get("message_id"),
                }
            )
        except ChannelError as error:
            delivery.results.append(
                {
                    "target": label,
                    "channel": target.plugin,
                    "address": target.address,
                    "ok": False,
                    "error": error.message,
                    "retryable": error.retryable,
                }
            )
    for index, item in enumerate(items):
        if isinstance(item, dict) and "kakao" in item:
            result = send_target(
                plugins,
                tenant_id,
                item,
                message,
                render=render,
                timeout_seconds=timeout_seconds,
                send_fallback=lambda targets, note: deliver(
                    plugins, tenant_id, targets, note, timeout_seconds=timeout_seconds
                ),
                trace_id=f"{step_run_id}:{index}" if step_run_id else None,
                step_run_id=step_run_id,
                known_secrets=known_secrets,
            )
            delivery.results.append(result)
    return delivery
