# SPDX-License-Identifier: MIT
"""What every folder of tests shares, one section per area: a marker per folder, the hypothesis profile, the
processes a test starts, run's lock files. A folder's own fixtures are in its conftest.py."""

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support.waiting import stop

# --- a marker per folder --------------------------------------------------------------------------
# What a test needs is told by its folder; the marker (registered in pyproject.toml) lets -m choose by it.
FOLDERS = ("unit", "kernel", "live", "project")
TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items):
    for item in items:
        folder = item.path.relative_to(TESTS).parts[0]
        if folder in FOLDERS:
            item.add_marker(folder)


# --- hypothesis ------------------------------------------------------------------------------
# Its default 200 ms per example measures the machine's load, not our code: CI shares its cores.
# Every test still has pytest-timeout's limit.
settings.register_profile("shared-machine", deadline=None)
settings.load_profile("shared-machine")

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
