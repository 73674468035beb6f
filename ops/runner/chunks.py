"""Output of a job as chunks: same stream, at most CHUNK_BYTES, none older than FLUSH_MS."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: Largest chunk sent, in bytes.
CHUNK_BYTES = 16 * 1024
#: Longest a read byte waits before its chunk is emitted, in milliseconds.
FLUSH_MS = 50

#: (stream, data) -> None, called for each chunk in the order the bytes were read.
ChunkSink = Callable[[str, bytes], None]


class Chunker:
    """Coalesces reads into chunks: same stream, ≤ CHUNK_BYTES, none older than FLUSH_MS.

    A read from the other stream flushes first, so chunks keep the order the
    bytes were read in across both streams.
    """

    def __init__(self, sink: ChunkSink, cap: int) -> None:
        self._sink = sink
        self._cap = cap
        self._stream = ""
        self._buffer = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self.total = {"stdout": 0, "stderr": 0}
        self.sent = {"stdout": 0, "stderr": 0}

    def add(self, stream: str, data: bytes) -> None:
        """Take bytes read from ``stream``; beyond the cap they are only counted."""
        self.total[stream] += len(data)
        room = self._cap - self.sent[stream]
        data = data[: max(room, 0)]
        if not data:
            return
        self.sent[stream] += len(data)
        if self._buffer and stream != self._stream:
            self.flush()
        self._stream = stream
        self._buffer += data
        while len(self._buffer) >= CHUNK_BYTES:
            piece = bytes(self._buffer[:CHUNK_BYTES])
            del self._buffer[:CHUNK_BYTES]
            self._sink(stream, piece)
        if self._buffer and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_MS / 1000, self.flush)
        elif not self._buffer and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def flush(self) -> None:
        """Emit what is buffered."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            self._sink(self._stream, data)

    def capped(self, stream: str) -> bool:
        """Whether ``stream`` produced more than the cap."""
        return self.total[stream] > self.sent[stream]
