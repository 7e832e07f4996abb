# SPDX-License-Identifier: MIT
"""pipeline: tcpreplay at top speed of an ADD_ADDR-rich capture into a veth, watched in turn by
`addaddr run`, by `tshark -i IFACE -Y mptcp`, and by `tcpdump -w` followed by `tshark -r -Y mptcp`.
Then, if top speed lost events, the lowest offered rate that does: the collector alone under
tcpreplay --pps, the rate bisected between none and top speed.

Each watcher is a process of its own in the receiving namespace's interface (the collector attaches
there with --netns). Its CPU seconds are its rusage at exit, children included (tshark's dumpcap),
less what it had spent when it said it was ready: start-up (bcc compiling the program, tshark
loading dissectors) is left out, draining after the replay is kept. tcpreplay's own CPU is no one's.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from . import ADDADDR, captures
from .measure import Result, Row, finish, interrupt, ratio, rounds, sample, tree_cpu, wait_for_text
from .namespaces import VethPair

# What is still on its way to the hook when tcpreplay returns.
SETTLE_SECONDS = 0.5
CPU_LIMIT = 1 / 5  # issue 13: the collector's CPU at most a fifth of tshark -i's
# Halvings of the interval between no traffic and top speed in the search for the first loss: the
# rate found is within top speed / 2**steps above the true one. Each step replays the whole capture
# at a lower rate (the lowest at top speed / 2**steps: the capture's top-speed time, 2**steps times):
# three keep the full benchmark within its three minutes.
FIRST_LOSS_STEPS = 3
_TCPREPLAY = re.compile(r"Actual: (\d+) packets .* sent in ([\d.]+) seconds")


def _number(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    if found is None:
        raise RuntimeError(f"no {pattern!r} in: {text.strip()[-500:]}")
    return int(found.group(1))


class Replay:
    """One veth pair and the capture: `watch` replays it under a watcher."""

    def __init__(self, pair: VethPair, capture: Path, scratch: Path) -> None:
        self.pair, self.capture, self.scratch = pair, capture, scratch

    def send(self, pps: float | None = None) -> tuple[int, float]:
        """(packets sent, seconds) of one tcpreplay at `pps` packets/s, at top speed without."""
        speed = ["--topspeed"] if pps is None else ["--pps", f"{pps:.0f}"]
        sent = subprocess.run(
            self.pair.run_in(self.pair.sender, "tcpreplay", "-i", self.pair.sender_if, *speed, str(self.capture)),
            capture_output=True,
            text=True,
            check=True,
        )
        found = _TCPREPLAY.search(sent.stdout)
        if found is None:
            raise RuntimeError(f"tcpreplay said: {sent.stdout.strip()[-500:]} {sent.stderr.strip()[-500:]}")
        return int(found.group(1)), float(found.group(2))

    def watch(self, command: list[str], ready: str, pps: float | None = None) -> dict:
        """Replays under `command` (started, then SIGINT after the replay) at `pps` (top speed
        without): its CPU seconds during the replay, its stderr, and the replay's packets and seconds."""
        stderr = self.scratch / "stderr"
        with open(stderr, "w") as err:
            start = time.perf_counter()
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
            try:
                wait_for_text(stderr, ready, process)
                before = tree_cpu(process.pid)
                packets, seconds = self.send(pps)
                time.sleep(SETTLE_SECONDS)
                interrupt(process)
                cost = finish(process, start)
            except BaseException:
                process.kill()
                process.wait()
                raise
        return {
            "cpu": cost.cpu - before,
            "stderr": stderr.read_text(errors="replace"),
            "packets": packets,
            "seconds": seconds,
        }

    def collector(self, pps: float | None = None) -> dict:
        logs = tempfile.mkdtemp(dir=self.scratch)
        seen = self.watch(
            [ADDADDR, "run", "--iface", self.pair.receiver_if, "--netns", self.pair.receiver, "--log-dir", logs],
            "collecting on",
            pps,
        )
        shutil.rmtree(logs)
        seen["events"] = _number(r"stopped: (\d+) events", seen["stderr"])
        seen["lost"] = _number(r"(\d+) lost", seen["stderr"])
        return seen

    def tshark(self) -> dict:
        seen = self.watch(
            self.pair.run_in(self.pair.receiver, "tshark", "-i", self.pair.receiver_if, "-Y", "mptcp"), "Capturing on"
        )
        seen["missed"] = max(0, seen["packets"] - _number(r"(\d+) packets? captured", seen["stderr"]))
        return seen

    def tcpdump_then_tshark(self) -> dict:
        written = self.scratch / "tcpdump.pcap"
        seen = self.watch(
            self.pair.run_in(self.pair.receiver, "tcpdump", "-i", self.pair.receiver_if, "-w", str(written)),
            "listening on",
        )
        seen["missed"] = _number(r"(\d+) packets? dropped by kernel", seen["stderr"])
        started = time.perf_counter()
        analysis = subprocess.Popen(
            ["tshark", "-r", str(written), "-Y", "mptcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        seen["cpu"] += finish(analysis, started).cpu
        written.unlink()
        return seen


def offered(run: dict) -> float:
    """Events/s the replay offered: those logged and those lost, over tcpreplay's seconds."""
    return (run["events"] + run["lost"]) / run["seconds"]


def first_loss(replay: Replay, top_speed: list[dict]) -> tuple[dict | None, dict | None]:
    """The slowest run found with a lost event (None if top speed lost none) and the fastest without
    one below it (None if every rate tried lost some), bisecting the packet rate between none and the
    slowest lossy top-speed round. Assumes that a rate which loses events is not followed by a
    higher one that loses none; the noise of a shared machine can break that near the edge."""
    lossy = [r for r in top_speed if r["lost"]]
    if not lossy:
        return None, None
    lossless: dict | None = None
    low, high = 0.0, min(r["packets"] / r["seconds"] for r in lossy)
    found = min(lossy, key=offered)
    for _ in range(FIRST_LOSS_STEPS):
        seen = replay.collector((low + high) / 2)
        if seen["lost"]:
            found, high = seen, (low + high) / 2
        else:
            lossless, low = seen, (low + high) / 2
    return found, lossless


def run(quick: bool) -> Result:
    count, connections = (1, 2_000) if quick else (3, 20_000)
    capture, packets = captures.made(connections)
    result = Result("pipeline")
    with tempfile.TemporaryDirectory(prefix="addaddr-pipeline-") as scratch, VethPair() as pair:
        replay = Replay(pair, capture, Path(scratch))
        ours, tshark, tcpdump = rounds(count, replay.collector, replay.tshark, replay.tcpdump_then_tshark)
        lossy, lossless = first_loss(replay, ours)

    def figure(runs: list[dict], name: str) -> list[float]:
        return [r[name] for r in runs]

    def rate(runs: list[dict], name: str) -> list[float]:
        return [r[name] / r["seconds"] for r in runs]

    our_cpu = figure(ours, "cpu")
    result.rows += [
        Row(
            "packets/s offered by tcpreplay",
            sample(rate(ours, "packets")),
            sample(rate(tshark, "packets")),
            "under tshark",
        ),
        Row("events/s logged", sample(rate(ours, "events"))),
        # Past this rate, held for as long as the perf buffers take to fill, the first event is lost.
        Row(
            "events/s the collector keeps up with (events / its CPU s)", sample([r["events"] / r["cpu"] for r in ours])
        ),
        Row("events lost", sample(figure(ours, "lost")), limit=0),
        Row("events/s offered at the first loss (tcpreplay --pps, bisected)", sample([offered(lossy)]))
        if lossy
        else Row(
            "events/s offered at the first loss: none, up to top speed's", sample([max(offered(r) for r in ours)])
        ),
        Row(
            "CPU s vs tshark -i -Y mptcp",
            sample(our_cpu),
            sample(figure(tshark, "cpu")),
            "tshark",
            ratio(our_cpu, figure(tshark, "cpu")),
            CPU_LIMIT,
            digits=2,
        ),
        Row(
            "CPU s vs tcpdump -w, tshark -r",
            sample(our_cpu),
            sample(figure(tcpdump, "cpu")),
            "tcpdump+tshark",
            ratio(our_cpu, figure(tcpdump, "cpu")),
            digits=2,
        ),
        Row("packets tshark -i missed", sample(figure(tshark, "missed"))),
        Row("packets tcpdump -w dropped", sample(figure(tcpdump, "missed"))),
    ]
    result.notes.append(
        f"{'--quick: ' if quick else ''}{packets:,} packets ({connections:,} MPTCP connections, 8 ADD_ADDR "
        f"in each 25 packets), {count} round(s) of the three watchers in turn; events/s = events logged / "
        "tcpreplay's seconds. CPU: the watcher's rusage at exit less its CPU when ready (start-up left out, "
        "draining kept), children included; tcpdump's figure adds the whole `tshark -r` run. The collector "
        "keeps up with events/s up to its events over its CPU seconds (one CPU's worth): an offered rate "
        "above that loses its first event once the perf buffers are full."
    )
    if lossy:
        below = (
            f"; {offered(lossless):,.0f} events/s ({lossless['packets'] / lossless['seconds']:,.0f} packets/s) "
            "lost none"
            if lossless
            else "; every rate tried lost some"
        )
        result.notes.append(
            f"First loss: the collector alone under tcpreplay --pps, the packet rate bisected {FIRST_LOSS_STEPS} "
            f"times between none and top speed; {offered(lossy):,.0f} events/s offered "
            f"({lossy['packets'] / lossy['seconds']:,.0f} packets/s) lost {lossy['lost']:,}{below}. One run of "
            f"the capture each: a longer burst fills the perf buffers at a lower rate, down to the events/s the "
            f"collector keeps up with."
        )
    else:
        result.notes.append("First loss: none at top speed, in any round; no slower rate is tried.")
    return result
