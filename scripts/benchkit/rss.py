"""The resident memory (RSS) of a process tree, sampled in a thread while a transfer runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field

import psutil

from .common import MiB

SAMPLE_SECONDS = 0.2


def tree_rss(pid: int) -> tuple[int, set[int]]:
    """The summed RSS of a process and all its descendants, and their pids."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, set()
    total, pids = 0, set()
    for process in processes:
        try:
            total += process.memory_info().rss
            pids.add(process.pid)
        except psutil.NoSuchProcess:
            continue
    return total, pids


@dataclass
class Sampler:
    """Samples a process tree's RSS every ``interval`` seconds in a thread."""

    pid: int
    interval: float = SAMPLE_SECONDS
    samples: list[tuple[float, int]] = field(default_factory=list)
    pids_seen: set[int] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start sampling."""
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling, and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def sample(self) -> int:
        """Take one sample now; return it."""
        rss, pids = tree_rss(self.pid)
        with self._lock:
            self.samples.append((time.monotonic(), rss))
            self.pids_seen |= pids
        return rss

    def peak_since(self, since: float) -> tuple[int, float]:
        """The highest RSS sampled since ``since``, and when (seconds after ``since``)."""
        with self._lock:
            rss, at = max(((rss, t) for t, rss in self.samples if t >= since), key=lambda s: s[0], default=(0, since))
        return rss, at - since

    def median_between(self, start: float, end: float) -> int:
        """The median RSS sampled between two moments: the level a transfer ran at, spikes aside."""
        with self._lock:
            values = sorted(rss for t, rss in self.samples if start <= t <= end)
        return values[len(values) // 2] if values else 0

    def settled(self, seconds: float = 1.0) -> int:
        """RSS after a short quiet period: the mean of the samples taken in it."""
        start = time.monotonic()
        time.sleep(seconds)
        self.sample()
        with self._lock:
            values = [rss for t, rss in self.samples if t >= start]
        return round(sum(values) / len(values))


@dataclass
class Phase:
    """One transfer: how long it took, and the RSS before, at its peak and after."""

    name: str
    size: int
    seconds: float
    rss_before: int
    rss_peak: int
    rss_after: int
    #: When the peak was sampled, in seconds after the phase began.
    peak_at: float
    #: The median RSS while the phase ran (a short spike does not move it).
    rss_median: int = 0

    @property
    def mib_per_s(self) -> float:
        return self.size / MiB / self.seconds

    @property
    def growth(self) -> int:
        return self.rss_peak - self.rss_before


def measure(sampler: Sampler, name: str, size: int, action: Callable[[], object]) -> Phase:
    """Run ``action`` (a transfer of ``size`` bytes) between two settled samples of a running sampler."""
    before = sampler.settled()
    began = time.monotonic()
    action()
    seconds = time.monotonic() - began
    sampler.sample()
    peak, peak_at = sampler.peak_since(began)
    median = sampler.median_between(began, time.monotonic())  # with the sample just taken
    after = sampler.settled()
    return Phase(name, size, seconds, before, max(peak, after), after, peak_at, median)


def measure_tree(pid: int, name: str, size: int, action: Callable[[], object]) -> Phase:
    """:func:`measure` with a sampler of its own on the tree of ``pid``."""
    sampler = Sampler(pid)
    sampler.start()
    try:
        return measure(sampler, name, size, action)
    finally:
        sampler.stop()
