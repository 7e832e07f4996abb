# SPDX-License-Identifier: MIT
"""docs/architecture.md and collector/__init__.py describe the modules that exist, all of them."""

import re

import collector
from tests.support.paths import REPO

DOC = (REPO / "docs" / "architecture.md").read_text()
# Every module of the package at any depth, and every file of the kernel program. The command modules
# are described together, as collector/commands/*.py; the packages by their folder's row.
MODULES = sorted(
    [*(p for p in (REPO / "collector").rglob("*.py") if p.parent.name != "commands"), *(REPO / "bpf").iterdir()]
)
FOLDERS = sorted(p for p in (REPO / "collector").iterdir() if p.is_dir() and (p / "__init__.py").exists())


def test_every_module_has_its_place_in_the_architecture():
    missing = [
        str(p.relative_to(REPO)) for p in MODULES if p.name != "__init__.py" and f"`{p.relative_to(REPO)}`" not in DOC
    ]
    assert not missing, f"got modules docs/architecture.md does not place: {missing}; add each to its step"


def test_every_folder_of_the_package_is_drawn():
    missing = [p.name for p in FOLDERS if f"{p.name}/" not in DOC]
    assert not missing, f"got folders docs/architecture.md does not draw: {missing}"


def test_the_architecture_names_no_module_that_is_gone():
    named = set(re.findall(r"`((?:collector|bpf)/[\w/]+\.(?:py|h|c))`", DOC))
    gone = sorted(name for name in named if not (REPO / name).exists())
    assert not gone, f"got docs/architecture.md naming {gone}, which do not exist"


def test_the_package_docstring_gives_path_and_layers_in_three_lines():
    lines = collector.__doc__.strip().splitlines()
    assert len(lines) == 3, f"got {len(lines)} lines; want three"
    for step in ("packet", "event", "record", "log", "report", "cli", "commands"):
        assert step in collector.__doc__, f"got no {step!r} in the package docstring"
