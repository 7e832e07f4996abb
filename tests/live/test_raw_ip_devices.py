# SPDX-License-Identifier: MIT
"""Devices without an Ethernet header (tun here; WireGuard, ipip, sit, gre, raw-IP modems alike): real
MPTCP over a pair of tun devices between namespaces, the server's end watched in both modes (how a link
type is told: tests/unit/test_link_layer.py)."""

from __future__ import annotations

import os

import pytest

from collector.lab.testbed import ClientPlan, Testbed
from collector.live.run import BackgroundRun, RunOptions
from collector.logs.reader import read_records

PLAN = (ClientPlan(("10.1.2.3", "192.168.7.9", "2001:db8::5", "fd12:3456::1")),)
CONNECTIONS = 3


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="namespaces and BPF need root")
@pytest.mark.parametrize("mode", ["auto", "clsact"])
def test_every_announcement_over_tun_is_logged(mode, tmp_path):
    with (
        Testbed(PLAN, tun=True) as bed,
        BackgroundRun(RunOptions(tuple(bed.server_interfaces), bed.server, str(tmp_path), attach=mode)) as run,
    ):
        traffic = bed.drive(CONNECTIONS)
    assert not traffic.failures, f"got {traffic.failures}"
    want = sum(c.announced for c in traffic.connections)
    records = list(read_records(tmp_path))
    logged = sum(r["kind"] == "add_addr" and not r["echo"] for r in records)
    assert want == 2 * CONNECTIONS * 4 and logged == run.session.announcements == want, (
        f"got {logged} announcements logged over tun; want {want}"
    )
    kernel = [r for r in records if r["kind"] == "stats"][-1]["kernel"]
    assert kernel["unparsed"] == 0 and kernel["tcp"] > 0, f"got kernel counters {kernel}"
    joins = {r["connection"] for r in records if r["kind"] == "mp_join"}
    assert len(joins) == sum(c.subflows > 0 for c in traffic.connections) > 0, "got join subflows not attributed"
