# SPDX-License-Identifier: MIT
"""The Parquet export and the study over it: DuckDB's and Spark's figures equal `report` over the logs."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
from click.testing import CliRunner

from collector.cli import main
from collector.logs.framing import frame
from collector.logs.writer import LogWriter
from tests.support.commands import json_report, run_on_a_terminal
from tests.support.log_records import HAND_BUILT, T0, add_addr, connection, write_log
from tests.support.paths import ADDADDR

pytest.importorskip("pyarrow", reason="the export needs the fleet extra: scripts/setup --test installs it")
pytest.importorskip("duckdb", reason="report --parquet needs the fleet extra: scripts/setup --test installs it")

import pyarrow.parquet as pq  # noqa: E402

from collector.fleet.rows import MANIFEST  # noqa: E402


def export(*args: str):
    result = CliRunner().invoke(main, ["export", *args])
    return result


def exported(log_dirs: list[Path], to: Path, *options: str) -> str:
    args = [a for d in log_dirs for a in ("--log-dir", str(d))]
    result = export(*args, "--to", str(to), *options)
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.stderr}"
    return result.stderr


def logs_of_two_hosts(tmp_path) -> list[Path]:
    """The hand-built log written by two hosts: the same tokens, connections apart."""
    dirs = [tmp_path / "alpha", tmp_path / "beta"]
    write_log(dirs[0], HAND_BUILT, host="alpha")
    # beta: connections 1 to 3 only, and what 1 and 2 announce, so a mix-up of hosts shows
    write_log(dirs[1], HAND_BUILT[:3] + HAND_BUILT[5:13], host="beta")
    return dirs


def table(dataset: Path, name: str) -> list[dict]:
    return pq.read_table(dataset / name).to_pylist()


@pytest.mark.parametrize("window", [(), ("--since", str(T0 + 3), "--until", str(T0 + 31))], ids=["all", "window"])
def test_report_parquet_is_report_over_the_logs(tmp_path, window):
    dirs = logs_of_two_hosts(tmp_path)
    exported(dirs, tmp_path / "set")
    want = json_report(*[a for d in dirs for a in ("--log-dir", str(d))], *window)
    got = json_report("--parquet", str(tmp_path / "set"), *window)
    assert got == want, f"got {json.dumps(got)}\nwant {json.dumps(want)}"
    assert want["connections"] == 5 + 3 or window, "want the two hosts' equal tokens as 8 connections"


def test_tables_are_typed_and_partitioned_by_host_and_date(tmp_path):
    dirs = logs_of_two_hosts(tmp_path)
    exported(dirs, tmp_path / "set")
    rows = table(tmp_path / "set", "announcements")
    sixto4 = next(r for r in rows if r["address"] == "2002:c000:201::1" and r["host"] == "alpha")
    assert (sixto4["embedded_ipv4_address"], sixto4["embedded_ipv4_class"]) == ("192.0.2.1", "documentation"), (
        f"got {sixto4}"
    )
    assert sixto4["time"].timestamp() == T0 + 21 and sixto4["date"] == "2023-11-14", f"got {sixto4}"
    connections = table(tmp_path / "set", "connections")
    one = [r for r in connections if r["connection"] == 1]
    assert sorted(r["host"] for r in one) == ["alpha", "beta"], f"got {one}"
    ended = next(r for r in one if r["host"] == "alpha")
    assert (ended["established"], ended["end_reason"], ended["ended"].timestamp()) == (True, "closed", T0 + 70), (
        f"got {ended}"
    )
    assert ended["client_key"] == 2**63 + 1, f"got {ended['client_key']}; want the 64-bit key whole"
    attempts = [r for r in connections if not r["established"]]
    assert len(attempts) == 4 and all(r["connection"] is None for r in attempts), f"got {attempts}"


def test_export_again_adds_only_what_the_logs_gained(tmp_path):
    """A log that grew since the last export, with a connection open across the two."""
    log_dir, dataset = tmp_path / "logs", tmp_path / "set"
    writer = LogWriter(log_dir, {"host": "alpha", "interfaces": ["eth0"], "source": "live"})
    try:
        for record in [connection(T0, 7), add_addr(T0 + 1, 7, "10.0.0.1")]:
            writer.write(record)
        writer.flush()
        exported([log_dir], dataset)
        assert json_report("--parquet", str(dataset)) == json_report("--log-dir", str(log_dir))
        opened = table(dataset, "connections")
        assert [(r["connection"], r["ended"]) for r in opened] == [(7, None)], f"got {opened}"
        for record in [
            {
                "kind": "mp_join",
                "time": T0 + 2,
                "src": "198.18.0.3",
                "sport": 1,
                "dst": "198.18.0.1",
                "dport": 443,
                "ifindex": 2,
                "connection": 7,
                "token": 7,
                "address_id": 2,
                "backup": False,
                "form": "syn",
            },
            add_addr(T0 + 86400, 7, "8.8.8.8"),  # the next day
            {"kind": "connection_end", "time": T0 + 86401, "connection": 7, "reason": "closed"},
        ]:
            writer.write(record)
        writer.flush()
    finally:
        writer.close()
    exported([log_dir], dataset)
    assert json_report("--parquet", str(dataset)) == json_report("--log-dir", str(log_dir))
    rows = table(dataset, "connections")
    assert [(r["connection"], r["joins"], r["end_reason"]) for r in rows] == [(7, 1, "closed")], (
        f"got {rows}; want connection 7 once, completed"
    )
    message = exported([log_dir], dataset)
    assert "0 new records" in message, f"got {message!r}"
    assert len(table(dataset, "announcements")) == 2, "want no announcement twice"
    dates = sorted({r["date"] for r in table(dataset, "announcements")})
    assert dates == ["2023-11-14", "2023-11-15"], f"got dates {dates}"


def test_files_of_an_export_that_died_are_removed(tmp_path):
    dirs = logs_of_two_hosts(tmp_path)
    dataset = tmp_path / "set"
    exported(dirs, dataset)
    stray = dataset / "announcements/host=alpha/date=2023-11-14/part-dead-00001.parquet"
    shutil.copy(next((dataset / "announcements/host=alpha").rglob("part-*.parquet")), stray)
    half = dataset / "announcements/host=beta/date=2023-11-14/.part-dead-00002.parquet.tmp"
    half.write_bytes(b"half")
    write_log(dirs[0], [connection(T0 + 100, 99)], host="alpha")  # something new, so the export runs
    exported(dirs, dataset)
    assert not stray.exists() and not half.exists(), "want the dead run's files removed"
    assert json_report("--parquet", str(dataset)) == json_report(*[a for d in dirs for a in ("--log-dir", str(d))])


def test_anonymized_export_keeps_the_figures_and_refuses_another_key(tmp_path):
    dirs = logs_of_two_hosts(tmp_path)
    dataset, key = tmp_path / "set", tmp_path / "key"
    exported(dirs, dataset, "--anonymize-key", str(key))
    addresses = {r["address"] for r in table(dataset, "announcements")}
    assert "192.168.1.10" not in addresses and len(addresses) == 10, f"got {addresses}"
    assert json_report("--parquet", str(dataset)) == json_report(*[a for d in dirs for a in ("--log-dir", str(d))])
    write_log(dirs[0], [connection(T0 + 100, 99)], host="alpha")
    result = export("--log-dir", str(dirs[0]), "--to", str(dataset), "--anonymize-key", str(tmp_path / "other"))
    assert result.exit_code == 1 and "--anonymize-key" in result.stderr, f"got {result.exit_code} {result.stderr!r}"
    assert "Traceback" not in result.stderr


def test_export_to_a_directory_of_other_files_is_refused(tmp_path):
    dirs = logs_of_two_hosts(tmp_path)
    (tmp_path / "home").mkdir()
    (tmp_path / "home/notes.txt").write_text("mine")
    result = export("--log-dir", str(dirs[0]), "--to", str(tmp_path / "home"))
    assert result.exit_code == 1 and "not an addaddr export" in result.stderr, f"got {result.stderr!r}"
    assert (tmp_path / "home/notes.txt").read_text() == "mine"


def bound(path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))  # the socket file stays


# A FIFO, a socket or a device was "a file"; a regular file got click's "Directory 'x' is a file."
# (usage, status 2); a dangling or looping link "File exists".
ODD_TARGETS = {
    "a FIFO": (lambda path: os.mkfifo(path), "is a FIFO, not a directory"),
    "a socket": (lambda path: bound(path), "is a socket, not a directory"),
    "a device": (
        lambda path: path.symlink_to("/dev/null"),
        "is a symbolic link to a character device, not a directory",
    ),
    "a file": (lambda path: path.write_text("mine"), "is a regular file, not a directory"),
    "a link to a file": (
        lambda path: (path.with_name("target").write_text("mine"), path.symlink_to("target")),
        "is a symbolic link to a regular file, not a directory",
    ),
    "a dangling link": (lambda path: path.symlink_to("nowhere"), "is a symbolic link to nowhere (nowhere)"),
    "a link that loops": (lambda path: path.symlink_to(path.name), "is a symbolic link that loops"),
}


@pytest.mark.parametrize("odd", ODD_TARGETS)
def test_export_to_what_is_no_directory_says_what_it_is(tmp_path, odd):
    dirs = logs_of_two_hosts(tmp_path)
    make, said = ODD_TARGETS[odd]
    make(tmp_path / "to")
    result = export("--log-dir", str(dirs[0]), "--to", str(tmp_path / "to"))
    assert result.exit_code == 1, f"got {result.exit_code}: {result.stderr!r}"
    [line] = result.stderr.splitlines()
    assert line.startswith(f"addaddr: error: --to {tmp_path / 'to'} {said}") and "give " in line, line


def test_an_empty_anonymize_key_is_refused_not_taken_for_none(tmp_path):
    """`--anonymize-key "$KEY"` with KEY unset exported the real addresses: "" read as no key."""
    dirs = logs_of_two_hosts(tmp_path)
    result = export("--log-dir", str(dirs[0]), "--to", str(tmp_path / "set"), "--anonymize-key", "")
    assert result.exit_code == 2 and "'--anonymize-key': is empty" in result.stderr, result.stderr
    assert not (tmp_path / "set").exists()


def test_export_to_a_link_to_a_directory_exports_there(tmp_path):
    dirs = logs_of_two_hosts(tmp_path)
    (tmp_path / "set").mkdir()
    (tmp_path / "to").symlink_to("set")
    exported(dirs[:1], tmp_path / "to")
    assert (tmp_path / "set" / MANIFEST).is_file()


def test_a_log_replaced_by_another_under_its_name_is_named_not_read_from_the_old_offset(tmp_path):
    """Read on from where the first file had been exported, its first records were lost (named damage)
    and the rest exported under the first file's host."""
    write_log(tmp_path / "logs", HAND_BUILT[:3], host="alpha")
    exported([tmp_path / "logs"], tmp_path / "set")
    [path] = (tmp_path / "logs").iterdir()
    write_log(tmp_path / "other", HAND_BUILT, host="beta")
    [other] = (tmp_path / "other").iterdir()
    os.replace(other, path)  # larger: not caught by its size
    result = export("--log-dir", str(tmp_path / "logs"), "--to", str(tmp_path / "set"))
    assert result.exit_code == 1 and f"{path} is not the file exported before" in result.stderr, result.stderr
    assert "0 new records" in result.stderr and "damaged" not in result.stderr, result.stderr


def test_a_growing_log_copied_anew_each_time_is_read_on(tmp_path):
    """rsync puts a new copy (a new inode) of a growing log in place: the same file, read on."""
    write_log(tmp_path / "logs", HAND_BUILT[:3], host="alpha")
    exported([tmp_path / "logs"], tmp_path / "set")
    [path] = (tmp_path / "logs").iterdir()
    copy = tmp_path / "copy"
    copy.write_bytes(path.read_bytes() + b"".join(frame(msgpack.packb(record)) for record in HAND_BUILT[3:]))
    os.replace(copy, path)
    assert f"{len(HAND_BUILT) - 3} new records" in exported([tmp_path / "logs"], tmp_path / "set")


def test_a_log_exported_before_headers_were_kept_is_read_on_after_two_exports(tmp_path):
    """A manifest of an export before the header was kept has no "started": the next export read on
    from its offset, not past the header, and kept "started" None; the one after compared the header
    with None and refused the file as replaced, every growing log of an upgraded dataset."""
    write_log(tmp_path / "logs", HAND_BUILT[:3], host="alpha")
    exported([tmp_path / "logs"], tmp_path / "set")
    manifest = tmp_path / "set" / MANIFEST
    data = json.loads(manifest.read_text())
    for seen in data["logs"].values():
        del seen["started"]  # as an export before it was kept left it
    manifest.write_text(json.dumps(data))
    [path] = (tmp_path / "logs").iterdir()
    for records in (HAND_BUILT[3:5], HAND_BUILT[5:]):
        with open(path, "ab") as file:
            file.write(b"".join(frame(msgpack.packb(record)) for record in records))
        assert f" {len(records)} new records" in exported([tmp_path / "logs"], tmp_path / "set")


def test_a_log_with_a_damaged_header_is_read_on_not_refused_as_replaced(tmp_path):
    """No header read, the first export kept its host None; the next compared the file's (none: NO_HOST)
    with None and refused the file as replaced each time it grew."""
    write_log(tmp_path / "logs", HAND_BUILT[:3], host="alpha")
    [path] = (tmp_path / "logs").iterdir()
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF  # inside the header's payload: its checksum fails, the records after it are read
    path.write_bytes(bytes(data))
    export("--log-dir", str(tmp_path / "logs"), "--to", str(tmp_path / "set"))  # status 1: the damage named
    with open(path, "ab") as file:
        file.write(b"".join(frame(msgpack.packb(record)) for record in HAND_BUILT[3:]))
    result = export("--log-dir", str(tmp_path / "logs"), "--to", str(tmp_path / "set"))
    assert f" {len(HAND_BUILT) - 3} new records" in result.stderr, result.stderr


def test_an_export_of_empty_logs_can_be_run_again(tmp_path):
    """The first leaves only its lock file (nothing to export, so no manifest): not someone else's files."""
    (tmp_path / "logs").mkdir()
    for _ in range(2):
        exported([tmp_path / "logs"], tmp_path / "dataset")


def test_an_export_that_failed_on_a_full_disk_is_taken_up_by_the_next(tmp_path, monkeypatch):
    import collector.fleet.export as parquet_export

    dirs = logs_of_two_hosts(tmp_path)
    real_write = parquet_export.pq.write_table

    def disk_full_after_one(table, path, **options):
        if any(tmp_path.joinpath("dataset").rglob("*.parquet*")):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(table, path, **options)

    monkeypatch.setattr(parquet_export.pq, "write_table", disk_full_after_one)
    failed = export(*[a for d in dirs for a in ("--log-dir", str(d))], "--to", str(tmp_path / "dataset"))
    # pyarrow's own words ("Error writing bytes to file. Detail: [errno 28] ...") named no path.
    assert failed.exit_code == 1 and failed.stderr == (
        f"addaddr: error: no space left on device writing {tmp_path / 'dataset'}; free space or choose another --to\n"
    ), f"got {failed.stderr!r}"
    monkeypatch.setattr(parquet_export.pq, "write_table", real_write)
    exported(dirs, tmp_path / "dataset")
    exported(dirs, tmp_path / "clean")
    assert table(tmp_path / "dataset", "announcements") == table(tmp_path / "clean", "announcements")


def test_links_planted_among_the_logs_are_skipped_and_the_rest_exported(tmp_path):
    """A link loop gave a RuntimeError traceback (Path.resolve); a link to /dev/zero is not followed."""
    dirs = logs_of_two_hosts(tmp_path)
    exported(dirs[:1], tmp_path / "clean")
    newest = sorted(dirs[0].iterdir())[-1].name
    loop = dirs[0] / newest.replace(newest[8:16], "29991231")
    loop.symlink_to(loop.name)
    (dirs[0] / newest.replace(newest[8:16], "29991230")).symlink_to("/dev/zero")
    result = export("--log-dir", str(dirs[0]), "--to", str(tmp_path / "dataset"))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1 and result.stderr.count("a symbolic link: skipped") == 2, result.stderr
    assert table(tmp_path / "dataset", "announcements") == table(tmp_path / "clean", "announcements")


def test_a_fifo_among_the_logs_is_named_and_the_rest_exported(tmp_path):
    """Its size is 0, as if exported already: it was passed over without a word (exit 0)."""
    dirs = logs_of_two_hosts(tmp_path)
    exported(dirs[:1], tmp_path / "clean")
    newest = sorted(dirs[0].iterdir())[-1].name
    fifo = dirs[0] / newest.replace(newest[8:16], "29991231")
    os.mkfifo(fifo)
    result = export("--log-dir", str(dirs[0]), "--to", str(tmp_path / "dataset"))
    assert result.exit_code == 1 and f"{fifo}: byte 0: a FIFO: skipped" in result.stderr, result.stderr
    assert table(tmp_path / "dataset", "announcements") == table(tmp_path / "clean", "announcements")


def test_on_a_terminal_each_line_starts_after_the_progress_bar(tmp_path):
    """A damaged file read after the bar was drawn: its line was written into the bar's."""
    dirs = logs_of_two_hosts(tmp_path)
    newest = sorted(dirs[0].iterdir())[-1]
    newest.with_name(newest.name.replace(newest.name[8:16], "29991231")).write_bytes(b"not a log at all")
    status, stderr = run_on_a_terminal(
        [ADDADDR, "export", "--log-dir", str(dirs[0]), "--to", str(tmp_path / "dataset")]
    )
    assert status == 1 and "exporting" in stderr and stderr.count("addaddr: ") == 2, stderr
    for at in (i for i in range(len(stderr)) if stderr.startswith("addaddr: ", i)):
        assert stderr[at - 2 : at] == "\r\n", f"got a line of ours after {stderr[max(0, at - 40) : at]!r}"


def test_report_parquet_of_no_export_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["report", "--parquet", str(tmp_path)])
    assert result.exit_code == 1 and MANIFEST in result.stderr, f"got {result.exit_code} {result.stderr!r}"


# --- Spark -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_spark_study_equals_report(tmp_path):
    pytest.importorskip("pyspark", reason="pyspark is a test dependency: scripts/setup --test installs it")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java (openjdk-17-jre-headless; scripts/setup --test installs it)")
    dirs = logs_of_two_hosts(tmp_path)
    exported(dirs, tmp_path / "set")
    run = subprocess.run(
        [sys.executable, "-m", "collector.fleet.spark", str(tmp_path / "set")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, f"exit {run.returncode}: {run.stderr[-2000:]}"
    got = json.loads(run.stdout)
    want = json_report(*[a for d in dirs for a in ("--log-dir", str(d))])
    assert got == want, f"got {json.dumps(got)}\nwant {json.dumps(want)}"
