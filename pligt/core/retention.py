"""The minimum retention: every version stays online at least six months."""

from __future__ import annotations

from datetime import datetime
from datetime import timedelta

from pligt.core.errors import ClockBehind
from pligt.core.errors import ConfigurationError
from pligt.core.errors import RetentionActive
from pligt.core.models import Version

#: Half a year, rounded up: Netarkivet harvests the Danish web on a cycle of
#: about six months, and the publisher promises to keep material that long.
MINIMUM_RETENTION_DAYS = 183


def check_retention_days(days: int) -> int:
    """Return ``days`` if it is at least the legal minimum, else refuse to start."""
    if days < MINIMUM_RETENTION_DAYS:
        raise ConfigurationError(
            f"retention_days = {days} is below the minimum of {MINIMUM_RETENTION_DAYS} days "
            "(six months, one harvest cycle of the deposit institution)"
        )
    return days


#: How far the clock may seem to go back (two servers' clocks, a leap second, NTP slewing)
#: before it is taken for a clock set back: within it, times are moved up to the newest.
CLOCK_TOLERANCE = timedelta(minutes=5)


def checked_now(now: datetime, newest: datetime | None) -> datetime:
    """Return the time to record: ``now``, or the catalog's newest time if the clock is a little behind it.

    Retention is judged by the clock: a clock set back by a month would publish
    with a retention date a month short, and time order is what the audit log
    says happened. So a clock earlier than the newest recorded moment by more
    than :data:`CLOCK_TOLERANCE` is refused outright.

    :raises ClockBehind: naming both times.
    """
    if newest is None or now >= newest:
        return now
    if newest - now > CLOCK_TOLERANCE:
        raise ClockBehind(
            f"the system clock says {now:%Y-%m-%d %H:%M:%S} UTC, but the catalog already recorded "
            f"{newest:%Y-%m-%d %H:%M:%S} UTC: set the clock right (NTP) before publishing or deciding anything"
        )
    return newest


def retain_until(published_at: datetime, days: int) -> datetime:
    """Return the first moment at which a version published at ``published_at`` may go."""
    return published_at + timedelta(days=days)


def ensure_withdrawable(version: Version, now: datetime) -> None:
    """Raise :class:`RetentionActive`, naming the date, while retention runs."""
    if not version.withdrawable(now):
        raise RetentionActive(version.slug, version.retain_until, version.number)
