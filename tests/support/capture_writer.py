# SPDX-License-Identifier: MIT
"""Writers of pcap and pcapng files, to make capture fixtures for the tests.

Times are given as integer nanoseconds since the epoch, so a test knows the exact time it wrote.
Each writer keeps `packet_offsets`, the byte at which each packet's record starts, for tests that
cut a file inside a given packet.
"""

import struct

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_IEEE802_11 = 105
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

SHB, IDB, PB, SPB, EPB = 0x0A0D0D0A, 1, 2, 3, 6
IF_TSRESOL, IF_TSOFFSET = 9, 14


class PcapWriter:
    """A classic pcap file: microsecond or nanosecond timestamps, either byte order."""

    def __init__(self, link_type=LINKTYPE_ETHERNET, *, nanosecond=False, order="<", snaplen=262144):
        self.order = order
        self.nanosecond = nanosecond
        magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
        self.parts = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, link_type)]
        self.size = len(self.parts[0])
        self.packet_offsets = []

    def packet(self, time_ns: int, frame: bytes, original_length: int | None = None):
        seconds, ns = divmod(time_ns, 10**9)
        fraction = ns if self.nanosecond else ns // 1000
        length = len(frame) if original_length is None else original_length
        record = struct.pack(self.order + "IIII", seconds, fraction, len(frame), length) + frame
        self.packet_offsets.append(self.size)
        self.parts.append(record)
        self.size += len(record)

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


class PcapngWriter:
    """A pcapng file, built block by block; `section` starts a section in the byte order given."""

    def __init__(self):
        self.parts = []
        self.size = 0
        self.packet_offsets = []
        self.order = "<"

    def block(self, block_type: int, body: bytes, *, packet=False):
        """Any block: the body is padded to 4 bytes and framed by the two lengths."""
        body += bytes(-len(body) % 4)
        length = 12 + len(body)
        if packet:
            self.packet_offsets.append(self.size)
        data = struct.pack(self.order + "II", block_type, length) + body
        self.parts.append(data + struct.pack(self.order + "I", length))
        self.size += length

    def section(self, order="<", *, major=1):
        self.order = order
        self.block(SHB, struct.pack(order + "IHHq", 0x1A2B3C4D, major, 0, -1))

    def interface(
        self, link_type=LINKTYPE_ETHERNET, *, snaplen=0, tsresol: int | None = None, tsoffset: int | None = None
    ):
        """tsresol is the option's byte: n for 10^-n seconds, 0x80 | n for 2^-n."""
        options = b""
        if tsresol is not None:
            options += self.option(IF_TSRESOL, bytes([tsresol]))
        if tsoffset is not None:
            options += self.option(IF_TSOFFSET, struct.pack(self.order + "q", tsoffset))
        if options:
            options += self.option(0, b"")
        self.block(IDB, struct.pack(self.order + "HHI", link_type, 0, snaplen) + options)

    def option(self, code: int, value: bytes) -> bytes:
        return struct.pack(self.order + "HH", code, len(value)) + value + bytes(-len(value) % 4)

    def enhanced(self, interface: int, ticks: int, frame: bytes, original_length=None):
        """An Enhanced Packet Block; ticks in the interface's timestamp units."""
        self.block(
            EPB,
            struct.pack(
                self.order + "IIIII",
                interface,
                ticks >> 32,
                ticks & 0xFFFFFFFF,
                len(frame),
                original_length or len(frame),
            )
            + frame,
            packet=True,
        )

    def simple(self, frame: bytes, original_length=None):
        self.block(SPB, struct.pack(self.order + "I", original_length or len(frame)) + frame, packet=True)

    def obsolete(self, interface: int, ticks: int, frame: bytes):
        """An obsolete Packet Block, with a drops count of 0."""
        self.block(
            PB,
            struct.pack(self.order + "HHIIII", interface, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame))
            + frame,
            packet=True,
        )

    def getvalue(self) -> bytes:
        return b"".join(self.parts)
