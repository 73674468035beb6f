"""Prefix every line of the children's output with the child's name, as foreman does."""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Iterable
from typing import BinaryIO, TextIO

#: Lines kept per name, so `up` can show what a crashing child said last.
TAIL_LINES = 20


def format_line(name: str, width: int, line: str) -> str:
    """``line`` (one line, with or without its newline) as ``name``, padded, ``| line``."""
    text = line.rstrip("\r\n")
    return f"{name.ljust(width)} | {text}\n"


def split_lines(chunks: Iterable[bytes]) -> Iterable[str]:
    """Decode raw output lines; bytes that are not UTF-8 become U+FFFD instead of failing."""
    for chunk in chunks:
        yield chunk.decode("utf-8", errors="replace")


class PrefixedOutput:
    """One output stream shared by many children; whole lines only, never interleaved."""

    def __init__(self, stream: TextIO, width: int) -> None:
        self._stream = stream
        self._width = width
        self._lock = threading.Lock()
        self._broken = False
        self._tails: defaultdict[str, deque[str]] = defaultdict(lambda: deque(maxlen=TAIL_LINES))

    def tail(self, name: str) -> list[str]:
        """The last TAIL_LINES lines written as ``name``, without newlines, oldest first."""
        with self._lock:
            return list(self._tails.get(name, ()))

    def write(self, name: str, line: str) -> None:
        """Write one prefixed line and flush, so output shows up as it happens."""
        with self._lock:
            self._tails[name].append(line.rstrip("\r\n"))
            if self._broken:
                return
            try:
                self._stream.write(format_line(name, self._width, line))
                self._stream.flush()
            except (OSError, ValueError):
                # Our stdout is gone (closed pipe, `| head`): keep draining the children's
                # pipes anyway, or they would block on a full pipe and stop working.
                self._broken = True

    def pump(self, name: str, pipe: BinaryIO) -> None:
        """Copy ``pipe`` line by line until end of file, then close it."""
        try:
            for line in split_lines(iter(pipe.readline, b"")):
                self.write(name, line)
        finally:
            pipe.close()

    def start_pump(self, name: str, pipe: BinaryIO) -> threading.Thread:
        """Run :meth:`pump` in a daemon thread, which ends when the child's pipe closes."""
        thread = threading.Thread(target=self.pump, args=(name, pipe), name=f"pump-{name}")
        thread.daemon = True
        thread.start()
        return thread
