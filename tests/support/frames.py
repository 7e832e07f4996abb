# SPDX-License-Identifier: MIT
"""Frames for tests, packed by hand: Ethernet with 802.1Q/802.1ad tags, ARP, IPv4 (options,
fragments), IPv6 with extension headers, TCP (any option bytes), UDP and ICMP.

Each function returns the bytes of one header followed by its payload, so frames compose inside
out: `ether(ETH_P_IP, ipv4(src, dst, IPPROTO_TCP, tcp(40000, 80, options=...)))`. Lengths and
checksums are computed unless a malformed value is forced; to truncate a frame, slice it.
"""

import socket
import struct
from collections.abc import Sequence
from typing import NamedTuple

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100
ETH_P_IPV6 = 0x86DD
ETH_P_8021AD = 0x88A8

IPPROTO_HOPOPTS = 0
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60

# IPv4 flags, the top 3 bits of the fragment field.
IP_DF = 0x2
IP_MF = 0x1

# TCP flags, byte 13 of the header.
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = (1 << bit for bit in range(8))

# Locally administered unicast addresses: nothing on a real network answers to them.
MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _pad(data: bytes, unit: int) -> bytes:
    """Zero bytes up to a multiple of `unit`: for IP and TCP options, zero is End of Option List."""
    return data + bytes(-len(data) % unit)


# Where TCP and UDP keep their checksum, which also covers a pseudo-header of the IP addresses.
_L4_CHECKSUM_AT = {IPPROTO_TCP: 16, IPPROTO_UDP: 6}


def _with_l4_checksum(proto: int, pseudo_header: bytes, segment: bytes) -> bytes:
    at = _L4_CHECKSUM_AT.get(proto)
    if at is None or len(segment) < at + 2:
        return segment
    before, after = segment[:at], segment[at + 2 :]
    value = checksum(pseudo_header + before + b"\0\0" + after)
    return before + struct.pack("!H", value) + after


# --- link layer --------------------------------------------------------------------------------


def ether(
    ethertype: int,
    payload: bytes,
    *,
    tags: Sequence[tuple[int, int]] = (),
    src: bytes = MAC_A,
    dst: bytes = MAC_B,
) -> bytes:
    """An Ethernet frame. `tags` are (TPID, VLAN id) pairs, outermost first: e.g.
    [(ETH_P_8021AD, 100), (ETH_P_8021Q, 10)] for 802.1ad QinQ."""
    vlan_tags = b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in tags)
    return dst + src + vlan_tags + struct.pack("!H", ethertype) + payload


def arp(sender_ip: str, target_ip: str, *, op: int = 1, sender_mac: bytes = MAC_A) -> bytes:
    """An ARP request (op 1) or reply (op 2) for IPv4 over Ethernet."""
    return struct.pack(
        "!HHBBH6s4s6s4s",
        1,  # hardware type: Ethernet
        ETH_P_IP,
        6,
        4,
        op,
        sender_mac,
        socket.inet_aton(sender_ip),
        bytes(6),
        socket.inet_aton(target_ip),
    )


# --- IPv4 --------------------------------------------------------------------------------------


def ipv4(
    src: str,
    dst: str,
    proto: int,
    payload: bytes,
    *,
    options: bytes = b"",
    ihl: int | None = None,
    flags: int = 0,
    frag_offset: int = 0,
    ident: int = 0,
    ttl: int = 64,
) -> bytes:
    """An IPv4 packet. `options` are padded with EOL to a 4-byte boundary and set the IHL, unless
    `ihl` forces one; `flags` (IP_DF, IP_MF) and `frag_offset` (in 8-byte units) make fragments."""
    options = _pad(options, 4)
    if ihl is None:
        ihl = 5 + len(options) // 4
    saddr, daddr = socket.inet_aton(src), socket.inet_aton(dst)
    header = (
        struct.pack(
            "!BBHHHBBH4s4s",
            4 << 4 | ihl,
            0,
            20 + len(options) + len(payload),
            ident,
            flags << 13 | frag_offset,
            ttl,
            proto,
            0,
            saddr,
            daddr,
        )
        + options
    )
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    pseudo = saddr + daddr + struct.pack("!BBH", 0, proto, len(payload))
    return header + _with_l4_checksum(proto, pseudo, payload)


# --- IPv6 --------------------------------------------------------------------------------------


class ExtHeader(NamedTuple):
    """An IPv6 extension header: its protocol number, and its bytes after the Next Header byte
    (which ipv6() fills in, as it knows what follows)."""

    proto: int
    body: bytes


def _pad_options(size: int) -> bytes:
    """Pad1 and PadN options (RFC 8200 section 4.2) filling `size` bytes."""
    out = b""
    while size > 1:
        n = min(size, 257)  # PadN: type, length, up to 255 zero bytes
        out += bytes([1, n - 2]) + bytes(n - 2)
        size -= n
    return out + bytes(size)  # Pad1 for a last odd byte


def _hdr_ext_len(length: int) -> int:
    """The Hdr Ext Len field of a header of `length` bytes: 8-byte units after the first 8."""
    if length < 8 or length % 8 or length > 2048:
        raise ValueError(f"extension header length {length} is not a multiple of 8 in 8..2048")
    return length // 8 - 1


def _options_header(proto: int, length: int) -> ExtHeader:
    return ExtHeader(proto, bytes([_hdr_ext_len(length)]) + _pad_options(length - 2))


def hop_by_hop(length: int = 8) -> ExtHeader:
    """Hop-by-hop options of `length` bytes (a multiple of 8), all padding."""
    return _options_header(IPPROTO_HOPOPTS, length)


def dest_options(length: int = 8) -> ExtHeader:
    """Destination options of `length` bytes (a multiple of 8), all padding."""
    return _options_header(IPPROTO_DSTOPTS, length)


def routing(length: int = 8) -> ExtHeader:
    """A routing header of `length` bytes, type 0 with no segments left: ignored by any node."""
    return ExtHeader(IPPROTO_ROUTING, bytes([_hdr_ext_len(length), 0, 0]) + bytes(length - 4))


def fragment(offset: int = 0, more: bool = False, ident: int = 0) -> ExtHeader:
    """A fragment header; `offset` in 8-byte units."""
    return ExtHeader(IPPROTO_FRAGMENT, struct.pack("!BHI", 0, offset << 3 | more, ident))


def ipv6(
    src: str,
    dst: str,
    proto: int,
    payload: bytes,
    *,
    ext: Sequence[ExtHeader] = (),
    hop_limit: int = 64,
) -> bytes:
    """An IPv6 packet whose extension headers `ext`, in order, precede `payload` of protocol
    `proto`."""
    next_headers = [e.proto for e in ext] + [proto]
    chain = b"".join(bytes([nxt]) + e.body for e, nxt in zip(ext, next_headers[1:]))
    saddr, daddr = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
    pseudo = saddr + daddr + struct.pack("!I3xB", len(payload), proto)
    body = chain + _with_l4_checksum(proto, pseudo, payload)
    header = struct.pack("!IHBB", 6 << 28, len(body), next_headers[0], hop_limit)
    return header + saddr + daddr + body


# --- transport ---------------------------------------------------------------------------------


def tcp(
    sport: int,
    dport: int,
    *,
    seq: int = 0,
    ack: int = 0,
    flags: int = ACK,
    options: bytes = b"",
    payload: bytes = b"",
    window: int = 65535,
    doff: int | None = None,
) -> bytes:
    """A TCP segment. `options` are padded with EOL to a 4-byte boundary and set the data offset,
    unless `doff` forces one. The checksum is filled in by ipv4() or ipv6()."""
    options = _pad(options, 4)
    if doff is None:
        doff = 5 + len(options) // 4
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, window, 0, 0)
    return header + options + payload


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    """A UDP datagram. The checksum is filled in by ipv4() or ipv6()."""
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp_echo(ident: int = 1, seq: int = 1, payload: bytes = b"") -> bytes:
    """An ICMP (IPv4) echo request."""
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    value = checksum(header + payload)
    return header[:2] + struct.pack("!H", value) + header[4:] + payload
