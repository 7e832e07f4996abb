"""`addaddr demo` end to end, and that nothing of the testbed outlives a run that fails."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector.demo import demo
from collector.testbed import NAME_PREFIX

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the demo needs root (namespaces, BPF)")

ADDAADDR = str(Path(sys.executable).with_name("addaddr"))


def our_namespaces() -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split("\n")
    return [line.split()[0] for line in listed if line.startswith(NAME_PREFIX)]


def test_report_equals_what_the_testbed_sent(tmp_path):
    result = demo(3, str(tmp_path), lambda line: None)
    report, expected = result.report, result.expected
    for key in ("connections", "connections_announcing"):
        assert report[key] == expected[key], f"got {key} {report[key]}; want {expected[key]}"
    assert report["announcements"] == expected["announced"], \
        f"got {report['announcements']} announcements; want {expected['announced']}"
    for family in ("ipv4", "ipv6"):
        assert report[family]["classes"] == expected[family], \
            f"got {family} classes {report[family]['classes']}; want {expected[family]}"
    assert report["lost_events"] == 0 and report["unattributed"] == 0, f"got {report}"


def test_demo_command_prints_the_report():
    before = set(our_namespaces())
    result = subprocess.run([ADDAADDR, "demo", "--connections", "2"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"got exit {result.returncode}: {result.stderr}"
    assert "Over the 8 observed MPTCP connections, 8 of them (100%) announced" in result.stdout, result.stdout
    assert "collector attached" in result.stderr, f"got no progress on stderr: {result.stderr}"
    assert set(our_namespaces()) == before, "got testbed namespaces left after the demo"


def test_failed_demo_leaves_nothing():
    before = set(our_namespaces())
    result = subprocess.run([ADDAADDR, "demo", "--connections", "1", "--keep-logs", "/proc/addaddr-logs"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "log dir /proc/addaddr-logs" in result.stderr, f"got {result.stderr}"
    assert set(our_namespaces()) == before, "got testbed namespaces left after a failed demo"


def test_terminated_demo_leaves_nothing():
    before = set(our_namespaces())
    proc = subprocess.Popen([ADDAADDR, "demo", "--connections", "200"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    while "collector attached" not in (line := proc.stderr.readline()):
        assert line, "got the demo ending before its collector attached"
    time.sleep(0.2)  # traffic is flowing
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert set(our_namespaces()) == before, "got testbed namespaces left after SIGTERM"


def test_demo_without_root_makes_no_log_dir(tmp_path):
    tmp_path.chmod(0o777)  # nobody could make it, were the check not first
    logs = tmp_path / "logs"
    result = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", ADDAADDR, "demo",
                             "--keep-logs", str(logs)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "needs root" in result.stderr, f"got {result.returncode}: {result.stderr}"
    assert not logs.exists(), "got a log dir made before the check"
