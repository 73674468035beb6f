"""One channel to the gateway and its Connect stream: ordered writes, the reason it ended."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc
import grpc.aio

from ops.rpc import runner_pb2
from ops.runner.outbox import Item

#: Client keepalive: a ping every 5 s, the stream is dead after 5 s without an answer.
KEEPALIVE_OPTIONS = (
    ("grpc.keepalive_time_ms", 5_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)
#: Milliseconds a failed write waits for the reader to report the stream's status.
WRITER_DEFERS_MS = 2_000


def describe_rpc_error(error: BaseException) -> str:
    """One line for a stream's end: the gateway's own message when it refused us."""
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return f"{type(error).__name__}: {error}"


def refused(error: BaseException | None) -> bool:
    """Whether the gateway refused this runner (denylist, revoked certificate, retired)."""
    return (
        isinstance(error, grpc.aio.AioRpcError)
        and error.code() == grpc.StatusCode.PERMISSION_DENIED
    )


class Session:
    """One channel and its Connect stream; messages go through one writer task."""

    def __init__(self, channel: grpc.aio.Channel, call: Any) -> None:
        self.channel = channel
        self.call = call
        self.queue: asyncio.Queue[runner_pb2.RunnerMessage] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        self.hello_sent: asyncio.Future[None] = loop.create_future()
        self.ended: asyncio.Future[BaseException | None] = loop.create_future()
        self.tasks: list[asyncio.Task[None]] = []

    def send(self, message: runner_pb2.RunnerMessage) -> None:
        """Queue ``message`` for the stream (in order)."""
        self.queue.put_nowait(message)

    def end(self, reason: BaseException | None) -> None:
        """Note why the stream ended (first reason wins)."""
        if not self.ended.done():
            self.ended.set_result(reason)
        if not self.hello_sent.done():
            self.hello_sent.set_exception(reason or ConnectionError("the stream ended"))
            self.hello_sent.exception()  # retrieved: nobody may be waiting any more

    async def writer(self) -> None:
        """Send queued messages until the stream ends."""
        try:
            while True:
                message = await self.queue.get()
                await self.call.write(message)
                if not self.hello_sent.done():
                    self.hello_sent.set_result(None)
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # noqa: BLE001 - any write failure ends the stream
            # The reader gets the call's status (e.g. PERMISSION_DENIED and the gateway's
            # message); a write only learns that the call is over. Let the reader say why.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.ended), WRITER_DEFERS_MS / 1000)
            self.end(error)

    async def close(self) -> None:
        """Stop the tasks, cancel the stream and close the channel."""
        self.end(None)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.call.cancel()
        await self.channel.close(grace=None)


def item_message(item: Item) -> runner_pb2.RunnerMessage:
    """The RunnerMessage that carries a stored outbox item."""
    if item.kind == "log":
        return runner_pb2.RunnerMessage(log_chunk=runner_pb2.LogChunk.FromString(item.body))
    return runner_pb2.RunnerMessage(job_result=runner_pb2.JobResult.FromString(item.body))
