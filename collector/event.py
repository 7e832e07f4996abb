"""Kernel events as Python values. The only module that touches the event's ctypes struct."""

from __future__ import annotations

import ctypes
import socket
import struct
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

# The same struct for struct.unpack: one copy and one unpack per event instead of a ctypes read per
# field (and a list per address). Native order and no padding but `pad`, as the ctypes layout.
_LAYOUT = struct.Struct(f"=QII16s16sHHIIBBBx{MAX_TCP_OPTION_SPACE}s")
assert _LAYOUT.size == ctypes.sizeof(MptcpEvent), "collector/event.py: _LAYOUT differs from MptcpEvent"
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
    (ktime_ns, ifindex, mark, saddr, daddr, sport, dport, seq, ack, ip_version, tcp_flags, option_len,
     option) = _unpack(_string_at(_addressof(raw), _LAYOUT.size))
    family, size = _FAMILY[ip_version]
    # tuple.__new__ skips NamedTuple's Python-level __new__, a third of the cost of making the event.
    return _new_event(OptionEvent, (ktime_ns, ifindex, mark, ip_version, _ntop(family, saddr[:size]),
                                    _ntop(family, daddr[:size]), sport, dport, seq, ack, tcp_flags,
                                    option[:option_len]))


_unpack = _LAYOUT.unpack
_string_at, _addressof = ctypes.string_at, ctypes.addressof
_ntop = socket.inet_ntop
_new_event = tuple.__new__
