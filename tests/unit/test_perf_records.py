# SPDX-License-Identifier: MIT
"""collector/kernel/event.py's reading of a perf ring's records, byte by byte as the kernel lays them out:
runs of samples at their stride, the kernel's lost record (and any other) between them."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from collector.kernel.event import PerfRecords, _samples_at
from collector.kernel.libbpf import PERF_RECORD_LOST, PERF_RECORD_SAMPLE

# struct mptcp_event of bpf/event.h, field by field at its offsets, written out here rather than taken
# from collector/kernel/event.py: a parser that drifts from the kernel's layout reads these samples wrong.
EVENT_SIZE = 104
EVENT_FIELDS = (  # name, offset, struct format
    ("ktime_ns", 0, "Q"),
    ("ifindex", 8, "I"),
    ("mark", 12, "I"),
    ("saddr", 16, "16s"),
    ("daddr", 32, "16s"),
    ("sport", 48, "H"),
    ("dport", 50, "H"),
    ("seq", 52, "I"),
    ("ack_seq", 56, "I"),
    ("ip_version", 60, "B"),
    ("tcp_flags", 61, "B"),
    ("option_len", 62, "B"),
    ("option", 64, "40s"),
)

V4_PAIR = socket.inet_pton(socket.AF_INET, "192.0.2.1").ljust(16, b"\0") + socket.inet_pton(
    socket.AF_INET, "198.51.100.2"
).ljust(16, b"\0")
OPTION = bytes.fromhex("1e10300103000071") + bytes(8)


def sample(ktime_ns: int, ip_version: int = 4, pair: bytes = V4_PAIR) -> bytes:
    """A PERF_RECORD_SAMPLE of one event: header, the raw size, the event, padding to 8 bytes."""
    values = {
        "ktime_ns": ktime_ns,
        "ifindex": 2,
        "mark": 7,
        "saddr": pair[:16],
        "daddr": pair[16:],
        "sport": 43210,
        "dport": 443,
        "seq": 1,
        "ack_seq": 2,
        "ip_version": ip_version,
        "tcp_flags": 0x10,
        "option_len": len(OPTION),
        "option": OPTION,
    }
    event = bytearray(EVENT_SIZE)
    for name, offset, form in EVENT_FIELDS:
        struct.pack_into("=" + form, event, offset, values[name])
    event = bytes(event)
    raw = struct.pack("=I", len(event) + (-(4 + len(event)) % 8)) + event
    raw += bytes(-len(raw) % 8)
    return struct.pack("=IHH", PERF_RECORD_SAMPLE, 1, 8 + len(raw)) + raw  # misc 1: kernel


def lost(count: int) -> bytes:
    return struct.pack("=IHHQQ", PERF_RECORD_LOST, 0, 24, 1, count)


def test_a_run_of_samples_reads_whole_in_order():
    events, dropped = PerfRecords().parse(b"".join(sample(t) for t in range(1000)))
    assert [e.ktime_ns for e in events] == list(range(1000)), "got events out of order or missing"
    assert dropped == 0
    first = events[0]
    assert (first.src, first.dst, first.sport, first.dport, first.seq, first.ack, first.mark, first.option) == (
        "192.0.2.1",
        "198.51.100.2",
        43210,
        443,
        1,
        2,
        7,
        OPTION,
    ), f"got {first}"


def test_lost_and_unknown_records_between_samples_are_read_on_their_own():
    other = struct.pack("=IHH", 17, 0, 16) + bytes(8)  # a record of a kind we never asked for
    records = sample(1) + lost(5) + sample(2) + sample(3) + other + lost(2) + sample(4)
    events, dropped = PerfRecords().parse(records)
    assert [e.ktime_ns for e in events] == [1, 2, 3, 4], f"got {[e.ktime_ns for e in events]}"
    assert dropped == 7, f"got {dropped} lost; want 5 + 2"


def test_equal_address_bytes_of_either_family_are_named_by_their_family():
    # The IPv4 pair's 32 bytes, read as two IPv6 addresses: cached apart from the IPv4 pair.
    events, _ = PerfRecords().parse(sample(1) + sample(2, ip_version=6) + sample(3))
    assert [e.src for e in events] == ["192.0.2.1", "c000:201::", "192.0.2.1"], f"got {[e.src for e in events]}"


def test_a_record_shorter_than_its_header_is_refused():
    with pytest.raises(ValueError, match="corrupt"):
        PerfRecords().parse(sample(1) + struct.pack("=IHH", 17, 0, 0))


def _cpu_seconds(records: bytes, repeats: int = 5) -> float:
    """The least CPU time of _samples_at from the start of `records`, over a few repeats."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        _samples_at(records, 0)
        best = min(best, time.process_time() - start)
    return best


def test_a_lost_record_after_a_long_run_is_found_as_cheaply_as_the_run_itself():
    run = b"".join(sample(t) for t in range(200_000))
    assert _samples_at(run + lost(1) + sample(1), 0) == 200_000
    # Walking the run sample by sample in Python took ~20 times as long as the run alone.
    alone, broken = _cpu_seconds(run + sample(1)), _cpu_seconds(run + lost(1) + sample(1))
    assert broken <= 4 * alone + 0.002, f"got {broken * 1e3:.1f} ms with a lost record, {alone * 1e3:.1f} ms without"
