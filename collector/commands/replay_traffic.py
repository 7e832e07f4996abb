# SPDX-License-Identifier: MIT
"""`addaddr replay-traffic` (scripts/replay-traffic): a capture sent as real traffic past a live run."""

import tempfile

from collector.commands import console
from collector.lab.replay_traffic import replay_traffic
from collector.report.figures import report
from collector.report.formats import render


def replay_as_traffic(capture: str, pps: int | None, log_dir: str | None, form: str) -> int:
    """`addaddr replay-traffic`: the capture sent through a live collector, the report of its logs on
    stdout, what was sent and seen on stderr. Logs in `log_dir`, or in a scratch directory removed after."""
    with tempfile.TemporaryDirectory(prefix="addaddr-traffic-") as scratch:
        logs = log_dir or scratch
        result = replay_traffic(capture, logs, pps)
        console.data(render(report([logs]), form))
    session = result.session
    console.message(
        f"replay-traffic: {result.packets} packets sent, {session.events} events seen, "
        f"{session.announcements} announcements, {session.lost_samples} lost"
    )
    return console.EXIT_OK
