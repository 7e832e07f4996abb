# SPDX-License-Identifier: MIT
"""Every record kind against its schema: a record of the wrong shape is named, never used."""

import math

import msgpack
import pytest

from collector.logs.framing import frame
from collector.logs.reader import read_records
from collector.logs.schema import SCHEMA, TIME_MAX, problem
from tests.support.log_records import VALID

REQUIRED = [
    (kind, field)
    for kind, fields in SCHEMA.items()
    for field, types in fields.items()
    if type(None).__name__ not in {t.__name__ for t in types} and "_Absent" not in {t.__name__ for t in types}
]


def test_every_kind_has_a_valid_example():
    assert VALID.keys() == SCHEMA.keys()


@pytest.mark.parametrize("kind", VALID)
def test_valid_records_pass(kind):
    assert problem(VALID[kind]) is None
    assert problem(VALID[kind]) is None, "want the remembered type combination to pass again"
    assert problem({**VALID[kind], "newer_field": [1, {"x": b""}]}) is None, "want extra fields accepted"


@pytest.mark.parametrize("kind, field", REQUIRED)
def test_missing_field(kind, field):
    record = {k: v for k, v in VALID[kind].items() if k != field}
    assert problem(record) == f"{kind}: no field {field!r}"


@pytest.mark.parametrize("kind, field", [(k, f) for k, fields in SCHEMA.items() for f in fields])
def test_wrong_type(kind, field):
    wrong = "a string" if list in SCHEMA[kind][field] else []
    assert f"{field!r} is " in (problem({**VALID[kind], field: wrong}) or ""), (
        f"want {kind}.{field} = {wrong!r} refused"
    )


@pytest.mark.parametrize("kind", [k for k in SCHEMA if k != "header"])
@pytest.mark.parametrize("moment", [math.nan, math.inf, -math.inf, 1e300, TIME_MAX, -1.0, True])
def test_times_no_clock_shows_are_refused(kind, moment):
    assert problem({**VALID[kind], "time": moment}) is not None


@pytest.mark.parametrize("field", ["file_started", "started"])
def test_header_times(field):
    assert "not a time" in problem({**VALID["header"], field: math.nan})


@pytest.mark.parametrize(
    "record, why",
    [
        ({"time": 1.0}, "no 'kind'"),
        ({"kind": 5, "time": 1.0}, "'kind' is int, not str"),
        ({"kind": ["add_addr"], "time": 1.0}, "'kind' is list, not str"),
        ([1, 2], "a list, not a map"),
        (7, "a int, not a map"),
        ({**VALID["header"], "host": ["a", "b"]}, "header: 'host' is list, not str or absent or None"),
        ({**VALID["header"], "interfaces": ["eth0", 3]}, "header: 'interfaces' holds something other than str"),
        ({**VALID["add_addr"], "family": "ipv5"}, "add_addr: 'family' 'ipv5' is not one of ipv4, ipv6"),
        (
            {**VALID["add_addr"], "embedded_ipv4": {"address": "192.0.2.4"}},
            "add_addr: 'embedded_ipv4': no field 'class'",
        ),
        (
            {**VALID["remove_addr"], "address_ids": [1, "2"]},
            "remove_addr: 'address_ids' holds something other than int",
        ),
        ({**VALID["add_addr"], "echo": 0}, "add_addr: 'echo' is int, not bool"),
        ({**VALID["add_addr"], "port": True}, "add_addr: 'port' is bool, not int or None"),
    ],
)
def test_wrong_shapes_are_named(record, why):
    assert problem(record) == why


def test_unknown_kinds_pass_with_a_time():
    assert problem({"kind": "from_a_newer_collector", "time": 1.0, "x": 1}) is None
    assert problem({"kind": "from_a_newer_collector"}) == "from_a_newer_collector: no field 'time'"
    assert "not a time" in problem({"kind": "from_a_newer_collector", "time": math.nan})


def test_reader_skips_and_counts_each_bad_record(tmp_path):
    """In a log: every kind once with a field missing, once whole; the whole ones read, each other named."""
    path = tmp_path / "addaddr-20240101T000000.000000Z.msgpack"
    good, bad = [VALID["header"]], []
    for kind, record in VALID.items():
        if kind == "header":
            continue
        bad.append({k: v for k, v in record.items() if k != next(iter(SCHEMA[kind]))})
        good.append(record)
    records = [r for pair in zip(bad, good[1:]) for r in pair]
    path.write_bytes(b"".join(frame(msgpack.packb(r, use_bin_type=True)) for r in [good[0], *records]))
    damage = []
    read = list(read_records(tmp_path, on_damage=lambda *where: damage.append(where)))
    assert read == good
    assert len(damage) == len(bad)
    assert all(path == p and "invalid record skipped" in why for p, _, why in damage)
