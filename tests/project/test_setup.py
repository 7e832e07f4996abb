# SPDX-License-Identifier: MIT
"""scripts/setup and the Vagrant VM it provisions: the first thing a newcomer runs."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import tomllib

import pytest

from tests.support.paths import REPO

SETUP = REPO / "scripts" / "setup"
VAGRANTFILE = REPO / "vagrant" / "Vagrantfile"


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="setup runs as root")
def test_second_run_changes_nothing():
    result = subprocess.run([str(SETUP), "--test"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"got exit {result.returncode}: {result.stderr}"
    assert "nothing to do" in result.stdout, f"got {result.stdout!r}; want 'nothing to do' on a set-up machine"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to nobody")
def test_refuses_without_root_in_one_line():
    result = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", str(SETUP)], capture_output=True, text=True
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and "must run as root" in lines[0], f"got {lines}"


@pytest.mark.slow
def test_vagrantfile_is_valid_and_provisions_with_setup():
    if shutil.which("vagrant"):
        check = subprocess.run(["vagrant", "validate"], cwd=VAGRANTFILE.parent, capture_output=True, text=True)
    elif shutil.which("ruby"):
        check = subprocess.run(["ruby", "-c", str(VAGRANTFILE)], capture_output=True, text=True)
    else:
        pytest.skip("neither vagrant nor ruby is installed (scripts/setup --test installs ruby)")
    assert check.returncode == 0, f"got {check.stdout}{check.stderr}"
    text = VAGRANTFILE.read_text()
    assert "/opt/addaddr/scripts/setup" in text and 'synced_folder "..", "/opt/addaddr"' in text, (
        "got a Vagrantfile that does not provision with the tested scripts/setup"
    )


# --- pinned versions ------------------------------------------------------------------------------

CONSTRAINTS = REPO / "constraints.txt"


def _pins() -> dict[str, str]:
    lines = [line.strip() for line in CONSTRAINTS.read_text().splitlines()]
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    return {_normal(name): version for name, version in pins.items()}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def _requirement_names(extra: str) -> set[str]:
    """The project's dependencies and those of `extra`, its own extras expanded (as [ci] names [test,plot])."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    names, todo = set(), [*project["dependencies"], *extras[extra]]
    while todo:
        name, _, wanted = re.match(r"([A-Za-z0-9._-]+)(\[([^]]*)\])?", todo.pop()).groups()
        if _normal(name) == "addaddr":
            todo += [r for e in wanted.split(",") for r in extras[e.strip()]]
        else:
            names.add(_normal(name))
    return names


def test_constraints_pin_everything_ci_installs():
    pins = _pins()
    assert all(re.fullmatch(r"[\w.+!]+", v) for v in pins.values()), f"got {pins}; want exact versions only"
    unpinned = sorted(_requirement_names("ci") - set(pins))
    assert not unpinned, f"got {unpinned} in pyproject.toml but not in constraints.txt: run scripts/pin"


def test_this_venv_has_the_pinned_versions():
    """scripts/setup installs with `-c constraints.txt`: what the tests run on is what was pinned."""
    installed = {_normal(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    wrong = {
        name: (installed[name], pinned)
        for name, pinned in _pins().items()
        if name in installed and installed[name] != pinned
    }
    assert not wrong, f"got (installed, pinned) {wrong}: run scripts/setup --test"
    missing = sorted(_requirement_names("ci") - set(installed))
    assert not missing, f"got {missing} not installed: run scripts/setup --test"
