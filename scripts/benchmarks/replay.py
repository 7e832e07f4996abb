"""replay: packets/s of `addaddr replay` against tshark (MPTCP fields) and plain tcpdump reading the
same capture (an event-dense one, then a data-heavy one), each a whole command timed from start to exit, start-up included (bcc compiles the
kernel program in ~3 s; tshark loads its dissectors in ~0.3 s)."""

from __future__ import annotations

import shutil
import tempfile

from . import ADDADDR, captures
from .measure import QUIET, Result, Row, ratio, rounds, run as cost_of, sample

# What the study needs from each packet: the option's subtype, the announced address and its id, the
# echo flag, the keys and token that tie subflows to connections.
TSHARK_FIELDS = ["frame.time_epoch", "ip.src", "ip.dst", "tcp.srcport", "tcp.dstport", "tcp.options.mptcp.subtype",
                 "tcp.options.mptcp.addrid", "tcp.options.mptcp.ipv4", "tcp.options.mptcp.ipv6",
                 "tcp.options.mptcp.echo", "tcp.options.mptcp.sendkey", "tcp.options.mptcp.recvkey",
                 "tcp.options.mptcp.recvtok"]
TSHARK_LIMIT = 5.0
TCPDUMP_LIMIT = 1.0


# (name, data segments per connection): without data 16 of a connection's 17 frames cause an event;
# with 48 data segments (each acked), 16 of 113.
MIXES = (("event-dense", captures.EVENT_DENSE), ("data-heavy", captures.DATA_HEAVY))


def run(quick: bool) -> Result:
    # --quick: 17,000 + 14,125 packets, fewer than the one 50,000-packet capture before, for test_bench's limit.
    count, connections = (1, 1_000) if quick else (3, 20_000)
    result = Result("replay")
    for name, data_segments in MIXES:
        _compare(result, name, count, connections if data_segments == captures.EVENT_DENSE else connections // 8,
                 data_segments, quick)
    return result


def _compare(result: Result, name: str, count: int, connections: int, data_segments: int, quick: bool) -> None:
    capture, packets = captures.made(connections, data_segments=data_segments)

    def ours() -> float:
        logs = tempfile.mkdtemp(prefix="addaddr-replay-")
        try:
            return packets / cost_of([ADDADDR, "replay", str(capture), "--log-dir", logs], **QUIET).wall
        finally:
            shutil.rmtree(logs)

    def tshark() -> float:
        fields = [arg for field in TSHARK_FIELDS for arg in ("-e", field)]
        # MPTCP analysis (tshark's default, stated so a local preference cannot turn it off) ties
        # subflows to their connection, as our tracker does.
        return packets / cost_of(["tshark", "-o", "mptcp.analyze_mptcp:TRUE", "-r", str(capture), "-T", "fields",
                                  *fields], **QUIET).wall

    def tcpdump() -> float:
        return packets / cost_of(["tcpdump", "-nn", "-r", str(capture)], **QUIET).wall

    mine, theirs, dumped = rounds(count, ours, tshark, tcpdump)
    result.rows += [
        Row(f"{name}: packets/s vs tshark -r -T fields", sample(mine), sample(theirs), "tshark", ratio(mine, theirs),
            TSHARK_LIMIT, better="higher"),
        Row(f"{name}: packets/s vs tcpdump -nn -r", sample(mine), sample(dumped), "tcpdump", ratio(mine, dumped),
            TCPDUMP_LIMIT, better="higher"),
    ]
    result.notes.append(
        f"{name}{' (--quick, smaller)' if quick else ''}: {packets:,} packets, {connections:,} MPTCP connections "
        f"(handshake, 4 ADD_ADDR each echoed, a join, {data_segments} 1,400-byte data segments each acked, the close), "
        f"{count} round(s) of the three in turn; tshark -o mptcp.analyze_mptcp:TRUE -e {' '.join(TSHARK_FIELDS)}; output to /dev/null.")
