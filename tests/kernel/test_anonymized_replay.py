# SPDX-License-Identifier: MIT
"""`addaddr replay --anonymize-key` through the kernel program: the header names the scheme, every announced
address maps as yacryptopan maps it, and the report equals the one of the plain replay."""

from __future__ import annotations

import os
import subprocess

import pytest
from yacryptopan import CryptoPAn

from collector.logs.reader import read_records
from collector.report.figures import report
from tests.support.paths import ADDADDR
from tests.support.replay_fixtures import scenario


@pytest.mark.skipif(os.geteuid() != 0, reason="replay loads the kernel program: needs root")
def test_the_header_names_the_scheme_and_replayed_addresses_map_as_yacryptopan(tmp_path):
    capture = tmp_path / "scenario.pcap"
    capture.write_bytes(scenario().capture.pcap()[0])
    key = tmp_path / "key"
    logs = {}
    for name, options in (("plain", []), ("anonymized", ["--anonymize-key", str(key)])):
        logs[name] = tmp_path / name
        result = subprocess.run(
            [ADDADDR, "replay", str(capture), "--log-dir", str(logs[name]), *options],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
    plain, anonymized = (list(read_records(logs[name])) for name in ("plain", "anonymized"))
    assert plain[0]["kind"] == anonymized[0]["kind"] == "header"
    assert (plain[0]["anonymization"], anonymized[0]["anonymization"]) == (None, "crypto-pan")
    theirs = CryptoPAn(key.read_bytes())
    announced = [(p["address"], a["address"]) for p, a in zip(plain, anonymized) if p["kind"] == "add_addr"]
    assert announced and all(anon == theirs.anonymize(real) for real, anon in announced)
    assert report(logs["anonymized"]) == report(logs["plain"])
