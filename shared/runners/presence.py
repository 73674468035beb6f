"""When a runner counts as online: its gateway says so and has refreshed it recently."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.models import Runner

#: A gateway refreshes ``last_seen_at`` of its connected runners this often, in seconds.
TOUCH_INTERVAL_SECONDS = 10
#: A runner not refreshed for this long reads as offline (its gateway died with it connected).
STALE_AFTER_SECONDS = 45


def is_online(runner: Runner, now: datetime) -> bool:
    """True while a gateway holds the runner's stream and has refreshed it in time."""
    return (
        runner.status == "online"
        and runner.retired_at is None
        and runner.last_seen_at is not None
        and runner.last_seen_at >= now - timedelta(seconds=STALE_AFTER_SECONDS)
    )


def online_condition(now: datetime):  # noqa: ANN201 - a peewee expression
    """The same test as a query condition on ``Runner``."""
    return (
        (Runner.status == "online")
        & Runner.retired_at.is_null()
        & (Runner.last_seen_at >= now - timedelta(seconds=STALE_AFTER_SECONDS))
    )
