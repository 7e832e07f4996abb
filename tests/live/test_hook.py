# SPDX-License-Identifier: MIT
"""Sharing the ingress hook: tcx beside a stand-in for Cilium (a foreign tcx program that passes every
packet), clsact with the warnings about what runs in front of it, and what kill -9 leaves behind in
each mode."""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from collector.cli import ATTACH_MODES
from collector.kernel import tcx
from collector.kernel.clsact import ETH_P_ALL, INGRESS, has_clsact
from collector.kernel.hook import MODES
from collector.kernel.program import FUNCTION
from collector.lab.testbed import Testbed
from collector.live.run import BackgroundRun, RunOptions
from collector.logs.reader import read_records
from tests.support.collector_process import ONE_CLIENT, Collector
from tests.support.foreign_tcx import NAME as FOREIGN
from tests.support.foreign_tcx import ForeignProgram
from tests.support.our_hook import clsact_filters, ifindex, ours_attached, tcx_programs

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="attaching programs needs root"), pytest.mark.slow]

CONNECTIONS = 4
# In front of ours (0xad) at clsact ingress.
FRONT_PRIO = 1
DETACH_SECONDS = 5.0


def test_attach_modes_are_spelled_alike_in_the_cli():
    assert ATTACH_MODES == MODES


@contextmanager
def foreign_on(bed: Testbed, hook: str):
    """The foreign program on the server's interface: alone in tcx, or a direct-action clsact filter
    in front of ours; removed on exit."""
    program = ForeignProgram()
    ifname = bed.server_interfaces[0]
    link = None
    try:
        if hook == "tcx":
            link = tcx.link(program.fd, ifindex(bed.server, ifname), bed.server, first=False)
        else:
            with IPRoute(netns=bed.server) as ipr:
                index = ipr.link_lookup(ifname=ifname)[0]
                ipr.tc("add", "clsact", index)
                ipr.tc(
                    "add-filter",
                    "bpf",
                    index,
                    handle=1,
                    fd=program.fd,
                    name=FOREIGN,
                    parent=INGRESS,
                    prio=FRONT_PRIO,
                    protocol=ETH_P_ALL,
                    direct_action=True,
                )
        yield program
    finally:
        if link is not None:
            os.close(link)
        program.close()


def announced(log_dir: Path) -> int:
    return sum(r["kind"] == "add_addr" and not r["echo"] for r in read_records(log_dir))


def wait_until_detached(bed: Testbed) -> int:
    deadline = time.monotonic() + DETACH_SECONDS
    while (left := ours_attached(bed.server, bed.server_interfaces[0])) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_auto_links_first_beside_a_foreign_tcx_program_and_both_see_everything(tmp_path):
    with Testbed(ONE_CLIENT) as bed, foreign_on(bed, "tcx") as foreign:
        options = RunOptions(tuple(bed.server_interfaces), bed.server, str(tmp_path), attach="auto")
        with BackgroundRun(options) as run:
            chain = tcx_programs(bed.server, bed.server_interfaces[0])
            traffic = bed.drive(CONNECTIONS)
        after = tcx_programs(bed.server, bed.server_interfaces[0])
        foreign_saw = foreign.packets()
    records = list(read_records(tmp_path))
    ours_saw = [r for r in records if r["kind"] == "stats"][-1]["kernel"]["packets"]
    assert records[0]["attach"] == "tcx", f"got header attach {records[0].get('attach')}; want tcx on this kernel"
    assert chain == [FUNCTION, FOREIGN], f"got tcx chain {chain}; want ours first, then the foreign program"
    assert after == [FOREIGN], f"got tcx chain {after} after the run; want only the foreign program"
    assert not traffic.failures, f"got {traffic.failures}"
    want = sum(c.announced for c in traffic.connections)
    assert want == 2 * 2 * CONNECTIONS and announced(tmp_path) == run.session.announcements == want, (
        f"got {announced(tmp_path)} announcements logged; want all {want}"
    )
    # Everything we saw went on to the foreign program (which was there before and after us).
    assert foreign_saw >= ours_saw > 0, f"got foreign {foreign_saw} packets, ours {ours_saw}; want foreign >= ours"


def test_forced_clsact_warns_of_the_foreign_tcx_program_that_hides_the_traffic(tmp_path, processes):
    with Testbed(ONE_CLIENT) as bed, foreign_on(bed, "tcx") as foreign:
        collector = Collector(processes, bed, tmp_path, "--attach", "clsact")
        traffic = bed.drive(1)
        collector.stop()
        foreign_saw = foreign.packets()
    warnings = [line for line in collector.started if "warning" in line]
    assert len(warnings) == 1 and f"tcx program '{FOREIGN}'" in warnings[0] and "--attach tcx" in warnings[0], (
        f"got {collector.started}; want one warning naming the foreign tcx program and the fix"
    )
    assert "(clsact)" in collector.started[-1], f"got start line {collector.started[-1]!r}; want the mode named"
    assert not traffic.failures and foreign_saw > 0
    assert announced(tmp_path) == 0, "got announcements past a tcx program that passes everything; want none"


@pytest.mark.parametrize("mode", ["clsact", "auto"])
def test_a_direct_action_filter_in_front_is_named_in_clsact_and_bypassed_in_tcx(mode, tmp_path, processes):
    with Testbed(ONE_CLIENT) as bed, foreign_on(bed, "clsact") as foreign:
        collector = Collector(processes, bed, tmp_path, "--attach", mode)
        traffic = bed.drive(1)
        collector.stop()
        assert foreign.packets() > 0, "got the foreign filter not running"
    warnings = [line for line in collector.started if "warning" in line]
    if mode == "clsact":
        assert len(warnings) == 1 and f"filter '{FOREIGN}' at prio {FRONT_PRIO}" in warnings[0], (
            f"got {collector.started}; want one warning naming the filter in front"
        )
        assert announced(tmp_path) == 0, "got announcements past a filter that passes everything"
    else:
        assert warnings == [], f"got {warnings}; want no warning in tcx, which runs before clsact"
        assert announced(tmp_path) == sum(c.announced for c in traffic.connections) > 0


def test_kill_9_in_tcx_leaves_nothing_and_the_foreign_program_runs_on(tmp_path, processes):
    with Testbed(ONE_CLIENT) as bed, foreign_on(bed, "tcx") as foreign:
        collector = Collector(processes, bed, tmp_path, "--attach", "tcx")
        assert ours_attached(bed.server, bed.server_interfaces[0]) == 1, "got ours not attached"
        collector.stop(signal.SIGKILL)
        left = wait_until_detached(bed)
        chain = tcx_programs(bed.server, bed.server_interfaces[0])
        before = foreign.packets()
        traffic = bed.drive(1)
        assert not traffic.failures and foreign.packets() > before, "got the foreign program no longer counting"
    assert left == 0, f"got {left} of ours attached {DETACH_SECONDS} s after kill -9; want none"
    assert chain == [FOREIGN], f"got tcx chain {chain}; want the foreign program alone"


def test_kill_9_in_clsact_leaves_a_filter_that_a_tcx_run_removes(tmp_path, processes):
    with Testbed(ONE_CLIENT) as bed, foreign_on(bed, "tcx"):
        ifname = bed.server_interfaces[0]
        Collector(processes, bed, tmp_path, "--attach", "clsact").stop(signal.SIGKILL)
        assert clsact_filters(bed.server, ifname) == 1, "got no stale filter after kill -9 in clsact"
        collector = Collector(processes, bed, tmp_path, "--attach", "tcx")
        during = ours_attached(bed.server, ifname), clsact_filters(bed.server, ifname)
        collector.stop()
        left = ours_attached(bed.server, ifname)
    assert any("removed the clsact filter a previous run left" in line for line in collector.started), (
        f"got {collector.started}; want the stale filter's removal said"
    )
    assert during == (1, 0), f"got (ours, clsact filters) {during}; want the tcx link alone"
    assert left == 0, f"got {left} of ours after a clean exit"


def test_a_clsact_qdisc_is_seen_without_pyroute2():
    """A tcx run asks pyroute2 for a crashed clsact run's filter only where a clsact qdisc is."""
    with Testbed(ONE_CLIENT) as bed:
        ifname, other = bed.server_interfaces[0], "lo"
        index = ifindex(bed.server, ifname)
        before = has_clsact(index, bed.server)
        with IPRoute(netns=bed.server) as ipr:
            ipr.tc("add", "clsact", index)
        added, elsewhere = has_clsact(index, bed.server), has_clsact(ifindex(bed.server, other), bed.server)
    assert (before, added, elsewhere) == (False, True, False), (
        f"got (before, added, on lo) {(before, added, elsewhere)}; want the qdisc seen on its interface alone"
    )
