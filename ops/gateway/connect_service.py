"""The RunnerGateway service (mTLS): each runner's ``Connect`` stream and its ``Renew`` calls."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc

from ops.gateway.auth import Principal, authorize
from ops.gateway.blocking import db_call
from ops.gateway.control_watch import ControlWatch
from ops.gateway.jobs_listener import JobsListener
from ops.gateway.messages import ack, inventory_dict, unix_seconds
from ops.gateway.sessions import Close, Session, SessionTable
from ops.rpc import runner_pb2, runner_pb2_grpc
from shared.dispatch import Dispatcher
from shared.errors import AisOpsFlowError, ServiceUnavailable
from shared.runner_keys import RunnerCA
from shared.runners import jobs, registry
from shared.settings import Settings

log = logging.getLogger(__name__)

#: How long a new stream may take to send its Hello, in seconds.
HELLO_TIMEOUT_SECONDS = 30.0


class ConnectService(runner_pb2_grpc.RunnerGatewayServicer):
    """Holds runners' streams: dispatches jobs on them and stores what the runners send back."""

    def __init__(
        self,
        settings: Settings,
        ca: RunnerCA,
        sessions: SessionTable,
        listener: JobsListener,
        control: ControlWatch,
        dispatcher: Dispatcher,
        gateway_id: str,
    ) -> None:
        self.settings = settings
        self.ca = ca
        self.sessions = sessions
        self.listener = listener
        self.control = control
        self.dispatcher = dispatcher
        self.gateway_id = gateway_id

    async def Connect(  # noqa: N802 - the name is the RPC's
        self,
        request_iterator: AsyncIterator[runner_pb2.RunnerMessage],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[runner_pb2.CoreMessage]:
        """The runner's stream: Hello first, then jobs out and logs, results and acks in."""
        principal = await authorize(context)
        try:
            first = await asyncio.wait_for(
                anext(aiter(request_iterator), None), timeout=HELLO_TIMEOUT_SECONDS
            )
        except TimeoutError:
            first = None
        if first is None or first.WhichOneof("body") != "hello":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be Hello")
        inventory = inventory_dict(first.hello.inventory)
        epoch = await db_call(registry.mark_online, principal.runner_id, self.gateway_id, inventory)
        session = Session(principal, epoch)
        superseded = self.sessions.open(session)
        log.info(
            "runner %s connected from %s (tenant %s, epoch %d, certificate %s%s)",
            principal.runner_id,
            context.peer(),
            principal.tenant_id,
            epoch,
            principal.fingerprint[:16],
            ", superseding its previous stream" if superseded else "",
        )
        # A denial committed between authorize() and open() found no session to cut:
        # look once more now that this one is registered.
        await self.control.check([session])
        reader = asyncio.create_task(self._read(request_iterator, session))
        self.listener.nudge(principal.runner_id, redeliver=True)
        ending = "the runner closed it"
        try:
            while True:
                item = await session.outbox.get()
                if isinstance(item, Close):
                    if item.code is not None:
                        ending = f"{item.code.name}: {item.message}"
                        await context.abort(item.code, item.message)
                    return
                yield item
        except asyncio.CancelledError:
            ending = "the connection was lost"
            raise
        finally:
            session.closed = True
            reader.cancel()
            self.sessions.remove(session)
            log.info("runner %s disconnected (epoch %d): %s", principal.runner_id, epoch, ending)
            # Shielded: a stopping server cancels this handler, the update must still happen.
            try:
                await asyncio.shield(db_call(registry.mark_offline, principal.runner_id, epoch))
            except asyncio.CancelledError:
                pass
            except Exception:  # noqa: BLE001 - presence goes stale on its own (presence.STALE_AFTER_SECONDS)
                log.exception("could not mark runner %s offline", principal.runner_id)

    async def _read(
        self, request_iterator: AsyncIterator[runner_pb2.RunnerMessage], session: Session
    ) -> None:
        """Store what the runner sends, in order; ends the stream when the runner stops sending."""
        try:
            async for message in request_iterator:
                await self.handle(session, message)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the runner reconnects and replays its outbox
            if session.closed:
                return  # ended on our side (abort, stop): reading fails, nothing is lost
            log.exception(
                "runner %s: could not store a message; closing its stream", session.runner_id
            )
            session.close(grpc.StatusCode.UNAVAILABLE, "Core could not store a message; reconnect")
            return
        session.close()

    async def handle(self, session: Session, message: runner_pb2.RunnerMessage) -> None:
        """Act on one runner message; stored items are acknowledged on the stream."""
        kind = message.WhichOneof("body")
        runner_id = session.runner_id
        if kind == "log_chunk":
            chunk = message.log_chunk
            error = await self._store(
                jobs.record_log_chunk,
                runner_id,
                chunk.job_id,
                chunk.seq,
                chunk.stream,
                chunk.data,
                settings=self.settings,
            )
            session.send(ack("log", chunk.job_id, chunk.seq, error))
        elif kind == "job_result":
            result = message.job_result
            error = await self._store(
                jobs.record_result,
                runner_id,
                result.job_id,
                result.seq,
                result.payload,
                result.signature,
                dispatcher=self.dispatcher,
                settings=self.settings,
            )
            if error:
                log.warning(
                    "rejected the result of job %s from runner %s: %s",
                    result.job_id,
                    runner_id,
                    error,
                )
            session.send(ack("result", result.job_id, result.seq, error))
        elif kind == "job_accepted":
            await self._store(jobs.record_accepted, runner_id, message.job_accepted.job_id)
        elif kind == "inventory":
            await db_call(registry.update_inventory, runner_id, inventory_dict(message.inventory))
        elif kind == "ack":
            if message.ack.kind == "token":
                log.info("runner %s stored its rotated session token", runner_id)
        elif kind == "hello":
            log.warning("runner %s sent a second Hello on one stream; ignored", runner_id)
        # heartbeat: its arrival is all it says; keepalive pings detect a dead peer.

    async def _store(self, function, *args, **kwargs) -> str:  # noqa: ANN001, ANN002, ANN003
        """Call a jobs function; '' when it stored the item, else why it refused (an AisOpsFlowError)."""
        try:
            await db_call(function, *args, **kwargs)
        except ServiceUnavailable:
            raise  # not stored and not refused: the runner replays it after reconnecting
        except AisOpsFlowError as refusal:
            return str(refusal) or type(refusal).__name__
        return ""

    async def Renew(  # noqa: N802 - the name is the RPC's
        self, request: runner_pb2.RenewRequest, context: grpc.aio.ServicerContext
    ) -> runner_pb2.RenewResponse:
        """A new certificate for the calling runner's CSR, recorded so it can be revoked."""
        principal: Principal = await authorize(context)
        try:
            certificate, not_after = await db_call(
                registry.renew, self.settings, self.ca, principal.runner_id, request.csr_pem
            )
        except registry.RunnerRefused as refusal:
            log.warning("refused renewal of runner %s: %s", principal.runner_id, refusal)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(refusal))
        log.info("renewed the certificate of runner %s until %s", principal.runner_id, not_after)
        return runner_pb2.RenewResponse(
            certificate_pem=certificate, not_after=unix_seconds(not_after)
        )
