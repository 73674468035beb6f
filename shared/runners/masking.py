"""The secret values of a tenant, to mask runner output before it is stored.

Log chunks arrive many times a second; decrypting every secret of the tenant for
each would cost more than storing the chunk, so the values are kept for a few
seconds per tenant. A secret created just now may therefore be masked a few
seconds late — only in output of commands that could not have read it anyway.
"""

from __future__ import annotations

import threading
import time

from shared import secrets_store
from shared.keyring import CachedKeyring
from shared.settings import Settings, load_settings

#: Seconds the secret values of a tenant are reused.
CACHE_SECONDS = 5.0

_lock = threading.Lock()
_keys: CachedKeyring | None = None
_cache: dict[str, tuple[float, tuple[str, ...]]] = {}


def use_settings(settings: Settings) -> None:
    """Read secrets with ``settings``' keys (the process's settings are read otherwise)."""
    global _keys
    with _lock:
        _keys = CachedKeyring(settings)
        _cache.clear()


def _keyring() -> CachedKeyring:
    global _keys
    with _lock:
        if _keys is None:
            _keys = CachedKeyring(load_settings())
        return _keys


def tenant_secrets(tenant_id: str) -> tuple[str, ...]:
    """The values of the tenant's secrets (those a workflow can read), cached briefly."""
    now = time.monotonic()
    cached = _cache.get(tenant_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    values = tuple(secrets_store.read_all(_keyring().get(), tenant_id).values())
    _cache[tenant_id] = (now + CACHE_SECONDS, values)
    return values
