# SPDX-License-Identifier: MIT
"""System calls by number go through collector/kernel/syscall.py alone, which knows each number on every
machine addaddr claims."""

import ast
import errno
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from collector.kernel import syscall, tcx
from tests.support.paths import REPO

PACKAGE = REPO / "collector"
OWNER = PACKAGE / "kernel" / "syscall.py"
# The machines addaddr claims to run on.
CLAIMED = {"x86_64", "aarch64", "riscv64", "loongarch64", "ppc64le", "s390x"}
# A table of numbers by its name: SYS_BPF, _SYS_SECCOMP, __NR_bpf.
NUMBER_NAME = re.compile(r"^_*(SYS|NR)_", re.IGNORECASE)


def by_number(path: Path) -> list[str]:
    """What in `path` reaches a system call by number: libc's syscall(), or a name for its number."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr == "syscall":
            found.append(f"line {node.lineno}: libc's syscall()")
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
        if name and NUMBER_NAME.match(name):
            found.append(f"line {node.lineno}: {name}")
    return found


@pytest.mark.parametrize(
    "path", sorted(set(PACKAGE.rglob("*.py")) - {OWNER}), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_other_module_makes_a_system_call_by_number(path):
    found = by_number(path)
    assert not found, (
        f"got {path.relative_to(REPO)} calling by number ({', '.join(found)}); use collector.kernel.syscall"
    )


def test_the_check_sees_a_call_by_number(tmp_path):
    module = tmp_path / "old.py"
    module.write_text("_SYS_BPF = {'x86_64': 321}\ndef call(libc):\n    return libc.syscall(_SYS_BPF['x86_64'])\n")
    assert by_number(module) == ["line 1: _SYS_BPF", "line 3: libc's syscall()", "line 3: _SYS_BPF"]


def test_every_claimed_machine_has_every_number():
    assert set(syscall.NUMBERS) >= CLAIMED, f"got no numbers for {sorted(CLAIMED - set(syscall.NUMBERS))}"
    names = {name for row in syscall.NUMBERS.values() for name in row}
    assert names == {"bpf", "seccomp"}
    missing = {machine: sorted(names - set(row)) for machine, row in syscall.NUMBERS.items() if names - set(row)}
    assert not missing, f"got machines without some numbers: {missing}"


@pytest.mark.skipif(not shutil.which("cc"), reason="no C compiler to read this machine's <sys/syscall.h>")
def test_this_machines_numbers_are_those_of_its_headers():
    defines = subprocess.run(
        ["cc", "-dM", "-E", "-include", "sys/syscall.h", "-"],
        input="",
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    headers = {name: int(number) for name, number in re.findall(r"#define __NR_(\w+) (\d+)$", defines, re.MULTILINE)}
    row = syscall.NUMBERS[syscall.MACHINE]
    assert row == {name: headers[name] for name in row}


def test_a_machine_not_in_the_table_gets_enosys_in_one_line(monkeypatch):
    monkeypatch.setattr(syscall, "MACHINE", "vax")
    with pytest.raises(OSError) as raised:
        syscall.call("bpf", 0, None, 0)
    assert raised.value.errno == errno.ENOSYS
    assert raised.value.strerror == (
        "bpf() on vax is not known to addaddr, which knows its number on x86_64, aarch64, "
        "riscv64, loongarch64, ppc64le, s390x"
    )
    # As from a kernel without bpf(): no tcx there, so auto attaches with clsact.
    assert tcx.available() is False
