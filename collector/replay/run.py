# SPDX-License-Identifier: MIT
"""`addaddr replay`: packets of captures through the kernel program, into the same logs as `run`.

The program runs on each frame through BPF_PROG_TEST_RUN, so a capture goes through exactly the code
that watches live traffic. Each frame's index rides in skb->mark, and the events it causes come back
through the perf buffer carrying it: that is how an event finds its packet's own timestamp.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from collector import __version__
from collector.addresses.anonymize import Anonymizer
from collector.errors import CollectorError
from collector.kernel.program import CaptureProgram, locked_bytes
from collector.kernel.testrun import TestRunner
from collector.logs.writer import LogWriter
from collector.pipeline.records import Recorder
from collector.pipeline.session import Session, host_name
from collector.replay.capture import Capture, CaptureError

# Frames run between two reads of the perf buffer. With at most 13 MPTCP options a segment, a chunk
# yields at most ~13,000 events (~1.7 MiB), inside REPLAY_PAGES per CPU: nothing is lost to speed.
CHUNK = 1024
REPLAY_PAGES = 1024
# The buffers are drained after every chunk, never waited on: a wakeup per event would only cost.
NO_WAKEUPS = 1 << 30
# Packet times (UTC epoch seconds) replayed: from 1970 to 2200. if_tsoffset 2**62 or a huge time with
# if_tsresol 0 lies far outside, and no capture was taken there.
SANE_TIMES = (0.0, 7258118400.0)


@dataclass
class ReplayResult:
    """What a replay did: the packets run (those the kernel refused among them), those of a bad time,
    the captures that failed, and the session that logged the records."""

    packets: int = 0
    refused: int = 0  # frames the kernel will not test-run (shorter than their own headers)
    bad_time: int = 0  # packets whose timestamp is outside SANE_TIMES: not replayed
    errors: list[CaptureError] = field(default_factory=list)  # captures cut short or unreadable
    session: Session | None = field(default=None, repr=False)


def replay(
    captures: list[str],
    log_dir: str,
    on_progress: Callable[[int], None] | None = None,
    anonymize_key: str | None = None,
    host: str | None = None,
    say: Callable[[str], None] | None = None,
) -> ReplayResult:
    """Replays `captures` in order into new logs in `log_dir`; `on_progress(bytes)` as they are read,
    counting bytes over all the captures; the line naming the kernel features used, once loaded, to `say`.

    Every capture is opened and checked, and the program loaded, before anything is made: a capture
    that cannot be opened or is not one raises CaptureError. A capture that cannot be read to its
    end keeps what was read from it; its error is in `.errors` and the next capture is replayed
    all the same. `host` names the logs' host (default: this machine's host name).
    """
    opened = _open_all(captures)  # first: a capture that is not one is refused at once
    program = None
    try:
        program = CaptureProgram()
        anonymizer = Anonymizer.from_key_file(anonymize_key) if anonymize_key else None
        header = {
            "host": host_name(host),
            "interfaces": list(captures),
            "netns": None,
            "collector_version": __version__,
            "started": time.time(),
            "source": "replay",
            "anonymization": anonymizer and anonymizer.scheme,
        }
        try:
            writer = LogWriter(log_dir, header)
        except OSError as exc:
            raise CollectorError(f"log dir {log_dir}: {exc.strerror}; choose one with --log-dir") from None
    except BaseException:
        _close_all(opened)
        if program is not None:
            program.close()
        raise
    packet_times: dict[int, float] = {}
    session = Session(writer, Recorder(), lambda event: packet_times[event.mark], anonymizer)
    result = ReplayResult(session=session)
    try:
        program.open_events(session.take, session.on_lost, pages=REPLAY_PAGES, wakeup_events=NO_WAKEUPS)
        runner = TestRunner(program.fd)
        if say is not None:
            say(
                f"kernel program relies on {program.features} and BPF_PROG_TEST_RUN; "
                f"perf buffers lock {locked_bytes(REPLAY_PAGES) >> 20} MiB"
            )
        last_time = 0.0
        done_bytes = 0
        for capture in opened:
            progress = None if on_progress is None else lambda n, base=done_bytes: on_progress(base + n)
            try:
                last_time = _replay_capture(
                    capture.frames(progress), runner, program, session, packet_times, result, last_time
                )
            except CaptureError as exc:
                result.errors.append(exc)
            except OSError as exc:
                result.errors.append(CaptureError(f"{capture.path}: {exc.strerror}"))
            done_bytes += _size(capture.path)
        _settle(program, session, packet_times)
        session.close(last_time)
        stats = session.stats_record(program.counters())
        stats["replay"] = {"packets": result.packets, "refused": result.refused, "bad_time": result.bad_time}
        session.write([stats])
    finally:
        program.close()
        writer.close()
    if session.write_error is not None:
        raise CollectorError(
            f"log write failed ({session.write_error.strerror}); {session.unwritten} records not written"
        )
    return result


def _open_all(captures: list[str]) -> list[Capture]:
    opened = []
    try:
        for path in captures:
            try:
                opened.append(Capture(path))
            except OSError as exc:
                raise CaptureError(f"{path}: {exc.strerror}") from None
    except BaseException:
        _close_all(opened)
        raise
    return opened


def _close_all(opened: list[Capture]) -> None:
    for capture in opened:
        capture.close()


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _replay_capture(
    source: Iterator[tuple[float, bytes, int]],
    runner: TestRunner,
    program: CaptureProgram,
    session: Session,
    packet_times: dict[int, float],
    result: ReplayResult,
    last_time: float,
) -> float:
    """Runs one capture's packets, counting them in `result` as they go (an error leaves the counts
    of the packets before it); returns the last packet's time. The loop runs once a frame: its
    counts are locals, and the next settle is a count to reach rather than a modulo to take."""
    attempt = runner.attempt
    low, high = SANE_TIMES
    packets, refused, bad_time = result.packets, result.refused, result.bad_time
    settle_at = (packets // CHUNK + 1) * CHUNK
    try:
        for packet_time, frame, _index in source:
            if not low <= packet_time < high:
                # Written, such a time would make every reader of the logs stumble.
                bad_time += 1
                continue
            packet_times[packets] = last_time = packet_time
            if not attempt(frame, packets):
                refused += 1
            packets += 1
            if packets == settle_at:
                settle_at += CHUNK
                _settle(program, session, packet_times)
    finally:
        result.packets, result.refused, result.bad_time = packets, refused, bad_time
    return last_time


def _settle(program: CaptureProgram, session: Session, packet_times: dict[int, float]) -> None:
    program.drain()
    session.process()
    packet_times.clear()
