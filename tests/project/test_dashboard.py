# SPDX-License-Identifier: MIT
"""docs/grafana-dashboard.json: every query names metrics and labels that `run --metrics` serves, and
the panels tile the dashboard's grid. (scripts/render-dashboard evaluates the queries themselves with
Prometheus over a live run: too slow for the suite.)"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess

import pytest

from collector.live.metrics import families
from tests.support.paths import REPO
from tests.support.waiting import wait_for_line

RENDER = REPO / "scripts" / "render-dashboard"
DASHBOARD = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
GRID_COLUMNS = 24
# Every kernel and tracker counter the collector has, and announcements: all families and labels.
FIGURES = {
    "kernel": dict.fromkeys(
        (
            "packets",
            "not_tcp",
            "fragments",
            "unparsed",
            "tcp",
            "mptcp",
            "malformed_options",
            "events",
            "event_errors",
            "subtype_0",
        ),
        1,
    ),
    "tracker": dict.fromkeys(
        ("connections_tracked", "subflows_tracked", "connections", "attempts", "evictions", "bogus_joins", "malformed"),
        1,
    ),
    "events": 1,
    "lost": 0,
    "unwritten": 0,
    "announcements": {("ipv4", "private"): 1},
    "interface_changes": {},
}
SERVED = {sample.name: set(sample.labels) for family in families(FIGURES) for sample in family.samples}
TARGETS = [target for panel in DASHBOARD["panels"] for target in panel["targets"]]


def test_the_collector_serves_what_the_dashboard_asks_for():
    for target in TARGETS:
        names = set(re.findall(r"\baddaddr_\w+", target["expr"]))
        assert names and names <= SERVED.keys(), f"{target['expr']}: {names - SERVED.keys()} not served"
        labels = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
        grouped = {label.strip() for by in re.findall(r"by \(([^)]*)\)", target["expr"]) for label in by.split(",")}
        assert labels <= grouped, f"{target['legendFormat']}: {labels - grouped} not kept by the query"
        assert all(grouped <= SERVED[name] | {"instance", "job"} for name in names), target["expr"]


def test_every_query_is_scoped_to_the_chosen_collectors():
    for target in TARGETS:
        selectors = re.findall(r"\baddaddr_\w+(\{[^}]*\})?", target["expr"])
        assert selectors and all('instance=~"$instance"' in s for s in selectors), target["expr"]


def test_the_panels_tile_the_grid_without_overlapping():
    taken = set()
    for panel in DASHBOARD["panels"]:
        place = panel["gridPos"]
        assert place["x"] + place["w"] <= GRID_COLUMNS, panel["title"]
        cells = {
            (x, y)
            for x in range(place["x"], place["x"] + place["w"])
            for y in range(place["y"], place["y"] + place["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
    assert len({panel["id"] for panel in DASHBOARD["panels"]}) == len(DASHBOARD["panels"])


@pytest.mark.slow
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("prometheus") is None,
    reason="needs root (namespaces, BPF) and Debian's prometheus",
)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_stopped_render_leaves_no_testbed_and_no_process(signum, processes, tmp_path):
    proc = subprocess.Popen(
        [str(RENDER), "--minutes", "5", "--out", str(tmp_path / "out.png")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    processes.append(proc)
    lines = wait_for_line(proc, proc.stderr, "collector and prometheus", 180, "the test run to be up")
    testbed = re.search(r"testbed (\w+),", lines[-1]).group(1)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=90)
    assert proc.returncode != 0, f"got exit 0 from a stopped render: {stderr[-2000:]}"
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
    assert testbed not in listed, f"got the testbed {testbed} left: {listed}"
    # "--": the pattern starts with a dash, which pgrep would take for an option (exit 2, nothing found).
    running = subprocess.run(
        ["pgrep", "-f", "--", f"--netns {testbed}-srv"], capture_output=True, text=True, timeout=30
    )
    assert running.returncode == 1, f"got its collector still running, or pgrep failed: {running}"
