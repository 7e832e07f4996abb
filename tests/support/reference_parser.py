# SPDX-License-Identifier: MIT
"""What the kernel program (bpf/addaddr.c) must do with one Ethernet frame, written from the
standards and the program's documented policy, never from its C: the fuzzer's oracle.

Standards: IEEE 802.1Q and 802.1ad (VLAN tags); RFC 791 (IPv4); RFC 8200 (IPv6 and its
extension headers); RFC 9293 (TCP header and options); RFC 8684 and RFC 6824 (MPTCP, option kind
30, whose subtype is the high nibble of its third byte).

Policy on top of them (bpf/ comments, the counters table in docs/records.md):
- at most 2 VLAN tags, of either TPID in either order; a third TPID is an unknown EtherType;
- at most 6 IPv6 extension headers, of the four kinds a TCP segment meets (hop-by-hop, routing,
  destination options, fragment), in any order: RFC 8200 wants hop-by-hop first, and the program
  leniently reads it anywhere;
- every header walked lies within the frame and agrees with itself (IP version, IHL >= 5, data
  offset >= 5), or the packet is `unparsed`; a non-first fragment has no TCP header (`fragments`);
- the TCP header also lies within the IP length. A length of 0 is no length: RFC 2675 jumbograms
  for IPv6, and Linux BIG TCP aggregates, which leave IPv4's Total Length 0 too;
- events: each MPTCP option of subtype MP_CAPABLE, MP_JOIN, ADD_ADDR, RM_ADDR, MP_FASTCLOSE or
  MP_TCPRST, and on a FIN or RST segment also the first MPTCP option whatever its subtype.
"""

import socket
import struct
from collections import Counter
from typing import NamedTuple

ETH_HLEN = 14
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8)  # 802.1Q C-tag, 802.1ad S-tag
VLAN_MAX_DEPTH = 2
VLAN_TAG_LEN = 4

IPV4_MIN_HLEN = 20
IPV4_FRAGMENT_OFFSET = 0x1FFF  # in the flags/fragment-offset word

IPV6_HLEN = 40
IPV6_EXT_MAX = 6
IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_DSTOPTS = 0, 43, 44, 60
IPV6_EXT_HEADERS = (IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_DSTOPTS)
IPV6_FRAGMENT_HLEN = 8
IPV6_FRAGMENT_OFFSET = 0xFFF8  # the 13-bit offset above the reserved bits and M

IPPROTO_TCP = 6
TCP_MIN_HLEN = 20
FIN, RST = 0x01, 0x04
TCPOPT_EOL, TCPOPT_NOP, TCPOPT_MPTCP = 0, 1, 30
MPTCP_MIN_LEN = 3  # kind, length, subtype nibble
EVENT_SUBTYPES = frozenset({0, 1, 3, 4, 7, 8})  # MP_CAPABLE MP_JOIN ADD_ADDR RM_ADDR FASTCLOSE TCPRST


class ExpectedEvent(NamedTuple):
    """An event as collector.kernel.event.OptionEvent has it, less what the run decides (time, ifindex,
    mark): same field names, so events compare field by field."""

    ip_version: int
    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    tcp_flags: int
    option: bytes


class Verdict(NamedTuple):
    events: list[ExpectedEvent]
    counters: dict[str, int]  # the counters this frame moves, by how much; none at zero


class _Skipped(Exception):
    """The packet is left alone; `counter` says why."""

    def __init__(self, counter: str) -> None:
        super().__init__(counter)
        self.counter = counter


class _Network(NamedTuple):
    version: int
    src: str
    dst: str
    l4_off: int  # the upper-layer header, after any options and extension headers
    end: int | None  # the end of the IP packet in the frame; None when the length field is 0


def expect(frame: bytes) -> Verdict:
    """The events the program must emit for `frame`, in order, and the counters it must move."""
    try:
        net = _network(frame)
        events, counters = _tcp(frame, net)
    except _Skipped as skipped:
        return Verdict([], {"packets": 1, skipped.counter: 1})
    counters.update(packets=1, tcp=1, events=len(events))
    return Verdict(events, dict(+counters))  # unary plus drops the zeros


def _need(frame: bytes, off: int, size: int) -> None:
    if off + size > len(frame):
        raise _Skipped("unparsed")


def _u16(frame: bytes, off: int) -> int:
    return struct.unpack_from("!H", frame, off)[0]


def _network(frame: bytes) -> _Network:
    _need(frame, 0, ETH_HLEN)
    ethertype, off = _u16(frame, ETH_HLEN - 2), ETH_HLEN
    for _ in range(VLAN_MAX_DEPTH):
        if ethertype not in VLAN_TPIDS:
            break
        _need(frame, off, VLAN_TAG_LEN)
        ethertype = _u16(frame, off + 2)  # after the TCI
        off += VLAN_TAG_LEN
    if ethertype == ETH_P_IP:
        return _ipv4(frame, off)
    if ethertype == ETH_P_IPV6:
        return _ipv6(frame, off)
    raise _Skipped("not_tcp")


def _ipv4(frame: bytes, off: int) -> _Network:
    _need(frame, off, IPV4_MIN_HLEN)
    version, hlen = frame[off] >> 4, (frame[off] & 0x0F) * 4
    if version != 4 or hlen < IPV4_MIN_HLEN:
        raise _Skipped("unparsed")
    _need(frame, off, hlen)
    if _u16(frame, off + 6) & IPV4_FRAGMENT_OFFSET:
        raise _Skipped("fragments")
    if frame[off + 9] != IPPROTO_TCP:
        raise _Skipped("not_tcp")
    total = _u16(frame, off + 2)
    src, dst = (socket.inet_ntop(socket.AF_INET, frame[at : at + 4]) for at in (off + 12, off + 16))
    return _Network(4, src, dst, off + hlen, off + total if total else None)


def _ipv6(frame: bytes, off: int) -> _Network:
    _need(frame, off, IPV6_HLEN)
    if frame[off] >> 4 != 6:
        raise _Skipped("unparsed")
    payload = _u16(frame, off + 4)
    src, dst = (socket.inet_ntop(socket.AF_INET6, frame[at : at + 16]) for at in (off + 8, off + 24))
    next_header, at = frame[off + 6], off + IPV6_HLEN
    for _ in range(IPV6_EXT_MAX + 1):  # the last round may only find the upper layer
        if next_header == IPPROTO_TCP:
            return _Network(6, src, dst, at, off + IPV6_HLEN + payload if payload else None)
        if next_header not in IPV6_EXT_HEADERS:
            raise _Skipped("not_tcp")
        _need(frame, at, 2)
        # Hdr Ext Len counts 8-byte units after the first 8; the fragment header has none.
        size = IPV6_FRAGMENT_HLEN if next_header == IPPROTO_FRAGMENT else (frame[at + 1] + 1) * 8
        _need(frame, at, size)
        if next_header == IPPROTO_FRAGMENT and _u16(frame, at + 2) & IPV6_FRAGMENT_OFFSET:
            raise _Skipped("fragments")
        next_header, at = frame[at], at + size
    raise _Skipped("unparsed")  # a seventh extension header


def _tcp(frame: bytes, net: _Network) -> tuple[list[ExpectedEvent], Counter]:
    at = net.l4_off
    _need(frame, at, TCP_MIN_HLEN)
    hlen = (frame[at + 12] >> 4) * 4
    if hlen < TCP_MIN_HLEN:
        raise _Skipped("unparsed")
    _need(frame, at, hlen)
    # Bytes past the IP length are padding or a trailer, not options.
    if net.end is not None and at + hlen > net.end:
        raise _Skipped("unparsed")
    sport, dport, seq, ack = struct.unpack_from("!HHII", frame, at)
    flags = frame[at + 13]
    options, malformed = walk_options(frame[at + TCP_MIN_HLEN : at + hlen])
    mptcp = [option for option in options if option[0] == TCPOPT_MPTCP]
    whole = [option for option in mptcp if len(option) >= MPTCP_MIN_LEN]
    emitted = [
        option for i, option in enumerate(whole) if option[2] >> 4 in EVENT_SUBTYPES or (i == 0 and flags & (FIN | RST))
    ]
    counters = Counter(f"subtype_{option[2] >> 4}" for option in whole)
    counters["mptcp"] = int(bool(mptcp))
    counters["malformed_options"] = int(malformed) + len(mptcp) - len(whole)
    segment = (net.version, net.src, net.dst, sport, dport, seq, ack, flags)
    events = [ExpectedEvent(*segment, option) for option in emitted]
    return events, counters


def walk_options(area: bytes) -> tuple[list[bytes], bool]:
    """The options of a TCP option area by RFC 9293 section 3.1, and whether a malformed one ended
    the walk: EOL ends the list; NOP is one byte; any other option is kind, length (>= 2, counting
    both) and data, and must lie within the area."""
    options, off = [], 0
    while off < len(area) and area[off] != TCPOPT_EOL:
        if area[off] == TCPOPT_NOP:
            off += 1
            continue
        if off + 2 > len(area) or area[off + 1] < 2 or off + area[off + 1] > len(area):
            return options, True
        options.append(area[off : off + area[off + 1]])
        off += area[off + 1]
    return options, False
