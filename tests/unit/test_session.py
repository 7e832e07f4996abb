# SPDX-License-Identifier: MIT
"""The session's ordering of events read from several CPUs' perf buffers, and the memory of a process
that runs it."""

from __future__ import annotations

import subprocess
import sys

from collector.kernel.event import OptionEvent
from collector.logs.reader import read_records
from collector.logs.writer import LogWriter
from collector.pipeline import session as session_module
from collector.pipeline.decode import MpCapable, MpJoin
from collector.pipeline.records import Recorder
from collector.pipeline.session import Session
from tests.support.mptcp_encoder import encode

SYN, ACK = 0x02, 0x10
CLIENT_KEY, SERVER_KEY = 0x1111, 0x2222


def segment(ktime_ns: int, flags: int, seq: int, option) -> OptionEvent:
    return OptionEvent(ktime_ns, 2, 0, 4, "10.0.0.2", "10.0.0.1", 40000, 443, seq, 1, flags, encode(option))


def test_events_are_processed_in_kernel_order_up_to_the_cutoff(tmp_path):
    with LogWriter(tmp_path, {"host": "test"}) as writer:
        session = Session(writer, Recorder(), lambda event: event.ktime_ns / 1e9)
        third_ack = segment(2_000, ACK, 101, MpCapable(1, 0x81, CLIENT_KEY, SERVER_KEY, None, None))
        syn = segment(1_000, SYN, 100, MpCapable(1, 0x81, None, None, None, None))
        late = segment(9_000, ACK, 101, MpCapable(1, 0x81, CLIENT_KEY, SERVER_KEY, None, None))
        session.take([third_ack, late])  # as two CPUs' buffers might hand them over
        session.take([syn])
        session.process(cutoff_ns=5_000)
        assert session.events == 2, f"got {session.events} events processed; want the 2 before the cutoff"
        session.process()
        assert session.events == 3, f"got {session.events}; want the held one processed at the end"
    connections = [r for r in read_records(tmp_path) if r["kind"] == "connection"]
    assert len(connections) == 1, f"got {len(connections)} connection records; want 1 (SYN first, then ACK)"


def test_shutdown_writes_in_batches_what_one_close_would(tmp_path, monkeypatch):
    # Joins of no known connection first (they end without a record), then connections: a batch that
    # makes no record must not stop the shutdown before the connections behind it.
    def events():
        for i in range(5):
            yield OptionEvent(
                i,
                2,
                0,
                4,
                "10.0.9.9",
                "10.0.0.1",
                30000 + i,
                443,
                7,
                0,
                SYN,
                encode(MpJoin("syn", 1, False, 0xDEAD, 1, None)),
            )
        for i in range(7):
            syn = MpCapable(1, 0x81, None, None, None, None)
            ack = MpCapable(1, 0x81, CLIENT_KEY + i, SERVER_KEY + i, None, None)
            yield OptionEvent(100 + 2 * i, 2, 0, 4, "10.0.0.2", "10.0.0.1", 40000 + i, 443, 100, 1, SYN, encode(syn))
            yield OptionEvent(101 + 2 * i, 2, 0, 4, "10.0.0.2", "10.0.0.1", 40000 + i, 443, 101, 1, ACK, encode(ack))

    whole = Recorder()
    whole.handle_many(list(events()), [1.0] * 19)
    expected = whole.close(2.0)
    monkeypatch.setattr(session_module, "CLOSE_BATCH", 3)
    with LogWriter(tmp_path, {"host": "test"}) as writer:
        session = Session(writer, Recorder(), lambda event: 1.0)
        session.take(list(events()))
        session.process()
        session.close(2.0)
        assert session.recorder.tracker.subflows_tracked == 0
    ended = [r for r in read_records(tmp_path) if r["kind"] == "connection_end"]
    assert len(ended) == 7 and ended == [r for r in expected if r["kind"] == "connection_end"], (
        f"got {len(ended)} connections ended in batches; want the 7 that one close ends, in its order"
    )


# In a process of its own: glibc's threshold is per process, and this one's may have risen already.
_TABLE_FREED = """
from collector.pipeline.session import map_large_blocks

def anon_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("RssAnon:"))

map_large_blocks()
size = 16 << 20
old = bytearray(size)  # a table CPython grew out of: freed, it would raise glibc's threshold
del old
table = bytearray(size)
after = bytearray(1024)  # above it, so that a table in the heap could not be trimmed off its top
before = anon_kib()
del table
print(before - anon_kib())
"""


def test_a_large_block_freed_after_another_leaves_no_resident_memory():
    # A tracker past its cap reallocates its tables again and again.
    returned = subprocess.run(
        [sys.executable, "-c", _TABLE_FREED], capture_output=True, text=True, check=True, timeout=60
    )
    assert int(returned.stdout) >= 15 << 10
