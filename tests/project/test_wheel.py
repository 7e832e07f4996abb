# SPDX-License-Identifier: MIT
"""The package as a new user gets it: the wheel, built once from a copy of the checkout, installed with
[fleet] into a fresh venv, every command run from outside the checkout, so that nothing the checkout
holds and the wheel lacks can be imported or read."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from collector.cli import main as cli
from collector.fleet.study import STUDY_SQL
from collector.kernel.program import BPF_DIR, COMPILE_ENV, OBJECT
from collector.lab.testbed import ClientPlan, Testbed
from collector.logs.reader import read_records
from tests.support.collector_process import run_command
from tests.support.paths import ADDADDR, REPO
from tests.support.replay_fixtures import scenario
from tests.support.waiting import wait_for_line

pytestmark = pytest.mark.slow
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="replay and run load the kernel program: that needs root")

BUILD_TIMEOUT = 300  # pip fetches setuptools, and [fleet] pyarrow and DuckDB, from PyPI
COMMAND_TIMEOUT = 120
# What the checkout holds but a build does not read: the build leaves its own build/ and egg-info in the copy.
NOT_BUILT_FROM = shutil.ignore_patterns(
    ".git", ".venv", "build", "*.egg-info", "__pycache__", ".hypothesis", ".pytest_cache", ".vagrant"
)
# A PYTHONPATH naming the checkout would make pip in the venv find addaddr (its egg-info) installed already,
# and the venv import the checkout's collector.
ENV = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}


def in_package(path: Path) -> str:
    """`path`, a file the checkout's collector reads at run time, as the wheel names it."""
    return path.relative_to(REPO).as_posix()


# Every file read beside the modules: the kernel program, its sources (ADDADDR_COMPILE=1 compiles them, with
# their headers) and the study's SQL.
RUNTIME_FILES = {
    in_package(STUDY_SQL),
    in_package(OBJECT),
    *(in_package(BPF_DIR / source.name) for source in BPF_DIR.iterdir() if source.suffix in (".c", ".h")),
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    scratch = tmp_path_factory.mktemp("wheel")
    source = scratch / "checkout"
    # collector/kernel/bpf, a link to ../../bpf, is copied as a link: it names the copy's bpf/.
    shutil.copytree(REPO, source, symlinks=True, ignore=NOT_BUILT_FROM)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(scratch / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        env=ENV,
    )
    assert built.returncode == 0, f"pip wheel: {built.stderr}"
    (found,) = (scratch / "dist").glob("addaddr-*.whl")
    return found


@dataclass
class Installed:
    venv: Path
    outside: Path  # the commands' working directory, outside the checkout

    def python(self, code: str) -> str:
        result = subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", code],
            cwd=self.outside,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            env=ENV,
        )
        assert result.returncode == 0, f"{code}: {result.stderr}"
        return result.stdout

    def addaddr(
        self, *args: str, status: int = 0, command: str | None = None, env: dict[str, str] = ENV
    ) -> subprocess.CompletedProcess:
        """The venv's `addaddr` (or `command`) with `args`, which must exit with `status`."""
        result = subprocess.run(
            [command or str(self.venv / "bin" / "addaddr"), *args],
            cwd=self.outside,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            env=env,
        )
        assert result.returncode == status, f"addaddr {' '.join(args)}: got exit {result.returncode}: {result.stderr}"
        return result


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Installed:
    venv = tmp_path_factory.mktemp("venv")
    # Debian's interpreter, as scripts/setup's; no --system-site-packages: the wheel's dependencies come
    # from PyPI at the pinned versions, as scripts/setup installs them.
    subprocess.run(
        ["/usr/bin/python3", "-m", "venv", "--clear", str(venv)], check=True, timeout=COMMAND_TIMEOUT, env=ENV
    )
    pip = subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "-q",
            "--disable-pip-version-check",
            "-c",
            str(REPO / "constraints.txt"),
            f"{wheel}[fleet]",
        ],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        env=ENV,
    )
    assert pip.returncode == 0, f"pip install: {pip.stderr}"
    outside = tmp_path_factory.mktemp("outside")
    assert not outside.is_relative_to(REPO), f"{outside} is inside the checkout: its collector could be imported"
    return Installed(venv, outside)


def test_the_wheel_carries_every_file_read_at_run_time(wheel):
    assert {
        "collector/fleet/study.sql",
        "collector/kernel/bpf/addaddr.bpf.o",
        "collector/kernel/bpf/addaddr.c",
    } <= RUNTIME_FILES, f"got {sorted(RUNTIME_FILES)}: the list misses what it must hold"
    with zipfile.ZipFile(wheel) as built:
        missing = sorted(RUNTIME_FILES - set(built.namelist()))
        assert not missing, f"{wheel.name} lacks {missing}: add them to [tool.setuptools.package-data]"
        assert built.read(in_package(OBJECT)) == OBJECT.read_bytes()


def test_the_wheel_carries_the_license(wheel):
    with zipfile.ZipFile(wheel) as built:
        licenses = [name for name in built.namelist() if ".dist-info/" in name and name.endswith("/LICENSE")]
        assert licenses, f"got no LICENSE in {wheel.name}'s dist-info: {built.namelist()}"
        assert built.read(licenses[0]).decode() == (REPO / "LICENSE").read_text()
        metadata = built.read(next(n for n in built.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: MIT" in metadata and "License-File: LICENSE" in metadata, metadata[:1000]


def test_the_venv_runs_the_wheel_alone(installed):
    no_bcc = subprocess.run(
        [str(installed.venv / "bin" / "python"), "-c", "import bcc"],
        capture_output=True,
        timeout=COMMAND_TIMEOUT,
        env=ENV,
    )
    assert no_bcc.returncode != 0, "the new venv can import bcc: the tests would not show the object suffices"
    where = (
        "import collector, collector.kernel.program as p, collector.fleet.study as s; "
        "print(collector.__file__, p.OBJECT, s.STUDY_SQL, sep='\\n')"
    )
    for found in map(Path, installed.python(where).split()):
        assert found.is_relative_to(installed.venv) and found.is_file(), f"the venv reads {found}, not the wheel's"
    listed = [name for name, command in cli.commands.items() if not command.hidden]
    helped = installed.addaddr("--help").stdout
    assert all(f"  {name} " in helped for name in listed), f"got {helped}; want {listed}"
    assert installed.addaddr("--version").stdout == f"addaddr, version {importlib.metadata.version('addaddr')}\n"


def test_classify_prints_a_table_and_json(installed):
    table = installed.addaddr("classify", "192.0.2.1", "8.8.8.8").stdout.splitlines()
    assert table[0].split()[:3] == ["ADDRESS", "FAMILY", "CLASS"] and len(table) == 3, table
    assert table[1].split()[:4] == ["192.0.2.1", "ipv4", "documentation", "no"], table
    assert table[2].split()[:4] == ["8.8.8.8", "ipv4", "global", "yes"], table
    rows = [json.loads(line) for line in installed.addaddr("classify", "--json", "2001:db8::1").stdout.splitlines()]
    assert [(r["address"], r["class"], r["global"]) for r in rows] == [("2001:db8::1", "documentation", False)]
    refused = installed.addaddr("classify", "not-an-address", status=1)
    assert refused.stderr.count("\n") == 1 and "not-an-address" in refused.stderr, refused.stderr


# --- the logs of a replay, read back by every command ------------------------------------------------------

MADE = scenario()
ANNOUNCED = [sent for sent in MADE.capture.sent() if not sent.echo]
# replay's last line, as far as it tells what the capture announced.
REPLAYED_ALL = f" {len(ANNOUNCED)} announcements, 0 lost"


@dataclass
class Replayed:
    installed: Installed
    capture: Path  # MADE's
    logs: Path  # the wheel's replay of it
    checkout_logs: Path  # the checkout's


@pytest.fixture(scope="module")
def replayed(installed) -> Replayed:
    if os.geteuid() != 0:
        pytest.skip("replay loads the kernel program: that needs root")
    capture = installed.outside / "scenario.pcap"
    capture.write_bytes(MADE.capture.pcap()[0])
    logs, checkout_logs = installed.outside / "logs", installed.outside / "logs-checkout"
    replay = installed.addaddr("replay", capture.name, "--log-dir", logs.name)
    assert f"{len(MADE.capture.packets)} packets, " in replay.stderr, replay.stderr
    assert REPLAYED_ALL in replay.stderr, replay.stderr
    installed.addaddr("replay", capture.name, "--log-dir", checkout_logs.name, command=ADDADDR)
    return Replayed(installed, capture, logs, checkout_logs)


def test_replay_logs_what_the_capture_announces(replayed):
    records = list(read_records(replayed.logs))
    logged = [
        (r["src"], r["sport"], r["address"], r["address_id"])
        for r in records
        if r["kind"] == "add_addr" and not r["echo"]
    ]
    assert logged == [(s.src, s.sport, s.address, s.address_id) for s in ANNOUNCED]


def test_tail_prints_every_record_as_the_checkout(replayed):
    installed = replayed.installed
    records = list(read_records(replayed.logs))
    as_json = installed.addaddr("tail", "--json", "--log-dir", str(replayed.logs)).stdout
    assert [json.loads(line)["kind"] for line in as_json.splitlines()] == [r["kind"] for r in records]
    assert as_json == installed.addaddr("tail", "--json", "--log-dir", str(replayed.logs), command=ADDADDR).stdout
    table = installed.addaddr("tail", "--log-dir", str(replayed.logs)).stdout.splitlines()
    assert [line.split()[1] for line in table] == [r["kind"] for r in records], table


def report(replayed: Replayed, *args: str, command: str | None = None) -> str:
    return replayed.installed.addaddr("report", *args, command=command).stdout


def test_report_has_the_captures_figures_as_the_checkout(replayed):
    figures = json.loads(report(replayed, "--format", "json", "--log-dir", str(replayed.logs)))
    by_client = [sent for sent in ANNOUNCED if sent.announcer == "client"]
    assert (figures["connections"], figures["announcements"], figures["server_announced"]["announcements"]) == (
        len(MADE.tokens),
        len(by_client),
        len(ANNOUNCED) - len(by_client),
    ), figures
    assert figures == json.loads(
        report(replayed, "--format", "json", "--log-dir", str(replayed.checkout_logs), command=ADDADDR)
    )
    table = report(replayed, "--log-dir", str(replayed.logs))
    assert table.startswith(f"Over the {len(MADE.tokens)} observed MPTCP connections"), table


def test_compile_builds_the_wheels_sources(replayed):
    """ADDADDR_COMPILE=1 compiles the wheel's copy of bpf/: bcc, from outside the wheel, is the one addition."""
    bcc = importlib.util.find_spec("bcc")
    if bcc is None:
        pytest.skip("bcc (scripts/setup --test) is what compiles")
    # The folder scripts/setup made to hold just a link to Debian's bcc, not Debian's whole dist-packages.
    with_bcc = {**ENV, COMPILE_ENV: "1", "PYTHONPATH": str(Path(bcc.origin).parent.parent)}
    compiled = replayed.installed.addaddr("replay", replayed.capture.name, "--log-dir", "logs-compiled", env=with_bcc)
    assert REPLAYED_ALL in compiled.stderr, compiled.stderr


def test_export_then_report_parquet_has_the_logs_figures(replayed):
    """report --parquet runs the study's SQL, which only the wheel's package data brings."""
    dataset = replayed.installed.outside / "dataset"
    exported = replayed.installed.addaddr("export", "--log-dir", str(replayed.logs), "--to", str(dataset))
    assert f"{len(MADE.tokens)} connections" in exported.stderr and any(dataset.rglob("*.parquet")), exported.stderr
    for form in ("json", "table"):
        from_logs = report(replayed, "--format", form, "--log-dir", str(replayed.logs))
        assert report(replayed, "--format", form, "--parquet", str(dataset)) == from_logs


@root_only
def test_run_collects_in_a_testbed(installed, processes):
    """The wheel's `run` attaches in a testbed, says what it relies on, logs what the kernel's MPTCP
    announces, and stops cleanly on SIGINT."""
    logs = installed.outside / "live"
    with Testbed((ClientPlan(("10.1.2.3",)),)) as bed:
        collector = subprocess.Popen(
            run_command(bed, logs, addaddr=str(installed.venv / "bin" / "addaddr")),
            stderr=subprocess.PIPE,
            text=True,
            cwd=installed.outside,
            env=ENV,
        )
        processes.append(collector)
        started = "".join(wait_for_line(collector, collector.stderr, "collecting on", 60, "'collecting on'"))
        traffic = bed.drive(1)
        collector.send_signal(signal.SIGINT)
        _, rest = collector.communicate(timeout=30)
    assert not traffic.failures, traffic.failures
    assert collector.returncode == 0, f"got exit {collector.returncode}: {started}{rest}"
    assert "kernel program relies on" in started and "stopped:" in rest, f"got {started}{rest}"
    announced = [r for r in read_records(logs) if r["kind"] == "add_addr" and not r["echo"]]
    assert {r["address"] for r in announced} == {"10.1.2.3"}, f"got {announced}"
