"""The output prefixer: whole lines, padded names, undecodable bytes and a vanished stdout."""

from __future__ import annotations

import io
import threading

import pytest

from ops.prefix import TAIL_LINES, PrefixedOutput, format_line


@pytest.mark.parametrize(
    ("name", "width", "line", "expected"),
    [
        ("api", 9, "Listening\n", "api       | Listening\n"),
        ("scheduler", 9, "tick\n", "scheduler | tick\n"),
        ("api", 3, "crlf\r\n", "api | crlf\n"),
        ("api", 3, "no newline", "api | no newline\n"),
        ("api", 3, "\n", "api | \n"),
        ("plugin-kakao-mock", 3, "x\n", "plugin-kakao-mock | x\n"),
    ],
)
def test_format_line(name, width, line, expected):
    assert format_line(name, width, line) == expected


def test_pump_copies_every_line_and_replaces_bad_bytes():
    stream = io.StringIO()
    output = PrefixedOutput(stream, width=6)

    output.pump("worker", io.BytesIO(b"one\ntwo \xff\nlast without newline"))

    assert stream.getvalue().splitlines() == [
        "worker | one",
        "worker | two \ufffd",
        "worker | last without newline",
    ]


class _GoneStream(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError("stdout closed")


def test_pump_keeps_draining_when_stdout_is_gone():
    pipe = io.BytesIO(b"line\n" * 1000)
    output = PrefixedOutput(_GoneStream(), width=3)

    output.pump("api", pipe)

    assert pipe.closed  # read to the end, so the child never blocks on a full pipe


def test_lines_of_concurrent_children_never_interleave():
    stream = io.StringIO()
    output = PrefixedOutput(stream, width=5)
    payload = {name: b"".join(b"%s-%04d-%s\n" % (name.encode(), i, b"x" * 200) for i in range(500))
               for name in ("api", "redis", "plug")}  # fmt: skip

    threads = [output.start_pump(name, io.BytesIO(data)) for name, data in payload.items()]
    for thread in threads:
        thread.join(timeout=10)

    lines = stream.getvalue().splitlines()
    assert len(lines) == 1500
    for line in lines:
        name, _, text = line.partition(" | ")
        assert text.startswith(name.strip() + "-") and text.endswith("x" * 200)
    assert not any(isinstance(t, threading.Thread) and t.is_alive() for t in threads)


def test_the_tail_keeps_each_names_last_lines_even_when_stdout_is_gone():
    stream = io.StringIO()
    output = PrefixedOutput(stream, width=6)
    for number in range(TAIL_LINES + 5):
        output.write("worker", f"line {number}\n")
    output.write("api", "other\r\n")
    stream.close()  # our stdout vanished: the tail still records what children said
    output.write("worker", "after\n")

    assert output.tail("worker") == [f"line {n}" for n in range(6, TAIL_LINES + 5)] + ["after"]
    assert output.tail("api") == ["other"]
    assert output.tail("nobody") == []
