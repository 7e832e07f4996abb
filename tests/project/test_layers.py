# SPDX-License-Identifier: MIT
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


@pytest.mark.parametrize(
    "path", [p for p in MODULES if p.relative_to(PACKAGE).parts[0] in STAGES], ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_a_stage_imports_only_the_stages_it_takes_from(path):
    stage = path.relative_to(PACKAGE).parts[0]
    imported = {name.split(".")[1] for name in _imports(path) if name.startswith("collector.")} & set(STAGES)
    wrong = sorted(imported - STAGES[stage] - {stage})
    assert not wrong, f"collector/{stage} imports {wrong}; it may import {sorted(STAGES[stage]) or 'no other stage'}"


# --- who prints: the library reports through callbacks ---------------------------------------------

# Where a module outside commands/ may print, by module and function. spark-submit runs
# collector/fleet/spark.py as a program of its own (docs/fleet.md) whose stdout is the report's JSON,
# and it cannot print through commands/console.py, which the library may not import: its `main` prints.
PRINTS_IN = {"fleet/spark.py": {"main"}}
STREAMS = {"stdout", "stderr"}


class _Printing(ast.NodeVisitor):
    """Each use of print (a call, or handed on as a callback) and of sys.stdout or sys.stderr, with the
    function it is in ("" at module level)."""

    def __init__(self) -> None:
        self.found: list[tuple[str, int, str]] = []
        self._functions = [""]

    def visit_FunctionDef(self, node) -> None:
        self._functions.append(node.name)
        self.generic_visit(node)
        self._functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Name(self, node) -> None:
        if node.id == "print":
            self._found(node, "print")

    def visit_Attribute(self, node) -> None:
        if isinstance(node.value, ast.Name) and node.value.id == "sys" and node.attr in STREAMS:
            self._found(node, f"sys.{node.attr}")
        self.generic_visit(node)

    def visit_ImportFrom(self, node) -> None:
        if node.module == "sys" and any(alias.name in STREAMS for alias in node.names):
            self._found(node, "from sys import")

    def _found(self, node, what: str) -> None:
        self.found.append((self._functions[-1], node.lineno, what))


@pytest.mark.parametrize(
    "path", [p for p in MODULES if _layer(p) != "commands"], ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_only_commands_print(path):
    printing = _Printing()
    printing.visit(ast.parse(path.read_text()))
    allowed = PRINTS_IN.get(path.relative_to(PACKAGE).as_posix(), set())
    stray = [f"line {line}: {what}" for function, line, what in printing.found if function not in allowed]
    assert not stray, f"{path.name} prints ({', '.join(stray)}): report through a callback that a command gives"


def test_the_command_line_reaches_the_library_through_commands():
    ours = {name for name in _imports(PACKAGE / "cli.py") if _imports_module({name}, "collector")}
    beyond = sorted(
        name
        for name in ours
        if not any(_imports_module({name}, allowed) for allowed in ("collector.commands", "collector.errors"))
    )
    assert ours and not beyond, f"cli.py imports {', '.join(beyond)}: give collector/commands/ what cli needs"
