# SPDX-License-Identifier: MIT
"""The kernel program (bpf/addaddr.c) run by BPF_PROG_TEST_RUN on crafted frames: which MPTCP
options become events and with what segment fields, through which headers, and which counter each
packet moves. Every run is also checked to return TC_ACT_UNSPEC, to move `packets` by exactly 1 and
`events` by exactly the events received, and to move no counter the case does not name."""

import time
from collections import Counter
from ipaddress import IPv4Address, IPv6Address

import pytest

from collector.kernel.testrun import TestRunner
from collector.pipeline.decode import (
    AddAddr,
    FastClose,
    MpCapable,
    MpJoin,
    RemoveAddr,
    TcpRst,
    decode,
)
from tests.support.frames import (
    ACK,
    CWR,
    ECE,
    ETH_P_8021AD,
    ETH_P_8021Q,
    ETH_P_ARP,
    ETH_P_IP,
    ETH_P_IPV6,
    FIN,
    IP_DF,
    IP_MF,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_NONE,
    IPPROTO_TCP,
    IPPROTO_UDP,
    PSH,
    RST,
    SYN,
    URG,
    arp,
    dest_options,
    ether,
    fragment,
    hop_by_hop,
    icmp_echo,
    ipv4,
    ipv6,
    routing,
    tcp,
    udp,
)
from tests.support.mptcp_encoder import encode

TC_ACT_UNSPEC = -1
# Test runs happen on the loopback device (net/bpf/test_run.c), whose ifindex is always 1.
LOOPBACK_IFINDEX = 1

ADDRESSES = {4: ("192.0.2.1", "198.51.100.2"), 6: ("2001:db8::1", "2001:db8:1::2")}
SPORT, DPORT = 43210, 443
# High bits set, so a sign or byte-order slip in the 32-bit fields shows.
SEQ, ACK_SEQ = 0x89ABCDEF, 0xF0E0D0C0
MARK = 0xDEADBEEF

TCPOPT_EOL, TCPOPT_NOP, TCPOPT_MPTCP = 0, 1, 30


# --- frames and checks -------------------------------------------------------------------------


def segment(options: bytes = b"", flags: int = ACK, **tcp_args) -> bytes:
    return tcp(SPORT, DPORT, seq=SEQ, ack=ACK_SEQ, flags=flags, options=options, **tcp_args)


def over_ipv4(seg: bytes, *, tags=(), **ip_args) -> bytes:
    return ether(ETH_P_IP, ipv4(*ADDRESSES[4], IPPROTO_TCP, seg, **ip_args), tags=tags)


def over_ipv6(seg: bytes, *, tags=(), **ip_args) -> bytes:
    return ether(ETH_P_IPV6, ipv6(*ADDRESSES[6], IPPROTO_TCP, seg, **ip_args), tags=tags)


OVER = {4: over_ipv4, 6: over_ipv6}


def mptcp_counters(*options: bytes) -> dict[str, int]:
    """The counters a TCP segment moves when its walk meets these whole MPTCP options."""
    return {"tcp": 1, "mptcp": 1, **Counter(f"subtype_{option[2] >> 4}" for option in options)}


def check(result, options=(), **moved) -> None:
    """TC_ACT_UNSPEC; exactly `options` emitted, in order; exactly the counters `moved` moved, by
    the amounts given, besides packets (1 per run) and events (1 per event received)."""
    assert result.retval == TC_ACT_UNSPEC, f"got retval {result.retval}; want {TC_ACT_UNSPEC}"
    got = [event.option.hex(" ") for event in result.events]
    want = [option.hex(" ") for option in options]
    assert got == want, f"got options {got}; want {want}"
    got_moved = {name: n for name, n in result.counters_delta.items() if n}
    want_moved = {"packets": 1, "events": len(result.events), **moved}
    want_moved = {name: n for name, n in want_moved.items() if n}
    assert got_moved == want_moved, f"got counters moved {got_moved}; want {want_moved}"


def check_segment(event, ip_version: int, flags: int, mark: int = 0) -> None:
    """The event carries the segment's fields as the frame built by segment() and OVER has them."""
    src, dst = ADDRESSES[ip_version]
    want = {
        "ifindex": LOOPBACK_IFINDEX,
        "mark": mark,
        "ip_version": ip_version,
        "src": src,
        "dst": dst,
        "sport": SPORT,
        "dport": DPORT,
        "seq": SEQ,
        "ack": ACK_SEQ,
        "tcp_flags": flags,
    }
    got = {name: getattr(event, name) for name in want}
    assert got == want, f"got {got}; want {want}"


# --- every form of every option of interest ----------------------------------------------------

V4, V6 = IPv4Address("203.0.113.7"), IPv6Address("2001:db8:ff::7")
THMAC = bytes.fromhex("0102030405060708")  # a truncated (64-bit) HMAC
KEY_A, KEY_B = 0x8F0C7C64A6A32AC1, 0x73BB150358A0AECB

# (name, record, TCP flags a peer sends it with)
FORMS = [
    ("add-addr-v0-ipv4", AddAddr(0, 7, V4, None, False, None), ACK),
    ("add-addr-v0-ipv4-port", AddAddr(0, 7, V4, 8080, False, None), ACK),
    ("add-addr-v0-ipv6", AddAddr(0, 7, V6, None, False, None), ACK),
    ("add-addr-v0-ipv6-port", AddAddr(0, 7, V6, 8080, False, None), ACK),
    ("add-addr-v1-ipv4-hmac", AddAddr(1, 7, V4, None, False, THMAC), ACK),
    ("add-addr-v1-ipv4-port-hmac", AddAddr(1, 7, V4, 8080, False, THMAC), ACK),
    ("add-addr-v1-ipv6-hmac", AddAddr(1, 7, V6, None, False, THMAC), ACK),
    ("add-addr-v1-ipv6-port-hmac", AddAddr(1, 7, V6, 8080, False, THMAC), ACK),
    ("add-addr-v1-echo-ipv4", AddAddr(1, 7, V4, None, True, None), ACK),
    ("add-addr-v1-echo-ipv4-port", AddAddr(1, 7, V4, 8080, True, None), ACK),
    ("add-addr-v1-echo-ipv6", AddAddr(1, 7, V6, None, True, None), ACK),
    ("add-addr-v1-echo-ipv6-port", AddAddr(1, 7, V6, 8080, True, None), ACK),
    ("add-addr-v0-legacy-ipv4-hmac", AddAddr(0, 7, V4, None, False, THMAC), ACK),
    ("add-addr-v0-legacy-ipv4-port-hmac", AddAddr(0, 7, V4, 8080, False, THMAC), ACK),
    ("add-addr-v0-legacy-ipv6-hmac", AddAddr(0, 7, V6, None, False, THMAC), ACK),
    ("add-addr-v0-legacy-ipv6-port-hmac", AddAddr(0, 7, V6, 8080, False, THMAC), ACK),
    ("mp-capable-v0-syn", MpCapable(0, 0x81, KEY_A, None, None, None), SYN),
    ("mp-capable-v0-synack", MpCapable(0, 0x81, KEY_B, None, None, None), SYN | ACK),
    ("mp-capable-v0-ack", MpCapable(0, 0x81, KEY_A, KEY_B, None, None), ACK),
    ("mp-capable-v1-syn", MpCapable(1, 0x01, None, None, None, None), SYN),
    ("mp-capable-v1-synack", MpCapable(1, 0x01, KEY_B, None, None, None), SYN | ACK),
    ("mp-capable-v1-ack", MpCapable(1, 0x01, KEY_A, KEY_B, None, None), ACK),
    ("mp-capable-v1-ack-data", MpCapable(1, 0x01, KEY_A, KEY_B, 100, None), ACK | PSH),
    ("mp-capable-v1-ack-data-csum", MpCapable(1, 0x81, KEY_A, KEY_B, 100, 0xBEEF), ACK | PSH),
    ("mp-join-syn", MpJoin("syn", 2, False, 0x11223344, 0x55667788, None), SYN),
    ("mp-join-synack", MpJoin("synack", 2, True, None, 0x99AABBCC, THMAC), SYN | ACK),
    ("mp-join-ack", MpJoin("ack", None, None, None, None, bytes(range(20))), ACK),
    ("rm-addr-one-id", RemoveAddr((7,)), ACK),
    ("rm-addr-several-ids", RemoveAddr((1, 2, 3, 255)), ACK),
    ("mp-fastclose", FastClose(KEY_B), RST | ACK),
    ("mp-tcprst", TcpRst(0x1, 1), RST | ACK),
]


@pytest.mark.parametrize("ip_version", [4, 6], ids=["over-ipv4", "over-ipv6"])
@pytest.mark.parametrize(
    "record, flags",
    [pytest.param(rec, flags, id=f"{name}-len{len(encode(rec))}") for name, rec, flags in FORMS],
)
def test_option_form_is_emitted(kernel, record, flags, ip_version):
    option = encode(record)
    assert decode(option) == record, f"got {decode(option)}; want {record} (the encoder's bytes)"
    before = time.monotonic_ns()
    result = kernel.run(OVER[ip_version](segment(option, flags)), mark=MARK)
    after = time.monotonic_ns()
    check(result, [option], **mptcp_counters(option))
    event = result.events[0]
    check_segment(event, ip_version, flags, MARK)
    # bpf_ktime_get_ns() is CLOCK_MONOTONIC: the event is stamped during the run.
    assert before <= event.ktime_ns <= after, f"got ktime_ns {event.ktime_ns}; want within the run, [{before}, {after}]"


# --- the headers before TCP --------------------------------------------------------------------


def record_route(ihl: int) -> bytes:
    """A Record Route IPv4 option filling an IHL's option space but for the EOL byte ending it."""
    size = 4 * (ihl - 5) - 1
    return bytes([7, size, 4]) + bytes(size - 3)


# RFC 8200's order, with every header once and destination options twice, then one to spare.
CHAIN = [hop_by_hop(16), dest_options(), routing(24), fragment(0), dest_options(32), hop_by_hop()]
QINQ = [(ETH_P_8021AD, 100), (ETH_P_8021Q, 10)]
ADD_ADDR = encode(AddAddr(1, 7, V4, 8080, False, THMAC))

# (IP version, keyword arguments for OVER[version])
HEADER_PATHS = [
    *(pytest.param(4, {"options": record_route(ihl)}, id=f"ipv4-ihl-{ihl}") for ihl in range(6, 16)),
    pytest.param(4, {"flags": IP_MF}, id="ipv4-first-fragment-mf"),
    pytest.param(4, {"flags": IP_DF}, id="ipv4-dont-fragment"),
    pytest.param(6, {"ext": [hop_by_hop()]}, id="ipv6-hop-by-hop"),
    pytest.param(6, {"ext": [routing()]}, id="ipv6-routing"),
    pytest.param(6, {"ext": [dest_options()]}, id="ipv6-dest-options"),
    pytest.param(6, {"ext": [fragment(0, more=True)]}, id="ipv6-first-fragment"),
    # Hdr Ext Len 255: (255 + 1) * 8 must not wrap in the parser's arithmetic.
    pytest.param(6, {"ext": [hop_by_hop(2048)]}, id="ipv6-hop-by-hop-2048-bytes"),
    pytest.param(6, {"ext": CHAIN[:5]}, id="ipv6-chain-of-5"),
    pytest.param(6, {"ext": CHAIN}, id="ipv6-chain-of-6"),
    pytest.param(4, {"tags": [(ETH_P_8021Q, 10)]}, id="vlan-8021q-ipv4"),
    pytest.param(6, {"tags": [(ETH_P_8021Q, 10)]}, id="vlan-8021q-ipv6"),
    pytest.param(4, {"tags": QINQ}, id="vlan-qinq-ipv4"),
    pytest.param(6, {"tags": QINQ, "ext": CHAIN[:2]}, id="vlan-qinq-ipv6-ext"),
    pytest.param(4, {"tags": [(ETH_P_8021Q, 10), (ETH_P_8021Q, 20)]}, id="vlan-two-8021q"),
]


@pytest.mark.parametrize("ip_version, path", HEADER_PATHS)
def test_headers_before_tcp_are_walked(kernel, ip_version, path):
    result = kernel.run(OVER[ip_version](segment(ADD_ADDR), **path))
    check(result, [ADD_ADDR], **mptcp_counters(ADD_ADDR))
    check_segment(result.events[0], ip_version, ACK)


# --- the option area ---------------------------------------------------------------------------

NOP, EOL = bytes([TCPOPT_NOP]), bytes([TCPOPT_EOL])
MSS = bytes.fromhex("0204 05b4")
SACK_PERMITTED = bytes.fromhex("0402")
WSCALE = bytes.fromhex("0303 07")
TIMESTAMPS = bytes.fromhex("080a 00001234 00005678")
SACK_3_BLOCKS = bytes([5, 26]) + bytes(range(24))
ECHO = encode(AddAddr(1, 7, V4, None, True, None))  # 8 bytes: room for company
RM_ADDR = encode(RemoveAddr((7,)))
MPC_SYN = encode(MpCapable(1, 0x01, None, None, None, None))
DSS = bytes.fromhex("1e 08 20 01 0000002a")  # data ACK only
DSS_2 = bytes.fromhex("1e 08 20 01 0000002b")
MP_PRIO = bytes.fromhex("1e 03 50")
MP_FAIL = bytes.fromhex("1e 0c 60 00 0000000000000001")
SUBTYPE_15 = bytes.fromhex("1e 03 f0")
MPTCP_LEN_2 = bytes([TCPOPT_MPTCP, 2])
TEN_RM_ADDR = [encode(RemoveAddr((i,))) for i in range(10)]  # 4 bytes each
RM_ADDR_40 = encode(RemoveAddr(tuple(range(37))))  # the whole option space

# (TCP flags, option area, options emitted, counters moved besides packets and events)
OPTION_AREAS = [
    pytest.param(ACK, NOP + NOP + TIMESTAMPS + ECHO, [ECHO], mptcp_counters(ECHO), id="after-nop-nop-timestamps"),
    pytest.param(
        SYN,
        MSS + SACK_PERMITTED + TIMESTAMPS + NOP + WSCALE + MPC_SYN,
        [MPC_SYN],
        mptcp_counters(MPC_SYN),
        id="syn-after-mss-sack-permitted-timestamps-wscale",
    ),
    pytest.param(ACK, NOP + NOP + SACK_3_BLOCKS + ECHO, [ECHO], mptcp_counters(ECHO), id="after-sack-blocks"),
    pytest.param(ACK, DSS + ECHO, [ECHO], mptcp_counters(DSS, ECHO), id="dss-then-add-addr"),
    pytest.param(ACK, ECHO + RM_ADDR, [ECHO, RM_ADDR], mptcp_counters(ECHO, RM_ADDR), id="add-addr-then-rm-addr"),
    pytest.param(ACK, RM_ADDR + ECHO, [RM_ADDR, ECHO], mptcp_counters(RM_ADDR, ECHO), id="rm-addr-then-add-addr"),
    pytest.param(ACK, b"".join(TEN_RM_ADDR), TEN_RM_ADDR, mptcp_counters(*TEN_RM_ADDR), id="ten-rm-addr-fill-the-area"),
    pytest.param(ACK, RM_ADDR_40, [RM_ADDR_40], mptcp_counters(RM_ADDR_40), id="rm-addr-of-40-bytes"),
    # A length 0 after EOL would count as malformed if the walk went on.
    pytest.param(ACK, ECHO + EOL + RM_ADDR + bytes([8, 0]), [ECHO], mptcp_counters(ECHO), id="garbage-after-eol"),
    pytest.param(ACK, EOL + ECHO, [], {"tcp": 1}, id="eol-first"),
    pytest.param(
        ACK,
        MPTCP_LEN_2 + ECHO,
        [ECHO],
        {**mptcp_counters(ECHO), "malformed_options": 1},
        id="mptcp-len-2-then-add-addr",
    ),
    pytest.param(ACK, DSS, [], mptcp_counters(DSS), id="dss-only"),
    pytest.param(ACK, MP_PRIO, [], mptcp_counters(MP_PRIO), id="mp-prio-only"),
    pytest.param(ACK, MP_FAIL, [], mptcp_counters(MP_FAIL), id="mp-fail-only"),
    pytest.param(ACK, SUBTYPE_15, [], mptcp_counters(SUBTYPE_15), id="subtype-15-only"),
    # Every flag but FIN and RST: DSS stays uninteresting.
    pytest.param(CWR | ECE | URG | ACK | PSH | SYN, DSS, [], mptcp_counters(DSS), id="dss-with-every-other-flag"),
    pytest.param(FIN | ACK, DSS, [DSS], mptcp_counters(DSS), id="dss-on-fin"),
    pytest.param(RST, DSS, [DSS], mptcp_counters(DSS), id="dss-on-rst"),
    pytest.param(RST | ACK, MP_PRIO, [MP_PRIO], mptcp_counters(MP_PRIO), id="mp-prio-on-rst"),
    pytest.param(FIN | ACK, DSS + DSS_2, [DSS], mptcp_counters(DSS, DSS_2), id="fin-dss-then-dss-first-only"),
    pytest.param(FIN | ACK, ECHO + DSS, [ECHO], mptcp_counters(ECHO, DSS), id="fin-add-addr-then-dss"),
    pytest.param(FIN | ACK, DSS + ECHO, [DSS, ECHO], mptcp_counters(DSS, ECHO), id="fin-dss-then-add-addr"),
]


@pytest.mark.parametrize("flags, area, emitted, moved", OPTION_AREAS)
def test_option_area(kernel, flags, area, emitted, moved):
    result = kernel.run(over_ipv4(segment(area, flags)))
    check(result, emitted, **moved)
    for event in result.events:
        check_segment(event, 4, flags)


# --- packets skipped, and the counter that says why --------------------------------------------

GOOD = segment(ECHO)
ETH_IPV4_LEN = 14 + 20  # Ethernet, then an IPv4 header without options
ETH_IPV6_LEN = 14 + 40
# The kernel refuses to test-run an untagged IPv4 or IPv6 frame that is shorter than the fixed IP
# header (net/bpf/test_run.c), but TC sees such frames. Behind a tag the kernel does not look.
VLAN = [(ETH_P_8021Q, 10)]
TAG_LEN = 4
UNPARSED, NOT_TCP, FRAGMENT = {"unparsed": 1}, {"not_tcp": 1}, {"fragments": 1}
MALFORMED = {"tcp": 1, "malformed_options": 1}

# (frame, counters moved besides packets; none emits)
SKIPPED = [
    pytest.param(over_ipv4(segment(ECHO, doff=4)), UNPARSED, id="doff-4"),
    pytest.param(over_ipv4(segment(ECHO, doff=0)), UNPARSED, id="doff-0"),
    pytest.param(over_ipv4(segment(ECHO, doff=8)), UNPARSED, id="doff-past-packet-end"),
    pytest.param(over_ipv4(segment(ECHO, doff=15)), UNPARSED, id="doff-15-past-packet-end"),
    pytest.param(over_ipv4(GOOD)[: ETH_IPV4_LEN + 24], UNPARSED, id="tcp-options-cut"),
    pytest.param(over_ipv4(GOOD)[: ETH_IPV4_LEN + 19], UNPARSED, id="tcp-header-cut"),
    # A length 0 or 1 would never advance the walk: it ends there, before the ADD_ADDR.
    pytest.param(over_ipv4(segment(bytes([8, 0]) + ECHO)), MALFORMED, id="option-length-0"),
    pytest.param(over_ipv4(segment(bytes([8, 1]) + ECHO)), MALFORMED, id="option-length-1"),
    pytest.param(over_ipv4(segment(NOP + NOP + TIMESTAMPS[:6])), MALFORMED, id="timestamps-past-header"),
    pytest.param(over_ipv4(segment(bytes([30, 12]) + ECHO[2:])), MALFORMED, id="mptcp-past-header"),
    pytest.param(over_ipv4(segment(NOP * 3 + bytes([30]))), MALFORMED, id="kind-without-length"),
    pytest.param(
        over_ipv4(segment(MPTCP_LEN_2 + NOP + NOP)), {"tcp": 1, "mptcp": 1, "malformed_options": 1}, id="mptcp-length-2"
    ),
    pytest.param(over_ipv4(segment()), {"tcp": 1}, id="tcp-no-options-ipv4"),
    pytest.param(over_ipv6(segment()), {"tcp": 1}, id="tcp-no-options-ipv6"),
    pytest.param(over_ipv4(GOOD, ihl=4), UNPARSED, id="ihl-4"),
    pytest.param(over_ipv4(GOOD, ihl=0), UNPARSED, id="ihl-0"),
    pytest.param(over_ipv4(segment(), ihl=15), UNPARSED, id="ihl-15-past-packet-end"),
    pytest.param(over_ipv4(GOOD, tags=VLAN)[: TAG_LEN + ETH_IPV4_LEN - 1], UNPARSED, id="ipv4-header-cut"),
    pytest.param(over_ipv4(GOOD, options=record_route(8))[: ETH_IPV4_LEN + 4], UNPARSED, id="ipv4-options-cut"),
    pytest.param(ether(ETH_P_IP, b"", tags=VLAN), UNPARSED, id="no-ip-header"),
    pytest.param(ether(ETH_P_8021Q, b"\x00\x0a"), UNPARSED, id="vlan-tag-cut"),
    pytest.param(ether(ETH_P_8021AD, b"\x00\x64\x81\x00\x00"), UNPARSED, id="qinq-inner-tag-cut"),
    pytest.param(over_ipv4(GOOD, frag_offset=1, flags=IP_MF), FRAGMENT, id="ipv4-second-fragment"),
    pytest.param(over_ipv4(GOOD, frag_offset=185), FRAGMENT, id="ipv4-last-fragment"),
    pytest.param(over_ipv6(GOOD, ext=[fragment(1, more=True)]), FRAGMENT, id="ipv6-second-fragment"),
    pytest.param(
        over_ipv6(GOOD, ext=[hop_by_hop(), fragment(185)]), FRAGMENT, id="ipv6-last-fragment-after-hop-by-hop"
    ),
    pytest.param(over_ipv6(GOOD, tags=VLAN)[: TAG_LEN + ETH_IPV6_LEN - 1], UNPARSED, id="ipv6-header-cut"),
    pytest.param(over_ipv6(GOOD, ext=[hop_by_hop()])[:ETH_IPV6_LEN], UNPARSED, id="ipv6-chain-cut-before-ext"),
    pytest.param(over_ipv6(GOOD, ext=[routing(16)])[: ETH_IPV6_LEN + 12], UNPARSED, id="ipv6-chain-cut-inside-ext"),
    pytest.param(over_ipv6(GOOD, ext=[fragment(0)])[: ETH_IPV6_LEN + 7], UNPARSED, id="ipv6-fragment-header-cut"),
    pytest.param(over_ipv6(GOOD, ext=CHAIN + [dest_options()]), UNPARSED, id="ipv6-chain-of-7"),
    pytest.param(ether(ETH_P_IP, ipv4(*ADDRESSES[4], IPPROTO_UDP, udp(5353, 5353, b"x"))), NOT_TCP, id="udp-ipv4"),
    pytest.param(ether(ETH_P_IPV6, ipv6(*ADDRESSES[6], IPPROTO_UDP, udp(5353, 5353, b"x"))), NOT_TCP, id="udp-ipv6"),
    pytest.param(ether(ETH_P_IP, ipv4(*ADDRESSES[4], IPPROTO_ICMP, icmp_echo())), NOT_TCP, id="icmp"),
    pytest.param(
        ether(ETH_P_IPV6, ipv6(*ADDRESSES[6], IPPROTO_ICMPV6, bytes([128, 0]) + bytes(6), ext=[hop_by_hop()])),
        NOT_TCP,
        id="icmpv6-after-ext",
    ),
    pytest.param(
        ether(ETH_P_IPV6, ipv6(*ADDRESSES[6], IPPROTO_NONE, b"", ext=[dest_options()])),
        NOT_TCP,
        id="ipv6-no-next-header",
    ),
    pytest.param(ether(ETH_P_ARP, arp(*ADDRESSES[4])), NOT_TCP, id="arp"),
    pytest.param(ether(0x88CC, bytes(46)), NOT_TCP, id="lldp"),
    # Deeper than the two tags parsed: the third TPID reads as an unknown EtherType.
    pytest.param(over_ipv4(GOOD, tags=QINQ + [(ETH_P_8021Q, 30)]), NOT_TCP, id="three-vlan-tags"),
]


@pytest.mark.parametrize("frame, moved", SKIPPED)
def test_skipped(kernel, frame, moved):
    check(kernel.run(frame), [], **moved)


# --- the test-run harness ----------------------------------------------------------------------


def test_runner_longer_frame_after_shorter(loaded_program):
    """One TestRunner for many frames, as `addaddr replay` uses it: lengths may grow."""
    runner = TestRunner(loaded_program.program.fd)
    got = [runner.run(frame) for frame in (over_ipv4(segment()), over_ipv4(segment(DSS)))]
    assert got == [TC_ACT_UNSPEC] * 2, f"got {got}; want {[TC_ACT_UNSPEC] * 2}"


# --- devices without an Ethernet header (tun, WireGuard, ipip...): addaddr_raw_ip --------------
# Their packets reach TC starting at the IP header, and skb->protocol names the family. A test run
# always takes skb->protocol from bytes 12-13 of the frame (eth_type_trans), which in a raw IP
# packet fall in the source address: these sources spell the EtherType there, as a device would set it.
RAW_SOURCES = {4: ("8.0.2.1", "198.51.100.2"), 6: ("2001:db8:86dd::1", "2001:db8:1::2")}
RAW_IP = {
    4: lambda seg: ipv4(*RAW_SOURCES[4], IPPROTO_TCP, seg),
    6: lambda seg: ipv6(*RAW_SOURCES[6], IPPROTO_TCP, seg),
}


@pytest.mark.parametrize("ip_version", [4, 6], ids=["ipv4", "ipv6"])
def test_raw_ip_announcement_is_emitted(kernel, ip_version):
    result = kernel.run(RAW_IP[ip_version](segment(ADD_ADDR)), mark=MARK, ethernet=False)
    check(result, [ADD_ADDR], **mptcp_counters(ADD_ADDR))
    event = result.events[0]
    src, dst = RAW_SOURCES[ip_version]
    got = (event.ip_version, event.src, event.dst, event.sport, event.dport, event.seq, event.mark)
    assert got == (ip_version, src, dst, SPORT, DPORT, SEQ, MARK), f"got {got}"


@pytest.mark.parametrize("ip_version", [4, 6], ids=["ipv4", "ipv6"])
def test_raw_ip_frame_through_the_ethernet_entry_point_is_misread(kernel, ip_version):
    """What happened on tun and WireGuard before: the IP header read as MAC addresses and an
    EtherType, then the source address's tail as an IP header."""
    check(kernel.run(RAW_IP[ip_version](segment(ADD_ADDR))), unparsed=1)


def test_raw_ip_goes_by_skb_protocol_like_the_stack(kernel):
    # An IPv4 packet the device marked as neither IPv4 nor IPv6 (bytes 12-13: 192.0 of the source).
    frame = ipv4("192.0.2.1", "198.51.100.2", IPPROTO_TCP, segment(ADD_ADDR))
    check(kernel.run(frame, ethernet=False), not_tcp=1)


def test_raw_ip_version_contradicting_the_protocol_is_unparsed(kernel):
    # skb->protocol says IPv6 (bytes 12-13 of this IPv4 packet are 0x86dd), the header says 4.
    frame = ipv4("134.221.0.1", "198.51.100.2", IPPROTO_TCP, segment(ADD_ADDR))
    check(kernel.run(frame, ethernet=False), unparsed=1)


def test_raw_ip_truncated_tcp_header_is_unparsed(kernel):
    frame = RAW_IP[4](segment(ADD_ADDR))
    check(kernel.run(frame[: 20 + 30], ethernet=False), unparsed=1)
