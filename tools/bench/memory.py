# SPDX-License-Identifier: MIT
"""memory: peak memory of `addaddr replay` while a capture opens 1,000,000 distinct MPTCP connections
(SYN, SYN/ACK and third ACK each, none closed, all within the idle timeout), against a capture that
opens just as many as the connection state holds. The same anonymous memory shows the state bounded
by its cap; the final `stats` record counts the evictions that kept it there, and the connections
ended at shutdown are those it held at the end.

Both the peak RSS (ru_maxrss, the command's own: measure.run_alone) and the peak anonymous RSS
(sampled) are shown: replay maps the capture, and the pages of the mapping it has read count in its
RSS until it exits. So the whole RSS grows with the capture's size (7.6 times the packets here) and
has no target; the anonymous one is the state's bound.

A run past the cap holds about 12 MiB more than one just at it, once, from 44,000 connections past the
cap on: evictions churn the tracker's two dicts, and CPython sizes a dict it reallocates by three times
what it holds (131,072: 2**19 slots) where growing to the cap had left 2**18. It stays there however
many follow, so the target compares a million connections with 200,000, and the ratio to a run just at
the cap is shown beside it. Those tables are reallocated every 218,000 connections or so;
session.map_large_blocks keeps glibc from moving them into its heap, whose holes had added 10-20 MiB
more, varying with the layout. The end of a run writes what is still tracked a batch at a time
(session.Session.close): the peak is the state's, not that of the shutdown's records.
"""

from __future__ import annotations

import shutil
import tempfile

from collector.logs.reader import read_records
from collector.pipeline.connections import DEFAULT_MAX_ENTRIES

from . import ADDADDR, captures
from .measure import QUIET, Cost, Result, Row, ratio, sample
from .measure import run_alone as cost_of

# A connection takes two entries of the state: itself and its initial subflow.
FILLS_CAP = DEFAULT_MAX_ENTRIES // 2
# Past the step below (from 44,000 connections past the cap on), as a tracker that has run a while at
# its cap is. The bound is that nothing grows from there, however many connections follow.
PAST_CAP = 200_000
RSS_LIMIT = 1.1


def replayed(connections: int) -> tuple[Cost, dict, int]:
    """The cost of one replay, the tracker counters of its last `stats` record, and the connections
    it still held at the end (ended with reason "shutdown")."""
    capture, _ = captures.made(connections, handshakes_only=True)
    logs = tempfile.mkdtemp(prefix="addaddr-memory-")
    try:
        cost = cost_of([ADDADDR, "replay", str(capture), "--log-dir", logs], anon=True, **QUIET)
        stats, held = None, 0
        for record in read_records(logs):
            if record["kind"] == "stats":
                stats = record
            elif record["kind"] == "connection_end" and record["reason"] == "shutdown":
                held += 1
    finally:
        shutil.rmtree(logs)
    return cost, stats["tracker"], held


def run(quick: bool) -> Result:
    connections = 300_000 if quick else 1_000_000
    result = Result("memory")
    cost, tracker, held = replayed(connections)
    past_cap, _, _ = replayed(PAST_CAP)
    at_cap, _, _ = replayed(FILLS_CAP)
    past = f"{connections:,} vs {PAST_CAP:,} connections"
    versus = f"{connections:,} vs {FILLS_CAP:,} connections"
    result.rows += [
        Row(
            f"peak anonymous RSS (MiB), {past}",
            sample([cost.max_anon_mib]),
            sample([past_cap.max_anon_mib]),
            "past the cap",
            ratio([cost.max_anon_mib], [past_cap.max_anon_mib]),
            RSS_LIMIT,
            digits=1,
        ),
        Row(
            f"peak anonymous RSS (MiB), {versus}",
            sample([cost.max_anon_mib]),
            sample([at_cap.max_anon_mib]),
            "at the cap",
            ratio([cost.max_anon_mib], [at_cap.max_anon_mib]),
            digits=1,
        ),
        Row(
            f"peak RSS, mapped capture included (MiB), {versus}",
            sample([cost.max_rss_mib]),
            sample([at_cap.max_rss_mib]),
            "at the cap",
            ratio([cost.max_rss_mib], [at_cap.max_rss_mib]),
            digits=1,
        ),
        Row(f"connections held at the end (cap {FILLS_CAP:,})", sample([held]), limit=FILLS_CAP),
        Row(
            "evictions counted (≥ connections past the cap)",
            sample([tracker["evictions"]]),
            limit=connections - FILLS_CAP,
            better="higher",
        ),
    ]
    result.notes.append(
        f"{'--quick: ' if quick else ''}{connections:,} connections ({3 * connections:,} packets) against "
        f"{PAST_CAP:,}, past the cap and its step, and {FILLS_CAP:,}, which fill the {DEFAULT_MAX_ENTRIES:,} "
        "entries exactly; one replay each (minutes apiece), and the peak anonymous RSS varies between "
        "replays by some 5%: a ratio within that of its target may land on either side of it; tokens are "
        "32 bits, so a few of a million share one."
    )
    return result
