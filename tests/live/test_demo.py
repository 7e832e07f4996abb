# SPDX-License-Identifier: MIT
"""`addaddr demo` end to end, and that nothing of the testbed outlives a run that fails."""

from __future__ import annotations

import os
import re
import signal
import subprocess

import pytest

from collector.lab.demo import demo
from tests.support.paths import ADDADDR
from tests.support.waiting import run_to_end, wait_for_line

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="the demo needs root (namespaces, BPF)"), pytest.mark.slow]


def name_of_testbed(stderr: str) -> str:
    found = re.search(r"addaddr: testbed (\S+): ", stderr)
    assert found, f"got stderr {stderr!r}; want the demo to name its testbed"
    return found.group(1)


def namespaces_of(testbed: str) -> list[str]:
    """The namespaces of this one testbed: other tests' testbeds may come and go meanwhile."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
    return [line.split()[0] for line in listed.splitlines() if line.startswith(testbed)]


def test_report_equals_what_the_testbed_sent(tmp_path):
    result = demo(3, str(tmp_path), lambda line: None)
    report, expected = result.report, result.expected
    for key in ("connections", "connections_announcing"):
        assert report[key] == expected[key], f"got {key} {report[key]}; want {expected[key]}"
    assert report["announcements"] == expected["announced"], (
        f"got {report['announcements']} announcements; want {expected['announced']}"
    )
    for family in ("ipv4", "ipv6"):
        assert report[family]["classes"] == expected[family], (
            f"got {family} classes {report[family]['classes']}; want {expected[family]}"
        )
    assert report["lost_events"] == 0 and report["unattributed"] == 0, f"got {report}"


def test_demo_command_prints_the_report():
    result = run_to_end([ADDADDR, "demo", "--connections", "2"], timeout=300)
    assert result.returncode == 0, f"got exit {result.returncode}: {result.stderr}"
    assert "Over the 8 observed MPTCP connections, 8 of them (100%) announced" in result.stdout, result.stdout
    assert "collector attached" in result.stderr, f"got no progress on stderr: {result.stderr}"
    testbed = name_of_testbed(result.stderr)
    assert namespaces_of(testbed) == [], f"got namespaces {namespaces_of(testbed)} left after the demo"


def test_failed_demo_leaves_nothing():
    result = run_to_end([ADDADDR, "demo", "--connections", "1", "--keep-logs", "/proc/addaddr-logs"], timeout=300)
    assert result.returncode == 1 and "log dir /proc/addaddr-logs" in result.stderr, f"got {result.stderr}"
    testbed = name_of_testbed(result.stderr)  # it failed with its testbed up
    assert namespaces_of(testbed) == [], f"got namespaces {namespaces_of(testbed)} left after a failed demo"


def test_terminated_demo_leaves_nothing(processes):
    proc = subprocess.Popen(
        [ADDADDR, "demo", "--connections", "200"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    processes.append(proc)
    lines = wait_for_line(
        proc, proc.stderr, "MPTCP connections per client and family", 120, "the demo's traffic to start"
    )
    testbed = name_of_testbed("".join(lines))
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert namespaces_of(testbed) == [], f"got namespaces {namespaces_of(testbed)} left after SIGTERM"


def test_demo_without_root_makes_no_log_dir(tmp_path):
    tmp_path.chmod(0o777)  # nobody could make it, were the check not first
    logs = tmp_path / "logs"
    result = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", ADDADDR, "demo", "--keep-logs", str(logs)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "needs root" in result.stderr, f"got {result.returncode}: {result.stderr}"
    assert not logs.exists(), "got a log dir made before the check"
