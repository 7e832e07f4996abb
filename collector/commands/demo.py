# SPDX-License-Identifier: MIT
"""`addaddr demo`: real MPTCP clients in namespaces, the collector at the server, then the report."""

import os

from collector.commands import console
from collector.errors import CollectorError
from collector.lab.demo import demo
from collector.report.formats import render


def _counts(classes: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(classes.items(), key=lambda kv: -kv[1]))


def run_demo(connections: int, keep_logs: str | None) -> int:
    """`addaddr demo`: a testbed's traffic collected and reported, then what the testbed made, to
    compare; needs root."""
    if os.geteuid() != 0:
        raise CollectorError("addaddr demo needs root (namespaces, BPF): try sudo")
    result = demo(connections, keep_logs, console.message)
    console.data(render(result.report, "table"))
    expected = result.expected
    console.data(
        f"\nThe testbed made {expected['connections']} connections, "
        f"{expected['connections_announcing']} announcing, {expected['announced']} announcements "
        f"(IPv4 classes {_counts(expected['ipv4'])}; IPv6 classes {_counts(expected['ipv6'])})."
    )
    return console.EXIT_OK
