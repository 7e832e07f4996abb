# SPDX-License-Identifier: MIT
"""`addaddr demo`: the whole system on real kernel MPTCP, in a minute, on any MPTCP-capable host.

A namespace testbed (collector/lab/testbed.py) whose clients announce addresses of every class the study
tabulated; the collector at the server's ingress; traffic; then the report of what was collected,
next to what the testbed knows it sent.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from collector.addresses.classify import classify
from collector.errors import CollectorError
from collector.lab.testbed import DEFAULT_PLANS, Testbed, Traffic
from collector.live.run import BackgroundRun, RunOptions
from collector.live.signals import unwinding
from collector.report.figures import report


@dataclass
class DemoResult:
    """What `addaddr demo` found: the report of the logs, the testbed's traffic, and the figures the
    report must show (expected_figures)."""

    report: dict
    traffic: Traffic
    expected: dict


def expected_figures(traffic: Traffic) -> dict:
    """What the report must say, from the testbed's own account of the traffic."""
    classes = {"ipv4": Counter(), "ipv6": Counter()}
    for connection in traffic.connections:
        for address in DEFAULT_PLANS[connection.client].announce:
            c = classify(address)
            classes[c.family][c.address_class] += 1
    return {
        "connections": len(traffic.connections),
        "connections_announcing": sum(1 for c in traffic.connections if c.announced),
        "announced": sum(c.announced for c in traffic.connections),
        "ipv4": dict(classes["ipv4"]),
        "ipv6": dict(classes["ipv6"]),
    }


def demo(connections: int, log_dir: str | None, progress: Callable[[str], None]) -> DemoResult:
    """Testbed up, collector attached, `connections` per client and family, report; all torn down."""
    # SIGTERM and SIGHUP unwind like Ctrl-C, so the testbed is removed either way.
    with unwinding(), tempfile.TemporaryDirectory(prefix="addaddr-demo-") as scratch, Testbed() as bed:
        logs = log_dir or scratch
        progress(f"testbed {bed.name}: server and {len(bed.clients)} clients, real kernel MPTCP")
        traffic = _collect_while(bed, logs, connections, progress)
        progress(f"report of {logs}")
        return DemoResult(report([logs]), traffic, expected_figures(traffic))


def _collect_while(bed: Testbed, log_dir: str, connections: int, progress) -> Traffic:
    with BackgroundRun(RunOptions(tuple(bed.server_interfaces), bed.server, log_dir)):
        progress(f"collector attached at the ingress of {', '.join(bed.server_interfaces)}")
        progress(f"{connections} MPTCP connections per client and family...")
        traffic = bed.drive(connections)
        if traffic.failures:
            raise CollectorError(f"testbed traffic failed: {traffic.failures[0]}")
        progress(f"{len(traffic.connections)} connections done; stopping the collector")
    return traffic
