"""Is our clock far enough off that peers reject our signatures? (security matrix F15)

Every request we sign carries our `Date`. Mastodon accepts it only within `[now − 3 900 s,
now + 3 600 s]` of *its* clock, Fedify within ±1 h (protocol.md §3.2 step 6). A server whose clock
drifted (NTP not running, a VM restored from a snapshot) stops federating without a visible error:
every delivery is answered 401 and retried until it gives up, and our own inbox refuses peers'
signatures for the same reason (A4).

The peers' clocks tell us: every HTTP answer carries the server's `Date` (RFC 9110 §6.6.1).
`ClockMonitor` takes samples `peer's Date − our time when the answer arrived` (the sign NTP uses for
an offset: positive when our clock is behind), keeps the latest sample per host, and estimates our
offset as the **median** over the fresh samples of distinct hosts, once at least `min_hosts` hosts
answered. One lying or misconfigured host can neither raise the alarm nor hide it; a wrong clock of
ours shows in every host's sample at once.

Precision is a few seconds (`Date` has a resolution of 1 s and is written before the answer
travels), far below the warning threshold. A cached answer carries the origin's `Date` and its `Age`
(RFC 9111 §5.1): the age is added, and answers cached for longer than `MAX_AGE_HEADER` are ignored.
How old a sample is is measured on the monotonic clock: the wall clock is the suspect, and when NTP
steps it back into place, old samples must expire on schedule, not jump.

Crossing the threshold is logged once at WARNING (and again every `REWARN_SECONDS` while it lasts);
coming back is logged at INFO. Pure: no I/O besides logging, clocks injectable.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Final, Literal

log = logging.getLogger(__name__)

__all__ = ["ClockEstimate", "ClockMonitor", "parse_http_date"]

# Warn at 5 min: a synchronised clock is within a second of its peers, so 5 min means NTP is not
# working, while Mastodon (and Fedify) still accept our signatures for up to about an hour more.
WARN_SECONDS: Final = 300.0
# Mastodon's window for a `Date` (protocol.md §3.2 step 6): 65 min in the past, 60 min in the future.
PEER_PAST_WINDOW: Final = 3_900.0
PEER_FUTURE_WINDOW: Final = 3_600.0
MIN_HOSTS: Final = 3  # distinct hosts before there is an estimate at all
MAX_SAMPLE_AGE: Final = 7_200.0  # s (monotonic): older samples no longer count
MAX_HOSTS: Final = 256  # hosts remembered (least recently heard from is forgotten first)
MAX_AGE_HEADER: Final = 600  # s: an answer cached for longer says little about the origin's clock
REWARN_SECONDS: Final = 3_600.0
RECHECK_SECONDS: Final = 60.0  # full re-estimate at least this often while samples arrive

ClockStatus = Literal["ok", "skewed", "unknown"]


def parse_http_date(value: str | None) -> float | None:
    """An HTTP `Date` (IMF-fixdate, or the obsolete forms) as epoch seconds; None if absent/invalid."""
    if not value or len(value) > 64:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    try:
        return when.timestamp()  # a naive result ("-0000") is taken as UTC by parsedate_to_datetime
    except (OverflowError, OSError, ValueError):
        return None


def _seconds(value: float) -> str:
    """`2 h 3 min`, `4 min 5 s`, `12 s`: an offset for people (hours: to the nearest minute)."""
    if round(abs(value)) >= 3600:
        hours, minutes = divmod(round(abs(value) / 60), 60)
        return f"{hours} h {minutes} min"
    minutes, seconds = divmod(round(abs(value)), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


@dataclass(frozen=True, slots=True)
class ClockEstimate:
    """What the monitor knows now. `offset`: peers' time − ours in seconds (None when `unknown`)."""

    status: ClockStatus
    offset: float | None
    hosts: int
    warn_above: float = WARN_SECONDS
    min_hosts: int = MIN_HOSTS

    @property
    def rejected_by_peers(self) -> bool:
        """Our signed `Date` is outside Mastodon's window: deliveries fail with 401 now."""
        return self.offset is not None and (
            self.offset > PEER_PAST_WINDOW or self.offset < -PEER_FUTURE_WINDOW
        )

    def describe(self) -> str:
        """One sentence for an admin page or a log line."""
        if self.offset is None:
            return (
                f"Not enough answers from other servers yet ({self.hosts} of {self.min_hosts} "
                "needed) to compare clocks."
            )
        direction = "behind" if self.offset > 0 else "ahead of"
        text = f"This server's clock is {_seconds(self.offset)} {direction} other servers' clocks"
        if self.rejected_by_peers:
            return f"{text}: they reject its signatures, so nothing federates. Check NTP."
        if self.status == "skewed":
            return f"{text}: beyond about 1 h they will reject its signatures. Check NTP."
        return f"{text}."

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "offset_seconds": None if self.offset is None else round(self.offset, 1),
            "hosts": self.hosts,
            "warn_above_seconds": self.warn_above,
            "rejected_by_peers": self.rejected_by_peers,
        }


class ClockMonitor:
    """Collects clock samples per host and estimates our offset (module docstring).

    `observe()` takes the `Date` (and `Age`) header of an answer from `host`; `add_sample()` takes
    an offset measured some other way. Call both from one event loop (no locking).
    """

    def __init__(
        self,
        *,
        warn_above: float = WARN_SECONDS,
        min_hosts: int = MIN_HOSTS,
        max_sample_age: float = MAX_SAMPLE_AGE,
        max_hosts: int = MAX_HOSTS,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if min_hosts < 1 or max_hosts < min_hosts:
            raise ValueError("need 1 <= min_hosts <= max_hosts")
        self.warn_above = warn_above
        self.min_hosts = min_hosts
        self._max_age = max_sample_age
        self._max_hosts = max_hosts
        self._wall = wall
        self._monotonic = monotonic
        self._samples: OrderedDict[str, tuple[float, float]] = OrderedDict()  # host → (offset, at)
        self._skewed = False
        self._warned_at: float | None = None
        self._last: ClockEstimate | None = None  # the estimate at the last full check
        self._checked_at = 0.0
        self._drift = 0.0  # how far samples moved since then (bounds how far the median moved)

    def observe(self, host: str, date: str | None, age: str | None = None) -> None:
        """Record the `Date` of an answer from `host` (a host name) that arrived just now."""
        remote = parse_http_date(date)
        if remote is None:
            return
        if age is not None:
            age = age.strip()
            if not (age.isascii() and age.isdigit()) or int(age) > MAX_AGE_HEADER:
                return  # a long-cached (or malformed) answer: its Date is not the origin's "now"
            remote += int(age)
        self.add_sample(host, remote - self._wall())

    def add_sample(self, host: str, offset: float) -> None:
        """Record `offset` (host's time − ours, seconds) for `host`, replacing its previous sample."""
        if offset != offset:  # NaN
            return
        key = host.lower()
        now = self._monotonic()
        previous = self._samples.get(key)
        if previous is not None and now - previous[1] > self._max_age:
            previous = None  # it had expired: this host joins the estimate like a new one
        self._samples[key] = (offset, now)
        self._samples.move_to_end(key)
        while len(self._samples) > self._max_hosts:
            self._samples.popitem(last=False)
            previous = None  # the set of hosts changed
        self._drift += abs(offset - previous[0]) if previous is not None else float("inf")
        if self._may_change(now):
            self._last, self._checked_at, self._drift = self.estimate(), now, 0.0
            self._log_change(self._last)

    def _may_change(self, now: float) -> bool:
        """False when the status cannot have changed since the last full check (no median needed).

        Moving one value by d moves a median by at most d, so while the samples of known hosts
        moved by less in total than the last median's distance to the threshold, the status holds
        (a host's repeated answers differ by a second or so). A new host, an eviction, or
        `RECHECK_SECONDS` (samples expire) always re-estimate; `estimate()` itself is always exact.
        """
        last = self._last
        if last is None or last.offset is None or now - self._checked_at >= RECHECK_SECONDS:
            return True
        return self._drift >= abs(abs(last.offset) - self.warn_above)

    def estimate(self) -> ClockEstimate:
        """The median offset over fresh samples of distinct hosts (`unknown` below `min_hosts`)."""
        now = self._monotonic()
        fresh = [offset for offset, at in self._samples.values() if now - at <= self._max_age]
        if len(fresh) < self.min_hosts:
            return ClockEstimate("unknown", None, len(fresh), self.warn_above, self.min_hosts)
        offset = statistics.median(fresh)
        status: ClockStatus = "skewed" if abs(offset) > self.warn_above else "ok"
        return ClockEstimate(status, offset, len(fresh), self.warn_above, self.min_hosts)

    def _log_change(self, estimate: ClockEstimate) -> None:
        now = self._monotonic()
        if estimate.status == "skewed":
            if not self._skewed or self._warned_at is None or now - self._warned_at >= REWARN_SECONDS:
                log.warning(
                    "clock offset: %s",
                    estimate.describe(),
                    extra={"fields": {"clock": estimate.as_json()}},
                )
                self._warned_at = now
            self._skewed = True
        elif estimate.status == "ok" and self._skewed:
            log.info("clock offset back to normal", extra={"fields": {"clock": estimate.as_json()}})
            self._skewed = False
            self._warned_at = None
