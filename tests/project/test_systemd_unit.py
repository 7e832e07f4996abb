# SPDX-License-Identifier: MIT
"""The systemd unit deploy/addaddr.service as systemd reads it: `systemd-analyze verify` finds nothing to say."""

import shutil
import subprocess

import pytest

from tests.support.paths import ADDADDR
from tests.support.systemd_unit import UNIT


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_verifies(tmp_path):
    # A copy whose ExecStart is this checkout's addaddr: verify checks that the program exists.
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/addaddr/.venv/bin/addaddr", ADDADDR))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, ""), (
        f"systemd-analyze verify: {result.returncode}\n{result.stdout}{result.stderr}"
    )
