"""A port is taken when someone listens on it; /proc tells which process does."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from ops.ports import listens_on, port_is_free


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server.getsockname()[1]
    server.close()


def test_a_port_someone_listens_on_is_not_free(listener):
    assert not port_is_free("127.0.0.1", listener)
    assert not port_is_free("0.0.0.0", listener)  # the wildcard covers 127.0.0.1


def test_a_closed_port_is_free():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert port_is_free("127.0.0.1", port)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_listens_on_tells_our_socket_from_another_process(listener):
    assert listens_on(os.getpid(), listener) is True
    assert listens_on(os.getppid(), listener) is False
    assert listens_on(os.getpid(), listener + 1 if listener < 65535 else 1) is False
