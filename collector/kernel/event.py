# SPDX-License-Identifier: MIT
"""Kernel events as Python values: perf ring records parsed into OptionEvents. MptcpEvent, the ctypes
form of bpf/event.h, is the layout the parser's struct formats are checked against."""

from __future__ import annotations

import ctypes
import socket
import struct
from typing import NamedTuple

from collector.kernel.libbpf import PERF_RECORD_LOST, PERF_RECORD_SAMPLE

# bpf/event.h: TCP header at most 60 bytes, 20 fixed.
MAX_TCP_OPTION_SPACE = 40
_u8, _u16, _u32, _u64 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_uint64


class MptcpEvent(ctypes.Structure):
    """struct mptcp_event of bpf/event.h, as the kernel writes it (tests/kernel/test_prebuilt.py checks
    they agree)."""

    _fields_ = [
        ("ktime_ns", _u64),
        ("ifindex", _u32),
        ("mark", _u32),
        ("saddr", _u8 * 16),
        ("daddr", _u8 * 16),
        ("sport", _u16),
        ("dport", _u16),
        ("seq", _u32),
        ("ack_seq", _u32),
        ("ip_version", _u8),
        ("tcp_flags", _u8),
        ("option_len", _u8),
        ("pad", _u8),
        ("option", _u8 * MAX_TCP_OPTION_SPACE),
    ]


# The same struct for struct.unpack. Native order and no padding but `pad`, as the ctypes layout.
_LAYOUT = struct.Struct(f"=QII16s16sHHIIBBBx{MAX_TCP_OPTION_SPACE}s")
assert _LAYOUT.size == ctypes.sizeof(MptcpEvent), "collector/kernel/event.py: _LAYOUT differs from MptcpEvent"
_FAMILY = {4: (socket.AF_INET, 4), 6: (socket.AF_INET6, 16)}


class OptionEvent(NamedTuple):
    """One MPTCP option of interest, with the segment that carried it (bpf/event.h)."""

    ktime_ns: int
    ifindex: int
    mark: int
    ip_version: int
    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    tcp_flags: int
    option: bytes


# A sample as bpf_perf_event_output leaves it in a perf ring: struct perf_event_header (type u32,
# misc u16, size u16) and the raw data's u32 size, then the event, then padding to 8 bytes. Every
# sample of ours has this size, so a run of them parses at a fixed stride, many in one call. The
# event's two addresses are read as one 32-byte string: the key of the names cache below.
_HEADER = struct.Struct("=IHH")
_SAMPLE = struct.Struct(f"=12xQII32sHHIIBBBx{MAX_TCP_OPTION_SPACE}s{-(12 + _LAYOUT.size) % 8}x")
_SAMPLE_SIZE_AT = 6  # the header's size field
# A lost record: its header, an id, and how many samples the kernel could not write.
_LOST = struct.Struct("=IHHQQ")
# Address pairs named at most before the cache starts afresh: a subflow's segments repeat its pair,
# and inet_ntop is half the cost of an event; a flood of new pairs costs a few MiB at most.
MAX_NAMED_PAIRS = 16_384


class PerfRecords:
    """Turns what a perf ring held into events, and keeps the names of the address pairs it met."""

    def __init__(self) -> None:
        self._names: dict[tuple[int, bytes], tuple[str, str]] = {}

    def parse(self, records: bytes) -> tuple[list[OptionEvent], int]:
        """The events in a run of perf records (as a ring holds them), and the samples lost between them.

        Runs of our samples parse at a fixed stride; a record of another kind (the kernel's lost
        record, after an overflow) is read on its own, and the stride resumes after it."""
        if len(self._names) > MAX_NAMED_PAIRS:
            self._names.clear()
        events: list[OptionEvent] = []
        lost = 0
        offset, end = 0, len(records)
        view = memoryview(records)
        while offset < end:
            samples = _samples_at(records, offset)
            if samples:
                stop = offset + samples * _SAMPLE.size
                events += self._events(view[offset:stop])
                offset = stop
                continue
            kind, _misc, size = _HEADER.unpack_from(records, offset)
            if size < _HEADER.size:
                raise ValueError(f"a perf record of {size} bytes at {offset}: the ring is corrupt")
            if kind == PERF_RECORD_LOST:
                lost += _LOST.unpack_from(records, offset)[4]
            offset += size
        return events, lost

    def _events(self, samples: memoryview) -> list[OptionEvent]:
        # One comprehension, no call per event but for a pair not named yet; tuple.__new__ skips
        # NamedTuple's Python-level __new__, a third of the cost of making an event. The names are
        # bound by a `for` over a one-tuple: star-unpacking them into the event's tuple built it
        # through a list, ~700 instructions an event (cachegrind).
        named, name = self._names.get, self._name
        return [
            _new_event(
                OptionEvent,
                (ktime_ns, ifindex, mark, ip_version, src, dst, sport, dport, seq, ack, tcp_flags, option[:option_len]),
            )
            for (
                ktime_ns,
                ifindex,
                mark,
                pair,
                sport,
                dport,
                seq,
                ack,
                ip_version,
                tcp_flags,
                option_len,
                option,
            ) in _SAMPLE.iter_unpack(samples)
            for src, dst in (named((ip_version, pair)) or name(ip_version, pair),)
        ]

    def _name(self, ip_version: int, pair: bytes) -> tuple[str, str]:
        family, size = _FAMILY[ip_version]
        names = self._names[ip_version, pair] = (_ntop(family, pair[:size]), _ntop(family, pair[16 : 16 + size]))
        return names


def _samples_at(records: bytes, offset: int) -> int:
    """How many of our samples follow one another from `offset`: the kind and size of each record
    at the stride, read as strided byte strings (kinds fit a byte, our size two). When one differs
    (a lost record), the first that does is found by lstrip, in C: a ring with a lost record after a
    long run costs as little as one without (a Python walk over the run took ~5 times as long)."""
    stride = _SAMPLE.size
    count = (len(records) - offset) // stride
    stop = offset + count * stride
    heads = [
        (records[at:stop:stride], expected)
        for at, expected in (
            (offset, PERF_RECORD_SAMPLE),
            (offset + _SAMPLE_SIZE_AT, stride),
            (offset + _SAMPLE_SIZE_AT + 1, 0),
        )
    ]
    if all(strided.count(expected) == count for strided, expected in heads):
        return count
    return min(len(strided) - len(strided.lstrip(bytes((expected,)))) for strided, expected in heads)


_ntop = socket.inet_ntop
_new_event = tuple.__new__
