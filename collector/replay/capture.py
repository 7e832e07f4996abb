# SPDX-License-Identifier: MIT
"""Capture files (pcap and pcapng) read as Ethernet frames, for replay through BPF_PROG_TEST_RUN.

`read_capture(path)` yields one `Packet(time, frame, index)` per packet of the file. The kernel
program takes frames from the Ethernet header on, so packets of other link types get an Ethernet
header made up for them: zero MAC addresses and the EtherType of their network protocol.

A regular file is mapped into memory and its records are unpacked where they lie: a packet costs a
header unpack or two and one slice (plus one concatenation where a header is made up). A pipe, FIFO,
`-` (stdin) or device is read as it comes, keeping only the record being unpacked (at most
MAX_RECORD) and what was read past it: a packet is yielded as soon as its record has arrived, and
`tcpdump -w - | addaddr replay -` works.

Damage is a `CaptureError` whose message starts with the file's path. Packets before the damage are
yielded first, so a capture cut short by a crash still replays up to where it was cut.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from collections.abc import Callable, Iterator
from functools import partial
from typing import NamedTuple

from collector.errors import CollectorError

# on_progress is called each time this many more bytes have been read, and once at the end.
PROGRESS_STEP = 1 << 20
# No real record is this long (libpcap refuses pcapng blocks over 16 MiB too): a longer one is a
# damaged length field, told apart from a file that is merely cut short.
MAX_RECORD = 1 << 24

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
# DLT_RAW's values on some BSDs, which old libpcaps wrote into files as they were.
DLT_RAW_BSD = (12, 14)

# For the error message, link types seen in the wild that we can't frame: tcpdump's name, and what.
_LINK_TYPE_NAMES = {
    0: "NULL, BSD loopback",
    6: "IEEE802_5, Token Ring",
    9: "PPP",
    50: "PPP_HDLC",
    105: "IEEE802_11, Wi-Fi",
    108: "LOOP, OpenBSD loopback",
    127: "IEEE802_11_RADIO, Wi-Fi with radiotap",
    192: "PPI",
    220: "USB_LINUX_MMAPPED",
    239: "NFLOG",
    253: "NETLINK",
}


class CaptureError(CollectorError, ValueError):
    """A file that is not a capture, is cut short or damaged, or has packets we cannot frame."""


class Packet(NamedTuple):
    """One packet of a capture: its timestamp, its frame and its place in the file."""

    time: float  # UTC epoch seconds
    frame: bytes  # from the Ethernet header on; only the captured bytes, so possibly cut short
    index: int  # 0-based position among the file's packets


# Packet(...) goes through a Python-level __new__: calling tuple's directly halves the cost of
# making a packet.
_as_packet = partial(tuple.__new__, Packet)


# A pipe or device is read this much at a time, or what one record needs if more.
READ_SIZE = 1 << 16
STDIN = "-"


class Capture:
    """A capture opened and its format checked (CaptureError at once when it is empty or not a
    capture), its packets not read yet: `replay` opens every capture before it makes anything."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = path
        # The map outlives the file object, and is unmapped when the generator lets go of it.
        with os.fdopen(os.dup(0), "rb") if path == STDIN else open(path, "rb") as file:
            status = os.fstat(file.fileno())
            if stat.S_ISREG(status.st_mode) and status.st_size:
                # A file cut shorter by another process while mapped would kill us with SIGBUS: we
                # take that risk for speed, as captures are not rewritten in place while replayed.
                data = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
                data.madvise(mmap.MADV_SEQUENTIAL)
                self._source = _Mapped(data)
            elif stat.S_ISREG(status.st_mode):
                self._source = _Mapped(b"")  # mmap refuses an empty file
            else:
                self._source = _Stream(os.dup(file.fileno()))
        # Kept in the source: a stream's first bytes cannot be read twice.
        self._source.data, _shift = self._source.refill(self._source.data, 0, 4)
        if not self._source.data:
            self.close()
            raise CaptureError(f"{path} is empty")
        magic = bytes(self._source.data[:4])
        if magic in _PCAP_FORMATS:
            self._read = lambda report: _read_pcap(path, self._source, *_PCAP_FORMATS[magic], report)
        elif magic == _SHB.to_bytes(4, "big"):
            self._read = lambda report: _read_pcapng(path, self._source, report)
        else:
            self.close()
            raise CaptureError(f"{path} is not a pcap or pcapng file (it starts with {magic.hex(' ')})")

    def packets(self, on_progress: Callable[[int], None] | None = None) -> Iterator[Packet]:
        """Its packets in file order; damage raises CaptureError after the packets before it.
        `on_progress(bytes_read)` every PROGRESS_STEP bytes and once at the end."""
        return map(_as_packet, self.frames(on_progress))

    def frames(self, on_progress: Callable[[int], None] | None = None) -> Iterator[tuple[float, bytes, int]]:
        """What `packets` yields as plain tuples: for replay's loop, where a Packet made and unpacked
        cost ~0.15 us of the ~2 us of userspace time per frame. The reader's own generator, which
        closes the capture when it ends or is closed: no generator of ours stands around it."""
        return self._read(on_progress or _ignore)

    def close(self) -> None:
        """Releases the file: its mapping, or the fd of the pipe it reads."""
        self._source.close()


def read_capture(path: str | os.PathLike, on_progress: Callable[[int], None] | None = None) -> Iterator[Packet]:
    """The packets of a pcap or pcapng file, in file order.

    A file that is empty or not a capture raises at once; damage further in raises during the
    iteration, after the packets before it. `on_progress(bytes_read)` is called every
    PROGRESS_STEP bytes and once at the end, when bytes_read is the file's size
    (os.path.getsize), so it can drive a progress bar.
    """
    return Capture(path).packets(on_progress)


class _Mapped:
    """A whole file in memory: nothing more ever comes."""

    base = 0  # the file offset of data[0]

    def __init__(self, data) -> None:
        self.data = data

    def refill(self, data, offset: int, needed: int) -> tuple[bytes, int]:
        return data, 0

    def close(self) -> None:
        pass


class _Stream:
    """A pipe or device: `data` holds what has been read and not yet unpacked."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.base = 0
        self.data = b""

    def refill(self, data, offset: int, needed: int) -> tuple[bytes, int]:
        """What is left of `data` from `offset`, with more read until it holds `needed` bytes or
        the stream ends; and the shift: by how much offsets into the new data are smaller."""
        parts = [data[offset:]]
        have = len(parts[0])
        while have < needed:
            chunk = os.read(self._fd, max(READ_SIZE, needed - have))
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        self.base += offset
        return b"".join(parts), offset

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _ignore(_bytes_read: int) -> None:
    pass


# --- link types: every packet becomes an Ethernet frame -------------------------------------------
# A framer takes the file's bytes and the bounds of a packet's captured data; it returns its frame.
# Ethernet, the common case, has none (None): its packets are their frames, and the readers slice
# them where they lie rather than call a function per packet to do it.

_ZERO_MACS = bytes(12)
# Raw IP, by IP version nibble. Any version but 4 and 6 gets EtherType 0, which the kernel program
# skips like any frame that is not IP.
_RAW_HEADERS = tuple(_ZERO_MACS + {4: b"\x08\x00", 6: b"\x86\xdd"}.get(version, b"\0\0") for version in range(16))


def _linux_sll(data, start: int, end: int) -> bytes:
    # The 16-byte SLL header ends with the protocol, an EtherType: keep it, drop what precedes it.
    return _ZERO_MACS + data[start + 14 : end]


def _linux_sll2(data, start: int, end: int) -> bytes:
    # The 20-byte SLL2 header starts with the protocol; min() keeps a packet cut inside its header
    # from taking bytes of the next record.
    return b"".join((_ZERO_MACS, data[start : min(start + 2, end)], data[start + 20 : end]))


def _raw_ip(data, start: int, end: int) -> bytes:
    if start == end:
        return _RAW_HEADERS[0]
    return _RAW_HEADERS[data[start] >> 4] + data[start:end]


_FRAMERS = {
    LINKTYPE_LINUX_SLL: _linux_sll,
    LINKTYPE_LINUX_SLL2: _linux_sll2,
    LINKTYPE_RAW: _raw_ip,
    LINKTYPE_IPV4: _raw_ip,
    LINKTYPE_IPV6: _raw_ip,
    **dict.fromkeys(DLT_RAW_BSD, _raw_ip),
}


def _framer(path, link_type: int) -> Callable[..., bytes] | None:
    """The framer for a link type, None for Ethernet; for one we cannot frame, a framer that raises.

    It raises at the first packet rather than at once, so that a pcapng interface of another link
    type that carries no packet (a Bluetooth interface in a Wireshark capture) does no harm.
    """
    if link_type == LINKTYPE_ETHERNET:
        return None
    if link_type in _FRAMERS:
        return _FRAMERS[link_type]
    name = f" ({_LINK_TYPE_NAMES[link_type]})" if link_type in _LINK_TYPE_NAMES else ""

    def unsupported(_data, _start, _end):
        raise CaptureError(
            f"{path}: link type {link_type}{name} is not supported: replay needs "
            "Ethernet, Linux cooked (SLL, SLL2) or raw IP packets"
        )

    return unsupported


# --- errors ---------------------------------------------------------------------------------------


def _refill(
    path, source, data, offset: int, next_report: int, needed: int, least: int, index: int
) -> tuple[bytes, int, int, int]:
    """The readers' one way to more bytes: `data` from `offset` on, with `needed` bytes read if the
    source has them (a stream reads on; a mapped file has all it will), and the reader's offsets moved
    with it: (data, offset, its size, next_report). Some bytes but fewer than `least`: the capture is
    cut short at packet `index`; none: it ends, which the reader tells (offset == size). Called only at
    the end of what is read: the per-packet path stays inline."""
    data, shift = source.refill(data, offset, needed)
    offset -= shift
    size = len(data)
    if offset < size < offset + least:
        raise _truncated(path, index, source.base + offset)
    return data, offset, size, next_report - shift


def _truncated(path, count: int, offset: int) -> CaptureError:
    return CaptureError(
        f"{path}: truncated after {count} packet{'' if count == 1 else 's'}: "
        f"the file ends inside the record at byte {offset}"
    )


def _damaged(path, offset: int, what: str) -> CaptureError:
    return CaptureError(f"{path}: damaged at byte {offset}: {what}")


# --- pcap -----------------------------------------------------------------------------------------
# A 24-byte file header, then per packet a 16-byte record header and the captured bytes.

_PCAP_FORMATS = {
    # magic as stored: (byte order, seconds per unit of the fraction field)
    struct.pack("<I", 0xA1B2C3D4): ("<", 1e-6),
    struct.pack(">I", 0xA1B2C3D4): (">", 1e-6),
    struct.pack("<I", 0xA1B23C4D): ("<", 1e-9),
    struct.pack(">I", 0xA1B23C4D): (">", 1e-9),
}


def _read_pcap(path, source, order: str, scale: float, on_progress) -> Iterator[tuple[float, bytes, int]]:
    # Capture.frames hands this generator out as it is: it closes the source itself.
    try:
        data, shift = source.refill(source.data, 0, 24)
        size = len(data)
        if size < 24:
            raise _truncated(path, 0, 0)
        # The top 6 bits of the link type field may carry FCS information (libpcap's LT_LINKTYPE).
        link_type = struct.unpack_from(order + "I", data, 20)[0] & 0x03FFFFFF
        framer = _framer(path, link_type)
        record = struct.Struct(order + "IIII").unpack_from
        offset = 24
        index = 0
        next_report = PROGRESS_STEP
        while True:
            if size - offset < 16:
                data, offset, size, next_report = _refill(path, source, data, offset, next_report, 16, 16, index)
                if size == offset:
                    break
            seconds, fraction, captured, _original = record(data, offset)
            if captured > MAX_RECORD:
                raise _damaged(path, source.base + offset, f"packet {index} claims {captured} captured bytes")
            start = offset + 16
            end = start + captured
            if end > size:
                data, offset, size, next_report = _refill(
                    path, source, data, offset, next_report, 16 + captured, 16 + captured, index
                )
                start, end = offset + 16, offset + 16 + captured
            frame = data[start:end] if framer is None else framer(data, start, end)
            # Multiplying by 1e-6 or 1e-9 errs far below the precision of the sum.
            yield seconds + fraction * scale, frame, index
            index += 1
            offset = end
            if offset >= next_report:
                next_report = offset + PROGRESS_STEP
                on_progress(source.base + offset)
        on_progress(source.base + size)
    finally:
        source.close()


# --- pcapng ---------------------------------------------------------------------------------------
# A sequence of blocks: type (4 bytes), total length (4), body, total length again. Each section
# starts with a Section Header Block, whose byte-order magic sets the byte order of the blocks up to
# the next one, and defines its own interfaces; each packet names its interface, which gives its
# link type and timestamp unit.

_SHB, _IDB, _PB, _SPB, _EPB = 0x0A0D0D0A, 1, 2, 3, 6
# The shortest well-formed block of each type; any other type: just type and two lengths.
_MIN_LENGTH = {_SHB: 28, _IDB: 20, _PB: 32, _SPB: 16, _EPB: 32}
_OPT_ENDOFOPT, _IF_TSRESOL, _IF_TSOFFSET = 0, 9, 14


class _ByteOrder:
    """The structs of one byte order, compiled once."""

    def __init__(self, order: str) -> None:
        self.block = struct.Struct(order + "II").unpack_from  # type, total length
        self.u32 = struct.Struct(order + "I").unpack_from
        self.version = struct.Struct(order + "H").unpack_from
        self.interface = struct.Struct(order + "HxxI").unpack_from  # link type, snap length
        self.option = struct.Struct(order + "HH").unpack_from  # code, length
        self.tsoffset = struct.Struct(order + "q").unpack_from
        # The bodies of the blocks with a timestamp: interface, timestamp high and low, captured
        # length, then 4 bytes before the data. The obsolete Packet Block's interface is 16 bits,
        # followed by a drops count that we skip.
        self.packet = {
            _EPB: struct.Struct(order + "IIII").unpack_from,
            _PB: struct.Struct(order + "HxxIII").unpack_from,
        }


_LITTLE_ENDIAN = struct.pack("<I", 0x1A2B3C4D)
_BYTE_ORDERS = {_LITTLE_ENDIAN: _ByteOrder("<"), struct.pack(">I", 0x1A2B3C4D): _ByteOrder(">")}


class _Interface(NamedTuple):
    framer: Callable[..., bytes] | None  # None: Ethernet
    units: int  # timestamp units per second
    tsoffset: int  # seconds to add to every timestamp
    snaplen: int  # 0: none


def _read_pcapng(path, source, on_progress) -> Iterator[tuple[float, bytes, int]]:
    # Capture.frames hands this generator out as it is: it closes the source itself.
    try:
        data = source.data
        size = len(data)
        # The file starts with a section header block, whose type reads the same in both byte orders:
        # either order finds it, and then its byte-order magic tells the section's.
        order = _BYTE_ORDERS[_LITTLE_ENDIAN]
        offset = 0
        interfaces: list[_Interface] = []
        index = 0
        time = 0.0
        next_report = PROGRESS_STEP
        while True:
            # 16: a section header's version too, which _section checks when it is there.
            if size - offset < 16:
                data, offset, size, next_report = _refill(path, source, data, offset, next_report, 16, 12, index)
                if size == offset:
                    break
            block_type, length = order.block(data, offset)
            if block_type == _SHB:
                order = _section(path, data, offset, source.base)
                block_type, length = order.block(data, offset)
                interfaces = []
            if length > MAX_RECORD:
                raise _damaged(path, source.base + offset, f"block of type {block_type} claims {length} bytes")
            if length % 4 or length < _MIN_LENGTH.get(block_type, 12):
                raise _damaged(
                    path, source.base + offset, f"block of type {block_type} has an impossible length of {length} bytes"
                )
            end = offset + length
            if end > size:
                data, offset, size, next_report = _refill(
                    path, source, data, offset, next_report, length, length, index
                )
                end = offset + length
            if order.u32(data, end - 4)[0] != length:
                raise _damaged(
                    path,
                    source.base + offset,
                    f"block of type {block_type} has a length of {length} "
                    f"bytes at its start and {order.u32(data, end - 4)[0]} at its end",
                )
            packet_header = order.packet.get(block_type)
            if packet_header is not None:
                number, high, low, captured = packet_header(data, offset + 8)
                try:
                    framer, units, tsoffset, _snaplen = interfaces[number]
                except IndexError:
                    raise _no_interface(path, interfaces, number, source.base + offset) from None
                start = offset + 28
                if captured > end - 4 - start:
                    raise _damaged(
                        path,
                        source.base + offset,
                        f"packet {index} claims {captured} captured bytes, more than its block holds",
                    )
                time = (high << 32 | low) / units + tsoffset
                stop = start + captured
                frame = data[start:stop] if framer is None else framer(data, start, stop)
                yield time, frame, index
                index += 1
            elif block_type == _SPB:
                if not interfaces:
                    raise _no_interface(path, interfaces, 0, source.base + offset)
                framer, _units, _tsoffset, snaplen = interfaces[0]
                start = offset + 12
                # The block holds the packet padded to 4 bytes: its original length, bounded by the
                # snap length, tells how much of that is packet.
                captured = min(order.u32(data, offset + 8)[0], end - 4 - start, snaplen or MAX_RECORD)
                # A Simple Packet Block has no timestamp: it gets the previous packet's, which keeps
                # time from running backwards for the connection tracker.
                stop = start + captured
                frame = data[start:stop] if framer is None else framer(data, start, stop)
                yield time, frame, index
                index += 1
            elif block_type == _IDB:
                interfaces.append(_interface_block(path, data, offset, end, order, source.base))
            offset = end
            if offset >= next_report:
                next_report = offset + PROGRESS_STEP
                on_progress(source.base + offset)
        on_progress(source.base + size)
    finally:
        source.close()


def _section(path, data, offset: int, base: int) -> _ByteOrder:
    """The byte order of the section whose header block starts at offset, 12 bytes or more."""
    order = _BYTE_ORDERS.get(data[offset + 8 : offset + 12])
    if order is None:
        raise _damaged(path, base + offset, "section header without a valid byte-order magic")
    if offset + 14 <= len(data) and order.version(data, offset + 12)[0] != 1:
        raise _damaged(
            path, base + offset, f"pcapng major version {order.version(data, offset + 12)[0]} is not supported, only 1"
        )
    return order


def _no_interface(path, interfaces: list[_Interface], number: int, offset: int) -> CaptureError:
    return _damaged(
        path,
        offset,
        f"packet of interface {number}, but its section describes "
        f"{len(interfaces)} interface{'' if len(interfaces) == 1 else 's'}",
    )


def _interface_block(path, data, offset: int, end: int, order: _ByteOrder, base: int) -> _Interface:
    """An Interface Description Block: link type and snap length, then options."""
    link_type, snaplen = order.interface(data, offset + 8)
    units = 10**6  # the default resolution: microseconds
    tsoffset = 0
    position = offset + 16
    options_end = end - 4
    while position + 4 <= options_end:
        code, length = order.option(data, position)
        value = position + 4
        position = value + (length + 3) // 4 * 4
        if position > options_end:
            raise _damaged(path, base + offset, f"interface option {code} runs past the end of its block")
        if code == _OPT_ENDOFOPT:
            break
        if code == _IF_TSRESOL and length == 1:
            # Bit 7 set: a negative power of 2, else of 10.
            exponent = data[value]
            units = 2 ** (exponent & 0x7F) if exponent & 0x80 else 10**exponent
        elif code == _IF_TSOFFSET and length == 8:
            tsoffset = order.tsoffset(data, value)[0]
    return _Interface(_framer(path, link_type), units, tsoffset, snaplen)
