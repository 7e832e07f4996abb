"""Kernel events as Python values. The only module that touches the event's ctypes struct."""

from __future__ import annotations

import socket
from typing import NamedTuple

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


def from_kernel(raw) -> OptionEvent:
    """Copies everything out of bcc's struct: the sample's memory is reused after the callback."""
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
