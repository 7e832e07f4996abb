# SPDX-License-Identifier: MIT
"""A flood of distinct MP_CAPABLE SYNs and joins with bogus tokens cannot grow the collector's memory
past its documented cap (README, Security and reliability)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.paths import REPO

FLOOD = 1_000_000
RSS_CAP_MIB = 400  # the README's promise for the default state cap of 262,144 entries (166-288 MiB measured)

# Run apart so that the RSS measured is the flood's, not the test session's.
FLOOD_SCRIPT = r"""
import json, sys
from tests.support.mptcp_encoder import encode
from collector.kernel.event import OptionEvent
from collector.pipeline.decode import MpCapable, MpJoin
from collector.pipeline.records import Recorder

n = int(sys.argv[1])
recorder = Recorder()
syn = encode(MpCapable(1, 0x81, None, None, None, None))
for i in range(n):
    client = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
    recorder.handle(OptionEvent(i, 2, 0, 4, client, "192.0.2.1", 1024 + i % 60000, 443, i, 0, 0x02, syn), i * 1e-6)
    join = encode(MpJoin("syn", 1, False, 0xDEAD0000 | i & 0xFFFF, i, None))
    recorder.handle(OptionEvent(i, 2, 0, 4, client, "192.0.2.1", 2048 + i % 60000, 443, i, 0, 0x02, join), i * 1e-6)
# VmHWM: this process's own peak. ru_maxrss would also keep the peak of the process it was exec'd from
# (Linux carries it across execve, and subprocess vforks from pytest, hundreds of MiB into a full run).
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"rss_mib": peak_kib / 1024, **recorder.counters()}))
"""


# 2,000,000 events through the recorder: about a minute on a quiet machine.
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_syn_and_bogus_join_flood_stays_under_the_cap():
    # `-c` puts the working directory first on the path: the checkout, for tests.support.
    out = subprocess.run(
        [sys.executable, "-c", FLOOD_SCRIPT, str(FLOOD)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        cwd=REPO,
    ).stdout
    figures = json.loads(out)
    assert figures["rss_mib"] < RSS_CAP_MIB, f"got RSS {figures['rss_mib']:.0f} MiB; want under {RSS_CAP_MIB}"
    assert figures["subflows_tracked"] <= 262_144, f"got {figures['subflows_tracked']} subflows tracked"
    assert figures["bogus_joins"] == FLOOD, f"got {figures['bogus_joins']} bogus joins; want {FLOOD}"
    assert figures["evictions"] >= 2 * FLOOD - 262_144, f"got {figures['evictions']} evictions"
