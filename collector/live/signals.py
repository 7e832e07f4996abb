# SPDX-License-Identifier: MIT
"""SIGINT/SIGTERM handlers that act only in the process that set them.

pyroute2 opens sockets in network namespaces from a forked helper and stops it with SIGTERM. A
handler of ours inherited by that child must let it die: one raising KeyboardInterrupt made the
child unwind its copy of our stack and run our cleanup, detaching the collector's filter from a live
interface; one merely setting a flag left the child running.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def on_signals(action: Callable[[], None], signums=(signal.SIGINT, signal.SIGTERM)) -> dict:
    """Calls `action()` on these signals in this process; returns the previous handlers."""
    owner = os.getpid()

    def handler(signum, _frame) -> None:
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        action()

    return {signum: signal.signal(signum, handler) for signum in signums}


def restore(previous: dict) -> None:
    """Puts back the handlers on_signals() returned."""
    for signum, handler in previous.items():
        signal.signal(signum, handler)


@contextmanager
def unwinding(signums=(signal.SIGTERM, signal.SIGHUP)) -> Iterator[None]:
    """Inside the block these signals raise KeyboardInterrupt, as Ctrl-C does, so that the `with` and
    `finally` blocks unwinding remove what they made (namespaces above all: nothing else removes them)
    before the process ends. Only the first one raises: a second signal must not cut that cleanup short
    (SIGKILL remains for a cleanup that hangs)."""
    raised = False

    def interrupt() -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise KeyboardInterrupt

    previous = on_signals(interrupt, signums)
    try:
        yield
    finally:
        restore(previous)
