# SPDX-License-Identifier: MIT
"""MPTCP traffic for the benchmarks, built with the tests' frame builders (tests/support/replay_fixtures.py,
which keeps sequence numbers, keys, tokens and HMACs as a real stack would) and written to a pcap
as it is made, so a capture of millions of packets never sits in memory.
"""

from __future__ import annotations

import struct
import tempfile
from functools import cache
from pathlib import Path

from collector.lab.testbed import DEFAULT_PLANS
from tests.support.capture_writer import PcapWriter
from tests.support.frames import ACK, PSH
from tests.support.replay_fixtures import SERVER, SERVER_PORT, T0_NS, Capture, Connection, Subflow, dss_ack

# The IPv4 classes the study tabulates, as the testbed's first client announces them. IPv6 ones are
# left out: a 28-byte ADD_ADDR for IPv6 with its HMAC does not fit beside the timestamps and the DSS
# that replay_fixtures puts on every announcement (40 bytes of option space).
ANNOUNCED = DEFAULT_PLANS[0].announce
# Linux's data segments: full-sized, the DSS with a data ACK and a mapping, no DSS checksum.
PAYLOAD = 1400
# Per connection: 4 announcements each echoed, 4 data segments each acked; with the handshake, a
# join and the close, 25 packets of which 8 carry ADD_ADDR. Other mixes: `EVENT_DENSE` (no data:
# most frames cause an event) and `DATA_HEAVY` (mostly DSS segments, which cause none).
ANNOUNCEMENTS = 4
DATA_SEGMENTS = 4
EVENT_DENSE = 0
DATA_HEAVY = 48
PACKETS_PER_SESSION = 25
# 100,000 packets a second of capture time: a million connections open within the idle timeout.
STEP_NS = 10_000
_FLUSH_EVERY = 4096
# Captures live as long as the run: several benchmarks replay the same one.
_SCRATCH = tempfile.TemporaryDirectory(prefix="addaddr-bench-")
_KEY_STEP = 0x9E37_79B9_7F4A_7C15  # odd, so i -> i * step mod 2**64 never repeats a key


def dss_data(data_ack: int, dsn: int, subflow_seq: int, length: int) -> bytes:
    """DSS with a 4-byte data ACK (A) and a 4-byte mapping (M), then two NOPs: Linux's data segment."""
    return (
        bytes([30, 18, 0x20, 0x05])
        + struct.pack("!IIIH", data_ack & 0xFFFFFFFF, dsn & 0xFFFFFFFF, subflow_seq, length)
        + b"\x01\x01"
    )


def client_of(i: int, join: bool = False) -> tuple[str, int]:
    """Client i's address (10.64/10, or 10.128/10 for its join subflow) and port: one per connection."""
    base = 128 if join else 64
    return f"10.{base + (i >> 16) % 64}.{(i >> 8) & 0xFF}.{i & 0xFF}", 32768 + i % 28000


class MptcpTraffic(Capture):
    """replay_fixtures' Capture with numbered connections and data segments."""

    def connect(self, i: int) -> Connection:
        client_key = (i + 1) * _KEY_STEP & 0xFFFF_FFFF_FFFF_FFFF
        return self.handshake(
            f"c{i}",
            client_of(i),
            (SERVER, SERVER_PORT),
            client_key,
            client_key ^ 0x5A5A_5A5A_5A5A_5A5A,
            (i * 7919 & 0xFFFFFF, i * 104729 & 0xFFFFFF),
        )

    def data(self, label: str, conn: Connection, flow: Subflow, n: int) -> None:
        """The client's n-th data segment of `PAYLOAD` bytes, mapped by a DSS, and the server's ACK."""
        dsn = conn.data_ack("server") + n * PAYLOAD  # the client's data starts at its IDSN + 1
        option = dss_data(conn.data_ack("client"), dsn, 1 + n * PAYLOAD, PAYLOAD)
        self.add(label, flow.segment("client", ACK | PSH, option, bytes(PAYLOAD)))
        self.add(f"{label} ACK", flow.segment("server", ACK, dss_ack(dsn + PAYLOAD)))

    def session(self, i: int, data_segments: int = DATA_SEGMENTS) -> None:
        """Connection i: handshake, the client announces ANNOUNCEMENTS addresses and the server
        echoes each, a join, `data_segments` data segments each acked, then the close."""
        conn = self.connect(i)
        for n in range(ANNOUNCEMENTS):
            address = ANNOUNCED[(i + n) % len(ANNOUNCED)]
            self.add_addr(f"c{i} announce {n}", conn, conn.initial, "client", address, n + 1)
            self.add_addr(f"c{i} echo {n}", conn, conn.initial, "server", address, n + 1, echo=True)
        self.join(f"c{i} join", conn, client_of(i, join=True), (i * 31 & 0xFFFFFF, i * 37 & 0xFFFFFF), address_id=9)
        for n in range(data_segments):
            self.data(f"c{i} data {n}", conn, conn.initial, n)
        self.close(f"c{i}", conn, conn.initial)


class _Streamed(MptcpTraffic):
    """Writes each packet to an open pcap file instead of keeping it."""

    def __init__(self, file) -> None:
        super().__init__()
        self._file = file
        self._pcap = PcapWriter()
        self.count = 0

    def add(self, label, frame, sent=None) -> None:
        self._pcap.packet(T0_NS + self.count * STEP_NS, frame)
        self.count += 1
        if len(self._pcap.parts) >= _FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        self._file.write(self._pcap.getvalue())
        self._pcap.parts.clear()
        self._pcap.packet_offsets.clear()


def write(path: Path, connections: int, handshakes_only: bool = False, data_segments: int = DATA_SEGMENTS) -> int:
    """Writes a capture of `connections` connections; returns its packet count. With
    `handshakes_only` each is just SYN, SYN/ACK and third ACK: connections opened and never closed."""
    with open(path, "wb") as file:
        traffic = _Streamed(file)
        for i in range(connections):
            if handshakes_only:
                traffic.connect(i)
            else:
                traffic.session(i, data_segments)
        traffic.flush()
    return traffic.count


@cache
def made(connections: int, handshakes_only: bool = False, data_segments: int = DATA_SEGMENTS) -> tuple[Path, int]:
    """A capture written once per run of the benchmarks, and its packet count."""
    kind = "handshakes" if handshakes_only else f"sessions-{data_segments}data"
    path = Path(_SCRATCH.name) / f"{kind}-{connections}.pcap"
    return path, write(path, connections, handshakes_only=handshakes_only, data_segments=data_segments)
