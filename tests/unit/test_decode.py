# SPDX-License-Identifier: MIT
"""Tests of collector.pipeline.decode: hand-built wire bytes, round trips, malformed forms, fuzzing,
the token, and the ADD_ADDR ground truth of public captures (in ../shared, when present)."""

import csv
import hashlib
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.pipeline.decode import (
    AddAddr,
    FastClose,
    MalformedOption,
    MpCapable,
    MpJoin,
    OtherSuboption,
    RemoveAddr,
    TcpRst,
    decode,
    token,
)
from tests.support.mptcp_encoder import encode
from tests.support.paths import PUBLIC_CAPTURES

SHARED_CAPTURES = PUBLIC_CAPTURES


def h(text: str) -> bytes:
    """Hex with spaces and '|' between fields, so a literal can be laid out like the RFC figure."""
    return bytes.fromhex(text.replace("|", " "))


# Field values reused across the tables below.
V4 = IPv4Address("10.0.2.1")
V6 = IPv6Address("2001:db8::1")
V4_HEX = "0a000201"
V6_HEX = "20010db8000000000000000000000001"
THMAC_HEX = "0102030405060708"  # a truncated (64-bit) HMAC
KEY_A_HEX, KEY_A = "8f0c7c64a6a32ac1", 0x8F0C7C64A6A32AC1
KEY_B_HEX, KEY_B = "73bb150358a0aecb", 0x73BB150358A0AECB

# Each literal is laid out field by field; the figure it follows is named above each group.
HAND_BUILT = [
    # RFC 8684 Figure 4, MP_CAPABLE: kind | length | subtype 0, version | flags A..H |
    #   sender's key (64) | receiver's key (64) | data-level length (16) | checksum (16).
    # Keys and flags [H] are those of tcpdump's mptcp-aa-v1.pcap, frames 3-6.
    pytest.param(
        "1e 04 | 01 | 01",
        MpCapable(1, 0x01, None, None, None, None),
        id="mp-capable-v1-syn-len4",
    ),
    pytest.param(
        f"1e 0c | 01 | 01 | {KEY_B_HEX}",
        MpCapable(1, 0x01, KEY_B, None, None, None),
        id="mp-capable-v1-synack-len12",
    ),
    pytest.param(
        f"1e 14 | 01 | 01 | {KEY_A_HEX} | {KEY_B_HEX}",
        MpCapable(1, 0x01, KEY_A, KEY_B, None, None),
        id="mp-capable-v1-ack-len20",
    ),
    pytest.param(
        f"1e 16 | 01 | 01 | {KEY_A_HEX} | {KEY_B_HEX} | 0010",
        MpCapable(1, 0x01, KEY_A, KEY_B, 16, None),
        id="mp-capable-v1-ack-data-len22",
    ),
    # Flags A|H (0x81): checksum required, so the first data carries one.
    pytest.param(
        f"1e 18 | 01 | 81 | {KEY_A_HEX} | {KEY_B_HEX} | 0010 | beef",
        MpCapable(1, 0x81, KEY_A, KEY_B, 16, 0xBEEF),
        id="mp-capable-v1-ack-data-csum-len24",
    ),
    # RFC 6824 Figure 3, MP_CAPABLE v0: kind | length | subtype 0, version 0 | flags |
    #   sender's key (64) | receiver's key (64, if length 20). From mptcp-v0.pcap frames 1-3.
    pytest.param(
        "1e 0c | 00 | 81 | 9c9eabd1e46a33b2",
        MpCapable(0, 0x81, 0x9C9EABD1E46A33B2, None, None, None),
        id="mp-capable-v0-syn-len12",
    ),
    pytest.param(
        "1e 14 | 00 | 81 | 9c9eabd1e46a33b2 | 967d2770b6960552",
        MpCapable(0, 0x81, 0x9C9EABD1E46A33B2, 0x967D2770B6960552, None, None),
        id="mp-capable-v0-ack-len20",
    ),
    # RFC 8684 Figure 5, MP_JOIN SYN: kind | length 12 | subtype 1, rsv, B | address id |
    #   receiver's token (32) | sender's random number (32). mptcp-v0.pcap frame 8.
    pytest.param(
        "1e 0c | 10 | 00 | e47f0142 | 1b665a18",
        MpJoin("syn", 0, False, 0xE47F0142, 0x1B665A18, None),
        id="mp-join-syn-len12",
    ),
    pytest.param(
        "1e 0c | 11 | 05 | 01020304 | 0a0b0c0d",
        MpJoin("syn", 5, True, 0x01020304, 0x0A0B0C0D, None),
        id="mp-join-syn-backup",
    ),
    # RFC 8684 Figure 6, MP_JOIN SYN/ACK: kind | length 16 | subtype 1, rsv, B | address id |
    #   sender's truncated HMAC (64) | sender's random number (32). mptcp-v0.pcap frame 9.
    pytest.param(
        "1e 10 | 10 | 01 | 5ab680c7884af03d | 33abe9d5",
        MpJoin("synack", 1, False, None, 0x33ABE9D5, h("5ab680c7884af03d")),
        id="mp-join-synack-len16",
    ),
    pytest.param(
        f"1e 10 | 11 | 02 | {THMAC_HEX} | 00000001",
        MpJoin("synack", 2, True, None, 1, h(THMAC_HEX)),
        id="mp-join-synack-backup",
    ),
    # RFC 8684 Figure 7, MP_JOIN ACK: kind | length 24 | subtype 1, reserved (12 bits) |
    #   sender's HMAC (160). mptcp-v0.pcap frame 10.
    pytest.param(
        "1e 18 | 10 00 | cb7b87f5e5f0502f43b535fb70ef6607df2e6c7a",
        MpJoin("ack", None, None, None, None, h("cb7b87f5e5f0502f43b535fb70ef6607df2e6c7a")),
        id="mp-join-ack-len24",
    ),
    # RFC 8684 Figure 15, ADD_ADDR: kind | length | subtype 3, rsv, E | address id |
    #   address (4 or 16) | port (2, optional) | truncated HMAC (8, when E=0).
    pytest.param(
        f"1e 10 | 30 | 01 | {V4_HEX} | f8295862f645df19",  # mptcp-aa-echo.pcap frame 1
        AddAddr(1, 1, V4, None, False, h("f8295862f645df19")),
        id="add-addr-v1-ipv4-hmac-len16",
    ),
    pytest.param(
        f"1e 12 | 30 | 02 | {V4_HEX} | 1f90 | {THMAC_HEX}",
        AddAddr(1, 2, V4, 8080, False, h(THMAC_HEX)),
        id="add-addr-v1-ipv4-port-hmac-len18",
    ),
    pytest.param(
        f"1e 1c | 30 | 03 | {V6_HEX} | {THMAC_HEX}",
        AddAddr(1, 3, V6, None, False, h(THMAC_HEX)),
        id="add-addr-v1-ipv6-hmac-len28",
    ),
    pytest.param(
        f"1e 1e | 30 | 04 | {V6_HEX} | 01bb | {THMAC_HEX}",
        AddAddr(1, 4, V6, 443, False, h(THMAC_HEX)),
        id="add-addr-v1-ipv6-port-hmac-len30",
    ),
    pytest.param(
        f"1e 08 | 31 | 01 | {V4_HEX}",  # mptcp-aa-echo.pcap frame 2
        AddAddr(1, 1, V4, None, True, None),
        id="add-addr-v1-echo-ipv4-len8",
    ),
    pytest.param(
        f"1e 0a | 31 | 02 | {V4_HEX} | 1f90",
        AddAddr(1, 2, V4, 8080, True, None),
        id="add-addr-v1-echo-ipv4-port-len10",
    ),
    pytest.param(
        f"1e 14 | 31 | 03 | {V6_HEX}",
        AddAddr(1, 3, V6, None, True, None),
        id="add-addr-v1-echo-ipv6-len20",
    ),
    pytest.param(
        f"1e 16 | 31 | 04 | {V6_HEX} | 0000",  # a port field that is present and zero
        AddAddr(1, 4, V6, 0, True, None),
        id="add-addr-v1-echo-ipv6-port-len22",
    ),
    # RFC 6824 Figure 12, ADD_ADDR v0: kind | length | subtype 3, IPVer | address id |
    #   address (4 or 16) | port (2, optional).
    pytest.param(
        "1e 08 | 34 | 01 | 0a010202",  # mptcp-v0.pcap frame 4
        AddAddr(0, 1, IPv4Address("10.1.2.2"), None, False, None),
        id="add-addr-v0-ipv4-len8",
    ),
    pytest.param(
        f"1e 0a | 34 | 02 | {V4_HEX} | 0016",
        AddAddr(0, 2, V4, 22, False, None),
        id="add-addr-v0-ipv4-port-len10",
    ),
    pytest.param(
        f"1e 14 | 36 | 03 | {V6_HEX}",
        AddAddr(0, 3, V6, None, False, None),
        id="add-addr-v0-ipv6-len20",
    ),
    pytest.param(
        f"1e 16 | 36 | 04 | {V6_HEX} | 0050",
        AddAddr(0, 4, V6, 80, False, None),
        id="add-addr-v0-ipv6-port-len22",
    ),
    # The multipath-tcp.org kernel's v0 ADD_ADDR: the RFC 6824 layout plus an 8-byte HMAC.
    pytest.param(
        f"1e 10 | 34 | 01 | {V4_HEX} | {THMAC_HEX}",
        AddAddr(0, 1, V4, None, False, h(THMAC_HEX)),
        id="add-addr-v0-legacy-ipv4-hmac-len16",
    ),
    pytest.param(
        f"1e 12 | 34 | 02 | {V4_HEX} | 1f90 | {THMAC_HEX}",
        AddAddr(0, 2, V4, 8080, False, h(THMAC_HEX)),
        id="add-addr-v0-legacy-ipv4-port-hmac-len18",
    ),
    pytest.param(
        f"1e 1c | 36 | 03 | {V6_HEX} | {THMAC_HEX}",
        AddAddr(0, 3, V6, None, False, h(THMAC_HEX)),
        id="add-addr-v0-legacy-ipv6-hmac-len28",
    ),
    pytest.param(
        f"1e 1e | 36 | 04 | {V6_HEX} | 01bb | {THMAC_HEX}",
        AddAddr(0, 4, V6, 443, False, h(THMAC_HEX)),
        id="add-addr-v0-legacy-ipv6-port-hmac-len30",
    ),
    # RFC 8684 Figure 16, REMOVE_ADDR: kind | length 3+n | subtype 4, reserved | address ids.
    pytest.param("1e 04 | 40 | 00", RemoveAddr((0,)), id="rm-addr-one-id"),  # mptcp-v0.pcap
    pytest.param("1e 06 | 40 | 01 02 ff", RemoveAddr((1, 2, 255)), id="rm-addr-three-ids"),
    # RFC 8684 Figure 14, MP_FASTCLOSE: kind | length 12 | subtype 7, reserved (12 bits) |
    #   option receiver's key (64). mptcp-fclose.pcap frame 10.
    pytest.param(
        "1e 0c | 70 00 | d005b1ab34bad344",
        FastClose(0xD005B1AB34BAD344),
        id="fastclose-len12",
    ),
    # RFC 8684 Figure 18, MP_TCPRST: kind | length 4 | subtype 8, U V W T | reason.
    # mptcp-tcprst.pcap: flags none with reason 0, then T (transient) with reason 1.
    pytest.param("1e 04 | 80 | 00", TcpRst(0, 0), id="tcprst-unspecified"),
    pytest.param("1e 04 | 81 | 01", TcpRst(0x1, 1), id="tcprst-transient-mptcp-error"),
    pytest.param("1e 04 | 8f | 06", TcpRst(0xF, 6), id="tcprst-all-flags"),
    # Subtypes passed through undecoded, whatever their length.
    pytest.param(
        "1e 08 | 20 | 01 | d52ab5cb",
        OtherSuboption(2, h("1e 08 20 01 d52ab5cb")),
        id="dss-data-ack",
    ),
    pytest.param("1e 03 | 51", OtherSuboption(5, h("1e 03 51")), id="mp-prio-len3"),
    pytest.param(
        "1e 0c | 60 00 | 0000000000000001",
        OtherSuboption(6, h("1e 0c 60 00 0000000000000001")),
        id="mp-fail",
    ),
    pytest.param("1e 03 | f0", OtherSuboption(15, h("1e 03 f0")), id="unknown-subtype-15"),
]


@pytest.mark.parametrize(("wire", "expected"), HAND_BUILT)
def test_decodes_hand_built(wire, expected):
    assert decode(h(wire)) == expected


@pytest.mark.parametrize(("wire", "expected"), HAND_BUILT)
def test_subtype_is_high_nibble_of_byte_2(wire, expected):
    assert decode(h(wire)).subtype == h(wire)[2] >> 4


@pytest.mark.parametrize(("wire", "expected"), HAND_BUILT)
def test_encoder_reproduces_hand_built(wire, expected):
    # Pins the test encoder to the RFC layouts, so the round trips below test the decoder
    # against the RFCs rather than against itself.
    assert encode(expected) == h(wire)


@pytest.mark.parametrize("buffer_type", [bytearray, memoryview])
def test_accepts_bytes_like_and_returns_plain_bytes(buffer_type):
    wire = h(f"1e 10 30 01 {V4_HEX} {THMAC_HEX}")
    rec = decode(buffer_type(wire))
    assert rec == decode(wire)
    assert type(rec.hmac) is bytes


# --- round trips -------------------------------------------------------------------------------

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
u64 = st.integers(0, 0xFFFF_FFFF_FFFF_FFFF)
addresses = st.ip_addresses(v=4) | st.ip_addresses(v=6)
ports = st.none() | u16
thmacs = st.binary(min_size=8, max_size=8)


def add_addrs(version, echo, hmacs):
    return st.builds(AddAddr, st.just(version), u8, addresses, ports, st.just(echo), hmacs)


def mp_capables(version, present):
    """MP_CAPABLE with the first `present` of: sender key, receiver key, data length, checksum."""
    fields = [u64, u64, u16, u16][:present] + [st.none()] * (4 - present)
    return st.builds(MpCapable, st.just(version), u8, *fields)


@st.composite
def other_suboptions(draw):
    subtype = draw(st.sampled_from([2, 5, 6, *range(9, 16)]))
    rest = draw(st.binary(max_size=252))
    nibble = draw(st.integers(0, 15))
    return OtherSuboption(subtype, bytes([30, 3 + len(rest), subtype << 4 | nibble]) + rest)


FORMS = {
    "add-addr-v1": add_addrs(1, False, thmacs),
    "add-addr-v1-echo": add_addrs(1, True, st.none()),
    "add-addr-v0": add_addrs(0, False, st.none()),
    "add-addr-v0-legacy-hmac": add_addrs(0, False, thmacs),
    "mp-capable-v1-syn": mp_capables(1, 0),
    "mp-capable-v1-synack": mp_capables(1, 1),
    "mp-capable-v1-ack": mp_capables(1, 2),
    "mp-capable-v1-ack-data": mp_capables(1, 3),
    "mp-capable-v1-ack-data-csum": mp_capables(1, 4),
    "mp-capable-v0-syn": mp_capables(0, 1),
    "mp-capable-v0-ack": mp_capables(0, 2),
    "mp-join-syn": st.builds(MpJoin, st.just("syn"), u8, st.booleans(), u32, u32, st.none()),
    "mp-join-synack": st.builds(MpJoin, st.just("synack"), u8, st.booleans(), st.none(), u32, thmacs),
    "mp-join-ack": st.builds(
        MpJoin,
        st.just("ack"),
        st.none(),
        st.none(),
        st.none(),
        st.none(),
        st.binary(min_size=20, max_size=20),
    ),
    "rm-addr": st.builds(RemoveAddr, st.lists(u8, min_size=1, max_size=252).map(tuple)),
    "fastclose": st.builds(FastClose, u64),
    "tcprst": st.builds(TcpRst, st.integers(0, 15), u8),
    "other-suboption": other_suboptions(),
}


@pytest.mark.parametrize("form", FORMS)
@given(data=st.data())
def test_round_trip(form, data):
    rec = data.draw(FORMS[form])
    assert decode(encode(rec)) == rec


# --- malformed options -------------------------------------------------------------------------

HMAC_V4 = f"{V4_HEX} {THMAC_HEX}"  # 12 bytes after the address id: an IPv4 HMAC form
KEYS = f"{KEY_A_HEX} {KEY_B_HEX}"

MALFORMED = [
    # Framing, before any subtype is looked at.
    pytest.param("", "truncated", id="empty"),
    pytest.param("1e", "truncated", id="one-byte-no-length"),
    pytest.param("02 04 05b4", "kind 2 is not 30", id="kind-mss-not-mptcp"),
    pytest.param(f"1e 14 30 01 {HMAC_V4}", "length byte 20 differs from 16", id="length-byte-long"),
    pytest.param(f"1e 08 30 01 {HMAC_V4}", "length byte 8 differs from 16", id="length-byte-short"),
    pytest.param("1e 00 30", "differs", id="length-byte-zero"),
    pytest.param("1e 02", "shorter than 3", id="length-2-no-subtype"),
    # ADD_ADDR lengths.
    pytest.param("1e 03 31", "ADD_ADDR length 3", id="add-addr-length-3"),
    pytest.param("1e 04 31 01", "ADD_ADDR length 4", id="add-addr-length-4-no-address"),
    pytest.param(f"1e 09 31 01 {V4_HEX} 00", "ADD_ADDR length 9", id="add-addr-length-9"),
    pytest.param(
        f"1e 13 30 01 {HMAC_V4} 000000",
        "ADD_ADDR length 19 is not one of 8, 10, 16, 18, 20, 22, 28, 30",
        id="add-addr-length-19",
    ),
    pytest.param(f"1e 1f 30 01 {V6_HEX} 0000 {THMAC_HEX} 00", "length 31", id="add-addr-length-31"),
    # ADD_ADDR nibble: neither IPVer nor E flag.
    pytest.param(f"1e 08 35 01 {V4_HEX}", "IPVer 5 is neither 4 nor 6", id="add-addr-ipver-5"),
    pytest.param(f"1e 08 32 01 {V4_HEX}", "IPVer 2", id="add-addr-v1-reserved-bit-set"),
    pytest.param(f"1e 10 33 01 {HMAC_V4}", "IPVer 3", id="add-addr-v1-reserved-bit-with-echo"),
    pytest.param(f"1e 08 3f 01 {V4_HEX}", "IPVer 15", id="add-addr-nibble-all-ones"),
    # ADD_ADDR nibble contradicting the length.
    pytest.param(f"1e 14 34 01 {V6_HEX}", "IPVer 4", id="add-addr-ipver4-at-ipv6-length"),
    pytest.param(f"1e 08 36 01 {V4_HEX}", "IPVer 6", id="add-addr-ipver6-at-ipv4-length"),
    pytest.param(f"1e 1c 34 01 {V6_HEX} {THMAC_HEX}", "IPVer 4", id="add-addr-ipver4-at-ipv6-hmac-length"),
    pytest.param(
        f"1e 12 36 01 {V4_HEX} 0050 {THMAC_HEX}",
        "IPVer 6",
        id="add-addr-ipver6-at-ipv4-port-hmac-length",
    ),
    pytest.param(f"1e 10 31 01 {HMAC_V4}", "E flag 1", id="add-addr-echo-at-hmac-length"),
    pytest.param(
        f"1e 1e 31 01 {V6_HEX} 0050 {THMAC_HEX}",
        "E flag 1",
        id="add-addr-echo-at-ipv6-port-hmac-length",
    ),
    pytest.param(f"1e 08 30 01 {V4_HEX}", "E flag 0", id="add-addr-no-echo-at-echo-length"),
    pytest.param(f"1e 16 30 01 {V6_HEX} 0050", "E flag 0", id="add-addr-no-echo-at-ipv6-port-echo-length"),
    # MP_CAPABLE.
    pytest.param(f"1e 0c 02 01 {KEY_A_HEX}", "version 2 is neither", id="mp-capable-version-2"),
    pytest.param("1e 04 0f 01", "version 15", id="mp-capable-version-15"),
    pytest.param("1e 04 00 81", "v0 length 4", id="mp-capable-v0-length-4-keyless-syn"),
    pytest.param(f"1e 16 00 81 {KEYS} 0010", "v0 length 22", id="mp-capable-v0-length-22"),
    pytest.param(f"1e 18 00 81 {KEYS} 0010 beef", "v0 length 24", id="mp-capable-v0-length-24"),
    pytest.param("1e 03 01", "v1 length 3", id="mp-capable-length-3"),
    pytest.param(f"1e 0d 01 01 {KEY_A_HEX} 00", "v1 length 13", id="mp-capable-length-13"),
    pytest.param(f"1e 1a 01 01 {KEYS} 0010 beef 0000", "v1 length 26", id="mp-capable-length-26"),
    # MP_JOIN.
    pytest.param("1e 03 10", "MP_JOIN length 3", id="mp-join-length-3"),
    pytest.param("1e 0d 10 00 01020304 0a0b0c0d 00", "MP_JOIN length 13", id="mp-join-length-13"),
    pytest.param(f"1e 14 10 00 {KEYS}", "MP_JOIN length 20", id="mp-join-length-20"),
    pytest.param(f"1e 19 10 00 {KEYS} 0102030405", "MP_JOIN length 25", id="mp-join-length-25"),
    # RM_ADDR, MP_FASTCLOSE, MP_TCPRST.
    pytest.param("1e 03 40", "RM_ADDR length 3 lists no address id", id="rm-addr-no-ids"),
    pytest.param("1e 0b 70 00 d005b1ab34bad3", "MP_FASTCLOSE length 11", id="fastclose-length-11"),
    pytest.param(f"1e 14 70 00 {KEYS}", "MP_FASTCLOSE length 20", id="fastclose-length-20"),
    pytest.param("1e 03 80", "MP_TCPRST length 3", id="tcprst-length-3"),
    pytest.param("1e 05 80 00 00", "MP_TCPRST length 5", id="tcprst-length-5"),
]


@pytest.mark.parametrize(("wire", "keyword"), MALFORMED)
def test_rejects_malformed(wire, keyword):
    with pytest.raises(MalformedOption) as raised:
        decode(h(wire))
    assert keyword in raised.value.reason
    assert str(raised.value) == raised.value.reason


def test_malformed_option_is_a_value_error():
    assert issubclass(MalformedOption, ValueError)


# --- fuzzing -----------------------------------------------------------------------------------

RECORD_TYPES = (AddAddr, MpCapable, MpJoin, RemoveAddr, FastClose, TcpRst, OtherSuboption)


def decode_or_reject(wire: bytes):
    """Decode, letting only MalformedOption through as a failure; None when rejected."""
    try:
        rec = decode(wire)
    except MalformedOption as rejected:
        assert rejected.reason
        return None
    assert isinstance(rec, RECORD_TYPES)
    return rec


@given(st.binary(max_size=300))
def test_fuzz_any_bytes(wire):
    decode_or_reject(wire)


# Random bytes rarely pass the framing checks; these do, so the subtype decoders get fuzzed.
framed_options = st.builds(
    lambda subtype, nibble, rest: bytes([30, 3 + len(rest), subtype << 4 | nibble]) + rest,
    st.integers(0, 15),
    st.integers(0, 15),
    st.binary(max_size=40),
)


@given(framed_options)
def test_fuzz_framed_options(wire):
    rec = decode_or_reject(wire)
    if rec is not None:
        # Re-encoding may clear reserved bits, but never changes what the option means.
        assert decode(encode(rec)) == rec


# --- token -------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [0, 1, 0x0102030405060708, KEY_A, 0xFFFF_FFFF_FFFF_FFFF])
@pytest.mark.parametrize(("version", "hash_"), [(0, hashlib.sha1), (1, hashlib.sha256)])
def test_token_is_top_32_bits_of_key_digest(key, version, hash_):
    digest = hash_(key.to_bytes(8, "big")).digest()
    assert token(key, version) == int.from_bytes(digest[:4], "big")


def test_token_v0_matches_mp_join_on_the_wire():
    # tcpdump's mptcp-v0.pcap (a 2013 multipath-tcp.org kernel): frame 2 is the server's
    # SYN/ACK with its key; frame 8 the MP_JOIN SYN to that server, naming the connection by
    # the server's token, which the client's kernel computed.
    synack = decode(h("1e 0c 00 81 967d2770b6960552"))
    join = decode(h("1e 0c 10 00 e47f0142 1b665a18"))
    assert token(synack.sender_key, 0) == join.token == 0xE47F0142


def test_token_v1_digest_matches_idsn_on_the_wire():
    # No v1 capture at hand has an MP_JOIN, so no v1 token is on the wire. But the kernel
    # takes the IDSN from the same SHA-256 digest (its low 64 bits), and mptcp-aa-v1.pcap shows
    # both IDSNs: the server's first mapping (frame 8) starts at its IDSN + 1, and acks the
    # client's 16 bytes of first data at the client's IDSN + 1 + 16. Both matching pins down how
    # the key is hashed; the token is the top 32 bits of that digest, as checked for v0 above.
    third_ack = decode(h(f"1e 14 01 01 {KEY_A_HEX} {KEY_B_HEX}"))  # frame 5: client, server key

    def idsn(key):
        return int.from_bytes(hashlib.sha256(key.to_bytes(8, "big")).digest()[-8:], "big")

    assert idsn(third_ack.receiver_key) + 1 == 12148165319181844526
    assert idsn(third_ack.sender_key) + 1 + 16 == 17186763219675866581
    assert token(third_ack.receiver_key, 1) == 0x5F3F5591
    assert token(third_ack.sender_key, 1) == 0x2E1ABDED


def test_token_rejects_unknown_version():
    with pytest.raises(ValueError, match="version 2"):
        token(KEY_A, 2)


# --- public captures ---------------------------------------------------------------------------

GROUND_TRUTH_COLUMNS = ("opt_len", "version", "ipver", "echo", "addr_id", "family", "address", "port", "hmac")
NO_SHARED = f"{SHARED_CAPTURES} is absent: the ground truth of public captures lives there"


def ground_truth_rows():
    if not SHARED_CAPTURES.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=NO_SHARED), id="no-shared")]
    rows = []
    for path in sorted(SHARED_CAPTURES.glob("*.addaddr.csv")):
        with path.open(newline="") as table:
            for row in csv.DictReader(table):
                capture = path.name.removesuffix(".pcap.addaddr.csv")
                rows.append(pytest.param(row, id=f"{capture}-frame{row['frame']}"))
    return rows


def as_ground_truth_columns(wire: bytes, rec: AddAddr) -> dict[str, str]:
    """The record written the way the ground-truth tables write it."""
    return {
        "opt_len": str(len(wire)),
        "version": f"v{rec.version}",
        "ipver": str(rec.address.version) if rec.version == 0 else "",
        "echo": str(int(rec.echo)) if rec.version == 1 else "",
        "addr_id": str(rec.address_id),
        "family": f"ipv{rec.address.version}",
        "address": str(rec.address),
        "port": "" if rec.port is None else str(rec.port),
        "hmac": "" if rec.hmac is None else rec.hmac.hex(),
    }


@pytest.mark.skipif(not SHARED_CAPTURES.is_dir(), reason=NO_SHARED)
def test_ground_truth_tables_have_rows():
    # An empty table would leave the cross-check below with nothing to check, silently.
    assert len(ground_truth_rows()) > 0


@pytest.mark.parametrize("row", ground_truth_rows())
def test_matches_capture_ground_truth(row):
    wire = bytes.fromhex(row["raw_bytes"])
    rec = decode(wire)
    assert isinstance(rec, AddAddr)
    expected = {column: row[column] for column in GROUND_TRUTH_COLUMNS}
    expected["address"] = str(ip_address(expected["address"]))
    expected["hmac"] = expected["hmac"].lower()
    assert as_ground_truth_columns(wire, rec) == expected
