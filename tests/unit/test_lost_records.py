# SPDX-License-Identifier: MIT
"""The session's count of lost events: `lost` records add up to the larger of perf's lost count and the
kernel program's event_errors, whichever reports first (tests/kernel/test_lost_events.py loses real ones)."""

from collector.logs.writer import LogWriter
from collector.pipeline.records import Recorder
from collector.pipeline.session import Session
from tests.support.log_records import lost_records


def test_lost_records_add_up_to_the_larger_count(tmp_path):
    with LogWriter(tmp_path, {"host": "test"}) as writer:
        session = Session(writer, Recorder(), lambda event: 0.0)
        session.on_lost(3)
        stats = session.stats_record({"event_errors": 5})  # the kernel saw 2 more, not yet reported by perf
        assert stats["lost"] == session.lost_samples == 5
        session.on_lost(2)  # perf reports them late: already counted
        session.on_lost(1)  # one more than the kernel had counted at the last stats
        assert session.lost_samples == 6
        assert session.metrics({"event_errors": 6}, {})["lost"] == 6
    assert lost_records(tmp_path) == [3, 2, 1]
