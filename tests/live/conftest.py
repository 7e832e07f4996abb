# SPDX-License-Identifier: MIT
"""Fixtures of the live tests: a testbed, a directory nobody may reach."""

import shutil
import tempfile
from pathlib import Path

import pytest

from collector.lab.testbed import Testbed
from tests.support.collector_process import ONE_CLIENT


@pytest.fixture
def bed():
    """A testbed of one client announcing ONE_CLIENT's addresses, removed after the test."""
    with Testbed(ONE_CLIENT) as bed:
        yield bed


@pytest.fixture
def reachable_dir():
    """Under /tmp itself: pytest's own directories are root's alone, and nobody must reach the logs."""
    path = Path(tempfile.mkdtemp(prefix="addaddr-user-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)
