# SPDX-License-Identifier: MIT
"""The kernel program, loaded once per session and run by BPF_PROG_TEST_RUN: the fixtures of tests/kernel."""

import os
from typing import NamedTuple

import pytest

from collector.kernel.event import OptionEvent
from collector.kernel.program import CaptureProgram
from collector.kernel.testrun import TestRunner


class Result(NamedTuple):
    retval: int
    events: list[OptionEvent]
    counters_delta: dict[str, int]  # every counter, by how much this run moved it


class LoadedProgram:
    """The program loaded once per session, with its perf buffer open into `received`."""

    def __init__(self) -> None:
        self.program = CaptureProgram()
        self.received: list[OptionEvent] = []
        self.lost = 0
        self.program.open_events(self.received.extend, self._on_lost, pages=8)
        self.runner = TestRunner(self.program.fd)
        self._raw_ip_runner: TestRunner | None = None

    def _on_lost(self, count: int) -> None:
        self.lost += count

    def run(self, frame: bytes, mark: int = 0, ethernet: bool = True) -> Result:
        """`ethernet=False` runs the entry point for devices without an Ethernet header."""
        if ethernet:
            runner = self.runner
        else:
            if self._raw_ip_runner is None:
                self._raw_ip_runner = TestRunner(self.program.fd_for(ethernet=False))
            runner = self._raw_ip_runner
        # The counters live for the whole session: a run's effect is the difference.
        before = self.program.counters()
        # Drained first, so that samples of runs made outside this method are not taken for ours.
        self.program.drain()
        self.received.clear()
        retval = runner.run(frame, mark)
        # The test run has returned, so its samples are already in the buffer.
        self.program.drain()
        if self.lost:
            raise RuntimeError(f"the perf buffer lost {self.lost} samples: events are incomplete")
        after = self.program.counters()
        delta = {name: after[name] - before[name] for name in after}
        return Result(retval, list(self.received), delta)


@pytest.fixture(scope="session")
def loaded_program():
    # Skipped rather than failed: these are the only tests that need root.
    if os.geteuid() != 0:
        pytest.skip("loading the kernel program and BPF_PROG_TEST_RUN need root")
    loaded = LoadedProgram()
    yield loaded
    loaded.program.close()


@pytest.fixture
def kernel(loaded_program) -> LoadedProgram:
    """`kernel.run(frame, mark=0, ethernet=True)` -> Result(retval, events, counters_delta) for one frame."""
    return loaded_program
