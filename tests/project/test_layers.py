"""Imports run one way: cli → commands → the library; click only in cli."""

import ast
from pathlib import Path

import pytest

from tests.support.paths import REPO

PACKAGE = REPO / "collector"
MODULES = sorted(PACKAGE.rglob("*.py"))


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
