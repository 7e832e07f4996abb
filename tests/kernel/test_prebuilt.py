# SPDX-License-Identifier: MIT
"""The kernel program built ahead (bpf/addaddr.bpf.o): built from bpf/ byte for byte, read by userspace
as bpf/event.h lays it out, behaving as the bcc build of the same source, and refusing clearly what the
kernel lacks. The wheel that ships it: tests/project/test_wheel.py."""

from __future__ import annotations

import ctypes
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.errors import CollectorError
from collector.kernel.event import MptcpEvent
from collector.kernel.libbpf import PROG_TYPE_SCHED_CLS, BpfObject, Features, _check_kernel, library
from collector.kernel.program import OBJECT, CaptureCounters, CaptureProgram
from collector.kernel.testrun import TestRunner
from tests.support import fuzzing
from tests.support.paths import ADDADDR, REPO
from tests.support.replay_fixtures import scenario

EVENT_H = REPO / "bpf" / "event.h"
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="loading BPF programs needs root")


def test_object_is_built_from_the_sources_byte_for_byte(tmp_path):
    assert shutil.which("clang-14"), "clang-14 is missing: scripts/setup --test installs it"
    rebuilt = tmp_path / "addaddr.bpf.o"
    subprocess.run([str(REPO / "scripts" / "build-bpf"), str(rebuilt)], check=True, capture_output=True)
    assert rebuilt.read_bytes() == OBJECT.read_bytes(), (
        f"{OBJECT} is not what bpf/ builds to: run scripts/build-bpf and commit the object"
    )


# --- bpf/event.h and the ctypes structs ---------------------------------------------------------------

_BITS = {ctypes.c_uint8: 8, ctypes.c_uint16: 16, ctypes.c_uint32: 32, ctypes.c_uint64: 64}


def header_layout(text: str, struct: str) -> list[tuple[str, int, int]]:
    """(name, bits, count) for each field of `struct` in a C header of __uN fields and N-sized arrays."""
    defines = dict(re.findall(r"#define (\w+) (\d+)", text))
    body = re.search(rf"struct {struct} \{{(.*?)\}};", text, re.S).group(1)
    return [
        (name, int(bits), int(defines.get(count, count)) if count else 1)
        for bits, name, count in re.findall(r"^\s*__u(8|16|32|64) (\w+)(?:\[(\w+)\])?;", body, re.M)
    ]


def ctypes_layout(structure: type[ctypes.Structure]) -> list[tuple[str, int, int]]:
    layout = []
    for name, ctype in structure._fields_:
        count = getattr(ctype, "_length_", 1)
        layout.append((name, _BITS[ctype._type_ if count > 1 else ctype], count))
    return layout


@pytest.mark.parametrize("struct, structure", [("mptcp_event", MptcpEvent), ("capture_counters", CaptureCounters)])
def test_ctypes_structs_follow_event_h(struct, structure):
    text = EVENT_H.read_text()
    assert ctypes_layout(structure) == header_layout(text, struct), (
        f"{structure.__name__} and struct {struct} of {EVENT_H} drifted apart: change both"
    )


def test_a_drifted_header_is_told():
    """The comparison above can fail: a field widened in the header shows."""
    drifted = EVENT_H.read_text().replace("__u16 sport;", "__u32 sport;")
    assert ctypes_layout(MptcpEvent) != header_layout(drifted, "mptcp_event")


# --- the object beside the bcc build -------------------------------------------------------------------


class Twin:
    """One build of the program with its runner; returns per frame what the kernel did."""

    def __init__(self, compile: bool) -> None:
        self.program = CaptureProgram(compile=compile)
        self.events: list = []
        self.lost = 0
        self.program.open_events(
            lambda events: self.events.extend(e._replace(ktime_ns=0) for e in events), self._lost, pages=64
        )
        self.runner = TestRunner(self.program.fd)

    def _lost(self, count: int) -> None:
        self.lost += count

    def run(self, frame: bytes, mark: int):
        before = self.program.counters()
        try:
            retval = self.runner.run(frame, mark)
        except OSError as exc:
            retval = f"refused: {exc.errno}"
        self.program.drain()
        assert not self.lost, f"{self.lost} samples lost: the comparison would be incomplete"
        after = self.program.counters()
        events, self.events = self.events, []
        return retval, events, {name: after[name] - before[name] for name in after if after[name] != before[name]}


@pytest.fixture(scope="module")
def twins():
    if os.geteuid() != 0:
        pytest.skip("loading BPF programs needs root")
    pytest.importorskip("bcc", reason="bcc (scripts/setup --test) builds the reference")
    built, compiled = Twin(compile=False), Twin(compile=True)
    yield built, compiled
    built.program.close()
    compiled.program.close()


@settings(max_examples=200, deadline=None)
@given(frame=fuzzing.structured_frames(), seed=st.integers(0, 2**32 - 1))
def test_object_and_bcc_build_agree_on_the_fuzz_corpus(twins, frame, seed):
    built, compiled = twins
    for mark, case in enumerate(fuzzing.cases(frame, random.Random(seed), 15)):
        if len(case) < fuzzing.MIN_FRAME:
            continue
        assert built.run(case, mark) == compiled.run(case, mark), f"frame {case.hex()}"


def test_both_builds_name_the_same_kernel_features(twins):
    built, compiled = twins
    assert str(built.program.features) == str(compiled.program.features)
    assert "bpf_skb_load_bytes" in str(built.program.features)


# --- what a start loads ----------------------------------------------------------------------------


def loaded_program_fds() -> int:
    """This process's open BPF program fds: /proc names a program's type in its fdinfo."""
    fdinfo = Path("/proc/self/fdinfo")
    return sum(1 for entry in fdinfo.iterdir() if "prog_type:" in _read(entry))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:  # an fd closed since the listing
        return ""


@root_only
@pytest.mark.parametrize("compile", [False, True], ids=["object", "bcc"])
def test_a_start_loads_one_entry_point_and_the_other_when_asked(compile):
    """Each load is a pass of the verifier: the raw-IP entry point loads when a device wants it, and it
    feeds the same maps."""
    if compile:
        pytest.importorskip("bcc", reason="bcc (scripts/setup --test) builds the reference")
    before = loaded_program_fds()
    program = CaptureProgram(compile=compile)
    try:
        assert loaded_program_fds() - before == 1
        raw_ip = TestRunner(program.fd_for(ethernet=False))
        assert loaded_program_fds() - before == 2
        packets = program.counters()["packets"]
        raw_ip.run(bytes(fuzzing.MIN_FRAME), 0)
        assert program.counters()["packets"] == packets + 1
    finally:
        program.close()
    assert loaded_program_fds() == before


# --- the kernel's refusals ----------------------------------------------------------------------------


@root_only
def test_a_missing_helper_is_one_clear_line():
    """libbpf's own probe, on this kernel, of a helper no kernel has."""
    with pytest.raises(CollectorError) as refused:
        _check_kernel(library(), Features(PROG_TYPE_SCHED_CLS, [], [5, 9999]))
    assert "lacks helper 9999 in SCHED_CLS programs" in str(refused.value) and "\n" not in str(refused.value)


REFUSED_PROGRAM = r"""
#include <linux/bpf.h>
__attribute__((section("tc"), used)) int unchecked(struct __sk_buff *skb)
{
	return *(unsigned char *)(long)skb->data;	/* no bounds check: the verifier refuses */
}
char LICENSE[] __attribute__((section("license"), used)) = "GPL";
"""


@root_only
def test_a_verifier_refusal_is_one_line_and_the_log_is_kept(tmp_path):
    source, built = tmp_path / "refused.c", tmp_path / "refused.o"
    source.write_text(REFUSED_PROGRAM)
    subprocess.run(
        [
            "clang-14",
            "-target",
            "bpfel",
            "-O2",
            "-g",
            "-I/usr/include/x86_64-linux-gnu",
            "-c",
            str(source),
            "-o",
            str(built),
        ],
        check=True,
    )
    with pytest.raises(CollectorError) as refused:
        BpfObject(str(built), ("unchecked",))
    message = str(refused.value)
    named = re.search(r"libbpf's log and the verifier's are in (\S+)", message)
    assert named, f"got {message!r}; want it to name the log"
    log = Path(named.group(1))
    try:
        assert "\n" not in message and "(R1 offset is outside of the packet)" in message, message
        assert "invalid access to packet" in log.read_text(), f"got a log without the verifier's: {log.read_text()!r}"
    finally:
        log.unlink()


@root_only
def test_loading_prints_nothing():
    """libbpf's messages are kept, not printed: an ordinary load leaves stderr to addaddr."""
    result = subprocess.run(
        [sys.executable, "-c", "from collector.kernel.program import CaptureProgram; CaptureProgram().close()"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stderr) == (0, "")


def test_missing_libbpf_is_one_line_naming_the_package(tmp_path):
    code = (
        "import sys, collector.kernel.libbpf as l; l.LIBRARY = 'libbpf.so.999'; from collector.cli import main; "
        "sys.argv = ['addaddr', 'replay', sys.argv[1], '--log-dir', sys.argv[2]]; main()"
    )
    capture = tmp_path / "c.pcap"
    capture.write_bytes(scenario().capture.pcap()[0])
    result = subprocess.run(
        [sys.executable, "-c", code, str(capture), str(tmp_path / "logs")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "apt-get install libbpf1" in result.stderr, (
        f"got {result.returncode}: {result.stderr!r}"
    )


def test_compile_without_bcc_names_the_setup_that_brings_it(tmp_path):
    """An install without bcc (a wheel, or plain scripts/setup) asked for the bcc build: one line naming
    `scripts/setup --test`, which is what installs bcc."""
    code = (
        "import sys; sys.modules['bcc'] = None; from collector.cli import main; "
        "sys.argv = ['addaddr', 'replay', sys.argv[1], '--log-dir', sys.argv[2]]; main()"
    )
    capture = tmp_path / "c.pcap"
    capture.write_bytes(scenario().capture.pcap()[0])
    result = subprocess.run(
        [sys.executable, "-c", code, str(capture), str(tmp_path / "logs")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ADDADDR_COMPILE": "1"},
    )
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "scripts/setup --test" in result.stderr, (
        f"got {result.returncode}: {result.stderr!r}"
    )


@root_only
def test_compile_without_headers_names_the_setup_that_links_them(tmp_path):
    """bcc without the kernel's build tree (hidden in a mount namespace of the test's own): the hint is
    `scripts/setup --test`, as plain scripts/setup links no headers."""
    pytest.importorskip("bcc", reason="bcc (scripts/setup --test) is what fails here")
    build = Path("/lib/modules") / os.uname().release / "build"
    if not build.exists():
        pytest.skip(f"{build} is missing already")
    empty = tmp_path / "empty"
    empty.mkdir()
    capture = tmp_path / "c.pcap"
    capture.write_bytes(scenario().capture.pcap()[0])
    script = f'mount --bind "$1" "{build}" && shift && exec "$@"'
    replay = [ADDADDR, "replay", str(capture), "--log-dir", str(tmp_path / "logs")]
    result = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script, "sh", str(empty), *replay],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ADDADDR_COMPILE": "1"},
    )
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == 1 and "scripts/setup --test" in last, f"got {result.returncode}: {result.stderr!r}"


@root_only
def test_without_privilege_replay_says_so():
    """libbpf's probes answer "unsupported" when refused for privilege: that must not read as an old kernel."""
    # pytest's tmp_path is root's alone: nobody needs a directory it can reach.
    shared = Path(tempfile.mkdtemp(prefix="addaddr-prebuilt-"))
    try:
        shared.chmod(0o777)
        capture = shared / "scenario.pcap"
        capture.write_bytes(scenario().capture.pcap()[0])
        capture.chmod(0o644)
        result = subprocess.run(
            [
                "setpriv",
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                ADDADDR,
                "replay",
                str(capture),
                "--log-dir",
                str(shared / "logs"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        shutil.rmtree(shared)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "BPF needs root" in result.stderr, (
        f"got {result.returncode}: {result.stderr!r}"
    )


@root_only
def test_without_perfmon_replay_names_the_privilege(tmp_path):
    """Root holding CAP_BPF and CAP_NET_ADMIN but not CAP_PERFMON (a container's usual grant) passes the
    probes, then the verifier refuses pointer arithmetic "for !root": that is privilege, not the kernel."""
    capture = tmp_path / "scenario.pcap"
    capture.write_bytes(scenario().capture.pcap()[0])
    bpf_and_net_admin = ["setpriv", "--bounding-set=-all,+bpf,+net_admin", "--inh-caps=-all", "--"]
    result = subprocess.run(
        [*bpf_and_net_admin, ADDADDR, "replay", str(capture), "--log-dir", str(tmp_path / "logs")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and result.stderr.count("\n") == 1, f"got {result.returncode}: {result.stderr!r}"
    assert "CAP_PERFMON" in result.stderr and "the kernel refused" not in result.stderr, result.stderr
    # sudo cannot help root: the remedy is the bounding set.
    assert "CapabilityBoundingSet" in result.stderr and "sudo" not in result.stderr, result.stderr


@root_only
def test_replay_past_the_memlock_limit_says_how_to_lift_it(tmp_path):
    """replay has no --perf-pages: its one remedy is the limit (or CAP_IPC_LOCK)."""
    capture = tmp_path / "scenario.pcap"
    capture.write_bytes(scenario().capture.pcap()[0])
    no_ipc_lock = ["setpriv", "--bounding-set=-ipc_lock", "--inh-caps=-all", "--"]
    result = subprocess.run(
        [*no_ipc_lock, ADDADDR, "replay", str(capture), "--log-dir", str(tmp_path / "logs")],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_MEMLOCK, (64 << 10, 64 << 10)),
    )
    assert result.returncode == 1 and result.stderr.count("\n") == 1, f"got {result.returncode}: {result.stderr!r}"
    assert "ulimit -l" in result.stderr and "fewer pages" not in result.stderr, result.stderr
