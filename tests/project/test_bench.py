# SPDX-License-Identifier: MIT
"""Smoke test of scripts/bench: `--quick` completes and writes valid JSON. The figures themselves are
not judged here (the machine is shared and noisy); scripts/bench prints which targets they meet."""

import json
import os
import re
import shutil
import signal
import subprocess

import pytest

from tests.support.paths import REPO
from tests.support.waiting import run_to_end, wait_for_line

BENCH = REPO / "scripts" / "bench"
BENCHMARKS = {"kernel", "overhead", "pipeline", "replay", "report", "export", "memory", "logs", "anonymize", "startup"}

pytestmark = [
    pytest.mark.slow,
    # `scripts/bench --quick` takes about two minutes on a quiet machine.
    pytest.mark.timeout(900),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (BPF programs, network namespaces)"),
    pytest.mark.skipif(
        not all(map(shutil.which, ("tshark", "tcpdump", "tcpreplay"))),
        reason="needs tshark, tcpdump and tcpreplay (scripts/setup --test)",
    ),
]


def test_quick_run_writes_every_benchmark_as_json(tmp_path):
    out = tmp_path / "bench.json"
    # About two minutes on a quiet machine; the margin is for a loaded one (CI shares its cores), inside
    # the module's 900 s pytest-timeout.
    run = run_to_end([str(BENCH), "--quick", "--json", str(out)], timeout=840)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "## Performance" in run.stdout
    figures = json.loads(out.read_text())
    assert set(figures) == BENCHMARKS
    for name, result in figures.items():
        assert result["figures"], f"{name} has no figures"
        for figure in result["figures"]:
            assert figure["ours"]["median"] is not None, (name, figure["figure"])
        assert any(figure["ratio"] is not None for figure in result["figures"]), f"{name} has no ratio"


def namespaces() -> set[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
    return {line.split()[0] for line in listed.splitlines()}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stopped_bench_removes_its_namespaces(signum, processes):
    proc = subprocess.Popen(
        [str(BENCH), "--quick", "--only", "pipeline"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    processes.append(proc)
    lines = wait_for_line(proc, proc.stderr, "bench: namespaces", 300, "the bench to make its namespaces")
    made = set(re.search(r"bench: namespaces (\S+) and (\S+)", lines[-1]).groups())
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "interrupted" in stderr, f"got exit {proc.returncode}: {stderr[-2000:]}"
    assert not made & namespaces(), f"got {made & namespaces()} left after {signal.Signals(signum).name}"
