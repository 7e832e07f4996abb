"""Fixtures shared by the tests, one section per area: add yours under a heading of its own."""

import os
import subprocess
from typing import NamedTuple

import pytest
from hypothesis import settings


from collector.kernel.event import OptionEvent
from collector.kernel.program import CaptureProgram
from collector.kernel.testrun import TestRunner
from tests.support.waiting import stop

# --- hypothesis ------------------------------------------------------------------------------
# Its default 200 ms per example measures the machine's load, not our code: CI shares its cores.
# Every test still has pytest-timeout's limit.
settings.register_profile("shared-machine", deadline=None)
settings.load_profile("shared-machine")

# --- the kernel program, run by BPF_PROG_TEST_RUN ---------------------------------------------


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


# --- processes a test starts --------------------------------------------------------------------


@pytest.fixture
def processes():
    """A list to append the background processes a test starts to: any still running when the test ends
    (it failed, or a wait gave up) is stopped, SIGTERM first so that it removes the namespaces and filters it
    made, so no collector outlives its test or its namespaces."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        stop(proc)
        proc.communicate(timeout=30)


# --- run's lock files ---------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def run_locks_removed():
    """Lock files in /run/addaddr that runs of this session left (a run after --user, or killed): removed
    at the end when no process holds them, as the service's RuntimeDirectory= would. Earlier ones stay."""
    import fcntl

    from collector.live.locks import LOCK_DIR

    def names() -> set[str]:
        try:
            return set(os.listdir(LOCK_DIR))
        except OSError:
            return set()

    before = names()
    yield
    for name in names() - before:
        try:
            fd = os.open(os.path.join(LOCK_DIR, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held: a run still going, not ours to remove
            os.unlink(os.path.join(LOCK_DIR, name))
        except OSError:
            pass
        finally:
            os.close(fd)
