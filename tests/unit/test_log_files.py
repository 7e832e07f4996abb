# SPDX-License-Identifier: MIT
import errno
import os
import queue
import random
import stat
import subprocess
import tempfile
import threading
import time
from datetime import timedelta

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.logs.directory import NAME_FORMAT, log_files, stamp_of
from collector.logs.framing import frame, pack_record
from collector.logs.reader import LogDamageWarning, follow, read_records
from collector.logs.writer import LogWriter
from tests.support.log_records import VALID

HEADER = {"host": "test-host", "interfaces": ["eth0", "eth1"], "version": "0.1.0"}


def rec(seq):
    """A record of a kind readers do not know: only its `kind` and `time` are checked."""
    return {
        "kind": "test",
        "seq": seq,
        "time": 1700000000.25 + seq,
        "addr": "2001:db8::1",
        "port": 443,
        "echo": seq % 2 == 0,
        "v4": None,
        "raw": bytes([seq % 256]) * 20,
        "path": ["eth0", seq],
        "tcp": {"sport": 51234, "dport": 443, "note": "x" * 40},
    }


def framed(record):
    """The bytes of one record as the writer puts it in a file."""
    return frame(msgpack.packb(record, use_bin_type=True))


def collect_damage():
    damage = []
    return damage, lambda path, offset, reason: damage.append((path, offset, reason))


def read_all(*paths):
    damage, on_damage = collect_damage()
    return list(read_records(paths, on_damage=on_damage)), damage


def split_files(records):
    """Records grouped per file, each group starting at its header."""
    groups = []
    for r in records:
        if r["kind"] == "header":
            groups.append([])
        groups[-1].append(r)
    return groups


def seqs(records):
    return [r["seq"] for r in records if r["kind"] != "header"]


class FakeClock:
    def __init__(self, now=1_700_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.mark.parametrize("umask", [0o077, 0o000])
def test_round_trip_and_modes(tmp_path, umask):
    log_dir = tmp_path / "logs"
    old = os.umask(umask)
    try:
        with LogWriter(log_dir, HEADER) as w:
            for i in range(500):
                w.write(rec(i))
    finally:
        os.umask(old)
    assert (w.written, w.dropped, w.repaired) == (500, 0, None)
    assert stat.S_IMODE(log_dir.stat().st_mode) == 0o750
    [path] = log_files(log_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    records, damage = read_all(log_dir)
    assert damage == []
    assert records[0] == {"kind": "header", "format": 2, **HEADER, "file_started": records[0]["file_started"]}
    assert records[1:] == [rec(i) for i in range(500)]


values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@pytest.mark.slow
@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.text(max_size=8), values, max_size=6))
def test_round_trip_any_values(fields):
    record = {**fields, "kind": "test", "time": 1.0}
    with tempfile.TemporaryDirectory() as log_dir:
        with LogWriter(log_dir, HEADER) as w:
            w.write(record)
        records, damage = read_all(log_dir)
    assert damage == []
    assert records[1:] == [record]


def test_rotation_by_size(tmp_path):
    with LogWriter(tmp_path, HEADER, max_bytes=4000, sync_records=7) as w:
        for i in range(1000):
            w.write(rec(i))
    files = log_files(tmp_path)
    assert len(files) > 20
    record_size = len(framed(rec(999)))
    for path in files[:-1]:
        assert 4000 <= path.stat().st_size < 4000 + record_size
    records, damage = read_all(tmp_path)
    assert damage == []
    assert seqs(records) == list(range(1000))
    groups = split_files(records)
    assert len(groups) == len(files)
    started = [g[0]["file_started"] for g in groups]
    assert started == sorted(started)


def test_rotation_by_age(tmp_path):
    clock = FakeClock()
    with LogWriter(tmp_path, HEADER, max_age=10.0, clock=clock) as w:
        for i in range(100):
            w.write(rec(i))
            clock.now += 1.0
    files = log_files(tmp_path)
    assert len(files) == 10
    records, damage = read_all(tmp_path)
    assert damage == []
    assert seqs(records) == list(range(100))
    for path, group in zip(files, split_files(records)):
        assert group[0]["kind"] == "header"
        assert len(group) == 11  # header + 10 records, one per second
        started = time.strftime("%Y%m%dT%H%M%S", time.gmtime(group[0]["file_started"]))
        assert path.name == f"addaddr-{started}.000000Z.msgpack"


def test_names_sort_in_creation_order_when_clock_stalls_or_steps_back(tmp_path):
    clock = FakeClock()
    with LogWriter(tmp_path, HEADER, max_bytes=1, clock=clock) as w:
        for i in range(10):
            w.write(rec(i))  # one file per record
        clock.now -= 3600
        for i in range(10, 20):
            w.write(rec(i))
    assert len(log_files(tmp_path)) == 21
    records, damage = read_all(tmp_path)
    assert damage == []
    assert seqs(records) == list(range(20))


def test_records_reach_the_file_as_written(tmp_path):
    """A crash of the process (kill -9) must lose no record already handed to the writer."""
    clock = FakeClock()
    w = LogWriter(tmp_path, HEADER, sync_records=3, sync_interval=5.0, clock=clock)

    def on_disk() -> int:
        return len(read_all(tmp_path)[0]) - 1  # less the file's header

    for i in range(5):
        w.write(rec(i))
        assert on_disk() == i + 1, f"got {on_disk()} records in the file; want {i + 1}"
    w.close()
    assert on_disk() == 5


def test_flush_from_a_timer_thread(tmp_path):
    done = threading.Event()
    with LogWriter(tmp_path, HEADER, max_bytes=50_000) as w:

        def timer():
            while not done.is_set():
                w.flush()

        flusher = threading.Thread(target=timer)
        flusher.start()
        try:
            for i in range(5000):
                w.write(rec(i))
        finally:
            done.set()
            flusher.join()
    records, damage = read_all(tmp_path)
    assert damage == []
    assert seqs(records) == list(range(5000))


def test_unpackable_record_is_dropped(tmp_path):
    with LogWriter(tmp_path, HEADER) as w:
        w.write(rec(0))
        with pytest.raises(TypeError):
            w.write({"kind": "test", "time": 1.0, "when": object()})
        w.write(rec(1))
    assert (w.written, w.dropped) == (2, 1)
    assert seqs(read_all(tmp_path)[0]) == [0, 1]


def test_reserved_header_keys_rejected(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        LogWriter(tmp_path, {"kind": "mine"})


def write_sample(log_dir):
    """A closed log with 3 records; returns the file path and the records."""
    with LogWriter(log_dir, HEADER) as w:
        for i in range(3):
            w.write(rec(i))
    [path] = log_files(log_dir)
    return path, read_all(path)[0]


def test_truncated_last_record_at_every_offset(tmp_path):
    path, records = write_sample(tmp_path / "orig")
    data = path.read_bytes()
    start = len(data) - len(framed(records[-1]))
    for cut in range(start + 1, len(data)):
        log_dir = tmp_path / f"cut{cut}"
        log_dir.mkdir()
        damaged = log_dir / path.name
        damaged.write_bytes(data[:cut])

        assert read_all(log_dir) == (
            records[:-1],
            [(damaged, start, f"record cut short at the end of the file ({cut - start} bytes)")],
        )

        with LogWriter(log_dir, HEADER) as w:
            pass
        assert (w.repaired.path, w.repaired.offset, w.repaired.cut) == (damaged, start, cut - start)
        assert damaged.stat().st_size == start
        after, damage = read_all(log_dir)
        assert damage == []
        assert after[:-1] == records[:-1] and after[-1]["kind"] == "header"
        assert after[-1]["repairs"] == [w.repaired.as_record()]


def test_damage_warns_by_default(tmp_path):
    path, records = write_sample(tmp_path)
    with open(path, "ab") as f:
        f.write(b"\x00")
    with pytest.warns(LogDamageWarning, match="damaged"):
        assert list(read_records(tmp_path)) == records


def test_partial_header_file_is_removed_by_repair(tmp_path):
    path, records = write_sample(tmp_path)
    partial = tmp_path / (stamp_of(path) + timedelta(seconds=1)).strftime(NAME_FORMAT)
    partial.write_bytes(path.read_bytes()[:10])
    with LogWriter(tmp_path, HEADER) as w:
        pass
    assert (w.repaired.path, w.repaired.offset, w.repaired.cut) == (partial, 0, 10)
    assert not partial.exists()
    assert read_all(tmp_path)[1] == []


@pytest.mark.parametrize("garbage", [bytes(100), random.Random(7).randbytes(300)], ids=["zeros", "random"])
def test_garbage_tail_is_left_in_place(tmp_path, garbage):
    """Bytes that are no beginning of a record are damage, not a torn write: repair keeps them."""
    path, records = write_sample(tmp_path)
    good_size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(garbage)
    after, damage = read_all(tmp_path)
    assert after == records
    assert len(damage) == 1 and damage[0][:2] == (path, good_size)
    with LogWriter(tmp_path, HEADER) as w:
        pass
    assert (w.repaired.offset, w.repaired.cut) == (good_size, 0)
    assert "left as it is" in w.repaired.reason
    assert path.stat().st_size == good_size + len(garbage)
    assert read_all(path) == (records, damage)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=200))
def test_repair_cuts_only_an_incomplete_record(garbage):
    with tempfile.TemporaryDirectory() as tmp:
        path, records = write_sample(tmp)
        good = path.read_bytes()
        with open(path, "ab") as f:
            f.write(garbage)
        before, damage = read_all(path)
        assert before == records
        assert len(damage) == 1
        with LogWriter(tmp, HEADER) as w:
            pass
        after = path.read_bytes()
        torn = damage[0][2].startswith("record cut short")
        assert after == (good if torn else good + garbage)
        assert w.repaired.cut == (len(garbage) if torn else 0)
        assert read_all(path) == (records, [] if torn else damage)


def start_follower(log_dir, **kwargs):
    """Run follow() in a thread; returns (queue of records, damage list, stop event)."""
    out, stop = queue.Queue(), threading.Event()
    damage, on_damage = collect_damage()

    def run():
        for r in follow(log_dir, poll_interval=0.005, stop=stop, on_damage=on_damage, **kwargs):
            out.put(r)

    threading.Thread(target=run, daemon=True).start()
    return out, damage, stop


def take(out, n):
    return [out.get(timeout=10) for _ in range(n)]


def quiet(out):
    """True if the follower yields nothing more for a while (many polls)."""
    try:
        out.get(timeout=0.2)
    except queue.Empty:
        return True
    return False


@pytest.mark.slow
def test_follow_under_rotation(tmp_path):
    n = 20_000
    log_dir = tmp_path / "logs"

    def write():
        with LogWriter(log_dir, HEADER, max_bytes=8192, sync_records=37) as w:
            for i in range(n):
                w.write(rec(i))
                if i % 1000 == 0:
                    time.sleep(0.01)  # let the follower catch up mid-file now and then

    writer = threading.Thread(target=write)
    writer.start()
    stop = threading.Event()
    watchdog = threading.Timer(120, stop.set)
    watchdog.start()
    damage, on_damage = collect_damage()
    seen, headers = [], 0
    try:
        for r in follow(log_dir, poll_interval=0.001, stop=stop, on_damage=on_damage):
            if r["kind"] == "header":
                headers += 1
            else:
                seen.append(r["seq"])
                if len(seen) == n:
                    break
    finally:
        watchdog.cancel()
        writer.join()
    assert seen == list(range(n))
    assert headers == len(log_files(log_dir)) > 100
    assert damage == []


def test_follow_finishes_old_file_when_rotation_races_its_end(tmp_path):
    path, records = write_sample(tmp_path)
    newer = tmp_path / (stamp_of(path) + timedelta(seconds=1)).strftime(NAME_FORMAT)
    new_header = {"kind": "header", "format": 2, "file_started": 1.0}
    seen = []
    deadline = time.monotonic() + 10

    def stop():
        # follow() checks stop between reaching the end of a file and looking for
        # the next one: the worst moment for a last write and a rotation.
        if len(seen) == len(records) and not newer.exists():
            with open(path, "ab") as f:
                f.write(framed(rec(3)))
            newer.write_bytes(framed(new_header) + framed(rec(4)))
        return len(seen) == len(records) + 3 or time.monotonic() > deadline

    damage, on_damage = collect_damage()
    for r in follow(tmp_path, poll_interval=0.005, stop=stop, on_damage=on_damage):
        seen.append(r)
    assert seen == records + [rec(3), new_header, rec(4)]
    assert damage == []


def test_follow_record_written_in_two_halves(tmp_path):
    path, records = write_sample(tmp_path)
    out, damage, stop = start_follower(tmp_path)
    try:
        assert take(out, 4) == records and quiet(out)
        data = framed(rec(3))
        with open(path, "ab", buffering=0) as f:
            f.write(data[: len(data) // 2])
            assert quiet(out)
            f.write(data[len(data) // 2 :])
        assert take(out, 1) == [rec(3)] and quiet(out)
    finally:
        stop.set()
    assert damage == []


def test_follow_rereads_after_writer_cuts_partial_record(tmp_path):
    path, records = write_sample(tmp_path)
    out, damage, stop = start_follower(tmp_path)
    try:
        assert take(out, 4) == records
        size = path.stat().st_size
        with open(path, "r+b", buffering=0) as f:
            f.seek(size)
            f.write(framed(rec(3))[:30])  # a failed write's partial record...
            assert quiet(out)
            f.truncate(size)  # ...cut back by the writer, which then goes on
            f.seek(size)
            f.write(framed(rec(4)))
        assert take(out, 1) == [rec(4)] and quiet(out)
    finally:
        stop.set()
    assert damage == []


def test_follow_from_end(tmp_path):
    write_sample(tmp_path)
    out, damage, stop = start_follower(tmp_path, from_start=False)
    try:
        assert quiet(out)
        with LogWriter(tmp_path, HEADER) as w:
            w.write(rec(10))
        header, record = take(out, 2)
        assert header["kind"] == "header" and record == rec(10) and quiet(out)
    finally:
        stop.set()
    assert damage == []


def test_follow_waits_for_directory(tmp_path):
    log_dir = tmp_path / "later"
    out, damage, stop = start_follower(log_dir, from_start=False)
    try:
        assert quiet(out)
        with LogWriter(log_dir, HEADER) as w:
            w.write(rec(0))
        assert seqs(take(out, 2)) == [0]
    finally:
        stop.set()
    assert damage == []


def test_follow_replaced_file(tmp_path):
    path, records = write_sample(tmp_path)
    out, damage, stop = start_follower(tmp_path)
    try:
        assert take(out, 4) == records
        replacement = tmp_path / "replacement"
        replacement.write_bytes(msgpack.packb(rec(7)))
        replacement.replace(path)
        assert take(out, 1) == [rec(7)] and quiet(out)
    finally:
        stop.set()
    assert damage == []


def test_read_several_directories_in_order_given(tmp_path):
    _, first = write_sample(tmp_path / "b")
    path, second = write_sample(tmp_path / "a")
    assert read_all(tmp_path / "b", path) == (first + second, [])


@pytest.fixture
def tiny_fs(tmp_path):
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    try:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mount_point], capture_output=True, text=True
        )
    except FileNotFoundError:
        pytest.skip("no mount command")
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", mount_point], check=True)


def test_disk_full(tiny_fs):
    log_dir = tiny_fs / "logs"
    w = LogWriter(log_dir, HEADER, sync_records=10)
    errors = []
    attempts = 0
    while len(errors) < 5:  # keeps failing, keeps counting
        try:
            w.write(rec(attempts))
        except OSError as e:
            errors.append(e.errno)
        attempts += 1
        assert attempts < 10_000
    w.close()
    assert set(errors) == {errno.ENOSPC}
    assert w.dropped > 0
    assert w.written + w.dropped == attempts
    records, damage = read_all(log_dir)
    assert damage == []
    assert len(seqs(records)) == w.written
    assert seqs(records) == sorted(seqs(records))


# What records hold: msgpack's own values, nested; and each at the sizes where msgpack's encoding changes.
_BOUNDARIES = [
    0,
    -32,
    -33,
    127,
    128,
    255,
    256,
    2**16,
    2**32 - 1,
    2**32,
    2**63 - 1,
    2**64 - 1,
    -(2**63),
    1.5,
    -0.0,
    *("é" * n for n in (31, 32, 255, 256, 65535, 65536)),
    *(b"x" * n for n in (255, 256, 65536)),
    [1] * 15,
    [1] * 16,
    [1] * 65536,
    {str(i): i for i in range(16)},
    {str(i): i for i in range(65536)},
]
_RECORD_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=8), inner, max_size=8),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), _RECORD_VALUES, max_size=8))
def test_the_writer_packs_as_msgpack_does(record):
    # The writer packs with msgspec for speed; logs hold the bytes msgpack.Packer wrote before (and
    # readers of older logs expect): the same bytes, whatever a record holds.
    assert pack_record(record) == msgpack.packb(record, use_bin_type=True)


@pytest.mark.parametrize("value", _BOUNDARIES, ids=range(len(_BOUNDARIES)))
def test_the_writer_packs_each_size_as_msgpack_does(value):
    assert pack_record({"kind": "test", "value": value}) == msgpack.packb(
        {"kind": "test", "value": value}, use_bin_type=True
    )


def test_the_writer_packs_every_kind_as_msgpack_does(tmp_path):
    writer = LogWriter(tmp_path, HEADER)
    records = [record for kind, record in VALID.items() if kind != "header"]
    start = os.path.getsize(writer.path)
    writer.write_many(records)
    writer.close()
    with open(writer.path, "rb") as f:
        f.seek(start)
        assert f.read(sum(map(len, map(framed, records)))) == b"".join(map(framed, records))


# read_file_from(path, offset) resumes an incremental export: a file cut below that offset (copied
# back shorter, cut by hand between export's size check and its read) was read again from its
# start, handing over the records exported before a second time.
def test_read_file_from_an_offset_past_a_cut_hands_over_nothing_again(tmp_path):
    from collector.logs.reader import read_file_from

    with LogWriter(tmp_path, {"host": "h"}) as writer:
        for i in range(20):
            writer.write({"kind": "lost", "time": 1_700_000_000.0 + i, "count": i})
    [path] = log_files(tmp_path)
    offsets = [offset for _record, offset in read_file_from(path)]
    os.truncate(path, offsets[10] - 1)  # the same first records, cut inside the eleventh
    damage = []
    again = list(read_file_from(path, offsets[-1], on_damage=lambda *where: damage.append(where)))
    assert again == [], f"{len(again)} records handed over again"
    [(where, offset, why)] = damage
    assert (where, offset) == (path, offsets[10] - 1) and "shorter than" in why and "not read" in why, why
