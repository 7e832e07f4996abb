# SPDX-License-Identifier: MIT
"""Waits with a deadline. A test that waits says what for, and fails saying so when it gives up, instead
of hanging CI until pytest-timeout (or the CI runner) kills the whole session."""

from __future__ import annotations

import os
import select
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_SECONDS = 0.05
# How long a process stopped with SIGTERM has to remove what it made (namespaces, filters) before SIGKILL,
# which leaves them behind.
STOP_GRACE_SECONDS = 30


class GaveUp(AssertionError):
    """A wait reached its deadline: an assertion failure of the test that waited."""


def wait_until(condition: Callable[[], T], timeout: float, what: str) -> T:
    """Polls `condition` until it returns something true, which is returned; raises GaveUp after `timeout`
    seconds, naming `what` was awaited and the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise GaveUp(f"gave up after {timeout:g} s waiting for {what} (last saw {value!r})")
        time.sleep(POLL_SECONDS)


def wait_for_line(proc: subprocess.Popen, stream, needle: str, timeout: float, what: str) -> list[str]:
    """Reads `stream` (a pipe of `proc`) line by line until a line holding `needle`; returns the lines read,
    that one last. Raises GaveUp when the deadline passes or the stream ends first (with the lines read and
    the exit status). Reads the pipe's descriptor a byte at a time, so nothing past the line is consumed:
    the rest stays for `proc.communicate()`."""
    deadline = time.monotonic() + timeout
    fd = stream.fileno()
    lines, line = [], bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise GaveUp(f"gave up after {timeout:g} s waiting for {what}; read {_text(lines, line)!r}")
        byte = os.read(fd, 1)
        if not byte:
            try:
                code = proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                code = "none yet, still running"
            raise GaveUp(f"got the output ending (exit {code}) before {what}; read {_text(lines, line)!r}")
        line += byte
        if byte == b"\n":
            lines.append(line.decode(errors="replace"))
            line.clear()
            if needle in lines[-1]:
                return lines


def _text(lines: list[str], partial: bytearray) -> str:
    return "".join(lines) + partial.decode(errors="replace")


def stop(proc: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> None:
    """Ends `proc` if still running: SIGTERM first, so that it removes what it made, then SIGKILL after
    `grace` seconds. Its pipes are left for `proc.communicate()`."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_to_end(args: list[str], timeout: float, **popen) -> subprocess.CompletedProcess:
    """subprocess.run(args, capture_output=True, text=True, timeout=timeout), but a process still running
    at the deadline gets `stop()` (SIGTERM first; subprocess.run sends SIGKILL, which leaves namespaces
    behind) and the test fails with GaveUp, naming what it printed."""
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop(proc)
            stdout, stderr = proc.communicate(timeout=STOP_GRACE_SECONDS)
            raise GaveUp(
                f"gave up after {timeout:g} s waiting for {args[0]} to end; stopped it; stderr {stderr[-3000:]!r}"
            ) from None
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)
