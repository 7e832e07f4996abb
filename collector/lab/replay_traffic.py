# SPDX-License-Identifier: MIT
"""Replay a capture as real traffic (tcpreplay) into a veth whose peer runs the collector.

Both ends live in namespaces made here: tcpreplay sends from one, the collector watches the other's
ingress, and neither has a route anywhere, so the replayed packets go no further than that hook
(the stack then drops them: they are addressed to other hosts). The capture is first rewritten as
Ethernet with our own reader, so cooked and raw-IP captures replay too.
"""

from __future__ import annotations

import secrets
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from collector.errors import CollectorError
from collector.live.run import BackgroundRun, RunOptions
from collector.pipeline.session import Session
from collector.replay.capture import read_capture

# veth takes frames up to its MTU; captures taken after GRO hold segments of up to 64 KiB.
VETH_MTU = 65535
_PCAP_HEADER = bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")


@dataclass
class TrafficReplayResult:
    """What replay_traffic did: the packets sent, and the session of the collector that saw them."""

    packets: int
    session: Session


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise CollectorError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def write_ethernet_pcap(capture: str, out: Path) -> int:
    """The capture as a classic Ethernet pcap (microseconds), for tcpreplay; returns the packet count."""
    count = 0
    with out.open("wb") as f:
        f.write(_PCAP_HEADER)
        for packet in read_capture(capture):
            seconds = int(packet.time)
            micros = round((packet.time - seconds) * 1e6)
            frame = bytes(packet.frame)
            f.write(
                seconds.to_bytes(4, "little")
                + micros.to_bytes(4, "little")
                + len(frame).to_bytes(4, "little") * 2
                + frame
            )
            count += 1
    return count


def replay_traffic(capture: str, log_dir: str, pps: int | None = None) -> TrafficReplayResult:
    """Sends `capture` at `pps` packets/s (None: top speed) into a collector; logs in `log_dir`."""
    name = f"aa{secrets.token_hex(3)}"
    sender, receiver = f"{name}-tx", f"{name}-rx"
    made = []
    with tempfile.TemporaryDirectory(prefix="addaddr-replay-") as scratch:
        pcap = Path(scratch) / "ethernet.pcap"
        packets = write_ethernet_pcap(capture, pcap)
        try:
            for ns in (sender, receiver):
                _ip("netns", "add", ns)
                made.append(ns)
            _ip(
                "link",
                "add",
                f"{name}t",
                "netns",
                sender,
                "mtu",
                str(VETH_MTU),
                "type",
                "veth",
                "peer",
                "name",
                f"{name}r",
                "netns",
                receiver,
                "mtu",
                str(VETH_MTU),
            )
            _ip("-n", sender, "link", "set", f"{name}t", "up")
            _ip("-n", receiver, "link", "set", f"{name}r", "up")
            session = _collect_during_replay(sender, receiver, f"{name}t", f"{name}r", pcap, log_dir, pps)
        finally:
            for ns in made:
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    return TrafficReplayResult(packets, session)


def _collect_during_replay(sender, receiver, tx_if, rx_if, pcap, log_dir, pps) -> Session:
    with BackgroundRun(RunOptions((rx_if,), receiver, log_dir)) as collector:
        speed = ["--pps", str(pps)] if pps else ["--topspeed"]
        sent = subprocess.run(
            ["ip", "netns", "exec", sender, "tcpreplay", "-q", "-i", tx_if, *speed, str(pcap)],
            capture_output=True,
            text=True,
        )
        if sent.returncode != 0:
            raise CollectorError(f"tcpreplay failed: {sent.stderr.strip() or sent.stdout.strip()}")
    return collector.session
