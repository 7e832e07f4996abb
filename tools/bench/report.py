# SPDX-License-Identifier: MIT
"""report: records/s and peak RSS of `addaddr report --format json` over two logs of the same
connections, one with five times the records of the other (each connection announcing its
addresses again and again, as retransmissions do): the same peak RSS shows that memory follows the
connections, not the records.

The logs are written with the collector's LogWriter, records as docs/records.md has them: per
connection a `connection`, three announcements by the client each echoed by the server (repeated
seven times in the larger log), one `mp_join`, one `connection_end`, and a `stats` record every
10,000 records, as a live collector writes them.
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from collector.addresses.classify import classify
from collector.logs.writer import LogWriter
from tests.support.replay_fixtures import SERVER, SERVER_PORT

from . import ADDADDR
from .captures import ANNOUNCED, client_of
from .measure import Result, Row, ratio, rounds, sample
from .measure import run_alone as cost_of

RECORDS_LIMIT = 500_000
RSS_LIMIT = 1.1  # "the same peak RSS", give or take the noise of the allocator
ANNOUNCED_PER_CONNECTION = 3
# Announcement rounds per connection in the two logs: 9 and 45 records a connection.
REPEATS = (1, 7)
STATS_EVERY = 10_000
WRITE_BATCH = 1_000
T0 = 1_700_000_000.0
HEADER = {
    "host": socket.gethostname(),
    "interfaces": ["bench0"],
    "netns": None,
    "collector_version": "bench",
    "started": T0,
    "source": "live",
}


def _classes(address: str) -> dict:
    c = classify(address)
    return {
        "family": c.family,
        "class": c.address_class,
        "global": c.is_global,
        "embedded_ipv4": None if c.embedded_ipv4 is None else c.embedded_ipv4.as_json(),
    }


def log_records(connections: int, repeats: int) -> Iterator[dict]:
    """The records of the log, as a live collector writes them (headers left out)."""
    classes = {address: _classes(address) for address in ANNOUNCED}
    written = 0
    for i in range(connections):
        time = T0 + i * 0.001
        token = (i * 2_654_435_761) & 0xFFFF_FFFF
        client, port = client_of(i)
        key = {"src": client, "sport": port, "dst": SERVER, "dport": SERVER_PORT, "ifindex": 2, "connection": token}
        back = key | {"src": SERVER, "sport": SERVER_PORT, "dst": client, "dport": port}
        records = [
            {
                "kind": "connection",
                "time": time,
                "connection": token,
                "version": 1,
                "client": client,
                "client_port": port,
                "server": SERVER,
                "server_port": SERVER_PORT,
                "client_key": i,
                "server_key": i ^ 0x5A5A_5A5A_5A5A_5A5A,
            }
        ]
        for _ in range(repeats):
            for n in range(ANNOUNCED_PER_CONNECTION):
                address = ANNOUNCED[(i + n) % len(ANNOUNCED)]
                add_addr = {
                    "kind": "add_addr",
                    "time": time,
                    "subflow": "initial",
                    "version": 1,
                    "address_id": n + 1,
                    "address": address,
                    "port": None,
                    **classes[address],
                }
                records.append(key | add_addr | {"announcer": "client", "echo": False, "hmac": bytes(8)})
                records.append(back | add_addr | {"announcer": "server", "echo": True, "hmac": None})
        records.append(
            key | {"kind": "mp_join", "time": time, "token": token, "address_id": 2, "backup": False, "form": "syn"}
        )
        records.append({"kind": "connection_end", "time": time, "connection": token, "reason": "closed"})
        for record in records:
            yield record
            written += 1
            if written % STATS_EVERY == 0:
                yield {
                    "kind": "stats",
                    "time": time,
                    "kernel": {"packets": written},
                    "tracker": {},
                    "events": written,
                    "announcements": written,
                    "lost": 0,
                    "unwritten": 0,
                }
                written += 1


def write_log(log_dir: Path, connections: int, repeats: int) -> int:
    """Writes the log; returns its record count (headers left out)."""
    written = 0
    records = log_records(connections, repeats)
    # fsync once per file, not per 1,000 records: writing the log is not what is measured. Batches, as
    # a live collector's session writes them: one write() each, a third of the CPU of one a record.
    with LogWriter(log_dir, HEADER, sync_records=1 << 30, sync_interval=3600.0) as writer:
        while batch := list(islice(records, WRITE_BATCH)):
            writer.write_many(batch)
            written += len(batch)
    return written


def run(quick: bool) -> Result:
    count, connections = (1, 20_000) if quick else (3, 120_000)
    result = Result("report")
    with tempfile.TemporaryDirectory(prefix="addaddr-report-") as scratch:
        logs = [Path(scratch, f"x{repeats}") for repeats in REPEATS]
        sizes = [write_log(log, connections, repeats) for log, repeats in zip(logs, REPEATS)]

        def report(log: Path):
            return lambda: cost_of(
                [ADDADDR, "report", "--log-dir", str(log), "--format", "json"], anon=True, stdout=subprocess.DEVNULL
            )

        small, large = rounds(count, report(logs[0]), report(logs[1]))
    result.rows.append(
        Row(
            f"records/s over {sizes[1]:,} records",
            sample([sizes[1] / c.wall for c in large]),
            limit=RECORDS_LIMIT,
            better="higher",
        )
    )
    versus = f"{sizes[1]:,} vs {sizes[0]:,} records"
    for figure, memory in (
        (f"peak anonymous RSS, all processes (MiB), {versus}", lambda c: c.max_anon_mib),
        (f"peak RSS, largest process (MiB), {versus}", lambda c: c.max_rss_mib),
    ):
        mine, fewer = [memory(c) for c in large], [memory(c) for c in small]
        result.rows.append(
            Row(figure, sample(mine), sample(fewer), f"{sizes[0]:,} records", ratio(mine, fewer), RSS_LIMIT, digits=1)
        )
    result.notes.append(
        f"{'--quick, smaller logs: ' if quick else ''}both logs hold the same {connections:,} connections "
        f"({connections * ANNOUNCED_PER_CONNECTION:,} distinct (connection, address) pairs); {count} round(s), "
        "each command timed whole, start-up included. The report reads big logs with a process per part of a file: its "
        "memory is that of all of them together (RssAnon summed, sampled every 10 ms), and the ru_maxrss of "
        "the largest (the command's own, not the benchmark's)."
    )
    return result
