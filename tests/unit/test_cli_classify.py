# SPDX-License-Identifier: MIT
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from collector.cli import main

SIX_TO_FOUR_JSON = {
    "address": "2002:c000:201::1",
    "family": "ipv6",
    "class": "6to4",
    "global": False,
    "embedded_ipv4": {"address": "192.0.2.1", "class": "documentation", "global": False},
}
BAD_ADDRESS_ERROR = "addaddr: error: '300.1.1.1' is not an IPv4 or IPv6 address\n"


def invoke(*args: str):
    return CliRunner().invoke(main, ["classify", *args])


def test_json_prints_one_object_per_line_in_input_order():
    result = invoke("--json", "2002:c000:201::1", "8.8.8.8", "fe80::1")
    assert result.exit_code == 0, f"got exit {result.exit_code}; want 0 ({result.stderr})"
    got = [json.loads(line) for line in result.stdout.splitlines()]
    want = [
        SIX_TO_FOUR_JSON,
        {"address": "8.8.8.8", "family": "ipv4", "class": "global", "global": True, "embedded_ipv4": None},
        {"address": "fe80::1", "family": "ipv6", "class": "link-local", "global": False, "embedded_ipv4": None},
    ]
    assert got == want, f"got {got}; want {want}"
    assert result.stderr == ""


def test_json_keys_are_exactly_the_documented_ones_in_order():
    line = invoke("--json", "2002:c000:201::1").stdout
    assert list(json.loads(line)) == ["address", "family", "class", "global", "embedded_ipv4"]
    assert list(json.loads(line)["embedded_ipv4"]) == ["address", "class", "global"]


def test_table_has_a_header_and_one_aligned_row_per_address():
    result = invoke("2002:c000:201::1", "8.8.8.8")
    assert result.exit_code == 0, f"got exit {result.exit_code}; want 0 ({result.stderr})"
    header, *rows = result.stdout.splitlines()
    columns = ["ADDRESS", "FAMILY", "CLASS", "GLOBAL", "EMBEDDED IPV4", "EMBEDDED CLASS", "EMBEDDED GLOBAL"]
    starts = [header.index(column) for column in columns]
    # Cut every row where the header's columns start: a misaligned cell comes out cut or merged.
    spans = list(zip(starts, [*starts[1:], None]))
    got = [[row[start:end].strip() for start, end in spans] for row in rows]
    want = [
        ["2002:c000:201::1", "ipv6", "6to4", "no", "192.0.2.1", "documentation", "no"],
        ["8.8.8.8", "ipv4", "global", "yes", "-", "-", "-"],
    ]
    assert got == want, f"got {got}; want {want}"


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "table"])
def test_bad_address_is_reported_after_the_good_ones_and_exits_1(as_json):
    good = ["8.8.8.8", "10.0.0.1"]
    result = invoke(*(["--json"] if as_json else []), good[0], "300.1.1.1", good[1])
    assert result.exit_code == 1, f"got exit {result.exit_code}; want 1"
    assert result.stderr == BAD_ADDRESS_ERROR, f"got stderr {result.stderr!r}; want {BAD_ADDRESS_ERROR!r}"
    lines = result.stdout.splitlines()
    got = [json.loads(line)["address"] for line in lines] if as_json else [row.split()[0] for row in lines[1:]]
    assert got == good, f"got {got}; want {good}"
    assert result.output.index(BAD_ADDRESS_ERROR) > result.output.index(good[1]), "got the error before the data"


def test_only_bad_addresses_print_no_data():
    result = invoke("300.1.1.1", "nonsense")
    assert result.exit_code == 1, f"got exit {result.exit_code}; want 1"
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        BAD_ADDRESS_ERROR.strip(),
        "addaddr: error: 'nonsense' is not an IPv4 or IPv6 address",
    ]


def test_no_address_is_a_usage_error():
    result = invoke()
    assert result.exit_code == 2, f"got exit {result.exit_code}; want 2"
    assert result.stdout == ""


def _console_script() -> str:
    # The venv that runs the tests is the one the project is installed into.
    script = shutil.which("addaddr", path=str(Path(sys.executable).parent))
    assert script, "got no addaddr console script next to the test interpreter; want `pip install -e .`"
    return script


def test_console_script_classifies_6to4_as_json():
    result = subprocess.run(
        [_console_script(), "classify", "--json", "2002:c000:201::1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, f"got exit {result.returncode}; want 0 ({result.stderr})"
    got = json.loads(result.stdout)
    assert got == SIX_TO_FOUR_JSON, f"got {got}; want {SIX_TO_FOUR_JSON}"


def test_console_script_reports_a_bad_address_on_stderr_and_exits_1():
    result = subprocess.run(
        [_console_script(), "classify", "192.0.2.1", "300.1.1.1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1, f"got exit {result.returncode}; want 1"
    assert result.stderr == BAD_ADDRESS_ERROR, f"got stderr {result.stderr!r}; want {BAD_ADDRESS_ERROR!r}"
    assert "192.0.2.1" in result.stdout and "documentation" in result.stdout
