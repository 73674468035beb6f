"""Dramatiq workers: the broker, the actors and the module the ``dramatiq`` CLI loads."""
