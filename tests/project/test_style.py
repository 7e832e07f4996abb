# SPDX-License-Identifier: MIT
"""The code passes the linter and the formatter configured in pyproject.toml ([tool.ruff])."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO

RUFF = Path(sys.executable).with_name("ruff")
SOURCE_SUFFIXES = (".py", ".c", ".h", ".sql", ".service")


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_passes(command):
    if not RUFF.exists():
        pytest.skip(f"no {RUFF}: scripts/setup --test installs ruff")
    result = subprocess.run(
        [str(RUFF), *command, "--no-cache", "."], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"ruff {' '.join(command)} found:\n{result.stdout}{result.stderr}"


def _sources() -> list[Path]:
    """Every tracked source file: Python, the kernel program's C, the study's SQL, the systemd units, the
    Vagrantfile and the scripts (by their #! line)."""
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    sources = []
    for name in tracked.split():
        path = REPO / name
        if path.is_symlink() or not path.is_file():
            continue
        if path.suffix in SOURCE_SUFFIXES or path.name == "Vagrantfile" or path.read_bytes()[:2] == b"#!":
            sources.append(path)
    return sources


def test_every_source_file_names_its_license():
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are not known")
    missing = [
        str(p.relative_to(REPO))
        for p in _sources()
        if "SPDX-License-Identifier:" not in "".join(p.read_text().splitlines(True)[:2])
    ]
    assert not missing, f"got source files without an SPDX-License-Identifier line at the top: {missing}"
