# SPDX-License-Identifier: MIT
"""startup: what it costs to start with the kernel program built ahead (bpf/addaddr.bpf.o, loaded by
libbpf) against compiling it with bcc at start (ADDADDR_COMPILE=1), the way every start went before:
`addaddr replay` of an empty capture, whole command, wall time, CPU seconds and peak RSS (its own,
not the benchmark's: measure.run_alone); and `addaddr run` from its start to its `collecting on`
line, the filter attached on a veth in a namespace of its own. Wall times stretch with the machine's
load; CPU seconds much less (the kernel's verifier is most of ours).
The perf buffers' locked memory follows from the pages asked for: stated, and bounded by --perf-pages'
limit. The instructions the kernel's verifier processed for each entry point (most of a start's
system time) do not depend on the load at all: the figure to watch when bpf/ changes.
"""

from __future__ import annotations

import ctypes
import math
import os
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from collector.kernel import tcx
from collector.kernel.program import COMPILE_ENV, FUNCTION, RAW_IP_FUNCTION, CaptureProgram, locked_bytes
from collector.live.run import MAX_PERF_PAGES, PERF_PAGES
from collector.replay.run import REPLAY_PAGES
from tests.support.capture_writer import PcapWriter

from . import ADDADDR
from .measure import QUIET, Result, Row, finish, interrupt, ratio, rounds, run_alone, sample, wait_for_text
from .namespaces import VethPair

WALL_LIMIT = 0.5  # seconds (issue 12)
RSS_LIMIT = 100  # MiB
BCC = {**os.environ, COMPILE_ENV: "1"}
BUILT = {key: value for key, value in os.environ.items() if key != COMPILE_ENV}
READY_POLL = 0.005
# struct bpf_prog_info (include/uapi/linux/bpf.h) up to verified_insns, a u32 at byte 216 (Linux >= 5.16).
PROG_INFO_BYTES = 224
VERIFIED_INSNS_AT = 216


def _replay(capture: Path, env: dict):
    logs = tempfile.mkdtemp(prefix="addaddr-startup-")
    try:
        return run_alone([ADDADDR, "replay", str(capture), "--log-dir", logs], env=env, **QUIET)
    finally:
        shutil.rmtree(logs)


def _ready(pair: VethPair, scratch: Path, env: dict) -> float:
    """Seconds from exec to the filter attached and the collector saying so."""
    stderr = scratch / "stderr"
    with open(stderr, "w") as err:
        start = time.perf_counter()
        process = subprocess.Popen(
            [ADDADDR, "run", "--iface", pair.receiver_if, "--netns", pair.receiver, "--log-dir", str(scratch / "logs")],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            wait_for_text(stderr, "collecting on", process, interval=READY_POLL)
            ready = time.perf_counter() - start
        finally:
            interrupt(process)
            finish(process, start)
    return ready


def _verified_insns() -> dict[str, int]:
    """Each entry point of the built object: the instructions the verifier processed loading it."""
    program = CaptureProgram(compile=False, ethernet=(True, False))
    try:
        processed = {}
        for name, ethernet in ((FUNCTION, True), (RAW_IP_FUNCTION, False)):
            info = ctypes.create_string_buffer(PROG_INFO_BYTES)
            tcx.call(
                tcx.BPF_OBJ_GET_INFO_BY_FD,
                tcx.attr("=IIQ", program.fd_for(ethernet), PROG_INFO_BYTES, ctypes.addressof(info)),
            )
            processed[name] = struct.unpack_from("=I", info, VERIFIED_INSNS_AT)[0]
        return processed
    finally:
        program.close()


def _per_cpu_mib(pages: int) -> float:
    return locked_bytes(pages, 1) / 2**20


def run(quick: bool) -> Result:
    # The figures are medians of 3; --quick keeps its two minutes with one bcc start of ~2-30 s.
    count = 1 if quick else 3
    result = Result("startup")
    with tempfile.TemporaryDirectory(prefix="addaddr-startup-") as scratch:
        capture = Path(scratch) / "empty.pcap"
        capture.write_bytes(PcapWriter().getvalue())
        built, compiled = rounds(count, lambda: _replay(capture, BUILT), lambda: _replay(capture, BCC))
        with VethPair() as pair:
            # --quick leaves out the slowest reference, bcc compiling for `run` (as long as for replay).
            envs = [BUILT] if quick else [BUILT, BCC]
            ready, ready_bcc = (
                rounds(count, *(lambda env=env: _ready(pair, Path(scratch), env) for env in envs)) + [[]] * quick
            )
    wall, wall_bcc = [c.wall for c in built], [c.wall for c in compiled]
    cpu, cpu_bcc = [c.cpu for c in built], [c.cpu for c in compiled]
    rss, rss_bcc = [c.max_rss_mib for c in built], [c.max_rss_mib for c in compiled]
    result.rows += [
        Row(
            "replay of an empty capture, wall (s)",
            sample(wall),
            sample(wall_bcc),
            "bcc",
            ratio(wall, wall_bcc),
            digits=2,
        ),
        Row("replay of an empty capture, wall (s), absolute", sample(wall), limit=WALL_LIMIT, digits=2),
        Row("replay of an empty capture, CPU (s)", sample(cpu), sample(cpu_bcc), "bcc", ratio(cpu, cpu_bcc), digits=2),
        Row(
            "replay of an empty capture, peak RSS (MiB)",
            sample(rss),
            sample(rss_bcc),
            "bcc",
            ratio(rss, rss_bcc),
            digits=0,
        ),
        Row("replay of an empty capture, peak RSS (MiB), absolute", sample(rss), limit=RSS_LIMIT, digits=0),
        *(
            [
                Row(
                    "run ready: filter attached (s)",
                    sample(ready),
                    sample(ready_bcc),
                    "bcc",
                    ratio(ready, ready_bcc),
                    digits=2,
                )
            ]
            if ready_bcc
            else []
        ),
        Row("run ready: filter attached (s), absolute", sample(ready), limit=WALL_LIMIT, digits=2),
        *(
            Row(f"verifier: instructions processed, {name}", sample([insns]), digits=0)
            for name, insns in _verified_insns().items()
        ),
        Row(
            "run's perf buffers, locked (MiB, all CPUs)",
            sample([locked_bytes(PERF_PAGES) / 2**20]),
            limit=math.ceil(locked_bytes(MAX_PERF_PAGES) / 2**20),
            digits=0,
        ),
    ]
    result.notes.append(
        f"{count} round(s) of each; bcc is the same command with {COMPILE_ENV}=1 (compiling bpf/ at start). "
        f"Locked perf memory is (pages + 1) x page size per online CPU: run's default {PERF_PAGES} pages is "
        f"{_per_cpu_mib(PERF_PAGES):.0f} MiB per CPU, --perf-pages at most {MAX_PERF_PAGES} "
        f"({_per_cpu_mib(MAX_PERF_PAGES):.0f} MiB per CPU); replay takes {REPLAY_PAGES} pages "
        f"({_per_cpu_mib(REPLAY_PAGES):.0f} MiB per CPU)."
    )
    return result
