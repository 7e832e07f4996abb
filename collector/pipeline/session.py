# SPDX-License-Identifier: MIT
"""Kernel events to log records: the part of the data path that live capture and replay share.

packet (kernel) -> OptionEvent (kernel/event.py) -> records (records.py) -> log (logs/writer.py)
"""

from __future__ import annotations

import ctypes
import gc
import socket
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable
from operator import attrgetter

from collector.addresses.anonymize import Anonymizer
from collector.kernel.event import OptionEvent
from collector.logs.writer import LogWriter
from collector.pipeline.records import Recorder


def host_name(host: str | None) -> str:
    """The host written in a log's header: `host` (--host) or this machine's name. A container's name
    is random, so a fleet names its hosts with --host to keep their equal tokens apart."""
    return socket.gethostname() if host is None else host


# The data path makes ten or so short-lived containers an event and no reference cycles: Python's
# default first-generation threshold (700 allocations) ran about a thousand collections a second in
# a replay, each walking the young objects held then (pending events, records), 8-10% of its CPU.
COLLECTION_THRESHOLDS = (50_000, 20, 100)


def hold_collections() -> None:
    """Fewer garbage collections for a process that runs the data path, and none over what it holds
    from start-up (modules, the loaded program). Before the first event; once a process (a test
    process invoking commands in-process would otherwise freeze its whole heap again each time)."""
    if gc.get_threshold() == COLLECTION_THRESHOLDS:
        return
    gc.freeze()
    gc.set_threshold(*COLLECTION_THRESHOLDS)


# glibc serves a block of at least M_MMAP_THRESHOLD bytes from a mapping of its own, unmapped when
# freed, but raises the threshold to the size of each such block freed. The tracker's tables are such
# blocks (up to 10 MiB each at the default cap), and CPython reallocates them whole every 200,000 or so
# connections past the cap: once the threshold had risen, they came from the heap, where those freed
# left holes that stayed resident (a replay of 1,000,000 connections: 10 MiB more anonymous memory
# by 614,400, 18 MiB of the heap free). Fixed at glibc's initial value, they stay mapped and leave
# nothing behind.
MMAP_THRESHOLD = 128 * 1024
_M_MMAP_THRESHOLD = -3  # malloc.h


def map_large_blocks() -> None:
    """Large blocks, freed, go back to the system at once, however many came and went before: for a
    process that runs the data path. Nothing changes where the C library has no mallopt."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


# Subflows ended a batch at shutdown: a few MiB of records at a time, a write() and at most one fsync each.
CLOSE_BATCH = 8192


class Session:
    """Feeds every event through a Recorder into a LogWriter, counting what passes.

    Each CPU has its own perf buffer, read one after another, and a CPU can be held up between
    stamping an event and writing it (a vCPU descheduled for milliseconds was seen here): events are
    held until `process()` takes those older than its cutoff, in kernel-time order. Otherwise a SYN
    read after its connection's third ACK would open that connection a second time.
    """

    def __init__(
        self,
        writer: LogWriter,
        recorder: Recorder,
        time_of: Callable[[OptionEvent], float],
        anonymizer: Anonymizer | None = None,
    ):
        self.writer = writer
        self.recorder = recorder
        self.time_of = time_of
        # After the recorder has classified the real addresses: anonymized logs report the same.
        self._anonymize = anonymizer.anonymize_record if anonymizer else None
        self.events = 0
        self.announced: Counter[tuple[str, str]] = Counter()  # client and server, by (family, class)
        self.perf_lost = 0  # what the perf buffer reported lost
        self.kernel_lost = 0  # the program's event_errors: outputs that failed, at the last stats
        self._lost_logged = 0  # the sum of the `lost` records written
        self.unwritten = 0
        self.ended: str | None = None  # why a run stopped by itself (its namespace deleted)
        self.write_error: OSError | None = None
        self._pending: list[OptionEvent] = []

    def take(self, events: list[OptionEvent]) -> None:
        """Events as one CPU's perf buffer held them; processed by the next `process()`."""
        self._pending += events

    def process(self, cutoff_ns: int | None = None) -> None:
        """Records for the events read so far with a kernel time up to `cutoff_ns` (all when None),
        in the order the kernel saw them; later ones wait for the next call."""
        pending = self._pending
        pending.sort(key=attrgetter("ktime_ns"))
        ready = len(pending) if cutoff_ns is None else bisect_right(pending, cutoff_ns, key=attrgetter("ktime_ns"))
        self._pending = pending[ready:]
        self.events += ready
        events = pending[:ready]
        # One write for what this call read: records of events already out of the kernel wait in
        # memory no longer than they did as pending events.
        self.write(self.recorder.handle_many(events, map(self.time_of, events)))

    def close(self, time: float) -> None:
        """Writes the records of everything still tracked, ended "shutdown" at `time`, a batch at a time:
        all of a full tracker's at once took 37 MiB more at the end of a run than during it."""
        while True:
            self.write(self.recorder.close(time, CLOSE_BATCH))
            # Not "until a batch makes no record": joins of no connection end without one.
            if not self.recorder.tracker.subflows_tracked:
                return

    def on_lost(self, count: int) -> None:
        """The perf buffer overflowed: `count` samples never reached us. Logged, never silent."""
        self.perf_lost += count
        self._log_lost()

    @property
    def lost_samples(self) -> int:
        """Events lost, counted once.

        One sample dropped for a full buffer is counted twice by the kernel: perf's lost count
        (reported late, with the next sample that fits) and the program's event_errors (the output
        call failed, counted at once; it also counts outputs that found no buffer open). Their sum
        would count it twice; their maximum counts every loss either one saw.
        """
        return max(self.perf_lost, self.kernel_lost)

    def _log_lost(self) -> None:
        # `lost` records add up to lost_samples: a reader sums them (report, tail) and gets the same.
        count = self.lost_samples - self._lost_logged
        if count > 0:
            self._lost_logged += count
            self.write([{"kind": "lost", "time": time.time(), "count": count}])

    def write(self, records: list[dict]) -> None:
        """Writes `records` to the log (anonymized, if asked) and counts the announcements that made it.
        After a write fails (`write_error`), records are only counted in `unwritten`: nothing raises."""
        if self.write_error is not None:
            self.unwritten += len(records)
            return
        before = self.writer.written
        try:
            self.writer.write_many(records if self._anonymize is None else map(self._anonymize, records))
        except OSError as exc:
            self.write_error = exc
        written = self.writer.written - before
        self.unwritten += len(records) - written
        self.announced.update(
            [
                (record["family"], record["class"])
                for record in records[:written]
                if record["kind"] == "add_addr" and not record["echo"]
            ]
        )

    @property
    def announcements(self) -> int:
        """Announcements logged, clients' and servers', echoes not counted."""
        return sum(self.announced.values())

    def _totals(self, kernel: dict[str, int]) -> dict:
        return {
            "kernel": kernel,
            "tracker": self.recorder.counters(),
            "events": self.events,
            "lost": max(self.perf_lost, kernel["event_errors"]),
            "unwritten": self.unwritten,
        }

    def stats_record(self, kernel: dict[str, int]) -> dict:
        """The `stats` record, after a `lost` record for the kernel's losses perf has not reported."""
        self.kernel_lost = kernel["event_errors"]
        self._log_lost()
        return {"kind": "stats", "time": time.time(), **self._totals(kernel), "announcements": self.announcements}

    def metrics(self, kernel: dict[str, int], interface_changes: Counter[str]) -> dict:
        """The figures collector.live.metrics serves."""
        return {
            **self._totals(kernel),
            "announcements": dict(self.announced),
            "interface_changes": dict(interface_changes),
        }
