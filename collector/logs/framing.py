# SPDX-License-Identifier: MIT
"""The bytes of a log file, and a reader of one file that skips what is damaged and goes on.

Format 2 (written now) frames every record, so that a reader finds the next record after damage:

    offset 0   marker   4 bytes  C1 41 44 44  (0xC1 is never the first byte of a msgpack object)
    offset 4   length   u32, big-endian: bytes of the payload (at most MAX_RECORD)
    offset 8   crc      u32, big-endian: CRC-32 of the payload (zlib.crc32, as gzip and PNG)
    offset 12  payload  one msgpack map: the record

A file is frames back to back, the first holding the header. A frame whose marker, length or CRC
does not check is damage: the reader reports it and looks for the next marker whose frame checks.
Format 1 (before) was msgpack maps back to back, with nothing to resynchronise on: a reader stops
at the first damage. docs/records.md says the same for other tools.
"""

from __future__ import annotations

import errno
import math
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import msgpack
import msgspec

from collector.logs.schema import CHECKS, TIME_MAX, TIME_MIN, problem

FORMAT = 2
FORMATS = (1, 2)
MARKER = b"\xc1ADD"
# What the full check of one record says to do with it.
_KEEP, _SKIP, _STOP = "keep", "skip", "stop"
FRAME = struct.Struct(">4sII")
# Records are a few hundred bytes; a damaged length must not make a reader wait for gigabytes.
MAX_RECORD = 1 << 20
READ_SIZE = 1 << 20
# Format 1 has no lengths: a damaged byte can claim a string of 4 GiB. Bounded by what is buffered.
_UNFRAMED_BUFFER = 4 * READ_SIZE
# Room for the biggest frame after a stretch of damage of the same size.
_FRAME_SEARCH = 2 * (12 + MAX_RECORD)
_UNDECODABLE = (ValueError, TypeError, msgpack.UnpackException)

# msgspec decodes a payload in about half msgpack's time, to the same dict wherever the schema
# checks every value (logs/schema.py's closed records); elsewhere it differs (it takes keys that are
# not strings, and makes other objects of extension types). So a record it decodes is kept only if
# closed and good; any other is decoded again by msgpack, the reference, and checked in full.
_DECODE = msgspec.msgpack.Decoder().decode

# (path, byte offset, what was skipped and why)
DamageHandler = Callable[[Path, int, str], None]


def frame(payload: bytes) -> bytes:
    """The bytes of one format-2 record around its msgpack `payload`."""
    if len(payload) > MAX_RECORD:
        raise ValueError(f"record of {len(payload)} bytes, over the {MAX_RECORD}-byte limit of the log format")
    return FRAME.pack(MARKER, len(payload), zlib.crc32(payload)) + payload


# A record's payload. msgspec writes the bytes msgpack.Packer(use_bin_type=True) wrote for every value
# a record holds (tests/unit/test_log_files.py checks), in about 60% of its time: packing was an eighth of an
# event's cost.
pack_record = msgspec.msgpack.Encoder().encode


def framed(head: bytes) -> bool:
    """Whether a file starting with `head` (4 bytes, or all the file has) is format 2.

    Format 1 starts with a msgpack map, whose first byte is 0x80-0x8F or 0xDE-0xDF, then "kind" as a
    string (0xA4): a format-2 marker with one byte damaged still tells itself apart.
    """
    if head[:1] == MARKER[:1]:
        return True
    return head[1:4] == MARKER[1:4] or head[:1] not in _MAP_STARTS


_MAP_STARTS = {bytes([b]) for b in (*range(0x80, 0x90), 0xDE, 0xDF)}


class FileCursor:
    """Incremental reader of one open log file: yields its valid records, reports what it skips.

    Each call to records() goes on where the last one stopped, so the same cursor serves a finished
    file and one still being written. Give final=True once no more bytes will come: an incomplete
    last record is then reported (and `torn_at` says where it starts, for repair), not waited for.
    """

    def __init__(self, path: Path, fd: int, on_damage: DamageHandler):
        self.path = path
        self._file = os.fdopen(fd, "rb", buffering=0)
        self.inode = os.fstat(fd).st_ino
        self._on_damage = on_damage
        self.offset = 0  # where reading goes on: after the last whole record, or inside skipped bytes
        self.format: int | None = None
        self.skipped = 0  # reports made: damaged spans, invalid records, a refused header
        self.torn_at: int | None = None
        self._in_damage = False  # format 2: skipping bytes already reported
        self._stopped = False  # nothing more to read here (format 1 after damage, a refused header)
        # Format 2: frames starting at or past this offset are left unread (another reader's part).
        self.part_end: int | None = None
        # A file found shorter than the offset: read again from its start (a follower, whose writer
        # appends after the cut), or not (a resumed export: what is below was handed over before).
        self.reread_when_cut = True
        self._head = b""  # the first bytes read (FRAME.size): changed, the file was cut and written again

    def records(self, final: bool = False) -> Iterator[dict]:
        """The valid records from where the last call stopped, damage reported on the way; final=True once
        no more bytes will come."""
        # Not a generator itself: one level of `yield from` less for every record.
        if self._stopped:
            return iter(())
        fd = self._file.fileno()
        size = os.fstat(fd).st_size
        if size < self.offset and not self.reread_when_cut:
            self._stopped = True
            self._report(
                size,
                f"the file is {size:,} bytes, shorter than the {self.offset:,} read before: cut or replaced; not read",
            )
            return iter(())
        # Cut in place (truncate, `> file`) with a writer appending on: what it writes now starts below
        # where reading had got to, and reading on from there loses it. Shorter tells; grown past there
        # since, the first bytes (a header's frame has its own checksum) tell.
        if size < self.offset:
            self._read_again(
                size, f"the file is {size:,} bytes, shorter than the {self.offset:,} read: cut while read (truncate?)"
            )
        elif self._head and os.pread(fd, len(self._head), 0) != self._head:
            self._read_again(0, "the file's first bytes changed since read: cut and written again (truncate?)")
        if self.format is None:
            self._file.seek(0)
            head = self._file.read(len(MARKER))
            if len(head) < len(MARKER) and not (final and head):
                return iter(())  # nothing yet, or too little to tell
            self.format = 2 if framed(head) else 1
            self._head = os.pread(fd, FRAME.size, 0)
        return self._framed(final) if self.format == 2 else self._unframed(final)

    def _framed(self, final: bool) -> Iterator[dict]:
        read, unpack_from, crc32, unpackb = self._file.read, FRAME.unpack_from, zlib.crc32, msgpack.unpackb
        decode = _DECODE
        checks, part_end = CHECKS, math.inf if self.part_end is None else self.part_end
        self._file.seek(self.offset)
        base, buf, pos, eof = self.offset, b"", 0, False
        while True:
            if not eof:
                chunk = read(READ_SIZE)
                if chunk:
                    buf = buf[pos:] + chunk
                    base, pos = base + pos, 0
                else:
                    eof = True
            end_of_data = len(buf)
            while end_of_data - pos >= 12:
                if base + pos >= part_end:
                    return
                marker, length, crc = unpack_from(buf, pos)
                if marker == MARKER and length <= MAX_RECORD:
                    end = pos + 12 + length
                    if end > end_of_data:
                        break  # the rest of it is still to be read (or written)
                    payload = buf[pos + 12 : end]
                    if crc32(payload) == crc:
                        self._in_damage = False
                        start, pos = base + pos, end
                        self.offset = base + end
                        # schema.problem's fast path, inlined: this runs for every record.
                        try:
                            record = decode(payload)
                            kind = record["kind"]
                            fast = checks[kind]
                            good = (
                                len(record) == fast.width
                                and tuple(map(type, fast.get(record))) in fast.good
                                and TIME_MIN <= record[fast.clock] < TIME_MAX
                                and (fast.values is None or fast.values(record) is None)
                                and (
                                    fast.inner is None
                                    or record[fast.inner] is None
                                    or len(record[fast.inner]) == fast.inner_width
                                )
                            )
                        except (KeyError, TypeError, ValueError, RecursionError):  # DecodeError: a ValueError
                            good = False
                        if good and kind != "header":
                            yield record
                            continue
                        # Not a closed good record: decoded again by msgpack, whose dict (or refusal)
                        # the full check and the damage report have always seen.
                        try:
                            record = unpackb(payload)
                        except _UNDECODABLE as exc:
                            self._report(start, f"undecodable record skipped ({exc})")
                            continue
                        verdict = self._verdict(start, record)
                        if verdict is _STOP:
                            return
                        if verdict is _KEEP:
                            yield record
                        continue
                    why = "checksum mismatch"
                elif marker != MARKER:
                    why = "no record marker"
                else:
                    why = f"record length {length} over the limit"
                found = buf.find(MARKER, pos + 1)
                stop = found if found >= 0 else end_of_data
                # A hole (bytes never written) reads as zeros: ask the kernel, and skip it rather than
                # read it, at seconds a GiB. Only damage that ends in a zero can run into one.
                if buf[stop - 1] == 0 and (hole := self._hole(base + pos, base + stop, final)) is not None:
                    hole_at, data = hole
                    if data is None:
                        self.offset = base + pos
                        return  # a hole to the end of a file still written: the writer appends after it
                    if not self._in_damage:  # else named already, with what went before it
                        if buf.count(0, pos, hole_at - base) == hole_at - base - pos:  # zeros up to it
                            what = f"{data - base - pos:,} bytes never written (a hole)"
                        else:
                            what = f"damaged ({why}) and {data - hole_at:,} bytes never written (a hole) after it"
                        self._report(base + pos, f"{what}; skipped to the next whole record")
                    self._in_damage = True
                    self._file.seek(data)
                    base, buf, pos, eof = data, b"", 0, False
                    self.offset = data
                    break
                if (
                    found < 0
                    and not eof
                    and not self._in_damage
                    and end_of_data - pos < READ_SIZE
                    and buf[end_of_data - 1] == 0
                ):
                    break  # a hole may start just after: read on before naming this damage
                self._damage(base + pos, why)
                pos = found if found >= 0 else max(pos + 1, end_of_data - len(MARKER) + 1)
                self.offset = base + pos
            if not eof:
                continue
            if pos >= end_of_data:
                return
            # At the end of what is there: an incomplete record, or damage with a record after it.
            later = _next_frame(buf, pos + 1)
            if later is None and not final:
                return  # perhaps a record being written: wait for the rest
            if not self._in_damage:
                rest = buf[pos:]
                if later is None and MARKER.startswith(rest[: len(MARKER)]):
                    self.torn_at = base + pos
                    self._report(base + pos, f"record cut short at the end of the file ({len(rest)} bytes)")
                else:
                    self._damage(base + pos, "incomplete record")
            if later is None:
                self.offset = base + end_of_data
                return
            pos = later
            self.offset = base + pos

    def frame_from(self, offset: int) -> int | None:
        """Format 2: where the first frame that this reader would take whole starts at or after `offset`;
        None if there is none in the next few MiB (long damage, or the end of the file)."""
        self._file.seek(offset)
        buf = self._file.read(_FRAME_SEARCH)
        at = _next_frame(buf, 0)
        while at is not None and FRAME.unpack_from(buf, at)[1] > MAX_RECORD:
            at = _next_frame(buf, at + 1)
        return None if at is None else offset + at

    def _unframed(self, final: bool) -> Iterator[dict]:
        self._file.seek(self.offset)
        base = self.offset
        unpacker = msgpack.Unpacker(max_buffer_size=_UNFRAMED_BUFFER)
        try:
            while chunk := self._file.read(READ_SIZE):
                unpacker.feed(chunk)
                for record in unpacker:
                    start, self.offset = self.offset, base + unpacker.tell()
                    if type(record) is not dict:
                        self._give_up(start, f"not a record ({type(record).__name__})")
                        return
                    verdict = self._verdict(start, record)
                    if verdict is _STOP:
                        return
                    if verdict is _KEEP:
                        yield record
        except (*_UNDECODABLE, msgpack.BufferFull) as exc:
            self._give_up(self.offset, f"undecodable ({exc})")
            return
        if final and os.fstat(self._file.fileno()).st_size > self.offset:
            self._give_up(self.offset, "record cut short")

    def _hole(self, start: int, stop: int, final: bool) -> tuple[int, int | None] | None:
        """The hole (bytes never written) that starts at or after `start` and by `stop`, if any: where
        it starts, and where data goes on after it (a hole to the end: the end of a final file, None
        while it may still be written). A filesystem that cannot tell holes from data has none."""
        fd = self._file.fileno()
        reading_at = self._file.tell()  # lseek moves it: put back, for reading goes on from there
        size = os.fstat(fd).st_size  # first: bytes appended after this are not taken for a hole
        try:
            hole_at = os.lseek(fd, start, os.SEEK_HOLE)
        except OSError:
            return None  # EINVAL: holes not told; ENXIO: start at the end
        try:
            if hole_at > stop or hole_at >= size:
                return None  # SEEK_HOLE calls the end of the file a hole: it is not one
            return hole_at, os.lseek(fd, hole_at, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            return hole_at, size if final else None  # a hole to the end
        finally:
            self._file.seek(reading_at)

    def _read_again(self, offset: int, why: str) -> None:
        self._report(offset, f"{why}; read again from its start")
        self.offset, self.format, self.torn_at, self._in_damage, self._head = 0, None, None, False, b""

    def _give_up(self, offset: int, why: str) -> None:
        self._stopped = True
        self._report(offset, f"{why}; format 1 has no framing to find the next record: rest of file skipped")

    def _verdict(self, offset: int, record: dict) -> str:
        """The full check of a record, both formats: keep it, skip it (said), or stop at its header."""
        wrong = problem(record)
        if wrong is not None:
            self._report(offset, f"invalid record skipped ({wrong})")
            return _SKIP
        if record["kind"] == "header" and not self._header_fits(offset, record):
            return _STOP
        return _KEEP

    def _header_fits(self, offset: int, header: dict) -> bool:
        if header["format"] == self.format:
            return True
        self._stopped = True
        if header["format"] in FORMATS:
            self._report(offset, f"a format-{header['format']} header in a format-{self.format} file: file skipped")
        else:
            self._report(
                offset,
                f"log format {header['format']}, which this addaddr does not know (it reads "
                f"{' and '.join(map(str, FORMATS))}): file skipped; upgrade addaddr to read it",
            )
        return False

    def _damage(self, offset: int, why: str) -> None:
        if not self._in_damage:
            self._in_damage = True
            self._report(offset, f"damaged ({why}); skipped to the next whole record")

    def _report(self, offset: int, what: str) -> None:
        self.skipped += 1
        self._on_damage(self.path, offset, what)

    def close(self) -> None:
        """Closes the log file; the cursor reads no more."""
        self._file.close()

    def __enter__(self) -> FileCursor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _next_frame(buf: bytes, start: int) -> int | None:
    """Where the first whole frame with a good checksum starts in buf[start:], if any."""
    while (at := buf.find(MARKER, start)) >= 0:
        if len(buf) - at >= 12:
            _, length, crc = FRAME.unpack_from(buf, at)
            end = at + 12 + length
            if end <= len(buf) and zlib.crc32(buf[at + 12 : end]) == crc:
                return at
        start = at + 1
    return None
