# SPDX-License-Identifier: MIT
"""addaddr's commands as a user runs them, and what they answer read back: the installed command in a
process (with stderr on a terminal if need be), and `report` in this process through click's runner,
where a test only wants the figures."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from collector.cli import main
from tests.support.paths import ADDADDR
from tests.support.waiting import stop

# A command on a terminal answers in a few seconds (an odd path, a progress bar); a hang fails at this deadline.
TERMINAL_SECONDS = 60


def addaddr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ADDADDR, *args], capture_output=True, text=True, timeout=120)


def replay(captures: list[Path], log_dir: Path, *options: str) -> subprocess.CompletedProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    return addaddr("replay", *map(str, captures), "--log-dir", str(log_dir), *options)


def assert_succeeded(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"got replay exit {result.returncode} ({result.stderr.strip()}); want 0"
    assert ", 0 lost, 0 refused;" in result.stderr, f"got {result.stderr.strip()!r}; want 0 lost, 0 refused"


def tail(log_dir: Path) -> list[dict]:
    result = addaddr("tail", "--json", "--log-dir", str(log_dir))
    assert result.returncode == 0, f"got tail exit {result.returncode} ({result.stderr.strip()}); want 0"
    return [json.loads(line) for line in result.stdout.splitlines()]


def replay_stats(records: list[dict]) -> dict:
    stats = [r for r in records if r["kind"] == "stats"]
    assert stats, "got no stats record in the replay's logs; want one at the end"
    return stats[-1]


def report(log_dir: Path) -> dict:
    result = addaddr("report", "--format", "json", "--log-dir", str(log_dir))
    assert result.returncode == 0, f"got report exit {result.returncode} ({result.stderr.strip()}); want 0"
    return json.loads(result.stdout)


def run_on_a_terminal(args: list[str]) -> tuple[int, str]:
    """The command with stderr on a pseudo-terminal, as a user at a shell sees it: (status, stderr)."""
    master, slave = pty.openpty()
    with subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave) as proc:
        os.close(slave)
        seen = b""
        deadline = time.monotonic() + TERMINAL_SECONDS
        while select.select([master], [], [], max(0.0, deadline - time.monotonic()))[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the terminal's last writer has closed it
                break
            if not chunk:
                break
            seen += chunk
        if time.monotonic() >= deadline:
            stop(proc)
            pytest.fail(f"gave up after {TERMINAL_SECONDS} s waiting for {args} to end: {seen[-2000:]!r}")
        status = proc.wait(timeout=TERMINAL_SECONDS)
    os.close(master)
    return status, seen.decode(errors="replace")


def run_report(*args: str):
    return CliRunner().invoke(main, ["report", *args])


def json_report(*args: str) -> dict:
    result = run_report("--format", "json", *args)
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.stderr}"
    return json.loads(result.stdout)
