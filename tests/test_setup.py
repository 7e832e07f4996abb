"""scripts/setup and the Vagrant VM it provisions: the first thing a newcomer runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SETUP = REPO / "scripts" / "setup"
VAGRANTFILE = REPO / "vagrant" / "Vagrantfile"


@pytest.mark.skipif(os.geteuid() != 0, reason="setup runs as root")
def test_second_run_changes_nothing():
    result = subprocess.run([str(SETUP), "--test"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"got exit {result.returncode}: {result.stderr}"
    assert "nothing to do" in result.stdout, f"got {result.stdout!r}; want 'nothing to do' on a set-up machine"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to nobody")
def test_refuses_without_root_in_one_line():
    result = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", str(SETUP)],
                            capture_output=True, text=True)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and "must run as root" in lines[0], f"got {lines}"


def test_vagrantfile_is_valid_and_provisions_with_setup():
    if shutil.which("vagrant"):
        check = subprocess.run(["vagrant", "validate"], cwd=VAGRANTFILE.parent, capture_output=True, text=True)
    elif shutil.which("ruby"):
        check = subprocess.run(["ruby", "-c", str(VAGRANTFILE)], capture_output=True, text=True)
    else:
        pytest.skip("neither vagrant nor ruby is installed (scripts/setup --test installs ruby)")
    assert check.returncode == 0, f"got {check.stdout}{check.stderr}"
    text = VAGRANTFILE.read_text()
    assert "/opt/addaddr/scripts/setup" in text and 'synced_folder "..", "/opt/addaddr"' in text, \
        "got a Vagrantfile that does not provision with the tested scripts/setup"
