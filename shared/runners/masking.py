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
from shared.models import Secret
from shared.settings import Settings, load_settings

#: Seconds the secret values of a tenant are reused.
CACHE_SECONDS = 5.0

_lock = threading.Lock()
_default: Settings | None = None
#: One keyring per (data dir, secret key) this process reads secrets with.
_keyrings: dict[tuple[str, str], CachedKeyring] = {}
_cache: dict[tuple[str, str, str], tuple[float, tuple[str, ...]]] = {}


def use_settings(settings: Settings) -> None:
    """Read secrets with ``settings``' keys when a caller passes none (else the environment's)."""
    global _default
    with _lock:
        _default = settings


def _keyring(settings: Settings | None) -> tuple[tuple[str, str], CachedKeyring]:
    global _default
    with _lock:
        if settings is None:
            if _default is None:
                _default = load_settings()
            settings = _default
        ident = (str(settings.data_dir), settings.secret_key or "")
        if ident not in _keyrings:
            _keyrings[ident] = CachedKeyring(settings)
        return ident, _keyrings[ident]


def tenant_secrets(tenant_id: str, settings: Settings | None = None) -> tuple[str, ...]:
    """The values of the tenant's secrets (those a workflow can read), cached briefly.

    ``settings`` says whose keys decrypt them; None means those of
    :func:`use_settings`, or the process's environment.
    """
    ident, keys = _keyring(settings)
    now = time.monotonic()
    cached = _cache.get((*ident, tenant_id))
    if cached is not None and cached[0] > now:
        return cached[1]
    # No keys are loaded (nor a key file made) for a tenant without secrets.
    has_secrets = Secret.for_tenant(tenant_id).exists()
    values = tuple(secrets_store.read_all(keys.get(), tenant_id).values()) if has_secrets else ()
    _cache[(*ident, tenant_id)] = (now + CACHE_SECONDS, values)
    return values
