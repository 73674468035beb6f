"""Run one step message: claim the step, execute it, record the outcome, wake the next step."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass

from shared.db import connection
from shared.dispatch import Dispatcher
from shared.domain.engine_rules import HANDED_OVER, Outcome
from shared.engine import outbox, progress
from shared.engine.specs import spec_of_execution
from shared.keyring import CachedKeyring
from shared.models import utcnow
from shared.plugin_client import PluginClient
from shared.settings import Settings
from worker.attempt import execute
from worker.crash import masked_crash
from worker.step_chain import StepChain

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What a worker process builds once: settings, keys, the dispatcher and the plugin client."""

    settings: Settings
    dispatcher: Dispatcher
    plugins: PluginClient
    keys: CachedKeyring

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        """Everything a worker process needs, built once."""
        return cls(settings, Dispatcher(settings), PluginClient(settings), CachedKeyring(settings))


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"


def run_step(runtime: Runtime, step_run_id: str) -> Outcome | None:
    """Claim, execute and record one attempt; returns the outcome (None if nothing ran here).

    Pure steps (conditions) are worked out before the write lock and recorded by
    the claim or the completion that reaches them, so a chain of them costs one
    message and one transaction.
    """
    with connection(keep_open=True):
        now = utcnow()
        chain = StepChain(runtime.settings, runtime.plugins, runtime.keys)
        if not chain.prepare(step_run_id, now):
            return None
        claim, wakeups = progress.claim(step_run_id, _owner(), now=now, inline=chain)
        outbox.send(runtime.dispatcher, wakeups)
        if claim is None:
            return None
        spec = spec_of_execution(claim.execution)
        step = spec.step(claim.step_id)
        try:
            outcome = execute(chain.call(step, claim.run, claim.execution), claim.attempt)
        except Exception as error:
            # The lease runs out and a later claim counts the attempt as lost.
            raise masked_crash(log, f"step run {step_run_id}", error, chain.known_secrets) from None
        if outcome.status == HANDED_OVER:
            return outcome  # a runner job holds the attempt now; its result completes it
        chain.plan_after(claim.execution, spec, step, outcome)
        recorded, wakeups = progress.complete(
            claim, outcome, known_secrets=chain.known_secrets, inline=chain
        )
        outbox.send(runtime.dispatcher, wakeups)
        if not recorded:
            log.info("step run %s: lease lost; another attempt's result stands", step_run_id)
        return outcome
