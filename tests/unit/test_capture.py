# SPDX-License-Identifier: MIT
"""The capture reader: pcap and pcapng files written by capture_writer, the public tcpdump captures,
and damaged files of every kind."""

import contextlib
import math
import os
import shutil
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.errors import CollectorError
from collector.replay.capture import PROGRESS_STEP, CaptureError, Packet, read_capture
from tests.support.capture_writer import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IEEE802_11,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    PcapngWriter,
    PcapWriter,
)
from tests.support.frames import ETH_P_IP, ETH_P_IPV6, IPPROTO_TCP, MAC_A, MAC_B, ether, ipv4, ipv6, tcp
from tests.support.paths import PUBLIC_CAPTURES

NO_PUBLIC_CAPTURES = f"no public captures: {PUBLIC_CAPTURES} (the project's shared/) is absent"

IPV4_PACKET = ipv4("192.0.2.1", "198.51.100.2", IPPROTO_TCP, tcp(40000, 80))
IPV6_PACKET = ipv6("2001:db8::1", "2001:db8::2", IPPROTO_TCP, tcp(40000, 80))
ZERO_MACS = bytes(12)
# Nanoseconds since the epoch: 2023-11-14T22:13:20.123456789Z, every digit significant.
T0 = 1_700_000_000_123_456_789


def write(tmp_path, data: bytes, name="capture") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def assert_time(actual: float, exact: Fraction) -> None:
    """As close as a float can be: within one unit in the last place of the exact time."""
    assert abs(Fraction(actual) - exact) <= Fraction(math.ulp(actual)), (actual, float(exact))


def frames_of(count: int) -> list[bytes]:
    """Ethernet frames of lengths 0 up, none alike."""
    return [
        ether(ETH_P_IP, ipv4("192.0.2.1", "198.51.100.2", IPPROTO_TCP, tcp(40000 + n, 80)))[: n * 7 % 80]
        for n in range(count)
    ]


# --- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_pcap_round_trip(tmp_path, order, nanosecond):
    writer = PcapWriter(nanosecond=nanosecond, order=order)
    times = [0, 999_999_999, T0, T0 + 1, T0 + 86_400 * 10**9, 4_102_444_800_000_000_001]
    frames = frames_of(len(times))
    for time_ns, frame in zip(times, frames):
        writer.packet(time_ns, frame)

    packets = list(read_capture(write(tmp_path, writer.getvalue())))

    assert [packet.frame for packet in packets] == frames
    assert [packet.index for packet in packets] == list(range(len(times)))
    unit = 1 if nanosecond else 1000  # a microsecond file keeps the whole microseconds
    for packet, time_ns in zip(packets, times):
        assert isinstance(packet, Packet)
        assert_time(packet.time, Fraction(time_ns // unit * unit, 10**9))


def test_pcapng_two_interfaces_several_sections(tmp_path):
    writer = PcapngWriter()
    # Section 1, little-endian: Ethernet in microseconds (no if_tsresol) and raw IP in nanoseconds.
    writer.section("<")
    writer.interface(LINKTYPE_ETHERNET)
    writer.interface(LINKTYPE_RAW, tsresol=9)
    eth = ether(ETH_P_IP, IPV4_PACKET)
    writer.enhanced(0, T0 // 1000, eth)
    writer.enhanced(1, T0, IPV6_PACKET)
    writer.block(0x00000BAD, b"a block of a type we skip")
    writer.simple(eth[:50])
    writer.obsolete(1, T0 + 5, IPV4_PACKET)
    # Section 2, big-endian: its own interface 0, in 2^-30 s with an offset of a day.
    writer.section(">")
    writer.interface(LINKTYPE_LINUX_SLL2, tsresol=0x80 | 30, tsoffset=86_400)
    writer.enhanced(0, 3 << 30 | 1, sll2(ETH_P_IPV6, IPV6_PACKET))

    packets = list(read_capture(write(tmp_path, writer.getvalue())))

    assert [packet.index for packet in packets] == [0, 1, 2, 3, 4]
    assert [packet.frame for packet in packets] == [
        eth,
        ZERO_MACS + b"\x86\xdd" + IPV6_PACKET,
        eth[:50],
        ZERO_MACS + b"\x08\x00" + IPV4_PACKET,
        ZERO_MACS + b"\x86\xdd" + IPV6_PACKET,
    ]
    assert_time(packets[0].time, Fraction(T0 // 1000, 10**6))
    assert_time(packets[1].time, Fraction(T0, 10**9))
    # A Simple Packet Block has no timestamp: it takes the one before it.
    assert packets[2].time == packets[1].time
    assert_time(packets[3].time, Fraction(T0 + 5, 10**9))
    assert_time(packets[4].time, 86_400 + 3 + Fraction(1, 2**30))


@pytest.mark.parametrize(
    "tsresol, units",
    [(None, 10**6), (0, 1), (3, 10**3), (9, 10**9), (10, 10**10), (0x80 | 10, 2**10), (0x80 | 32, 2**32)],
)
def test_pcapng_timestamp_resolutions(tmp_path, tsresol, units):
    writer = PcapngWriter()
    writer.section()
    writer.interface(tsresol=tsresol)
    ticks = T0 * units // 10**9
    writer.enhanced(0, ticks, b"frame")

    [packet] = read_capture(write(tmp_path, writer.getvalue()))

    assert_time(packet.time, Fraction(ticks, units))


def test_pcapng_negative_tsoffset(tmp_path):
    writer = PcapngWriter()
    writer.section(">")
    writer.interface(tsoffset=-1_000_000_000)
    writer.enhanced(0, 1_700_000_000_250_000, b"frame")

    [packet] = read_capture(write(tmp_path, writer.getvalue()))

    assert_time(packet.time, Fraction(700_000_000_250_000, 10**6))


def test_simple_packet_block_bounded_by_original_length_and_snaplen(tmp_path):
    writer = PcapngWriter()
    writer.section()
    writer.interface(snaplen=6)
    writer.simple(b"abc")  # 3 bytes, padded to 4 in the block
    writer.simple(b"abcdef", original_length=1500)  # cut to the snap length
    writer.section()
    writer.interface()  # snap length 0: none
    writer.simple(b"abcdefg", original_length=1500)

    frames = [packet.frame for packet in read_capture(write(tmp_path, writer.getvalue()))]

    assert frames == [b"abc", b"abcdef", b"abcdefg\0"]


def test_frames_cut_by_the_snap_length_are_yielded_as_captured(tmp_path):
    writer = PcapWriter(snaplen=40)
    frame = ether(ETH_P_IP, IPV4_PACKET)
    writer.packet(T0, frame[:40], original_length=len(frame))
    writer.packet(T0, frame)

    frames = [packet.frame for packet in read_capture(write(tmp_path, writer.getvalue()))]

    assert frames == [frame[:40], frame]


# --- link types -----------------------------------------------------------------------------------


def sll(protocol: int, payload: bytes) -> bytes:
    """A Linux cooked (v1) header: packet type, ARPHRD_ETHER, address length and address,
    protocol."""
    return b"\x00\x00\x00\x01\x00\x06" + MAC_A + b"\0\0" + protocol.to_bytes(2, "big") + payload


def sll2(protocol: int, payload: bytes) -> bytes:
    """A Linux cooked v2 header: protocol, reserved, interface index, ARPHRD_ETHER, packet type,
    address length and address."""
    return (
        protocol.to_bytes(2, "big") + b"\0\0" + (7).to_bytes(4, "big") + b"\x00\x01\x04\x06" + MAC_B + b"\0\0" + payload
    )


ETHERNET_FRAME = ether(ETH_P_IPV6, IPV6_PACKET)


@pytest.mark.parametrize(
    "link_type, captured, expected",
    [
        (LINKTYPE_ETHERNET, ETHERNET_FRAME, ETHERNET_FRAME),
        (LINKTYPE_LINUX_SLL, sll(ETH_P_IP, IPV4_PACKET), ZERO_MACS + b"\x08\x00" + IPV4_PACKET),
        (LINKTYPE_LINUX_SLL, sll(ETH_P_IPV6, IPV6_PACKET), ZERO_MACS + b"\x86\xdd" + IPV6_PACKET),
        (LINKTYPE_LINUX_SLL2, sll2(ETH_P_IP, IPV4_PACKET), ZERO_MACS + b"\x08\x00" + IPV4_PACKET),
        (LINKTYPE_LINUX_SLL2, sll2(ETH_P_IPV6, IPV6_PACKET), ZERO_MACS + b"\x86\xdd" + IPV6_PACKET),
        (LINKTYPE_RAW, IPV4_PACKET, ZERO_MACS + b"\x08\x00" + IPV4_PACKET),
        (LINKTYPE_RAW, IPV6_PACKET, ZERO_MACS + b"\x86\xdd" + IPV6_PACKET),
        (LINKTYPE_IPV4, IPV4_PACKET, ZERO_MACS + b"\x08\x00" + IPV4_PACKET),
        (LINKTYPE_IPV6, IPV6_PACKET, ZERO_MACS + b"\x86\xdd" + IPV6_PACKET),
        (12, IPV4_PACKET, ZERO_MACS + b"\x08\x00" + IPV4_PACKET),
        (14, IPV6_PACKET, ZERO_MACS + b"\x86\xdd" + IPV6_PACKET),
        # Not IP at all: EtherType 0, which the kernel program passes over.
        (LINKTYPE_RAW, b"\x50garbage", ZERO_MACS + b"\0\0\x50garbage"),
    ],
)
@pytest.mark.parametrize("file_format", ["pcap", "pcapng"])
def test_link_types_become_ethernet(tmp_path, file_format, link_type, captured, expected):
    if file_format == "pcap":
        writer = PcapWriter(link_type)
        writer.packet(T0, captured)
    else:
        writer = PcapngWriter()
        writer.section()
        writer.interface(link_type)
        writer.enhanced(0, T0 // 1000, captured)

    [packet] = read_capture(write(tmp_path, writer.getvalue()))

    assert packet.frame == expected


@pytest.mark.parametrize(
    "link_type, captured, expected",
    [
        (LINKTYPE_LINUX_SLL, sll(ETH_P_IP, b"")[:15], ZERO_MACS + b"\x08"),
        (LINKTYPE_LINUX_SLL, b"\0" * 5, ZERO_MACS),
        (LINKTYPE_LINUX_SLL2, sll2(ETH_P_IP, b"")[:1], ZERO_MACS + b"\x08"),
        (LINKTYPE_LINUX_SLL2, sll2(ETH_P_IP, b"")[:19], ZERO_MACS + b"\x08\x00"),
        (LINKTYPE_RAW, b"", ZERO_MACS + b"\0\0"),
    ],
)
def test_packets_cut_inside_their_link_header_take_nothing_from_the_next(tmp_path, link_type, captured, expected):
    writer = PcapWriter(link_type)
    writer.packet(T0, captured)
    writer.packet(T0, b"\xff" * 40)

    packets = list(read_capture(write(tmp_path, writer.getvalue())))

    assert packets[0].frame == expected


def public_captures() -> list:
    if not PUBLIC_CAPTURES.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=NO_PUBLIC_CAPTURES))]
    return sorted(PUBLIC_CAPTURES.glob("*.pcap"))


@pytest.mark.parametrize("path", public_captures(), ids=lambda path: getattr(path, "name", None))
def test_public_capture_agrees_with_tcpdump(path):
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed (scripts/setup installs it)")
    lines = subprocess.run(
        ["tcpdump", "-r", str(path), "-nn", "-tt"], capture_output=True, text=True, check=True
    ).stdout.splitlines()

    packets = list(read_capture(path))

    assert len(packets) == len(lines)
    assert [f"{packet.time:.6f}" for packet in packets] == [line.split()[0] for line in lines]
    for packet in packets:
        # Every frame is Ethernet now: cooked and raw ones have zero MACs and the IP EtherType.
        assert packet.frame[12:14] in (b"\x08\x00", b"\x86\xdd", b"\x08\x06")


def test_public_captures_cover_every_link_type_family():
    if not PUBLIC_CAPTURES.is_dir():
        pytest.skip(NO_PUBLIC_CAPTURES)
    link_types = {int.from_bytes(path.read_bytes()[20:24], "little") for path in PUBLIC_CAPTURES.glob("*.pcap")}
    assert link_types == {LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_RAW}


# --- bad files ------------------------------------------------------------------------------------


def error_of(path: Path) -> str:
    with pytest.raises(CaptureError) as caught:
        list(read_capture(path))
    message = str(caught.value)
    assert message.startswith(str(path))
    return message


def test_capture_error_is_a_value_error_and_a_collector_error():
    assert issubclass(CaptureError, ValueError)
    assert issubclass(CaptureError, CollectorError)


def test_empty_file(tmp_path):
    assert error_of(write(tmp_path, b"")).endswith(" is empty")


@pytest.mark.parametrize("data", [b"\x7fELF\x02\x01\x01\0" + bytes(100), b"GIF89a", b"\xd4"])
def test_not_a_capture(tmp_path, data):
    assert " is not a pcap or pcapng file (it starts with " in error_of(write(tmp_path, data))


def pcap_of(count: int, **options) -> PcapWriter:
    writer = PcapWriter(**options)
    for n, frame in enumerate(frames_of(count)):
        writer.packet(T0 + n * 1000, frame + b"\xee" * 20)
    return writer


def pcapng_of(count: int) -> PcapngWriter:
    writer = PcapngWriter()
    writer.section()
    writer.interface()
    for n, frame in enumerate(frames_of(count)):
        writer.enhanced(0, T0 // 1000 + n, frame + b"\xee" * 20)
    return writer


@pytest.mark.parametrize("make", [pcap_of, pcapng_of])
def test_truncated_inside_a_packet(tmp_path, make):
    writer = make(5)
    data = writer.getvalue()
    complete = list(read_capture(write(tmp_path, data, "complete")))
    ends = writer.packet_offsets[1:] + [len(data)]
    for cut_in, (start, end) in enumerate(zip(writer.packet_offsets, ends)):
        for cut in {start + 1, start + 11, start + 16, start + 30, end - 1}:
            path = write(tmp_path, data[:cut], f"cut-{cut}")
            packets = []
            with pytest.raises(CaptureError) as caught:
                for packet in read_capture(path):
                    packets.append(packet)
            assert packets == complete[:cut_in]
            plural = "" if cut_in == 1 else "s"
            assert str(caught.value) == (
                f"{path}: truncated after {cut_in} packet{plural}: the file ends inside the record at byte {start}"
            )


@pytest.mark.parametrize("data", [PcapWriter().getvalue()[:10], pcapng_of(0).getvalue()[:30]])
def test_truncated_inside_the_file_header(tmp_path, data):
    assert "truncated after 0 packets" in error_of(write(tmp_path, data))


def test_header_alone_is_no_packets(tmp_path):
    assert list(read_capture(write(tmp_path, PcapWriter().getvalue()))) == []
    assert list(read_capture(write(tmp_path, pcapng_of(0).getvalue(), "ng"))) == []


@pytest.mark.parametrize("file_format", ["pcap", "pcapng"])
def test_unknown_link_type(tmp_path, file_format):
    if file_format == "pcap":
        writer = PcapWriter(LINKTYPE_IEEE802_11)
        writer.packet(T0, b"\x08\x02" + bytes(30))
    else:
        writer = PcapngWriter()
        writer.section()
        writer.interface(LINKTYPE_IEEE802_11)
        writer.enhanced(0, 0, b"\x08\x02" + bytes(30))
    message = error_of(write(tmp_path, writer.getvalue()))
    assert "link type 105 (IEEE802_11, Wi-Fi) is not supported" in message


def test_unnamed_unknown_link_type(tmp_path):
    writer = PcapWriter(4000)
    writer.packet(T0, b"frame")
    assert ": link type 4000 is not supported" in error_of(write(tmp_path, writer.getvalue()))


def test_unknown_link_type_of_an_idle_interface_is_harmless(tmp_path):
    writer = PcapngWriter()
    writer.section()
    writer.interface(LINKTYPE_IEEE802_11)
    writer.interface(LINKTYPE_ETHERNET)
    writer.enhanced(1, 0, ETHERNET_FRAME)
    assert [packet.frame for packet in read_capture(write(tmp_path, writer.getvalue()))] == [ETHERNET_FRAME]


def test_pcap_fcs_bits_of_the_link_type_are_ignored(tmp_path):
    writer = PcapWriter(LINKTYPE_ETHERNET | 0x1 << 28 | 0x2 << 29)
    writer.packet(T0, ETHERNET_FRAME)
    assert [packet.frame for packet in read_capture(write(tmp_path, writer.getvalue()))] == [ETHERNET_FRAME]


def patched(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


def test_absurd_pcap_captured_length(tmp_path):
    writer = pcap_of(3)
    offset = writer.packet_offsets[1]
    data = patched(writer.getvalue(), offset + 8, (0xFFFFFFF0).to_bytes(4, "little"))
    message = error_of(write(tmp_path, data))
    assert message.endswith(f": damaged at byte {offset}: packet 1 claims 4294967280 captured bytes")


def test_absurd_pcapng_block_length(tmp_path):
    writer = pcapng_of(3)
    offset = writer.packet_offsets[2]
    data = patched(writer.getvalue(), offset + 4, (0x7FFFFFFC).to_bytes(4, "little"))
    path = write(tmp_path, data)
    packets = []
    with pytest.raises(CaptureError) as caught:
        for packet in read_capture(path):
            packets.append(packet)
    assert len(packets) == 2
    assert str(caught.value) == f"{path}: damaged at byte {offset}: block of type 6 claims 2147483644 bytes"


@pytest.mark.parametrize("length", [0, 8, 28, 33])
def test_impossible_pcapng_block_length(tmp_path, length):
    writer = pcapng_of(2)
    offset = writer.packet_offsets[1]
    data = patched(writer.getvalue(), offset + 4, length.to_bytes(4, "little"))
    assert error_of(write(tmp_path, data)).endswith(
        f": damaged at byte {offset}: block of type 6 has an impossible length of {length} bytes"
    )


def test_pcapng_lengths_at_both_ends_differ(tmp_path):
    writer = pcapng_of(2)
    data = writer.getvalue()
    data = patched(data, len(data) - 4, (1000).to_bytes(4, "little"))
    offset = writer.packet_offsets[1]
    assert error_of(write(tmp_path, data)).endswith(
        f": damaged at byte {offset}: block of type 6 has a length of {len(data) - offset} bytes "
        "at its start and 1000 at its end"
    )


def test_pcapng_packet_longer_than_its_block(tmp_path):
    writer = pcapng_of(2)
    offset = writer.packet_offsets[1]
    data = patched(writer.getvalue(), offset + 20, (500).to_bytes(4, "little"))
    assert error_of(write(tmp_path, data)).endswith(
        f": damaged at byte {offset}: packet 1 claims 500 captured bytes, more than its block holds"
    )


@pytest.mark.parametrize("interface, described", [(1, "1 interface"), (7, "1 interface")])
def test_pcapng_packet_of_an_undescribed_interface(tmp_path, interface, described):
    writer = pcapng_of(0)
    writer.enhanced(interface, 0, b"frame")
    assert error_of(write(tmp_path, writer.getvalue())).endswith(
        f": damaged at byte {writer.packet_offsets[0]}: packet of interface {interface}, but its "
        f"section describes {described}"
    )


def test_pcapng_packet_before_any_interface(tmp_path):
    writer = PcapngWriter()
    writer.section()
    writer.simple(b"frame")
    assert "packet of interface 0, but its section describes 0 interfaces" in error_of(
        write(tmp_path, writer.getvalue())
    )


def test_pcapng_interfaces_belong_to_their_section(tmp_path):
    writer = pcapng_of(1)
    writer.section()
    writer.enhanced(0, 0, b"frame")
    assert "section describes 0 interfaces" in error_of(write(tmp_path, writer.getvalue()))


def test_pcapng_bad_byte_order_magic(tmp_path):
    data = patched(pcapng_of(1).getvalue(), 8, b"\x1a\x2b\x3c\x3c")
    assert error_of(write(tmp_path, data)).endswith(
        ": damaged at byte 0: section header without a valid byte-order magic"
    )


def test_pcapng_major_version_2(tmp_path):
    writer = PcapngWriter()
    writer.section(">", major=2)
    assert error_of(write(tmp_path, writer.getvalue())).endswith(
        ": damaged at byte 0: pcapng major version 2 is not supported, only 1"
    )


def test_pcapng_option_past_its_block(tmp_path):
    writer = PcapngWriter()
    writer.section()
    # An Ethernet interface whose if_tsresol option claims 255 bytes.
    writer.block(1, bytes.fromhex("0100 0000 00000000 0900 ff00"))
    assert error_of(write(tmp_path, writer.getvalue())).endswith(
        ": damaged at byte 28: interface option 9 runs past the end of its block"
    )


# --- reading ------------------------------------------------------------------------------------


def test_progress(tmp_path):
    writer = PcapWriter()
    frame = ETHERNET_FRAME + bytes(1000)
    for n in range(3000):  # about 3 MiB
        writer.packet(T0 + n, frame)
    path = write(tmp_path, writer.getvalue())
    seen = []

    assert sum(1 for _ in read_capture(path, on_progress=seen.append)) == 3000

    size = os.path.getsize(path)
    assert seen == sorted(seen) and seen[-1] == size
    assert len(seen) == size // PROGRESS_STEP + 1
    assert all(later - earlier >= PROGRESS_STEP for earlier, later in zip(seen, seen[1:-1]))


def test_pipe(tmp_path):
    data = pcapng_of(4).getvalue()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as pipe:
            pipe.write(data)

    feeder = threading.Thread(target=feed)
    feeder.start()
    packets = list(read_capture(fifo))
    feeder.join()

    assert packets == list(read_capture(write(tmp_path, data)))


@pytest.mark.parametrize("make", [pcap_of, pcapng_of], ids=["pcap", "pcapng"])
def test_a_slowly_fed_pipe_yields_packets_before_it_ends(make):
    """A FIFO was read whole before the first packet: `tcpdump -w - | addaddr replay -` got nothing."""
    data, offsets = (lambda w: (w.getvalue(), w.packet_offsets))(make(3))
    read_end, write_end = os.pipe()
    os.write(write_end, data[: offsets[2]])  # two packets, and the writer still there
    try:
        got = []
        reader = threading.Thread(
            target=lambda: got.extend(p for _, p in zip(range(2), read_capture(f"/dev/fd/{read_end}")))
        )
        reader.start()
        reader.join(timeout=10)
        assert not reader.is_alive(), "got no packet before the end of the stream"
        assert [p.index for p in got] == [0, 1]
    finally:
        os.close(write_end)
        os.close(read_end)


def test_zeros_from_a_device_end_at_once():
    with pytest.raises(CaptureError, match="/dev/zero is not a pcap or pcapng file"):
        read_capture("/dev/zero")


STREAM_MIB = 256
READER = """
import re
from collector.replay.capture import read_capture
count = sum(1 for _ in read_capture("-"))
# VmHWM, not ru_maxrss: that one outlives execve, and would be the parent's peak.
print(count, int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) >> 10)
"""


def test_a_long_stream_is_read_in_bounded_memory():
    """256 MiB of 1 MiB packets through a pipe: the reader holds a record or two, not the stream."""
    writer = PcapWriter()
    header = writer.getvalue()
    reader = subprocess.Popen([sys.executable, "-c", READER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=False)
    reader.stdin.write(header)
    record = PcapWriter()
    record.packet(T0, bytes(1 << 20))
    one = record.getvalue()[len(header) :]
    for _ in range(STREAM_MIB):
        reader.stdin.write(one)
    reader.stdin.close()
    count, max_rss_mib = map(int, reader.stdout.read().split())
    assert reader.wait(timeout=60) == 0
    assert count == STREAM_MIB, f"got {count} packets; want {STREAM_MIB}"
    assert max_rss_mib < 64, f"got a peak RSS of {max_rss_mib} MiB for a {STREAM_MIB} MiB stream"


# --- fuzz: any bytes give packets or a CaptureError -----------------------------------------------


def outcome(path: str | Path) -> tuple[list[Packet], str | None]:
    """The packets read, and the error after them without the path it starts with."""
    packets = []
    try:
        for packet in read_capture(path):
            packets.append(packet)
    except CaptureError as error:
        assert str(error).startswith(str(path))
        return packets, str(error)[len(str(path)) :]
    return packets, None


def piped(data: bytes) -> tuple[list[Packet], str | None]:
    """outcome() of the bytes read from a pipe, as `tcpdump -w - | addaddr replay -` gives them."""
    read_end, write_end = os.pipe()

    def feed():
        with open(write_end, "wb") as pipe, contextlib.suppress(BrokenPipeError):  # the reader stopped at damage
            pipe.write(data)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        return outcome(f"/dev/fd/{read_end}")
    finally:
        os.close(read_end)
        feeder.join()


def read_all(path: Path) -> list[Packet]:
    packets, error = outcome(path)
    assert piped(path.read_bytes()) == (packets, error), "got another reading through a pipe"
    for index, packet in enumerate(packets):
        assert packet.index == index
        assert isinstance(packet.time, float) and isinstance(packet.frame, bytes)
    return packets


@pytest.fixture(scope="module")
def fuzz_path(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "capture"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(fuzz_path, data):
    fuzz_path.write_bytes(data)
    read_all(fuzz_path)


ORDERS = st.sampled_from(["<", ">"])
LINK_TYPES = st.sampled_from([1, 12, 101, 113, 276, LINKTYPE_IEEE802_11])
TICKS = st.integers(0, 2**64 - 1)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_pcap_damaged(fuzz_path, data):
    writer = PcapWriter(data.draw(LINK_TYPES), order=data.draw(ORDERS), nanosecond=data.draw(st.booleans()))
    for frame in data.draw(st.lists(st.binary(max_size=40), max_size=4)):
        writer.packet(data.draw(st.integers(0, 2**32 * 10**9 - 1)), frame)
    fuzz_path.write_bytes(damage(writer.getvalue(), data))
    read_all(fuzz_path)


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(st.data())
def test_fuzz_pcapng_damaged(fuzz_path, data):
    writer = PcapngWriter()
    for _section in range(data.draw(st.integers(1, 2))):
        writer.section(data.draw(ORDERS))
        for _interface in range(data.draw(st.integers(0, 2))):
            writer.interface(
                data.draw(LINK_TYPES),
                snaplen=data.draw(st.integers(0, 40)),
                tsresol=data.draw(st.none() | st.integers(0, 255)),
                tsoffset=data.draw(st.none() | st.integers(-(2**63), 2**63 - 1)),
            )
        for _packet in range(data.draw(st.integers(0, 3))):
            frame = data.draw(st.binary(max_size=30))
            kind = data.draw(st.sampled_from(["enhanced", "simple", "obsolete", "other"]))
            if kind == "enhanced":
                writer.enhanced(data.draw(st.integers(0, 2)), data.draw(TICKS), frame)
            elif kind == "simple":
                writer.simple(frame)
            elif kind == "obsolete":
                writer.obsolete(data.draw(st.integers(0, 2)), data.draw(TICKS), frame)
            else:
                writer.block(data.draw(st.integers(0, 2**32 - 1)), frame)
    fuzz_path.write_bytes(damage(writer.getvalue(), data))
    read_all(fuzz_path)


def damage(file: bytes, data) -> bytes:
    """Overwrite a few bytes of the file, cut it, or both."""
    for _ in range(data.draw(st.integers(0, 3))):
        offset = data.draw(st.integers(0, len(file)))
        file = patched(file, offset, data.draw(st.binary(min_size=1, max_size=4)))
    if data.draw(st.booleans()):
        file = file[: data.draw(st.integers(0, len(file)))]
    return file
