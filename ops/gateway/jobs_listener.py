"""Send queued jobs to connected runners: on a Redis nudge, on Hello, and by polling every 2 s.

The nudge makes dispatch take milliseconds; the poll is the backstop for a lost
message. A session's jobs are sent under its lock and marked dispatched before
it is released, so a nudge and a poll never send one job twice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from cryptography.fernet import MultiFernet

from ops.gateway.blocking import db_call
from ops.gateway.pubsub import follow
from ops.gateway.sessions import Session, SessionTable
from ops.rpc import runner_pb2
from shared.keyring import CachedKeyring
from shared.runners import jobs, registry, signals
from shared.settings import Settings

log = logging.getLogger(__name__)

#: How often queued jobs of connected runners are looked for without a nudge, in seconds.
POLL_INTERVAL_SECONDS = 2.0


def signed_job(job: Any, keys: MultiFernet) -> runner_pb2.CoreMessage:
    """The message carrying a RunnerJob row's payload (opened) and signature as Core signed them."""
    return runner_pb2.CoreMessage(
        job=runner_pb2.SignedJob(
            job_id=job.id,
            payload=jobs.open_payload(job, keys),
            signature=bytes.fromhex(job.signature),
        )
    )


async def dispatch(session: Session, keys: MultiFernet, *, redeliver: bool = False) -> int:
    """Send the runner's queued jobs on ``session`` and mark them dispatched; returns how many.

    ``redeliver`` (a new stream) also re-sends jobs dispatched before and never accepted.
    """
    async with session.dispatch_lock:
        if session.closed:
            return 0
        queued = await db_call(jobs.jobs_to_dispatch, session.runner_id, redeliver=redeliver)
        sent = [job.id for job in queued if session.send(signed_job(job, keys))]
        if sent:
            await db_call(jobs.mark_dispatched, sent)
            log.info("dispatched %d job(s) to runner %s", len(sent), session.runner_id)
        return len(sent)


class JobsListener:
    """Dispatches to this gateway's runners as jobs are queued for them."""

    def __init__(self, settings: Settings, sessions: SessionTable) -> None:
        self.settings = settings
        self.sessions = sessions
        self.keys = CachedKeyring(settings)
        self.tasks: set[asyncio.Task[Any]] = set()

    def nudge(self, runner_id: str, *, redeliver: bool = False) -> None:
        """Dispatch to ``runner_id`` soon, if its stream is here."""
        session = self.sessions.of(runner_id)
        if session is not None:
            task = asyncio.create_task(self._dispatch(session, redeliver))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _dispatch(self, session: Session, redeliver: bool) -> None:
        try:
            await dispatch(session, self.keys.get(), redeliver=redeliver)
        except Exception:  # noqa: BLE001 - the poll tries again in 2 s
            log.exception("could not dispatch to runner %s", session.runner_id)

    async def _on_message(self, message: dict[str, Any]) -> None:
        runner_id = message.get("runner_id")
        if isinstance(runner_id, str):
            self.nudge(runner_id)

    async def poll(self, stop: asyncio.Event) -> None:
        """Every POLL_INTERVAL_SECONDS, dispatch to the runners with queued jobs (one query)."""
        while True:
            try:
                await asyncio.wait_for(stop.wait(), timeout=POLL_INTERVAL_SECONDS)
                return
            except TimeoutError:
                pass
            try:
                waiting = await db_call(
                    registry.runners_with_queued_jobs, self.sessions.runner_ids()
                )
            except Exception:  # noqa: BLE001 - tried again next round
                log.exception("could not look for queued runner jobs")
                continue
            for runner_id in waiting:
                self.nudge(runner_id)
            await self._cancel_ended()

    async def _cancel_ended(self) -> None:
        """Tell runners to stop jobs Core ended without them (once per stream)."""
        try:
            ended = await db_call(jobs.jobs_to_cancel, self.sessions.runner_ids())
        except Exception:  # noqa: BLE001 - tried again next round
            log.exception("could not look for runner jobs to cancel")
            return
        for runner_id, job_id, reason in ended:
            session = self.sessions.of(runner_id)
            if session is None or job_id in session.cancels_sent:
                continue
            if session.send(
                runner_pb2.CoreMessage(cancel=runner_pb2.Cancel(job_id=job_id, reason=reason))
            ):
                session.cancels_sent.add(job_id)
                log.info("told runner %s to stop job %s: %s", runner_id, job_id, reason)

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the jobs channel and poll until ``stop``."""
        channel = signals.jobs_channel(self.settings)
        await asyncio.gather(
            follow(self.settings.resolved_redis_url, channel, self._on_message, stop),
            self.poll(stop),
        )
