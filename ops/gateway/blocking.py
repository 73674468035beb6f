"""Run the sync database layer (peewee) from the gateway's event loop, one thread call at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from shared.db import connection

P = ParamSpec("P")
T = TypeVar("T")


def _in_connection(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    # keep_open: a pool thread runs thousands of these; reopening SQLite each time costs ~1.5 ms.
    with connection(keep_open=True):
        return function(*args, **kwargs)


async def db_call(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``function(*args, **kwargs)`` on a worker thread holding a database connection."""
    return await asyncio.to_thread(_in_connection, function, *args, **kwargs)
