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


#: How long after publishing a version may be taken back as a mistake, if the deposit
#: institution has not fetched it: long enough to notice a wrong file, short against a harvest.
MISTAKE_WINDOW = timedelta(minutes=30)


def retractable(version: Version, now: datetime, *, harvested: bool) -> bool:
    """Tell whether ``version`` may be taken back as published by mistake: within the window, never harvested.

    The six-month promise is to the deposit institution: what its crawler has
    fetched (by a credential, or anonymously under its listed User-Agent) stays.
    A version it never fetched, withdrawn within minutes of its publication,
    was never handed to it. Fetches by other anonymous clients do not count: a
    public file a browser saw in its first minutes is still the publisher's to
    take back, and it is the institution's copy the law is about.

    A fetch counts once its answer was sent and recorded (within a second, see
    :mod:`pligt.core.downloads.recorder`): one still under way at the moment
    the version is taken back is not seen, and ends with the bytes it began with.
    """
    return not harvested and version.published_at <= now < version.published_at + MISTAKE_WINDOW


def ensure_withdrawable(version: Version, now: datetime, *, mistake: bool = False, harvested: bool = True) -> bool:
    """Return whether withdrawing ``version`` now takes back a mistake (True: inside its retention).

    :param mistake: the owner says it was published by mistake (see :func:`retractable`).
    :param harvested: whether the deposit institution fetched it.
    :raises RetentionActive: naming the date, while retention runs and it may not be taken back.
    """
    if version.withdrawable(now):
        return False
    if not mistake:
        raise RetentionActive(version.slug, version.retain_until, version.number)
    if retractable(version, now, harvested=harvested):
        return True
    why = (
        "the deposit institution has fetched it"
        if harvested
        else f"it was published more than {MISTAKE_WINDOW.seconds // 60} minutes ago"
    )
    raise RetentionActive(
        version.slug,
        version.retain_until,
        version.number,
        message=f"{version.slug} version {version.number} cannot be taken back as a mistake: {why}; it is "
        f"retained until {version.retain_until:%Y-%m-%d %H:%M} UTC",
    )
