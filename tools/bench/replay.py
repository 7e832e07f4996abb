# SPDX-License-Identifier: MIT
"""replay: packets/s of `addaddr replay` against tshark (MPTCP fields) and plain tcpdump reading the
same capture (an event-dense one, then a data-heavy one), each a whole command timed from start to
exit, start-up included (tshark loads its dissectors in ~0.3 s).

From the same runs, our userspace CPU (user seconds: the kernel's test runs are system time) is split
into a cost per replayed frame and one per event: the two captures differ in how many of their frames
cause an event, so with the start-up (a replay of an empty capture, each round) there are as many
equations as unknowns."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from tests.support.capture_writer import PcapWriter

from . import ADDADDR, captures
from .measure import QUIET, Cost, Result, Row, ratio, rounds, sample
from .measure import run as cost_of

# What the study needs from each packet: the option's subtype, the announced address and its id, the
# echo flag, the keys and token that tie subflows to connections.
TSHARK_FIELDS = [
    "frame.time_epoch",
    "ip.src",
    "ip.dst",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.options.mptcp.subtype",
    "tcp.options.mptcp.addrid",
    "tcp.options.mptcp.ipv4",
    "tcp.options.mptcp.ipv6",
    "tcp.options.mptcp.echo",
    "tcp.options.mptcp.sendkey",
    "tcp.options.mptcp.recvkey",
    "tcp.options.mptcp.recvtok",
]
TSHARK_LIMIT = 5.0
TCPDUMP_LIMIT = 1.0
# Userspace CPU on top of the kernel's (issue 13), microseconds.
PER_FRAME_LIMIT = 2.0
PER_EVENT_LIMIT = 3.0
_EVENTS = re.compile(r"(\d+) events")


# (name, data segments per connection): without data 16 of a connection's 17 frames cause an event;
# with 48 data segments (each acked), 16 of 113.
MIXES = (("event-dense", captures.EVENT_DENSE), ("data-heavy", captures.DATA_HEAVY))


class _Ours:
    """`addaddr replay` of one capture: its cost, and the events it reported."""

    def __init__(self, capture: Path) -> None:
        self.capture = capture
        self.events = 0

    def __call__(self) -> Cost:
        scratch = tempfile.mkdtemp(prefix="addaddr-replay-")
        try:
            status = Path(scratch) / "status"
            with open(status, "w") as err:
                cost = cost_of(
                    [ADDADDR, "replay", str(self.capture), "--log-dir", f"{scratch}/logs"],
                    stdout=QUIET["stdout"],
                    stderr=err,
                )
            found = _EVENTS.search(status.read_text())
            if found is None:
                raise RuntimeError(f"replay of {self.capture} printed no event count")
            self.events = int(found.group(1))
            return cost
        finally:
            shutil.rmtree(scratch)


def run(quick: bool) -> Result:
    # --quick: 17,000 + 14,125 packets, fewer than the one 50,000-packet capture before, for test_bench's limit.
    count, connections = (1, 1_000) if quick else (3, 20_000)
    result = Result("replay")
    with tempfile.TemporaryDirectory(prefix="addaddr-replay-") as scratch:
        empty = Path(scratch) / "empty.pcap"
        empty.write_bytes(PcapWriter().getvalue())
        startup = [cost.user for cost in rounds(count, _Ours(empty))[0]]
    mixes = [
        _compare(
            result,
            name,
            count,
            connections if data_segments == captures.EVENT_DENSE else connections // 8,
            data_segments,
            quick,
        )
        for name, data_segments in MIXES
    ]
    per_frame, per_event = _userspace_split(startup, *mixes)
    result.rows += [
        Row(
            "userspace CPU per replayed frame (µs), on top of the kernel's test run",
            sample(per_frame),
            limit=PER_FRAME_LIMIT,
            digits=2,
        ),
        Row("userspace CPU per event (µs), replay", sample(per_event), limit=PER_EVENT_LIMIT, digits=2),
    ]
    solved = ", ".join(
        f"{name}: {frames:,} frames, {events:,} events" for (name, _), (frames, events, _) in zip(MIXES, mixes)
    )
    result.notes.append(
        "Userspace split: each round, user CPU s of the two replays less that of an empty capture's "
        f"(start-up, median {sample(startup).median:.2f} s) = frames x per-frame + events x per-event, "
        f"solved for the two ({solved})."
    )
    return result


def _userspace_split(startup: list[float], dense: tuple, heavy: tuple) -> tuple[list[float], list[float]]:
    """Per round, microseconds of user CPU per frame and per event, from two replays whose frames
    cause events in different proportions."""
    (frames_d, events_d, user_d), (frames_h, events_h, user_h) = dense, heavy
    determinant = frames_d * events_h - frames_h * events_d
    per_frame, per_event = [], []
    for base, dense_user, heavy_user in zip(startup, user_d, user_h):
        d, h = dense_user - base, heavy_user - base
        per_frame.append((d * events_h - h * events_d) / determinant * 1e6)
        per_event.append((frames_d * h - frames_h * d) / determinant * 1e6)
    return per_frame, per_event


def _compare(
    result: Result, name: str, count: int, connections: int, data_segments: int, quick: bool
) -> tuple[int, int, list[float]]:
    """Rows of one capture against tshark and tcpdump; returns its frames, events and our user CPU s."""
    capture, packets = captures.made(connections, data_segments=data_segments)
    ours = _Ours(capture)

    def tshark() -> float:
        fields = [arg for field in TSHARK_FIELDS for arg in ("-e", field)]
        # MPTCP analysis (tshark's default, stated so a local preference cannot turn it off) ties
        # subflows to their connection, as our tracker does.
        return (
            packets
            / cost_of(
                ["tshark", "-o", "mptcp.analyze_mptcp:TRUE", "-r", str(capture), "-T", "fields", *fields], **QUIET
            ).wall
        )

    def tcpdump() -> float:
        return packets / cost_of(["tcpdump", "-nn", "-r", str(capture)], **QUIET).wall

    costs, theirs, dumped = rounds(count, ours, tshark, tcpdump)
    mine = [packets / cost.wall for cost in costs]
    result.rows += [
        Row(
            f"{name}: packets/s vs tshark -r -T fields",
            sample(mine),
            sample(theirs),
            "tshark",
            ratio(mine, theirs),
            TSHARK_LIMIT,
            better="higher",
        ),
        Row(
            f"{name}: packets/s vs tcpdump -nn -r",
            sample(mine),
            sample(dumped),
            "tcpdump",
            ratio(mine, dumped),
            TCPDUMP_LIMIT,
            better="higher",
        ),
    ]
    result.notes.append(
        f"{name}{' (--quick, smaller)' if quick else ''}: {packets:,} packets, {connections:,} MPTCP connections "
        f"(handshake, 4 ADD_ADDR each echoed, a join, {data_segments} 1,400-byte data segments each acked, the close), "
        f"{count} round(s) of the three in turn; tshark -o mptcp.analyze_mptcp:TRUE "
        f"-e {' '.join(TSHARK_FIELDS)}; output to /dev/null."
    )
    return packets, ours.events, [cost.user for cost in costs]
