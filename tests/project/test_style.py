# SPDX-License-Identifier: MIT
"""The code passes the linter and the formatter configured in pyproject.toml ([tool.ruff])."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO

RUFF = Path(sys.executable).with_name("ruff")


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_passes(command):
    if not RUFF.exists():
        pytest.skip(f"no {RUFF}: scripts/setup --test installs ruff")
    result = subprocess.run(
        [str(RUFF), *command, "--no-cache", "."], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"ruff {' '.join(command)} found:\n{result.stdout}{result.stderr}"
