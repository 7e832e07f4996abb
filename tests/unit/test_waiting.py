# SPDX-License-Identifier: MIT
"""The deadlines the live tests wait with: they give up, say what for, and consume nothing past the line."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.support.waiting import GaveUp, wait_for_line, wait_until


def test_wait_until_returns_the_first_true_value():
    values = iter([0, None, "", 7, 8])
    assert wait_until(lambda: next(values), 5, "a number") == 7


def test_wait_until_gives_up_naming_what_and_the_last_value():
    start = time.monotonic()
    with pytest.raises(GaveUp, match=r"gave up after 0.2 s waiting for the impossible \(last saw 0\)"):
        wait_until(lambda: 0, 0.2, "the impossible")
    assert time.monotonic() - start < 2, "got a wait longer than its deadline"


def _child(script: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)


def test_wait_for_line_leaves_what_follows_for_communicate():
    proc = _child("import sys; sys.stderr.write('one\\nready two\\nthree\\n')")
    lines = wait_for_line(proc, proc.stderr, "ready", 10, "ready")
    _, rest = proc.communicate(timeout=10)
    assert (lines, rest) == (["one\n", "ready two\n"], "three\n")


def test_wait_for_line_fails_when_the_stream_ends_first():
    proc = _child("import sys; sys.stderr.write('boom\\n'); sys.exit(3)")
    with pytest.raises(GaveUp, match=r"ending \(exit 3\) before the collector attached; read 'boom\\n'"):
        wait_for_line(proc, proc.stderr, "attached", 10, "the collector attached")


def test_wait_for_line_gives_up_at_its_deadline_on_a_silent_process():
    proc = _child("import sys, time; sys.stderr.write('partial'); sys.stderr.flush(); time.sleep(30)")
    try:
        start = time.monotonic()
        with pytest.raises(GaveUp, match=r"gave up after 0.5 s waiting for a line; read 'partial'"):
            wait_for_line(proc, proc.stderr, "never", 0.5, "a line")
        assert time.monotonic() - start < 5, "got a wait longer than its deadline"
    finally:
        proc.kill()
        proc.communicate()
