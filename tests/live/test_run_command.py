# SPDX-License-Identifier: MIT
"""`addaddr run` as a user runs it: a real process, its filter among others', its errors."""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector.kernel.clsact import ETH_P_ALL, FILTER_NAME, INGRESS
from collector.lab.testbed import Testbed
from collector.logs.reader import read_records
from tests.support.collector_process import ONE_CLIENT, Collector, announcements
from tests.support.our_hook import ours_attached
from tests.support.paths import ADDADDR
from tests.support.waiting import wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="attaching filters needs root")

FOREIGN_PRIO = 1000  # after ours (0xad): it only runs if ours lets packets go on
# Someone else's program (this kernel has no matchall or gact to stand in): counts and passes.
FOREIGN_SOURCE = r"""
#include <uapi/linux/pkt_cls.h>
BPF_ARRAY(seen, u64, 1);
int foreign(struct __sk_buff *skb)
{
    int zero = 0;
    u64 *count = seen.lookup(&zero);
    if (count)
        __sync_fetch_and_add(count, 1);
    return TC_ACT_OK;
}
"""


def tc(bed: Testbed, *args: str) -> str:
    return subprocess.run(["tc", "-n", bed.server, *args], capture_output=True, text=True, check=True).stdout


def our_filters(bed: Testbed) -> int:
    shown = tc(bed, "filter", "show", "dev", bed.server_interfaces[0], "ingress")
    return len(re.findall(rf"handle 0xadd {FILTER_NAME}\b", shown))


class ForeignFilter:
    def __init__(self, bed: Testbed):
        from bcc import BPF
        from pyroute2 import IPRoute

        self.bpf = BPF(text=FOREIGN_SOURCE)
        fd = self.bpf.load_func("foreign", BPF.SCHED_CLS).fd
        with IPRoute(netns=bed.server) as ipr:
            index = ipr.link_lookup(ifname=bed.server_interfaces[0])[0]
            ipr.tc("add", "clsact", index)
            ipr.tc(
                "add-filter",
                "bpf",
                index,
                handle=1,
                fd=fd,
                name="foreign",
                parent=INGRESS,
                prio=FOREIGN_PRIO,
                protocol=ETH_P_ALL,
                direct_action=True,
            )

    def packets(self) -> int:
        return self.bpf["seen"][0].value


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["auto", "clsact"])
def test_foreign_filter_keeps_running_and_stays(mode, bed, tmp_path, processes):
    iface = bed.server_interfaces[0]
    foreign = ForeignFilter(bed)
    collector = Collector(processes, bed, tmp_path, "--attach", mode)
    before = foreign.packets()
    traffic = bed.drive(1)
    during = foreign.packets()
    assert collector.stop() == 0, f"got exit {collector.proc.returncode}: {collector.stderr}"
    assert traffic.connections and not traffic.failures, f"got {traffic.failures}"
    assert during > before, f"got foreign filter packets {before} -> {during}; want it to keep counting"
    assert our_filters(bed) == 0, "got our filter still attached after exit; want it removed"
    shown = tc(bed, "filter", "show", "dev", iface, "ingress")
    assert f"pref {FOREIGN_PRIO} bpf" in shown and "foreign" in shown, f"got {shown!r}; want the foreign filter kept"
    assert "clsact" in tc(bed, "qdisc", "show", "dev", iface), "got clsact removed; want the one we found kept"
    bed.drive(1)
    assert foreign.packets() > during, "got the foreign filter no longer running after we left"


@pytest.mark.slow
def test_kill_9_leaves_one_filter_that_the_next_run_replaces(bed, tmp_path, processes):
    """In clsact; tests/live/test_hook.py has kill -9 in tcx, which leaves nothing."""
    Collector(processes, bed, tmp_path, "--attach", "clsact").stop(signal.SIGKILL)
    assert our_filters(bed) == 1, f"got {our_filters(bed)} filters after kill -9; want the stale one"
    second = Collector(processes, bed, tmp_path, "--attach", "clsact")
    assert our_filters(bed) == 1, f"got {our_filters(bed)} filters; want exactly one of ours"
    assert any("replaced" in line for line in second.started), f"got {second.started}; want the stale one reported"
    assert second.stop() == 0, f"got exit {second.proc.returncode}: {second.stderr}"
    assert our_filters(bed) == 0, "got our filter left after a clean exit"


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, says",
    [
        (["--iface", "nosuch0"], "no interface 'nosuch0'"),
        (["--iface", "lo", "--netns", "addaddr-no-such-ns"], "no network namespace 'addaddr-no-such-ns'"),
        (["--iface", "lo", "--log-dir", "/proc/addaddr"], "log dir /proc/addaddr"),
        (["--iface", "lo", "--iface", "lo"], "--iface lo given twice"),
    ],
    ids=["no-such-interface", "no-such-namespace", "log-dir-not-writable", "same-interface-twice"],
)
def test_run_fails_with_one_line(args, says, tmp_path):
    """And before making anything: no log dir is left behind."""
    logs = tmp_path / "logs"
    if "--log-dir" not in args:
        args = [*args, "--log-dir", str(logs)]
    result = subprocess.run([ADDADDR, "run", *args], capture_output=True, text=True, timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, f"got exit {result.returncode}; want 1"
    assert len(lines) == 1 and says in lines[0], f"got {lines}; want one line with {says!r}"
    assert not logs.exists(), "got a log dir made before the check failed"


def test_run_refuses_without_root(tmp_path):
    result = subprocess.run(
        [
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            ADDADDR,
            "run",
            "--iface",
            "lo",
            "--log-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "needs root" in result.stderr, f"got {result.returncode}: {result.stderr}"


def low_memlock() -> None:
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (64 << 10, 64 << 10))


@pytest.mark.parametrize("dropped, says", [("ipc_lock", "ulimit -l unlimited"), ("perfmon", "CapabilityBoundingSet")])
def test_root_with_a_bounded_set_is_told_what_helps_not_sudo(dropped, says, tmp_path):
    """Root already (a unit's or a container's bounded set): sudo cannot help; the limit or the set can."""
    bounded = ["setpriv", f"--bounding-set=-{dropped}", "--inh-caps=-all", "--"]
    result = subprocess.run(
        [*bounded, ADDADDR, "run", "--iface", "lo", "--log-dir", str(tmp_path / "logs")],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=low_memlock,
    )
    assert result.returncode == 1 and result.stderr.count("\n") == 1, f"got {result.returncode}: {result.stderr!r}"
    assert f"CAP_{dropped.upper()}" in result.stderr and says in result.stderr and "sudo" not in result.stderr, (
        result.stderr
    )


@pytest.mark.slow
def test_metrics_served_and_logs_anonymized(bed, tmp_path, processes):
    key, logs = tmp_path / "key", tmp_path / "logs"
    collector = Collector(processes, bed, logs, "--anonymize-key", str(key), "--metrics", "127.0.0.1:0")
    url = next(re.search(r"metrics at (\S+)", line).group(1) for line in collector.started if "metrics at" in line)
    traffic = bed.drive(2)
    want = len(traffic.connections)  # each connection announced 10.1.2.3 once: private

    def private_announcements() -> bool:
        scraped = urllib.request.urlopen(url, timeout=5).read().decode()
        private = [
            sample.value
            for family in text_string_to_metric_families(scraped)
            for sample in family.samples
            if sample.name == "addaddr_announcements_total" and sample.labels == {"family": "ipv4", "class": "private"}
        ]
        return private == [want]

    # Past the watermark and the next refresh of the published figures.
    wait_until(private_announcements, 30, f"{want} private announcements in the metrics")
    assert collector.stop() == 0, f"got exit {collector.proc.returncode}: {collector.stderr}"
    assert oct(key.stat().st_mode & 0o777) == "0o600", f"got key mode {oct(key.stat().st_mode)}"
    assert next(read_records(logs))["anonymization"] == "crypto-pan", "want the header to name the scheme"
    records = [r for r in read_records(logs) if r["kind"] == "add_addr"]
    real = {"10.1.2.3", "2001:db8::5"}
    assert records and not {r["address"] for r in records} & real, "got a real announced address in the logs"
    assert {r["class"] for r in records} == {"private", "documentation"}, "got classes of the anonymized addresses"
    assert not {r["src"] for r in records} & {link.client4 for link in bed.links}, "got a real subflow address"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["tcx", "clsact"])
def test_run_as_user_keeps_collecting_without_privilege(mode, bed, reachable_dir, processes):
    logs = reachable_dir
    collector = Collector(processes, bed, logs, "--user", "nobody", "--attach", mode)
    pid = collector.proc.pid
    status = Path(f"/proc/{pid}/status").read_text()
    traffic = bed.drive(2)
    want = 2 * len(traffic.connections)
    wait_until(lambda: announcements(logs) >= want, 30, f"{want} announcements written by the dropped collector")
    attached = ours_attached(bed.server, bed.server_interfaces[0])
    assert collector.stop() == 0, f"got exit {collector.proc.returncode}: {collector.stderr}"
    assert "Uid:\t65534" in status and "CapEff:\t0000000000000000" in status, f"got {status}"
    assert attached == 1, f"got {attached} of ours attached while the dropped collector ran; want 1"
    left = ours_attached(bed.server, bed.server_interfaces[0])
    if mode == "clsact":
        assert "filter stays" in collector.stderr and left == 1, f"got {collector.stderr}; want the left filter named"
    else:  # the link went with the process's fd: closing it needs no privilege
        assert "filter stays" not in collector.stderr and left == 0, f"got {left} left: {collector.stderr}"
    assert announcements(logs) == want, f"got {announcements(logs)} announcements logged after the drop; want {want}"
    assert {p.stat().st_uid for p in logs.iterdir()} == {65534}, "got log files not handed to nobody"


def test_run_as_unknown_user_fails_at_once(tmp_path):
    result = subprocess.run(
        [ADDADDR, "run", "--iface", "lo", "--log-dir", str(tmp_path), "--user", "nosuchuser"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1 and "no user 'nosuchuser'" in result.stderr, f"got {result.stderr}"


@pytest.mark.parametrize("pages", ["3", "131072", "1073741824"])
def test_perf_pages_must_be_a_bounded_power_of_two(pages, tmp_path):
    """A huge --perf-pages once started collecting with no buffer: refused before anything is made."""
    from click.testing import CliRunner

    from collector.cli import main

    logs = tmp_path / "logs"
    result = CliRunner().invoke(main, ["run", "--iface", "lo", "--log-dir", str(logs), "--perf-pages", pages])
    assert result.exit_code == 2
    assert "is not a power of two up to 65536 (256 MiB per CPU)" in result.output
    assert not logs.exists()


@pytest.mark.slow
def test_namespace_deleted_under_the_run_still_drains_and_writes_final_stats(tmp_path):
    """`ip netns del` under a live collector: stopping it once raised from detach and skipped the
    drain and the final records."""
    from collector.live.run import BackgroundRun, RunOptions

    logs = tmp_path / "logs"
    with (
        Testbed(ONE_CLIENT) as bed,
        BackgroundRun(RunOptions(tuple(bed.server_interfaces), bed.server, str(logs))) as run,
    ):
        traffic = bed.drive(4)
        subprocess.run(["ip", "netns", "del", bed.server], check=True, timeout=10)
    records = list(read_records(logs))
    assert not traffic.failures
    assert records[-1]["kind"] == "stats", f"last record {records[-1]['kind']}; want the final stats"
    assert run.session.announcements == sum(c.announced for c in traffic.connections) > 0
    assert sum(r["kind"] == "add_addr" and not r["echo"] for r in records) == run.session.announcements


@pytest.mark.parametrize(
    "pages, cpus, ram_gib, want",
    [
        (
            65536,
            64,
            8,
            "65536 pages on each of 64 CPUs lock 16384 MiB, more than a quarter of this host's 8192 MiB "
            "of RAM: choose at most 4096",
        ),
        (16384, 2, 0.25, "choose at most 4096"),
        # The bound counts what the buffers lock (collector.kernel.program.locked_bytes): each CPU's ring has a
        # header page too, so 8192 pages on 2 CPUs lock 64 MiB and 8 KiB, past a quarter of 256 MiB.
        (8192, 2, 0.25, "choose at most 4096"),
        (4096, 2, 0.25, None),
        (4096, 2, 24, None),
        (65536, 2, 24, None),
    ],
)
def test_perf_pages_bounded_by_a_quarter_of_ram_over_all_cpus(pages, cpus, ram_gib, want):
    from collector.live.run import perf_pages_problem

    got = perf_pages_problem(pages, cpus, int(ram_gib * (1 << 30)))
    assert (got is None) if want is None else (got is not None and want in got), f"got {got!r}; want {want!r}"


@pytest.mark.parametrize("netns", ["../../proc/1/ns/net", "", ".", "..", "a/b"])
def test_a_namespace_name_that_is_a_path_is_a_usage_error(netns, tmp_path):
    """Joined to /run/netns, a path would open any file, and "" or "." the directory itself (which gave
    'cannot link at tcx ingress (setns: Invalid argument)')."""
    result = subprocess.run(
        [ADDADDR, "run", "--iface", "lo", "--netns", netns, "--log-dir", str(tmp_path / "logs")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "is not a namespace name" in result.stderr, (
        f"got exit {result.returncode}: {result.stderr}"
    )
    assert not (tmp_path / "logs").exists(), "got a log dir made before the check"
