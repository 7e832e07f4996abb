# SPDX-License-Identifier: MIT
"""kernel: nanoseconds per packet through BPF_PROG_TEST_RUN, our program against an empty one.

The reference is the floor of any TC program: an empty SCHED_CLS program returning TC_ACT_UNSPEC,
loaded with bcc and timed on the same frame right after ours, round after round. The kernel reports
the mean over `repeat` runs in whole nanoseconds, so each figure is ±0.5 ns.
"""

from __future__ import annotations

import time
from functools import partial

import bcc

from collector.kernel.program import CaptureProgram
from collector.kernel.testrun import TestRunner
from collector.live.run import WAKEUP_EVENTS
from tests.support.frames import (
    ETH_P_IP,
    ETH_P_IPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    dest_options,
    ether,
    hop_by_hop,
    ipv4,
    ipv6,
    routing,
    tcp,
    udp,
)

from .captures import MptcpTraffic
from .measure import Result, Row, ratio, rounds, sample

EMPTY_PROGRAM = "int empty(struct __sk_buff *skb) { return -1; /* TC_ACT_UNSPEC */ }"
REPEAT = 1_000_000
# One ADD_ADDR run emits REPEAT events of 104 bytes, 120 with the perf record's header: 32,768
# pages (128 MiB per CPU) hold them all, so every event of the timed run is really written and
# none is dropped for a full buffer, which would be cheaper than a write. The reader is woken as
# `addaddr run` asks (every WAKEUP_EVENTS samples): a wakeup per sample costs ~2.4 µs more.
EVENT_PAGES = 32_768
NON_MPTCP_LIMIT = 1.5
DSS_LIMIT = 3.0


def frames() -> list[tuple[str, bytes, float | None]]:
    """(name, Ethernet frame, limit on the ratio to the empty program)."""
    traffic = MptcpTraffic()
    conn = traffic.connect(0)
    traffic.add_addr("add_addr", conn, conn.initial, "client", "10.1.2.3", 1)
    traffic.data("dss", conn, conn.initial, 0)
    by_label = {packet.label: packet.frame for packet in traffic.packets}
    timestamps = b"\x01\x01\x08\x0a" + bytes(range(8))
    v6_chain = [hop_by_hop(8), routing(8), dest_options(16)]
    return [
        (
            "UDP",
            ether(ETH_P_IP, ipv4("10.0.0.1", "10.0.0.2", IPPROTO_UDP, udp(5353, 5353, bytes(64)))),
            NON_MPTCP_LIMIT,
        ),
        (
            "TCP, no options",
            ether(ETH_P_IP, ipv4("10.0.0.1", "10.0.0.2", IPPROTO_TCP, tcp(40000, 443))),
            NON_MPTCP_LIMIT,
        ),
        (
            "TCP, timestamps",
            ether(
                ETH_P_IP,
                ipv4("10.0.0.1", "10.0.0.2", IPPROTO_TCP, tcp(40000, 443, options=timestamps, payload=bytes(1400))),
            ),
            NON_MPTCP_LIMIT,
        ),
        (
            "IPv6 + 3 extension headers, TCP timestamps",
            ether(
                ETH_P_IPV6, ipv6("fd00::1", "fd00::2", IPPROTO_TCP, tcp(40000, 443, options=timestamps), ext=v6_chain)
            ),
            NON_MPTCP_LIMIT,
        ),
        ("MPTCP data, DSS", by_label["dss"], DSS_LIMIT),
        ("MPTCP ADD_ADDR (event)", by_label["add_addr"], None),
    ]


def run(quick: bool) -> Result:
    count = 3 if quick else 7
    result = Result("kernel")
    started = time.perf_counter()
    ours = CaptureProgram()
    load_seconds = time.perf_counter() - started
    empty = bcc.BPF(text=EMPTY_PROGRAM)
    try:
        seen = {"events": 0, "lost": 0}

        def on_events(events) -> None:
            seen["events"] += len(events)

        def on_lost(count: int) -> None:
            seen["lost"] += count

        ours.open_events(on_events, on_lost, pages=EVENT_PAGES, wakeup_events=WAKEUP_EVENTS)
        our_runner = TestRunner(ours.fd)
        empty_runner = TestRunner(empty.load_func("empty", bcc.BPF.SCHED_CLS).fd)

        def timed(runner: TestRunner, frame: bytes) -> float:
            duration = runner.time(frame, REPEAT)
            ours.drain()  # the events of an ADD_ADDR run, before the next one
            return duration

        for name, frame, limit in frames():
            mine, floor = rounds(count, partial(timed, our_runner, frame), partial(timed, empty_runner, frame))
            result.rows.append(
                Row(f"{name} (ns/packet)", sample(mine), sample(floor), "empty", ratio(mine, floor), limit)
            )
        counters = ours.counters()
    finally:
        ours.close()
        empty.cleanup()
    result.rows.append(Row("program load, bcc compile (s)", sample([load_seconds]), digits=1))
    result.notes.append(
        f"{REPEAT:,} repeats a run, {count} rounds alternating ours and the empty program; the ADD_ADDR "
        f"runs emitted {seen['events']:,} events into a {EVENT_PAGES * 4 // 1024} MiB-per-CPU perf "
        f"buffer, woken every {WAKEUP_EVENTS} samples as `addaddr run` asks, and lost {seen['lost']:,} (kernel "
        f"event_errors {counters['event_errors']:,}): every event was really written, none dropped for a full "
        "buffer (~350 ns, cheaper than a write). Timings are the kernel's mean over a run, in whole ns."
    )
    return result
