# SPDX-License-Identifier: MIT
"""`addaddr run`: the kernel program on live interfaces, until SIGINT or SIGTERM."""

from __future__ import annotations

import mmap
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from collector import __version__
from collector.addresses.anonymize import Anonymizer
from collector.errors import CollectorError
from collector.kernel.event import OptionEvent
from collector.kernel.hook import choose
from collector.kernel.libbpf import LIFT_MEMLOCK
from collector.kernel.program import CaptureProgram, locked_bytes
from collector.live.interfaces import WatchedInterfaces
from collector.live.privileges import check_user, drop_to, missing_capabilities
from collector.live.signals import on_signals
from collector.logs.writer import LogWriter
from collector.pipeline.records import Recorder
from collector.pipeline.session import Session, host_name

POLL_MS = 100
# Per CPU, a power of two: 4096 pages (16 MiB) hold ~130,000 events, some seconds of a burst faster
# than the collector decodes. The memory is locked (LimitMEMLOCK / CAP_IPC_LOCK).
PERF_PAGES = 4096
# 256 MiB of locked memory per CPU: beyond that the kernel refuses the mapping or the host runs short,
# and no burst the collector can drain needs more.
MAX_PERF_PAGES = 65536
# And over all CPUs at most this share of RAM: locked pages are never swapped out, and a host with
# many CPUs would otherwise lock gigabytes.
MAX_RAM_SHARE = 4
METRICS_INTERVAL = 1.0
# How soon a deleted interface or namespace is noticed: one ioctl per interface, and a stat.
INTERFACE_CHECK_INTERVAL = 0.5
# How long an event may take from its kernel timestamp to its perf buffer: a longer delay (a vCPU
# descheduled) could let a later event from another CPU be processed first.
REORDER_WINDOW_NS = 100_000_000
# A sample wakes the reader only once this many are waiting; the poll timeout bounds the delay.
WAKEUP_EVENTS = 64
# And the reader reads at most this often: each read sorts what it holds back for the reorder window
# (~12,000 events at 120,000 events/s), so reading at every wakeup (~2,000 a second at that rate)
# cost more than the events themselves. The default buffers hold about a second of that rate.
READ_INTERVAL = 0.02


def perf_pages_problem(pages: int, cpus: int | None = None, ram: int | None = None) -> str | None:
    """Why `run --perf-pages` cannot be `pages`, or None. `cpus` (online) and `ram` (bytes): this host's."""
    ram = ram or os.sysconf("SC_PHYS_PAGES") * mmap.PAGESIZE
    if pages & (pages - 1) or pages > MAX_PERF_PAGES:
        return (
            f"{pages} is not a power of two up to {MAX_PERF_PAGES} ({MAX_PERF_PAGES * mmap.PAGESIZE >> 20} MiB per CPU)"
        )
    cpus = cpus or os.sysconf("SC_NPROCESSORS_ONLN")
    locked = locked_bytes(pages, cpus)
    if locked > ram // MAX_RAM_SHARE:
        return (
            f"{pages} pages on each of {cpus} CPUs lock {locked >> 20} MiB, more than a quarter of "
            f"this host's {ram >> 20} MiB of RAM: choose at most {_largest_pages(ram // MAX_RAM_SHARE, cpus)}"
        )
    return None


def _largest_pages(budget: int, cpus: int) -> int:
    pages = 1
    while locked_bytes(pages * 2, cpus) <= budget and pages * 2 <= MAX_PERF_PAGES:
        pages *= 2
    return pages


@dataclass
class RunOptions:
    """What `addaddr run` is asked to do: the interfaces of `netns` to watch, the log directory, and the
    options of cli.py."""

    interfaces: tuple[str, ...]
    netns: str | None
    log_dir: str
    stats_interval: float = 10.0
    status_interval: float = 5.0
    anonymize_key: str | None = None
    metrics: tuple[str, int] | None = None  # (host, port) to serve Prometheus metrics on
    user: str | None = None  # drop to this user once attached, like tcpdump -Z
    perf_pages: int = PERF_PAGES
    host: str | None = None  # the logs' host name; None: this machine's
    attach: str = "auto"  # tcx, clsact, or auto: tcx where the kernel has it


class KernelClock:
    """bpf_ktime_get_ns() reads CLOCK_MONOTONIC; re-anchored to the wall clock at every stats tick,
    so a clock step (NTP) shows up in later records."""

    def __init__(self) -> None:
        self.anchor()

    def anchor(self) -> None:
        """Takes the offset from CLOCK_MONOTONIC to the wall clock, as of now."""
        self._offset_ns = time.time_ns() - time.monotonic_ns()

    def wall(self, event: OptionEvent) -> float:
        """The event's kernel time as UTC epoch seconds, by the last anchor."""
        return (event.ktime_ns + self._offset_ns) / 1e9


def _open_log(options: RunOptions, anonymizer: Anonymizer | None, attach: str) -> LogWriter:
    header = {
        "host": host_name(options.host),
        "interfaces": list(options.interfaces),
        "netns": options.netns,
        "collector_version": __version__,
        "started": time.time(),
        "source": "live",
        "anonymization": anonymizer and anonymizer.scheme,
        "attach": attach,
    }
    try:
        return LogWriter(options.log_dir, header)
    except OSError as exc:
        raise CollectorError(f"log dir {options.log_dir}: {exc.strerror}; choose one with --log-dir") from None


def run(
    options: RunOptions,
    say: Callable[[str], None],
    stop: threading.Event | None = None,
    ready: threading.Event | None = None,
) -> Session:
    """Collects until `stop` is set, SIGINT/SIGTERM arrives or the namespace is deleted (then
    `session.ended` says so); returns the finished session. Its status lines (the program loaded,
    collecting, the figures every status_interval, an interface gone or back) go to `say` one at a
    time, when they happen: a caller that writes them to a pipe flushes each.

    Privileges, namespace and interfaces are checked, and the interfaces locked, before the log dir
    or any file is made. `ready` is set once the filters are attached, for callers that start
    traffic then.
    """
    missing = missing_capabilities(netns=options.netns is not None, drop=options.user is not None)
    if missing:
        raise _missing_error(missing)
    if options.user is not None:
        check_user(options.user)  # now, not after seconds of compiling and attaching
    watched = WatchedInterfaces(options.interfaces, options.netns, say, choose(options.attach))
    try:
        return _run_watching(watched, options, stop or threading.Event(), say, ready)
    finally:
        watched.close()


def _missing_error(missing: list[str]) -> CollectorError:
    """sudo is the remedy for a user; root that lacks capabilities has a bounded set (a unit, a container)."""
    if os.geteuid() != 0:
        return CollectorError(f"addaddr run needs root, or {', '.join(missing)}: try sudo")
    if missing == ["CAP_IPC_LOCK"]:
        return CollectorError(f"addaddr run cannot lock its perf buffer pages: {LIFT_MEMLOCK}")
    return CollectorError(
        f"addaddr run lacks {', '.join(missing)}: this root's capability bounding set leaves "
        "them out (systemd: CapabilityBoundingSet=; a container: --cap-add)"
    )


def _run_watching(
    watched: WatchedInterfaces,
    options: RunOptions,
    stop: threading.Event,
    say: Callable[[str], None],
    ready: threading.Event | None,
) -> Session:
    anonymizer = Anonymizer.from_key_file(options.anonymize_key) if options.anonymize_key else None
    writer = _open_log(options, anonymizer, watched.mode)
    if writer.repaired is not None:
        say(writer.repaired.describe())
    clock = KernelClock()
    session = Session(writer, Recorder(), clock.wall, anonymizer)
    metrics = None
    program = None
    try:
        program = CaptureProgram(ethernet=watched.ethernet)
        # Before attaching: samples written before the buffer is open vanish uncounted.
        program.open_events(session.take, session.on_lost, pages=options.perf_pages, wakeup_events=WAKEUP_EVENTS)
        watched.attach_all(program)
        say(
            f"kernel program relies on {program.features}; perf buffers lock "
            f"{locked_bytes(options.perf_pages) >> 20} MiB"
        )
        metrics, publish = (
            _serve_metrics(session, program, watched, options.metrics) if options.metrics else (None, None)
        )
        if options.user is not None:
            # Everything that needs privilege is open: the fds stay valid, the capabilities go.
            drop_to(options.user, options.log_dir)
        _handle_signals(stop)
        if ready is not None:
            ready.set()
        if metrics is not None:
            host, port = metrics.address[:2]
            say(f"metrics at http://{'[' + host + ']' if ':' in host else host}:{port}/metrics")
        say(
            f"collecting on {', '.join(options.interfaces)}"
            f"{' in ' + options.netns if options.netns else ''} ({watched.mode}) into {options.log_dir}"
        )
        _collect(program, session, clock, watched, options, stop, say, publish)
    finally:
        if metrics is not None:
            metrics.stop()
        watched.detach_all()
        if program is not None:
            # Detached: nothing new arrives, so one drain empties the buffers.
            program.drain()
            session.process()
            session.close(time.time())
            session.write([session.stats_record(program.counters())])
            program.close()
        writer.close()
    if session.write_error is not None:
        raise CollectorError(
            f"log write failed ({session.write_error.strerror}); {session.unwritten} records not written, "
            f"everything before them is intact in {options.log_dir}"
        )
    return session


class _Published:
    """Figures the collector thread replaces and the metrics thread reads: the maps and the session
    are only ever touched by the collector thread."""

    def __init__(self, figures: dict) -> None:
        self.figures = figures

    def __call__(self) -> dict:
        return self.figures


def _serve_metrics(session: Session, program: CaptureProgram, watched: WatchedInterfaces, listen: tuple[str, int]):
    """The metrics server, and the call that refreshes what it serves."""
    # Imported here: prometheus_client costs a run without --metrics ~0.1 s of CPU at start.
    from collector.live.metrics import MetricsServer

    published = _Published(session.metrics(program.counters(), watched.changes))
    server = MetricsServer(published, *listen)
    server.start()

    def publish() -> None:
        published.figures = session.metrics(program.counters(), watched.changes)

    return server, publish


def _collect(program, session, clock, watched, options, stop, say, publish) -> None:
    next_stats = next_status = next_metrics = next_check = time.monotonic()
    next_stats += options.stats_interval
    next_status += options.status_interval
    next_read = time.monotonic()
    while not stop.is_set() and session.write_error is None:
        stop.wait(max(0.0, next_read - time.monotonic()))
        program.wait(POLL_MS)
        # Taken before the drain: whatever was stamped before it has been written by now.
        cutoff = time.monotonic_ns() - REORDER_WINDOW_NS
        program.drain()
        session.process(cutoff)
        now = time.monotonic()
        next_read = now + READ_INTERVAL
        if now >= next_check:
            if watched.netns_deleted():
                session.ended = f"network namespace {options.netns!r} was deleted"
                say(f"{session.ended}: stopping")
                return
            session.write(watched.check(program))
            next_check = now + INTERFACE_CHECK_INTERVAL
        if now >= next_stats:
            session.write(session.recorder.expire(time.time()))
            session.write([session.stats_record(program.counters())])
            session.writer.flush()
            clock.anchor()
            next_stats = now + options.stats_interval
        if publish is not None and now >= next_metrics:
            publish()
            next_metrics = now + METRICS_INTERVAL
        if now >= next_status:
            say(f"{session.events} events, {session.announcements} announcements, {session.lost_samples} lost")
            next_status = now + options.status_interval


def _handle_signals(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # tests run the collector in a thread and stop it through the event
    on_signals(stop.set)


class BackgroundRun:
    """`run` in a thread for the length of a `with` block: the block starts once the filters are
    attached, and on leaving it the collector drains, detaches and closes its logs. Its session is
    then in `.session`. For the demo, traffic replays and tests."""

    # Packets sent just before the block ends are still on their way to the hook.
    SETTLE_SECONDS = 0.5

    def __init__(self, options: RunOptions) -> None:
        self._options = options
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.session: Session | None = None
        self._thread = threading.Thread(target=self._collect, name="collector")

    def _collect(self) -> None:
        try:
            # Its status lines would interleave with the caller's own output.
            self.session = run(self._options, lambda line: None, self._stop, self._ready)
        except BaseException as exc:  # handed to the caller's thread
            self._error = exc
            self._ready.set()

    def __enter__(self) -> BackgroundRun:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def __exit__(self, *exc_info) -> None:
        if exc_info[0] is None:
            time.sleep(self.SETTLE_SECONDS)
        self._stop.set()
        self._thread.join()
        if self._error is not None and exc_info[0] is None:
            raise self._error
