"""The runner's connect loop: one mTLS stream to the gateway, jobs, outbox replay, renewal.

Everything runs on one asyncio loop. Jobs outlive streams: a job keeps running
across a reconnect, its chunks and result wait in the outbox and are replayed
(in (job_id, seq) order) by the next stream. Renewal opens the new channel and
stream before closing the old one, since a gRPC channel cannot change its
client certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

import grpc
import grpc.aio

from ops.rpc import runner_pb2, runner_pb2_grpc
from ops.runner import enroll, inventory
from ops.runner.config import RunnerConfig
from ops.runner.groups import kill_orphaned_job
from ops.runner.jobs import JobRun, Outcome, now_ms
from ops.runner.outbox import JournalEntry, Outbox
from ops.runner.session import (
    KEEPALIVE_OPTIONS,
    Session,
    describe_rpc_error,
    item_message,
    refused,
)
from ops.runner.state import RunnerState
from ops.runner.verify import Job, Refusal, check_job
from shared import pki
from shared.domain import job_signing

log = logging.getLogger("aisopsflow.runner")

#: Part of a certificate's lifetime after which the runner renews it.
RENEW_AT_FRACTION = 2 / 3
#: Milliseconds the first reconnect waits; each failure doubles it up to the configured cap.
FIRST_BACKOFF_MS = 200
#: Milliseconds a stream may take to send its Hello.
OPEN_TIMEOUT_MS = 10_000
#: Milliseconds a graceful stop waits for results to be sent and acknowledged.
STOP_FLUSH_MS = 3_000
#: Milliseconds between two prunes of the outbox's old rows.
PRUNE_MS = 3_600_000
#: Seconds a stream must have lasted for the next reconnect to start from the first backoff.
STABLE_STREAM_S = 10
#: Seconds between two runs of the renewal hook when re-enrolling keeps failing.
HOOK_RETRY_S = 30
#: Seconds a Renew call may take.
RENEW_TIMEOUT_SECONDS = 15


class FatalError(RuntimeError):
    """The agent cannot go on (e.g. an expired certificate and no renewal hook)."""


class Agent:
    """A started runner: connects, reconnects, runs jobs until ``stop()``."""

    def __init__(self, config: RunnerConfig, state: RunnerState) -> None:
        self.config = config
        self.state = state
        self.identity = state.identity()
        self.outbox = Outbox(state.outbox_path)
        self.session: Session | None = None
        self.runs: dict[str, JobRun] = {}
        self._job_tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._renewed = asyncio.Event()
        self._identity_key = state.identity_key()
        self._inventory = runner_pb2.Inventory()
        self._hook_ran_at = 0.0

    def stop(self) -> None:
        """Ask the agent to stop (SIGTERM): running jobs are stopped and reported lost."""
        self._stopping.set()

    # Sending.
    def _send(self, message: runner_pb2.RunnerMessage) -> None:
        """Send on the current stream; without one the outbox keeps what matters."""
        if self.session is not None and not self.session.ended.done():
            self.session.send(message)

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-runner-token", self.state.session_token()),)

    # Results.
    def _finish(
        self,
        job_id: str,
        outcome: Outcome,
        last_seq: int,
        nonce: str | None = None,
    ) -> None:
        """Sign the result, store it (seq = last_seq + 1) and send it."""
        payload = job_signing.result_payload(
            job_id=job_id,
            runner_id=self.identity.runner_id,
            status=outcome.status,
            exit_code=outcome.exit_code,
            error=outcome.error,
            started_at_ms=outcome.started_at_ms,
            ended_at_ms=outcome.ended_at_ms,
            duration_ms=outcome.duration_ms,
            stdout_bytes=outcome.stdout_bytes,
            stderr_bytes=outcome.stderr_bytes,
            stdout_capped=outcome.stdout_capped,
            stderr_capped=outcome.stderr_capped,
            last_seq=last_seq,
        )
        result = runner_pb2.JobResult(
            job_id=job_id,
            seq=last_seq + 1,
            payload=payload,
            signature=job_signing.sign(self._identity_key, payload),
        )
        self.outbox.finish(job_id, last_seq + 1, result.SerializeToString(), now_ms(), nonce)
        self._send(runner_pb2.RunnerMessage(job_result=result))

    @staticmethod
    def _bare_outcome(status: str, error: str, started_at_ms: int | None = None) -> Outcome:
        ended = now_ms()
        started = started_at_ms or ended
        return Outcome(status, None, error, started, ended, ended - started, 0, 0, False, False)

    def recover_lost(self) -> int:
        """Report jobs a killed runner left unfinished as ``lost`` (never re-run); returns how many."""
        entries: list[JournalEntry] = self.outbox.unfinished()
        for entry in entries:
            if entry.pgid:
                kill_orphaned_job(entry.job_id, entry.pgid)
            log.warning(
                "job %s was interrupted by a runner restart: reporting it lost", entry.job_id
            )
            self._finish(
                entry.job_id,
                self._bare_outcome(
                    "lost",
                    "the runner restarted while the job ran; it was not run again",
                    entry.started_at,
                ),
                entry.last_seq,
            )
        return len(entries)

    # Jobs.
    def on_job(self, signed: runner_pb2.SignedJob) -> None:
        """Verify a delivered job; run it, re-acknowledge a redelivery, or refuse it."""
        entry = self.outbox.journal(signed.job_id)
        if entry is not None:
            self._redeliver(entry, signed)
            return
        checked = check_job(
            signed.job_id,
            signed.payload,
            signed.signature,
            public_key=self.state.job_signing_key(),
            runner_id=self.identity.runner_id,
            tenant_id=self.identity.tenant_id,
            now_s=time.time(),
            nonce_owner=self.outbox.nonce_owner,
        )
        if isinstance(checked, Refusal):
            log.warning("refused job %s: %s", signed.job_id, checked.reason)
            self._finish(
                signed.job_id, self._bare_outcome("refused", checked.reason), 0, checked.nonce
            )
            return
        self.outbox.accept(checked.job_id, checked.nonce, checked.not_after, now_ms())
        self._send(
            runner_pb2.RunnerMessage(
                job_accepted=runner_pb2.JobAccepted(job_id=checked.job_id, accepted_at_ms=now_ms())
            )
        )
        task = asyncio.ensure_future(self._run_job(checked))
        self._job_tasks.add(task)
        task.add_done_callback(self._job_tasks.discard)

    def _redeliver(self, entry: JournalEntry, signed: runner_pb2.SignedJob) -> None:
        """Core sent a job id we already have: acknowledge again and replay, never run again."""
        try:
            nonce = job_signing.verify(
                self.state.job_signing_key(), signed.payload, signed.signature
            ).get("nonce")
        except job_signing.SignatureError:
            nonce = None
        if nonce != entry.nonce:
            log.warning(
                "job %s was delivered again with another payload: refused as replayed",
                signed.job_id,
            )
        if entry.state == "accepted":
            self._send(
                runner_pb2.RunnerMessage(
                    job_accepted=runner_pb2.JobAccepted(
                        job_id=entry.job_id, accepted_at_ms=now_ms()
                    )
                )
            )
        for item in self.outbox.unacked(entry.job_id):
            self._send(item_message(item))
        result = self.outbox.result(entry.job_id)
        if result is not None and result.acked:
            self._send(item_message(result))

    async def _run_job(self, job: Job) -> None:
        seq = 0

        def sink(stream: str, data: bytes) -> None:
            nonlocal seq
            seq += 1
            chunk = runner_pb2.LogChunk(
                job_id=job.job_id, seq=seq, stream=stream, data=data, at_ms=now_ms()
            )
            self.outbox.add_log(job.job_id, seq, chunk.SerializeToString())
            self._send(runner_pb2.RunnerMessage(log_chunk=chunk))

        run = JobRun(
            job,
            sink=sink,
            max_output_bytes=self.config.max_output_bytes,
            kill_grace_ms=self.config.kill_grace_ms,
            on_started=lambda pgid: self.outbox.set_pgid(job.job_id, pgid),
        )
        self.runs[job.job_id] = run
        try:
            outcome = await run.run()
        finally:
            self.runs.pop(job.job_id, None)
        self._finish(job.job_id, outcome, seq)

    # Messages from Core.
    def on_message(self, message: runner_pb2.CoreMessage, session: Session) -> None:
        """Handle one message from Core."""
        kind = message.WhichOneof("body")
        if kind == "job":
            self.on_job(message.job)
        elif kind == "cancel":
            run = self.runs.get(message.cancel.job_id)
            if run is not None:
                log.info(
                    "job %s cancelled by Core: %s", message.cancel.job_id, message.cancel.reason
                )
                run.cancel(message.cancel.reason)
        elif kind == "token_rotation":
            self.state.save_session_token(message.token_rotation.token)
            session.send(runner_pb2.RunnerMessage(ack=runner_pb2.Ack(kind="token")))
        elif kind == "ack":
            ack = message.ack
            if ack.error:
                log.warning("Core refused %s %s/%d: %s", ack.kind, ack.job_id, ack.seq, ack.error)
            self.outbox.ack(ack.job_id, ack.seq)

    # Streams.
    def _hello(self) -> runner_pb2.RunnerMessage:
        return runner_pb2.RunnerMessage(
            hello=runner_pb2.Hello(
                inventory=self._inventory,
                running_job_ids=sorted(self.runs),
            )
        )

    async def _reader(self, session: Session) -> None:
        try:
            while True:
                message = await session.call.read()
                if message is grpc.aio.EOF:
                    session.end(ConnectionError("the gateway closed the stream"))
                    return
                self.on_message(message, session)
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # noqa: BLE001 - any read failure ends the stream
            session.end(error)

    async def _ticker(self, session: Session) -> None:
        """Heartbeats, inventory every inventory_ms, and an occasional outbox prune."""
        last_inventory = last_prune = time.monotonic()
        while True:
            await asyncio.sleep(self.config.heartbeat_ms / 1000)
            session.send(
                runner_pb2.RunnerMessage(
                    heartbeat=runner_pb2.Heartbeat(
                        sent_at_ms=now_ms(), running_job_ids=sorted(self.runs)
                    )
                )
            )
            now = time.monotonic()
            if (now - last_inventory) * 1000 >= self.config.inventory_ms:
                last_inventory = now
                self._inventory = await self._collect_inventory()
                session.send(runner_pb2.RunnerMessage(inventory=self._inventory))
            if (now - last_prune) * 1000 >= PRUNE_MS:
                last_prune = now
                self.outbox.prune(time.time())

    async def _collect_inventory(self) -> runner_pb2.Inventory:
        # In a thread: resolving the host's own name can block on a slow resolver.
        return await asyncio.to_thread(inventory.collect, self.identity.labels)

    def _channel(self) -> grpc.aio.Channel:
        certificate_pem, key_pem = self.state.client_certificate()
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.state.ca_pem(),
            private_key=key_pem,
            certificate_chain=certificate_pem,
        )
        return grpc.aio.secure_channel(
            self.identity.gateway_address, credentials, options=list(KEEPALIVE_OPTIONS)
        )

    async def _open(self) -> Session:
        """A new channel and stream; Hello and the unacknowledged outbox go first."""
        channel = self._channel()
        call = runner_pb2_grpc.RunnerGatewayStub(channel).Connect(metadata=self._metadata())
        session = Session(channel, call)
        # No await from the outbox read to the switch: every item stored later is sent live on
        # this stream, every item stored before is in the replay, none is missed.
        session.send(self._hello())
        for item in self.outbox.unacked():
            session.send(item_message(item))
        self.session = session
        session.tasks = [
            asyncio.ensure_future(session.writer()),
            asyncio.ensure_future(self._reader(session)),
            asyncio.ensure_future(self._ticker(session)),
        ]
        try:
            await asyncio.wait_for(asyncio.shield(session.hello_sent), OPEN_TIMEOUT_MS / 1000)
        except BaseException:
            self.session = None
            await session.close()
            raise
        return session

    # Certificates.
    def _renew_at(self) -> float:
        """Unix seconds at which the current certificate should be renewed."""
        not_after = self.state.certificate_not_after()
        received = self.state.identity().cert_received_at
        if not received or received >= not_after:
            certificate = self.state.client_certificate()[0]
            received = pki.not_before(certificate).timestamp() + pki.CLOCK_SKEW.total_seconds()
        return received + (not_after - received) * RENEW_AT_FRACTION

    async def _renewal_loop(self) -> None:
        """Renew at 2/3 of the certificate's lifetime over the current channel; retry on failure."""
        while True:
            try:
                delay = self._renew_at() - time.time()
            except Exception as error:  # noqa: BLE001 - e.g. a certificate file being replaced
                log.warning("cannot read the certificate's lifetime (%s); retrying", error)
                await asyncio.sleep(5)
                continue
            if delay > 0:
                await asyncio.sleep(delay)
            session = self.session
            if session is None or session.ended.done():
                await asyncio.sleep(1)
                continue
            if self.state.certificate_not_after() <= time.time():
                # Too late to renew: reconnecting takes the renewal hook's path.
                session.end(ConnectionError("the runner certificate expired before it was renewed"))
                await asyncio.sleep(1)
                continue
            key = pki.new_private_key()
            try:
                response = await runner_pb2_grpc.RunnerGatewayStub(session.channel).Renew(
                    runner_pb2.RenewRequest(csr_pem=pki.create_csr(key, self.identity.runner_id)),
                    metadata=self._metadata(),
                    timeout=RENEW_TIMEOUT_SECONDS,
                )
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - a renewal that dies would never come back
                log.warning("certificate renewal failed (%s); retrying", describe_rpc_error(error))
                await asyncio.sleep(
                    min(5.0, max(self.state.certificate_not_after() - time.time(), 1) / 10)
                )
                continue
            self.state.save_client_certificate(response.certificate_pem, pki.private_key_pem(key))
            log.info("renewed the certificate; it expires at unix %d", response.not_after)
            self._renewed.set()

    async def _ensure_certificate(self) -> None:
        """An expired certificate is replaced through the renewal hook and a re-enrollment."""
        expired_at = self.state.certificate_not_after()
        if expired_at > time.time():
            return
        hook = self.config.renewal_hook
        if not hook:
            raise FatalError(
                f"the runner certificate expired at unix {int(expired_at)} and no renewal hook is "
                "set (AISOPSFLOW_RUNNER_RENEWAL_HOOK or --renewal-hook): enroll again with a new token"
            )
        wait_s = self._hook_ran_at + HOOK_RETRY_S - time.monotonic()
        if self._hook_ran_at and wait_s > 0:
            # Spare the operator's token source (a vault, say) one call per reconnect.
            raise enroll.EnrollError(f"the renewal hook runs again in {wait_s:.0f} s")
        self._hook_ran_at = time.monotonic()
        log.warning("the runner certificate expired; running the renewal hook to re-enroll")
        token = await asyncio.to_thread(enroll.run_renewal_hook, hook)
        runner_id = await asyncio.to_thread(enroll.reenroll, self.state, token)
        self.identity = self.state.identity()
        log.info("re-enrolled as runner %s", runner_id)

    # The loop.
    async def run(self) -> None:
        """Connect, reconnect with backoff, renew; returns after ``stop()``."""
        self.recover_lost()
        self.outbox.prune(time.time())
        self._inventory = await self._collect_inventory()
        renewal = asyncio.ensure_future(self._renewal_loop())
        backoff_ms = FIRST_BACKOFF_MS
        old: Session | None = None
        try:
            while not self._stopping.is_set():
                try:
                    await self._ensure_certificate()
                    session = await self._open()
                except FatalError:
                    raise
                except Exception as error:  # noqa: BLE001 - every failure means: try again later
                    self._log_end(error)
                    if old is not None:
                        await old.close()
                        old = None
                    await self._sleep(backoff_ms)
                    backoff_ms = min(backoff_ms * 2, self.config.reconnect_max_ms)
                    continue
                if old is not None:
                    await old.close()
                    old = None
                log.info(
                    "connected to %s as runner %s",
                    self.identity.gateway_address,
                    self.identity.runner_id,
                )
                connected_at = time.monotonic()
                self._renewed.clear()
                stopping = asyncio.ensure_future(self._stopping.wait())
                renewed = asyncio.ensure_future(self._renewed.wait())
                await asyncio.wait(
                    {session.ended, stopping, renewed}, return_when=asyncio.FIRST_COMPLETED
                )
                stopping.cancel()
                renewed.cancel()
                if self._stopping.is_set():
                    break
                if self._renewed.is_set() and not session.ended.done():
                    old = session  # closed once the new stream is up
                    backoff_ms = FIRST_BACKOFF_MS
                    continue
                ended = session.ended.result()
                self._log_end(ended)
                if refused(ended):
                    # A denied runner stops what it runs: Core has already failed those steps.
                    for run in list(self.runs.values()):
                        run.cancel(f"the gateway refused this runner: {ended.details()}")
                self.session = None
                await session.close()
                # A stream that lasted resets the backoff; one refused at once keeps growing it.
                if time.monotonic() - connected_at > STABLE_STREAM_S:
                    backoff_ms = FIRST_BACKOFF_MS
                await self._sleep(backoff_ms)
                backoff_ms = min(backoff_ms * 2, self.config.reconnect_max_ms)
            await self._shutdown(self.session)
        finally:
            renewal.cancel()
            await asyncio.gather(renewal, return_exceptions=True)
            if old is not None:
                await old.close()
            self.outbox.close()

    def _log_end(self, error: BaseException | None) -> None:
        if refused(error) or (
            isinstance(error, grpc.aio.AioRpcError)
            and error.code() == grpc.StatusCode.UNAUTHENTICATED
        ):
            assert isinstance(error, grpc.aio.AioRpcError)
            log.error("the gateway refused this runner: %s", error.details())
        elif error is not None:
            log.warning("not connected (%s); reconnecting", describe_rpc_error(error))

    async def _sleep(self, delay_ms: int) -> None:
        """Sleep with jitter, waking early on stop."""
        delay = delay_ms / 1000 * random.uniform(0.8, 1.2)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    async def _shutdown(self, session: Session | None) -> None:
        """Stop running jobs (reported lost), give their results a moment to be acknowledged."""
        log.info("stopping: %d running job(s) will be reported lost", len(self.runs))
        for run in list(self.runs.values()):
            run.abandon("the runner was stopped while the job ran")
        if self._job_tasks:
            await asyncio.wait(set(self._job_tasks), timeout=self.config.kill_grace_ms / 1000 + 5)
        if session is None:
            return
        deadline = time.monotonic() + STOP_FLUSH_MS / 1000
        while self.outbox.unacked() and time.monotonic() < deadline and not session.ended.done():
            await asyncio.sleep(0.05)
        self.session = None
        await session.close()
