"""Kernel events as Python values. The only module that touches the event's ctypes struct."""

from __future__ import annotations

import ctypes
import socket
from typing import NamedTuple

# bpf/event.h: TCP header at most 60 bytes, 20 fixed.
MAX_TCP_OPTION_SPACE = 40
_u8, _u16, _u32, _u64 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_uint64


class MptcpEvent(ctypes.Structure):
    """struct mptcp_event of bpf/event.h, as the kernel writes it (tests/test_prebuilt.py checks
    they agree)."""

    _fields_ = [
        ("ktime_ns", _u64), ("ifindex", _u32), ("mark", _u32), ("saddr", _u8 * 16), ("daddr", _u8 * 16),
        ("sport", _u16), ("dport", _u16), ("seq", _u32), ("ack_seq", _u32), ("ip_version", _u8),
        ("tcp_flags", _u8), ("option_len", _u8), ("pad", _u8), ("option", _u8 * MAX_TCP_OPTION_SPACE),
    ]

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


def from_kernel(raw: MptcpEvent) -> OptionEvent:
    """Copies everything out of the struct: the sample's memory is reused after the callback."""
    family, size = _FAMILY[raw.ip_version]
    return OptionEvent(
        raw.ktime_ns,
        raw.ifindex,
        raw.mark,
        raw.ip_version,
        socket.inet_ntop(family, bytes(raw.saddr[:size])),
        socket.inet_ntop(family, bytes(raw.daddr[:size])),
        raw.sport,
        raw.dport,
        raw.seq,
        raw.ack_seq,
        raw.tcp_flags,
        bytes(raw.option[: raw.option_len]),
    )
