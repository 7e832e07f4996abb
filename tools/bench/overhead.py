# SPDX-License-Identifier: MIT
"""overhead: bulk TCP and MPTCP throughput over a veth between two namespaces, with and without our
filter at the receiver's ingress, in windows of a fixed length alternated in a shuffled order.

Each window is a fresh connection from a sender process in its namespace (1 MiB writes, until the
receiver closes) to this process in the other (128 KiB reads); no iperf3 needed. Throughput over veth
on this 2-CPU machine swings by 2x from one second to the next as the scheduler moves sender,
receiver and softirq work between the CPUs. TCP is steady (±2%) with sender and receiver on one
CPU; MPTCP falls to ~1 Gbit/s there, so its two ends get a CPU each, and it stays noisy. Socket
buffers are fixed at 4 MiB. A fresh connection each window, because an MPTCP connection here falls,
filter or not, into spells of seconds at ~1 Gbit/s or less, retransmitting at the MPTCP level
(MPTcpExtMPTCPRetrans, TcpRetransSegs and MPTcpExtDuplicateData climb).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial

import bcc

from collector.kernel.clsact import attach
from collector.kernel.netns import socket_in
from collector.kernel.program import CaptureProgram
from collector.lab.testbed import IPPROTO_MPTCP

from .kernel import EMPTY_PROGRAM
from .measure import Result, Row, ratio, rounds, sample
from .namespaces import RECEIVER_ADDRESS, VethPair

PORT = 5001
WRITE = 1 << 20
# Reads of 256 KiB or more drop MPTCP to ~0.3 Gbit/s on this kernel (6.18), whatever the filter.
READ = 1 << 17
BUFFER = 4 << 20
# (name, protocol, sender's CPU, receiver's CPU)
PROTOCOLS = (("TCP", socket.IPPROTO_TCP, 0, 0), ("MPTCP", IPPROTO_MPTCP, 0, 1))
# A sender whose receiver never closes stops by itself.
SENDER_LIMIT_SECONDS = 600
TARGET = 0.98


def send(proto: int) -> None:
    """The sender's side, run in its namespace by window(): writes until the receiver closes."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
        sock.connect((RECEIVER_ADDRESS, PORT))
        data = memoryview(bytes(WRITE))
        deadline = time.monotonic() + SENDER_LIMIT_SECONDS
        try:
            while time.monotonic() < deadline:
                sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


def window(pair: VethPair, listener: socket.socket, proto: int, cpu: int, seconds: float) -> float:
    """Gbit/s received over `seconds` of a new connection, from its first byte; the sender on `cpu`."""
    sender = subprocess.Popen(
        pair.run_in(pair.sender, sys.executable, "-c", f"from tools.bench.overhead import send; send({proto})"),
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    try:
        conn, _ = listener.accept()
        with conn:
            buffer = bytearray(READ)
            received = conn.recv_into(buffer)
            start = now = time.perf_counter()
            end = start + seconds
            while now < end:
                received += conn.recv_into(buffer)
                now = time.perf_counter()
    finally:
        if sender.wait() != 0:
            raise RuntimeError(f"the sender exited with {sender.returncode}")
    return received * 8 / (now - start) / 1e9


def run(quick: bool) -> Result:
    count, seconds = (5, 0.3) if quick else (16, 0.5)
    result = Result("overhead")
    program = CaptureProgram()
    # The same hook with an empty program: what any BPF filter there costs, ours or not.
    empty = bcc.BPF(text=EMPTY_PROGRAM)
    empty_fd = empty.load_func("empty", bcc.BPF.SCHED_CLS).fd
    everywhere = os.sched_getaffinity(0)
    try:
        with VethPair() as pair:

            def filtered(fd: int, measure: Callable[[], float]) -> Callable[[], float]:
                """`measure` with the filter `fd` attached to the receiver while it runs."""

                def attached() -> float:
                    attachment = attach(fd, pair.receiver_if, pair.receiver)
                    try:
                        return measure()
                    finally:
                        attachment.detach()

                return attached

            for name, proto, sender_cpu, receiver_cpu in PROTOCOLS:
                os.sched_setaffinity(0, {receiver_cpu})
                with socket_in(pair.receiver, socket.AF_INET, socket.SOCK_STREAM, proto) as listener:
                    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)  # the accepted one's too
                    listener.bind((RECEIVER_ADDRESS, PORT))
                    listener.listen(1)
                    seen = program.counters()["packets"]

                    unfiltered = partial(window, pair, listener, proto, sender_cpu, seconds)
                    ours, floor, plain = rounds(
                        count,
                        filtered(program.fd, unfiltered),
                        filtered(empty_fd, unfiltered),
                        unfiltered,
                    )
                    packets = program.counters()["packets"] - seen
                result.rows += [
                    Row(
                        f"{name} throughput (Gbit/s)",
                        sample(ours),
                        sample(plain),
                        "without",
                        ratio(ours, plain),
                        TARGET,
                        better="higher",
                        digits=2,
                    ),
                    Row(
                        f"{name} throughput vs an empty filter",
                        sample(ours),
                        sample(floor),
                        "empty filter",
                        ratio(ours, floor),
                        digits=2,
                    ),
                ]
                kib = sum(ours) * seconds * 1e9 / 8 / 1024 / max(packets, 1)
                result.notes.append(
                    f"{name}: the filter saw {packets:,} packets, ~{kib:.0f} KiB each (veth hands "
                    "the receiver whole TSO segments)."
                )
    finally:
        os.sched_setaffinity(0, everywhere)
        program.close()
        empty.cleanup()
    result.notes.insert(
        0,
        f"{count} windows of {seconds:g} s each with our filter, with the empty program of "
        "`kernel` and without a filter, in a shuffled order, a new connection each; sender and "
        "receiver processes in two namespaces over one veth, both on one CPU for TCP, on one "
        "each for MPTCP (on one CPU it falls to ~1 Gbit/s here), 4 MiB socket buffers, 1 MiB writes, "
        "128 KiB reads (MPTCP reads of 256 KiB or more crawl at ~0.3 Gbit/s on this kernel, filter or "
        "not); ratios round by round.",
    )
    return result
