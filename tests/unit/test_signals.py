# SPDX-License-Identifier: MIT
"""Our SIGTERM handlers must not act in processes forked from ours (pyroute2's namespace helpers)."""

from __future__ import annotations

import os
import select
import signal
import time

import pytest

from collector.live.signals import on_signals, restore, unwinding


def test_forked_child_dies_on_sigterm_and_the_action_stays_ours():
    acted = []
    previous = on_signals(lambda: acted.append(os.getpid()), (signal.SIGTERM,))
    try:
        ready, started = os.pipe()
        child = os.fork()
        if child == 0:  # a helper as pyroute2 forks one: stopped with SIGTERM
            os.write(started, b".")
            time.sleep(10)
            os._exit(0)
        os.close(started)
        assert select.select([ready], [], [], 30)[0] and os.read(ready, 1) == b".", "got no word from the child"
        os.close(ready)
        os.kill(child, signal.SIGTERM)
        _, status = os.waitpid(child, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM, (
            f"got child status {status:#x}; want it killed by SIGTERM, not running our handler"
        )
        os.kill(os.getpid(), signal.SIGTERM)
        assert acted == [os.getpid()], f"got the action run in {acted}; want once, in this process"
    finally:
        restore(previous)


def test_unwinding_raises_once_so_the_cleanup_runs_to_its_end():
    cleaned = []
    with pytest.raises(KeyboardInterrupt), unwinding():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)  # the signal interrupts this
        finally:
            os.kill(os.getpid(), signal.SIGHUP)  # a second signal during cleanup is not raised
            cleaned.append(True)
    assert cleaned == [True], "got the cleanup cut short"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "got our handler left after the block"
