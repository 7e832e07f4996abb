# SPDX-License-Identifier: MIT
"""Events lost in the kernel are counted once, everywhere lost is shown: perf's lost count and the
program's event_errors see the same loss, and `lost` records add up to the larger of the two (the
session's arithmetic alone: tests/unit/test_lost_records.py)."""

from __future__ import annotations

import os
import time
from ipaddress import IPv4Address

import pytest

from collector.logs.writer import LogWriter
from collector.pipeline.decode import AddAddr
from collector.pipeline.records import Recorder
from collector.pipeline.session import Session
from tests.support.frames import ACK, ETH_P_IP, IPPROTO_TCP, ether, ipv4, tcp
from tests.support.log_records import lost_records
from tests.support.mptcp_encoder import encode

OPTION = encode(AddAddr(1, 7, IPv4Address("203.0.113.9"), None, False, bytes(8)))
FRAME = ether(
    ETH_P_IP, ipv4("192.0.2.1", "198.51.100.2", IPPROTO_TCP, tcp(43210, 443, seq=1, ack=1, flags=ACK, options=OPTION))
)
RUNS = 2000


def flood(log_dir, received: list) -> tuple[dict, Session, dict]:
    """RUNS ADD_ADDR test runs into a 1-page perf buffer, read once at the end, and one more: the kernel
    counters, the session and its stats record; the events read go to `received`. Root only.
    The rings are read as collector.kernel.libbpf.DIRECT_READ says."""
    from collector.kernel.program import CaptureProgram
    from collector.kernel.testrun import TestRunner

    program = CaptureProgram()
    # One CPU: perf reports a CPU's losses with that CPU's next sample, which the last run below
    # writes only on the CPU it runs on.
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})
    try:
        with LogWriter(log_dir, {"host": "test"}) as writer:
            session = Session(writer, Recorder(), lambda event: 0.0)
            program.open_events(received.extend, session.on_lost, pages=1)
            runner = TestRunner(program.fd)
            for _ in range(RUNS):  # 120 bytes a sample: far more than one page holds
                runner.run(FRAME, 0)
            program.drain()
            # perf reports its lost count with the next sample that fits, in a record that wraps
            # around the ring's end (4,080 bytes of samples, then 24 of it)
            runner.run(FRAME, 0)
            program.drain()
            kernel = program.counters()
            return kernel, session, session.stats_record(kernel)
    finally:
        os.sched_setaffinity(0, cpus)
        program.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="loading the kernel program needs root")
@pytest.mark.parametrize("direct", [True, False], ids=["rings read directly", "rings read by libbpf"])
def test_a_full_perf_buffer_is_counted_once(tmp_path, monkeypatch, direct):
    # libbpf's reader is the one for weakly ordered CPUs (arm64): on this x86-64 it must agree.
    monkeypatch.setattr("collector.kernel.libbpf.DIRECT_READ", direct)
    received: list = []
    kernel, session, stats = flood(tmp_path, received)
    errors = kernel["event_errors"]
    assert errors > 0, "got no event_errors: the buffer never filled"
    assert len(received) + errors == RUNS + 1, f"got {len(received)} events read and {errors} lost of {RUNS + 1}"
    assert {event.option for event in received} == {OPTION}, "got events read wrong around the lost record"
    assert session.perf_lost == errors, (
        f"got perf lost {session.perf_lost}, event_errors {errors}: want one loss seen by both"
    )
    assert stats["lost"] == sum(lost_records(tmp_path)) == errors, "got the loss counted twice or not at all"


@pytest.mark.skipif(os.geteuid() != 0, reason="loading the kernel program needs root")
@pytest.mark.parametrize("threads", [1, 2], ids=["one thread", "another thread alive"])
def test_a_signal_while_libbpf_reads_loses_no_record(threads):
    """Off x86-64 libbpf calls back into Python for each record: a signal handler run there (replay's
    SIGTERM raises) would raise into ctypes, which drops the exception and the record libbpf has already
    consumed. The signal waits until what was read is handed over, then stops the read as usual.
    With another thread alive (a run's metrics server), the signal went to it, blocked only in the
    reading thread, and its handler ran inside the callback all the same: 15 reads in 20 lost it."""
    import signal
    import threading

    done = threading.Event()
    for _ in range(threads - 1):
        threading.Thread(target=done.wait, args=(10,), daemon=True).start()

    from collector.kernel.event import PerfRecords
    from collector.kernel.libbpf import PerfBuffer
    from collector.kernel.program import CaptureProgram
    from collector.kernel.testrun import TestRunner

    class Stopped(Exception):
        pass

    class SignalledAtFirstRecord(PerfBuffer):
        signalled = False

        def _copy_record(self, ctx, cpu, header):
            if not self.signalled:
                self.signalled = True
                os.kill(os.getpid(), signal.SIGTERM)
            return super()._copy_record(ctx, cpu, header)

    def stop(signum, frame):
        raise Stopped

    program = CaptureProgram()
    chunks: list[bytes] = []
    buffer = SignalledAtFirstRecord(program._events_fd, 8, 1, chunks.append, direct=False)
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        runner = TestRunner(program.fd)
        for _ in range(10):
            runner.run(FRAME, 0)
        with pytest.raises(Stopped):
            buffer.read()
            # Sent to the process, the signal goes to a thread that does not block it: the other one,
            # which a busy machine may run only after the read. Its handler then runs in the main
            # thread at a later check, here.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        done.set()
        signal.signal(signal.SIGTERM, previous)
        buffer.close()
        program.close()
    events, lost = PerfRecords().parse(b"".join(chunks))
    assert (len(events), lost) == (10, 0), f"got {len(events)} events and {lost} lost of 10 read through libbpf"


@pytest.mark.skipif(os.geteuid() != 0, reason="loading the kernel program needs root")
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs records in two CPUs' rings")
@pytest.mark.parametrize("direct", [True, False], ids=["rings read directly", "rings read by libbpf"])
def test_a_handler_that_raises_loses_no_other_cpus_records(direct):
    """libbpf's path copied every CPU's records out, then handed them over a CPU at a time: when the
    handler raised at the first CPU's, the others' were lost. They wait for the next read, as a ring
    the direct reader has not reached yet."""
    from collector.kernel.event import PerfRecords
    from collector.kernel.libbpf import PerfBuffer
    from collector.kernel.program import CaptureProgram
    from collector.kernel.testrun import TestRunner

    class Full(Exception):
        pass

    chunks: list[bytes] = []

    def on_records(records: bytes) -> None:
        chunks.append(records)
        if len(chunks) == 1:
            raise Full  # the first CPU's records were handed over; its handler failed with them

    program = CaptureProgram()
    buffer = PerfBuffer(program._events_fd, 8, 1, on_records, direct=direct)
    cpus = os.sched_getaffinity(0)
    try:
        runner = TestRunner(program.fd)
        for cpu in sorted(cpus)[:2]:  # a test run writes to the ring of the CPU it runs on
            os.sched_setaffinity(0, {cpu})
            for _ in range(10):
                runner.run(FRAME, 0)
        with pytest.raises(Full):
            buffer.read()
        buffer.read()
    finally:
        os.sched_setaffinity(0, cpus)
        buffer.close()
        program.close()
    assert len(chunks) == 2, f"got {len(chunks)} handovers; want one per CPU"
    events, lost = PerfRecords().parse(b"".join(chunks))
    assert (len(events), lost) == (20, 0), f"got {len(events)} events and {lost} lost of 10 on each of two CPUs"
