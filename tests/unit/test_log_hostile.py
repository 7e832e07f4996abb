# SPDX-License-Identifier: MIT
"""Logs as damage, a crash or a hostile user leaves them: readers skip what they must and read the
rest, repair destroys nothing, and nothing planted in the log dir is written, blocks or crashes."""

import json
import os
import pwd
import random
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import msgpack
import pytest
from click.testing import CliRunner

from collector.cli import main
from collector.live.privileges import _hand_over
from collector.logs.directory import NAME_FORMAT, log_files, written_files
from collector.logs.framing import MARKER, FileCursor, frame
from collector.logs.reader import follow, read_records
from collector.logs.writer import LogWriter

HEADER = {"host": "test-host", "interfaces": ["eth0"]}
SECRET = b"a file outside the log dir that root must not change\n"


def lost(i):
    return {"kind": "lost", "time": 1_700_000_000.0 + i, "count": i}


def write_log(log_dir, n, **kwargs):
    with LogWriter(log_dir, HEADER, **kwargs) as w:
        for i in range(n):
            w.write(lost(i))
    return log_files(log_dir)


def read(*paths):
    damage = []
    records = list(read_records(paths, on_damage=lambda *where: damage.append(where)))
    return records, damage


def counts(records):
    return [r["count"] for r in records if r["kind"] == "lost"]


def name_at(seconds):
    return datetime.fromtimestamp(seconds, UTC).strftime(NAME_FORMAT)


# --- format 2: one damaged byte costs at most the record it hit -------------------------------------


@pytest.mark.parametrize("value", [0x00, 0xFF, 0xC1, None])  # None: the byte's bits flipped
def test_one_damaged_byte_anywhere_costs_at_most_its_record(tmp_path, value):
    [path] = write_log(tmp_path / "logs", 200)
    data = path.read_bytes()
    rng = random.Random(value)
    for offset in sorted(rng.sample(range(len(data)), 60)) + [0, 1, 4, 8, 12, len(data) - 1]:
        damaged = bytearray(data)
        damaged[offset] = damaged[offset] ^ 0xFF if value is None else value
        if damaged == data:
            continue
        path.write_bytes(damaged)
        records, damage = read(path)
        got = counts(records)
        assert set(got) <= set(range(200)) and got == sorted(got), f"byte {offset}: wrong records {got}"
        assert len(got) >= 199, f"byte {offset}: recovered {len(got)} of 200"
        assert len(damage) == 1 and damage[0][0] == path, f"byte {offset}: got {damage}"


def test_damage_in_the_middle_of_the_newest_file_is_left_in_place(tmp_path):
    [path] = write_log(tmp_path, 100)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(data)
    with LogWriter(tmp_path, HEADER) as w:
        pass
    assert path.read_bytes() == data, "repair changed a file whose damage is not a torn tail"
    assert w.repaired.cut == 0 and "left as it is" in w.repaired.reason
    records, damage = read(tmp_path)
    assert len(counts(records)) == 99 and len(damage) == 1
    assert records[-1]["repairs"] == [w.repaired.as_record()], "want the repair recorded in the next header"


def test_garbage_between_records_and_a_cut_frame(tmp_path):
    [path] = write_log(tmp_path, 3)
    data = path.read_bytes()
    extra = frame(msgpack.packb(lost(3)))
    # garbage, a frame cut short by a resumed copy, then whole frames again
    path.write_bytes(data + b"junk" + extra[:9] + MARKER + extra + frame(msgpack.packb(lost(4))))
    records, damage = read(path)
    assert counts(records) == [0, 1, 2, 3, 4]
    assert [offset for _, offset, _ in damage] == [len(data)]


def test_format_1_files_still_read(tmp_path):
    path = tmp_path / "addaddr-20240101T000000.000000Z.msgpack"
    header = {"kind": "header", "format": 1, "file_started": 1.0, **HEADER}
    path.write_bytes(b"".join(msgpack.packb(r) for r in [header, lost(0), lost(1)]))
    assert read(tmp_path) == ([header, lost(0), lost(1)], [])
    with LogWriter(tmp_path, HEADER) as w:
        pass
    assert w.repaired is None


def test_format_1_torn_tail_is_reported_never_cut(tmp_path):
    path = tmp_path / "addaddr-20240101T000000.000000Z.msgpack"
    data = b"".join(msgpack.packb(r) for r in [{"kind": "header", "format": 1, "file_started": 1.0}, lost(0), lost(1)])
    path.write_bytes(data[:-3])
    records, damage = read(path)
    assert counts(records) == [0] and len(damage) == 1
    with LogWriter(tmp_path, HEADER, clock=lambda: 1_800_000_000.0) as w:
        pass
    assert path.read_bytes() == data[:-3] and w.repaired.cut == 0


@pytest.mark.parametrize("framing", [1, 2])
def test_unknown_format_is_refused(tmp_path, framing):
    path = tmp_path / "addaddr-20240101T000000.000000Z.msgpack"
    records = [{"kind": "header", "format": 3, "file_started": 1.0}, lost(0)]
    pack = (lambda r: frame(msgpack.packb(r))) if framing == 2 else msgpack.packb
    path.write_bytes(b"".join(map(pack, records)))
    assert read(path) == (
        [],
        [
            (
                path,
                0,
                "log format 3, which this addaddr does not know (it reads 1 and 2): "
                "file skipped; upgrade addaddr to read it",
            )
        ],
    )


# --- the log dir as a hostile user leaves it ---------------------------------------------------------


@pytest.fixture
def outside(tmp_path):
    target = tmp_path / "outside"
    target.write_bytes(SECRET)
    os.chmod(target, 0o600)
    return target


def newest_name(log_dir):
    return Path(log_dir, name_at(2_000_000_000))  # after any file a test writes, before FUTURE_SLACK


def test_planted_symlink_is_never_written(tmp_path, outside):
    log_dir = tmp_path / "logs"
    write_log(log_dir, 2)
    planted = newest_name(log_dir)
    planted.symlink_to(outside)
    with LogWriter(log_dir, HEADER, clock=lambda: 2_000_000_000.0) as w:
        w.write(lost(9))
    assert outside.read_bytes() == SECRET, "root changed the file a planted symlink points to"
    assert "a symbolic link: left alone" in w.repaired.reason
    records, damage = read(log_dir)
    assert counts(records) == [0, 1, 9]
    assert damage == [(planted, 0, "a symbolic link: skipped")]


def test_planted_hard_link_is_never_written(tmp_path):
    log_dir = tmp_path / "logs"
    write_log(log_dir, 1)
    target = tmp_path / "target"
    target.write_bytes(frame(msgpack.packb({"kind": "header", "format": 2, "file_started": 1.0})) + SECRET)
    planted = newest_name(log_dir)
    os.link(target, planted)
    with LogWriter(log_dir, HEADER, clock=lambda: 2_000_000_000.0) as w:
        pass
    assert target.read_bytes().endswith(SECRET)
    assert "2 links" in w.repaired.reason


# chown to another user: root's to do. Skipped, saying so, for a developer who runs the unit tests unprivileged.
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


@needs_root
def test_torn_file_of_another_user_is_not_cut(tmp_path):
    log_dir = tmp_path / "logs"
    [path] = write_log(log_dir, 3)
    data = path.read_bytes()[:-4]
    path.write_bytes(data)
    nobody = pwd.getpwnam("nobody").pw_uid
    os.chown(path, nobody, -1)
    with LogWriter(log_dir, HEADER) as w:
        pass
    assert path.read_bytes() == data and f"owned by uid {nobody}" in w.repaired.reason


@needs_root
def test_hand_over_skips_planted_links(tmp_path, outside):
    log_dir = tmp_path / "logs"
    [ours] = write_log(log_dir, 1)
    os.link(outside, newest_name(log_dir))
    Path(log_dir, name_at(2_000_000_001)).symlink_to(outside)
    nobody = pwd.getpwnam("nobody")
    _hand_over(log_dir, nobody.pw_uid, nobody.pw_gid)
    assert outside.stat().st_uid == 0, "a planted link handed its target over"
    assert ours.stat().st_uid == nobody.pw_uid and log_dir.stat().st_uid == nobody.pw_uid


def run_with_deadline(code, *args):
    """Python code in a child that must finish in 60 s: a blocking open would hang it."""
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_fifo_directory_and_odd_names_are_skipped(tmp_path):
    log_dir = tmp_path / "logs"
    write_log(log_dir, 2)
    fifo = Path(log_dir, name_at(1_000_000_000))
    os.mkfifo(fifo)
    directory = Path(log_dir, name_at(1_000_000_001))
    directory.mkdir()
    Path(log_dir, "addaddr-99991231T235959.999999Z.msgpack").write_bytes(b"")
    Path(log_dir, "addaddr-20241399T000000.000000Z.msgpack").write_bytes(b"")  # month 13
    Path(log_dir, os.fsdecode(b"addaddr-\xff\xfe.msgpack")).write_bytes(b"x")  # not UTF-8
    out = run_with_deadline(
        "import sys, json\n"
        "from collector.logs.reader import read_records\nfrom collector.logs.writer import LogWriter\n"
        "damage = []\n"
        "records = list(read_records(sys.argv[1], on_damage=lambda *w: damage.append(w[2])))\n"
        "with LogWriter(sys.argv[1], {}) as w:\n"
        "    w.write({'kind': 'lost', 'time': 1.0, 'count': 5})\n"
        "print(json.dumps([len(records), damage, w.path.name]))\n",
        log_dir,
    )
    count, damage, new_name = json.loads(out)
    assert count == 3 and sorted(damage) == ["a FIFO: skipped", "a directory: skipped"]
    assert new_name.startswith("addaddr-20") and not new_name.startswith("addaddr-9999")
    assert written_files(log_dir)[-1][0].name == new_name, "want the new file last among the writer's"


# Read as zeros (before the check), a hole took ~4 s a GiB here: this one, ~16 s.
SPARSE_BYTES = 4 << 30


def test_a_file_sized_by_truncate_is_named_and_skipped_without_reading_its_hole(tmp_path):
    log_dir = tmp_path / "logs"
    write_log(log_dir, 2)
    sparse = Path(log_dir, name_at(1_000_000_000))
    sparse.touch()
    os.truncate(sparse, SPARSE_BYTES)
    with open(sparse, "rb") as file:
        try:
            os.lseek(file.fileno(), 0, os.SEEK_DATA)
            pytest.skip(f"{tmp_path}'s filesystem does not tell holes from data")
        except OSError:
            pass
    started = time.process_time()
    records, damage = read(log_dir)
    assert counts(records) == [0, 1], f"got {counts(records)}"
    assert [(path.name, offset, why) for path, offset, why in damage] == [
        (sparse.name, 0, f"a sparse file of {SPARSE_BYTES:,} bytes with none written (made by truncate?): skipped")
    ]
    assert time.process_time() - started < 5, "the hole was read"


def holes_told(path):
    """Skip a test on a filesystem that does not tell holes from data (`path` has one)."""
    with open(path, "rb") as file:
        try:
            told = os.lseek(file.fileno(), 0, os.SEEK_HOLE) < os.fstat(file.fileno()).st_size
        except OSError:
            told = False
    if not told:
        pytest.skip(f"{path.parent}'s filesystem does not tell holes from data")


def append_lost(path, counts):
    with open(path, "ab") as file:  # O_APPEND, as a writer: after the hole
        file.write(b"".join(frame(msgpack.packb(lost(i))) for i in counts))


# Read as zeros (before SEEK_DATA), this hole took 5.6-50 s of CPU here (0.35-3 s a GiB: the
# kernel's part varies); skipped, a few milliseconds.
HOLE_BYTES = 16 << 30


# Garbage then a hole was named twice: the garbage, then the hole at the next READ_SIZE boundary;
# a hole under READ_SIZE between records was damage "with no record marker".
@pytest.mark.parametrize("hole_bytes", [64 << 10, HOLE_BYTES])
@pytest.mark.parametrize("garbage", [0, 100, 8000, (1 << 20) + 5000])
def test_a_hole_between_records_is_named_once_where_the_skip_starts_and_not_read(tmp_path, garbage, hole_bytes):
    [path] = write_log(tmp_path, 3)
    written = path.stat().st_size
    with open(path, "ab") as file:
        file.write(bytes(random.Random(garbage).randrange(1, 256) for _ in range(garbage)))
    os.truncate(path, written + garbage + hole_bytes)
    holes_told(path)
    append_lost(path, [3, 4])
    started = time.process_time()
    records, damage = read(path)
    assert counts(records) == [0, 1, 2, 3, 4]
    [(_, offset, why)] = damage
    assert offset == written, f"named at {offset:,}, the skip starts at {written:,}"
    if not garbage:
        assert why.endswith(" bytes never written (a hole); skipped to the next whole record"), why
        assert hole_bytes - 4096 < int(why.split()[0].replace(",", "")) <= hole_bytes, why
    elif garbage < 1 << 20:  # over a read, the garbage is named before the hole is seen, the hole not
        assert why.startswith("damaged (no record marker) and ") and "bytes never written (a hole)" in why, why
    assert time.process_time() - started < 2, "the hole was read"


# A hole under READ_SIZE was read whole with the records before it and named damage, not waited on.
@pytest.mark.parametrize("hole_bytes", [64 << 10, (1 << 20) - 4096, HOLE_BYTES])
def test_a_hole_at_the_end_of_a_file_being_written_is_waited_on_not_skipped(tmp_path, hole_bytes):
    [path] = write_log(tmp_path, 2)
    written = path.stat().st_size
    os.truncate(path, written + hole_bytes)
    holes_told(path)
    damage = []
    started = time.process_time()
    with FileCursor(path, os.open(path, os.O_RDONLY), lambda *where: damage.append(where)) as cursor:
        assert counts(cursor.records()) == [0, 1] and damage == [] and cursor.offset == written
        assert list(cursor.records()) == [] and damage == [], "a writer may yet append after the hole"
        append_lost(path, [2])
        assert counts(cursor.records()) == [2] and len(damage) == 1
        assert damage[0][1] == written and "bytes never written (a hole)" in damage[0][2], damage
        assert cursor.offset == written + hole_bytes + len(frame(msgpack.packb(lost(2))))
        os.truncate(path, cursor.offset + hole_bytes)  # a hole to the end, the file now finished
        assert list(cursor.records()) == [] and len(damage) == 1, "still written: waited on"
        assert list(cursor.records(final=True)) == [] and cursor.torn_at is None
    assert damage[1][1:] == (
        cursor.offset - hole_bytes,
        f"{hole_bytes:,} bytes never written (a hole); skipped to the next whole record",
    )
    assert time.process_time() - started < 2, "the hole was read"


# A follower waited for the file to grow past where it had read: records written after a cut were
# lost, and the first it read again was in the middle of one (named damage).
def test_a_file_cut_while_followed_is_named_and_read_again_from_its_start(tmp_path):
    [path] = write_log(tmp_path, 20)
    damage = []
    with FileCursor(path, os.open(path, os.O_RDONLY), lambda *where: damage.append(where)) as cursor:
        assert counts(cursor.records()) == list(range(20))
        read_to = cursor.offset
        os.truncate(path, 0)
        append_lost(path, [30, 31])
        cut_to = path.stat().st_size
        assert counts(cursor.records()) == [30, 31]
        append_lost(path, range(32, 60))  # past where reading had got to before the cut
        assert counts(cursor.records()) == list(range(32, 60))
    assert damage == [
        (
            path,
            cut_to,
            f"the file is {cut_to:,} bytes, shorter than the {read_to:,} read: cut "
            "while read (truncate?); read again from its start",
        )
    ]


# Cut and written past where reading had got to before the follower looked again (a writer of a few
# MB/s outgrows a poll interval): the size alone did not tell, reading went on from the old offset in
# the middle of the new records, and those before it were lost (and named damage).
def test_a_file_cut_and_grown_past_the_offset_between_reads_is_read_again_from_its_start(tmp_path):
    [path] = write_log(tmp_path, 20)
    damage = []
    with FileCursor(path, os.open(path, os.O_RDONLY), lambda *where: damage.append(where)) as cursor:
        assert counts(cursor.records()) == list(range(20))
        os.truncate(path, 0)
        append_lost(path, range(100, 160))  # more bytes than the 20 and their header
        assert counts(cursor.records()) == list(range(100, 160))
    assert [(offset, why) for _path, offset, why in damage] == [
        (0, "the file's first bytes changed since read: cut and written again (truncate?); read again from its start")
    ]


@pytest.mark.parametrize("zeros", [12, 5000, (1 << 20) - 100, 3 << 20])
def test_written_zeros_are_damage_as_before_not_a_hole(tmp_path, zeros):
    [path] = write_log(tmp_path, 3)
    written = path.stat().st_size
    with open(path, "ab") as file:
        file.write(bytes(zeros))  # written: data, not a hole
    append_lost(path, [3])
    records, damage = read(path)
    assert counts(records) == [0, 1, 2, 3]
    assert damage == [(path, written, "damaged (no record marker); skipped to the next whole record")]


def test_follow_does_not_block_on_a_fifo(tmp_path):
    log_dir = tmp_path / "logs"
    write_log(log_dir, 1)
    os.mkfifo(Path(log_dir, name_at(time.time() + 60)))  # the next file a writer could make
    out = run_with_deadline(
        "import sys\n"
        "from collector.logs.reader import follow\n"
        "seen, damage = [], []\n"
        "for r in follow(sys.argv[1], poll_interval=0.01, stop=lambda: len(damage) > 0 and len(seen) == 2,\n"
        "                on_damage=lambda *w: damage.append(w[2])):\n"
        "    seen.append(r['kind'])\n"
        "print(seen, damage)\n",
        log_dir,
    )
    assert out.strip() == "['header', 'lost'] ['a FIFO: skipped']"


def test_same_dir_twice_counts_once(tmp_path):
    log_dir = tmp_path / "logs"
    write_log(log_dir, 3)
    (tmp_path / "link").symlink_to(log_dir)
    records, damage = read(log_dir, tmp_path / "link", f"{log_dir}/../logs", *log_files(log_dir))
    assert counts(records) == [0, 1, 2] and damage == []


def test_follow_unchanged_for_a_growing_log(tmp_path):
    log_dir = tmp_path / "logs"
    write_log(log_dir, 2)
    seen = []
    for r in follow(log_dir, poll_interval=0.01, stop=lambda: len(seen) == 3):
        seen.append(r)
    assert counts(seen) == [0, 1]


# --- the commands: stdout complete for the rest, exit status 1 ---------------------------------------


@pytest.mark.parametrize("command", [["tail", "--json"], ["report", "--format", "json"]])
def test_commands_exit_1_and_name_each_skipped_record(tmp_path, command):
    log_dir = tmp_path / "logs"
    [path] = write_log(log_dir, 3)
    bad = [
        {"kind": "lost", "time": float("nan"), "count": 1},
        {"time": 1.0},
        {"kind": "header", "format": 2, "file_started": 1.0, "host": ["a", "list"]},
        {"kind": "add_addr", "time": 1e300},
    ]
    with open(path, "ab") as f:
        for record in bad:
            f.write(frame(msgpack.packb(record)))
        f.write(frame(msgpack.packb(lost(3))))
    result = CliRunner().invoke(main, [*command, "--log-dir", str(log_dir)])
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == len(bad) and all(f"{path}: byte " in line for line in lines), lines
    if command[0] == "tail":
        assert [json.loads(line)["kind"] for line in result.stdout.splitlines()] == ["header"] + ["lost"] * 4
    else:
        assert json.loads(result.stdout)["lost_events"] == 0 + 1 + 2 + 3


def add_addr_record(i, **changes):
    return {
        "kind": "add_addr",
        "time": 1_700_000_000.0 + i,
        "src": "198.18.0.2",
        "sport": 40000,
        "dst": "198.18.0.1",
        "dport": 443,
        "ifindex": 2,
        "connection": 7,
        "announcer": "client",
        "subflow": "initial",
        "version": 1,
        "echo": False,
        "address_id": 1,
        "address": "2002:c000:201::1",
        "port": None,
        "hmac": bytes(8),
        "family": "ipv6",
        "class": "6to4",
        "global": False,
        "embedded_ipv4": {"address": "192.0.2.1", "class": "documentation", "global": False},
        **changes,
    }


def test_what_msgspec_reads_otherwise_than_msgpack_is_read_as_msgpack_reads_it(tmp_path, monkeypatch):
    """The reader decodes with msgspec, which takes keys other than strings and makes other objects of
    extension types: such records must be kept, skipped and named exactly as msgpack alone reads them."""
    import collector.logs.framing as log_format

    planted = [
        lost(0) | {"extra": {1: 2}},
        lost(1) | {"extra": msgpack.ExtType(5, b"x")},
        lost(2) | {"extra": msgpack.Timestamp(1, 0)},
        lost(3) | {7: 1},
        lost(4) | {b"count": 1},
        lost(5) | {"extra": [[[[1]]]]},
        add_addr_record(6),
        add_addr_record(7, hmac=msgpack.ExtType(1, b"")),
        add_addr_record(8, embedded_ipv4={"address": "192.0.2.1", "class": "documentation", "global": False, 1: 2}),
        add_addr_record(
            9, embedded_ipv4={"address": "192.0.2.1", "class": "documentation", "global": msgpack.Timestamp(0, 0)}
        ),
        {
            "kind": "stats",
            "time": 1_700_000_010.0,
            "kernel": {1: 2},
            "tracker": {},
            "events": 0,
            "announcements": 0,
            "lost": 0,
            "unwritten": 0,
        },
        lost(11),
        add_addr_record(12),
    ]
    header = {"kind": "header", "format": 2, "file_started": 1_700_000_000.0, **HEADER}
    path = tmp_path / name_at(1_700_000_000)
    path.write_bytes(b"".join(frame(msgpack.packb(r, use_bin_type=True)) for r in [header, *planted]))
    got = read(path)

    def refuse(payload):
        raise ValueError("msgpack only")

    monkeypatch.setattr(log_format, "_DECODE", refuse)
    want = read(path)
    assert got == want, f"got {got}; want {want}"
    records, damage = want
    assert len(damage) == 6 and len(records) == len(planted) + 1 - 6, f"got {records}, {damage}"
