"""Imports run one way: cli → commands → the library, and inside the library down the data path's stages;
click only in cli."""

import ast
from pathlib import Path

import pytest

from tests.support.paths import REPO

PACKAGE = REPO / "collector"
MODULES = sorted(PACKAGE.rglob("*.py"))
# The library's folders, each with the folders it may import besides itself (collector/errors.py and the
# package's __version__ are everyone's). A stage takes from those above it in the data path, never back:
# packet → event (kernel), event → record (pipeline), record → log (logs), log → report (report, fleet);
# live, replay and lab drive the path.
STAGES = {
    "kernel": set(),
    "addresses": set(),
    "logs": set(),
    "pipeline": {"kernel", "addresses", "logs"},
    "report": {"addresses", "logs"},
    "fleet": {"addresses", "logs", "report"},
    "live": {"kernel", "addresses", "pipeline", "logs"},
    "replay": {"kernel", "addresses", "pipeline", "logs"},
    "lab": {"kernel", "addresses", "pipeline", "logs", "report", "live", "replay"},
}
# What stands beside the folders at the top of the package.
TOP = {"__init__.py", "cli.py", "errors.py", "commands", *STAGES}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, one level up per extra dot
                package = path.parent.relative_to(PACKAGE.parent).parts
                package = package[: len(package) - node.level + 1]
                base = ".".join((*package, base)) if base else ".".join(package)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _layer(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    if relative.parts[0] == "cli.py":
        return "cli"
    return "commands" if relative.parts[0] == "commands" else "library"


def _imports_module(names: set[str], module: str) -> bool:
    return any(name == module or name.startswith(module + ".") for name in names)


def test_the_package_has_all_three_layers():
    assert {_layer(p) for p in MODULES} == {"cli", "commands", "library"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_one_way(path):
    names, layer = _imports(path), _layer(path)
    if layer != "cli":
        assert not _imports_module(names, "click"), f"{path.name} imports click: only cli.py may"
        assert not _imports_module(names, "collector.cli"), f"{path.name} imports the command line"
    if layer == "library":
        assert not _imports_module(names, "collector.commands"), f"{path.name} imports a command"


def test_every_module_is_in_a_stage_or_on_top():
    stray = sorted(str(p.relative_to(PACKAGE)) for p in MODULES if p.relative_to(PACKAGE).parts[0] not in TOP)
    assert not stray, f"got modules in no stage: {stray}; put each in the folder of its step (docs/architecture.md)"


@pytest.mark.parametrize("path", [p for p in MODULES if p.relative_to(PACKAGE).parts[0] in STAGES],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_stage_imports_only_the_stages_it_takes_from(path):
    stage = path.relative_to(PACKAGE).parts[0]
    imported = {name.split(".")[1] for name in _imports(path) if name.startswith("collector.")} & set(STAGES)
    wrong = sorted(imported - STAGES[stage] - {stage})
    assert not wrong, f"collector/{stage} imports {wrong}; it may import {sorted(STAGES[stage]) or 'no other stage'}"
