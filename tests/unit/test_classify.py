# SPDX-License-Identifier: MIT
import dataclasses
import ipaddress
from typing import NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.addresses.classes import ADDRESS_CLASSES, BLOCKS
from collector.addresses.classify import Classification, EmbeddedIPv4, classify

Want = tuple[str, bool]  # (class, global)

GLOBAL: Want = ("global", True)
RESERVED: Want = ("reserved", False)
MULTICAST: Want = ("multicast", False)
DOCUMENTATION: Want = ("documentation", False)


class Edges(NamedTuple):
    """What the classifier must say at a block's first and last address and just outside it (None: no
    such address, the block touches the end of the address space)."""

    block: str
    first: Want
    last: Want
    below: Want | None
    above: Want | None


BLOCK_EDGES = [
    # IPv4 special-purpose registry, and the root.
    Edges("0.0.0.0/0", ("this-network", False), ("broadcast", False), None, None),
    Edges("0.0.0.0/8", ("this-network", False), ("this-network", False), None, GLOBAL),
    Edges("0.0.0.0/32", ("this-network", False), ("this-network", False), None, ("this-network", False)),
    Edges("10.0.0.0/8", ("private", False), ("private", False), GLOBAL, GLOBAL),
    Edges("100.64.0.0/10", ("shared", False), ("shared", False), GLOBAL, GLOBAL),
    Edges("127.0.0.0/8", ("loopback", False), ("loopback", False), GLOBAL, GLOBAL),
    Edges("169.254.0.0/16", ("link-local", False), ("link-local", False), GLOBAL, GLOBAL),
    Edges("172.16.0.0/12", ("private", False), ("private", False), GLOBAL, GLOBAL),
    Edges("192.0.0.0/24", ("ietf-protocol", False), ("ietf-protocol", False), GLOBAL, GLOBAL),
    Edges("192.0.0.0/29", ("ietf-protocol", False), ("ietf-protocol", False), GLOBAL, ("ietf-protocol", False)),
    Edges(
        "192.0.0.8/32",
        ("ietf-protocol", False),
        ("ietf-protocol", False),
        ("ietf-protocol", False),
        ("ietf-protocol", True),
    ),
    Edges(
        "192.0.0.9/32",
        ("ietf-protocol", True),
        ("ietf-protocol", True),
        ("ietf-protocol", False),
        ("ietf-protocol", True),
    ),
    Edges(
        "192.0.0.10/32",
        ("ietf-protocol", True),
        ("ietf-protocol", True),
        ("ietf-protocol", True),
        ("ietf-protocol", False),
    ),
    Edges(
        "192.0.0.170/32",
        ("ietf-protocol", False),
        ("ietf-protocol", False),
        ("ietf-protocol", False),
        ("ietf-protocol", False),
    ),
    Edges(
        "192.0.0.171/32",
        ("ietf-protocol", False),
        ("ietf-protocol", False),
        ("ietf-protocol", False),
        ("ietf-protocol", False),
    ),
    Edges("192.0.2.0/24", ("documentation", False), ("documentation", False), GLOBAL, GLOBAL),
    Edges("192.31.196.0/24", GLOBAL, GLOBAL, GLOBAL, GLOBAL),
    Edges("192.52.193.0/24", GLOBAL, GLOBAL, GLOBAL, GLOBAL),
    Edges("192.88.99.0/24", ("6to4-relay", False), ("6to4-relay", False), GLOBAL, GLOBAL),
    Edges("192.88.99.2/32", ("6to4-relay", False), ("6to4-relay", False), ("6to4-relay", False), ("6to4-relay", False)),
    Edges("192.168.0.0/16", ("private", False), ("private", False), GLOBAL, GLOBAL),
    Edges("192.175.48.0/24", GLOBAL, GLOBAL, GLOBAL, GLOBAL),
    Edges("198.18.0.0/15", ("benchmarking", False), ("benchmarking", False), GLOBAL, GLOBAL),
    Edges("198.51.100.0/24", ("documentation", False), ("documentation", False), GLOBAL, GLOBAL),
    Edges("203.0.113.0/24", ("documentation", False), ("documentation", False), GLOBAL, GLOBAL),
    Edges("240.0.0.0/4", ("reserved", False), ("broadcast", False), ("multicast", False), None),
    Edges("255.255.255.255/32", ("broadcast", False), ("broadcast", False), ("reserved", False), None),
    # IPv4 multicast: never global; MCAST-TEST-NET is documentation.
    Edges("224.0.0.0/4", MULTICAST, MULTICAST, GLOBAL, ("reserved", False)),
    Edges("233.252.0.0/24", DOCUMENTATION, DOCUMENTATION, MULTICAST, MULTICAST),
    # IPv6 address space: the top-level blocks.
    Edges("::/8", ("unspecified", False), RESERVED, None, ("discard", False)),
    Edges("100::/8", ("discard", False), RESERVED, RESERVED, RESERVED),
    Edges("200::/7", RESERVED, RESERVED, RESERVED, RESERVED),
    Edges("400::/6", RESERVED, RESERVED, RESERVED, RESERVED),
    Edges("800::/5", RESERVED, RESERVED, RESERVED, RESERVED),
    Edges("1000::/4", RESERVED, RESERVED, RESERVED, GLOBAL),
    Edges("2000::/3", GLOBAL, GLOBAL, RESERVED, RESERVED),
    Edges("4000::/3", RESERVED, RESERVED, GLOBAL, RESERVED),
    Edges("6000::/3", RESERVED, RESERVED, RESERVED, RESERVED),
    Edges("8000::/3", RESERVED, RESERVED, RESERVED, RESERVED),
    Edges("a000::/3", RESERVED, RESERVED, RESERVED, RESERVED),
    Edges("c000::/3", RESERVED, RESERVED, RESERVED, RESERVED),
    Edges("e000::/4", RESERVED, RESERVED, RESERVED, RESERVED),
    Edges("f000::/5", RESERVED, RESERVED, RESERVED, RESERVED),
    Edges("f800::/6", RESERVED, RESERVED, RESERVED, ("unique-local", False)),
    Edges("fe00::/9", RESERVED, RESERVED, ("unique-local", False), ("link-local", False)),
    Edges("fec0::/10", ("site-local", False), ("site-local", False), ("link-local", False), ("multicast", False)),
    Edges("ff00::/8", MULTICAST, MULTICAST, ("site-local", False), None),
    # IPv6 documentation multicast, FF0X::DB8:0:0/96, in every scope X.
    *(Edges(f"ff0{scope:x}::db8:0:0/96", DOCUMENTATION, DOCUMENTATION, MULTICAST, MULTICAST) for scope in range(16)),
    # RFC 4291 and the IPv6 special-purpose registry.
    Edges("::/96", ("unspecified", False), ("ipv4-compatible", False), None, RESERVED),
    Edges("::/128", ("unspecified", False), ("unspecified", False), None, ("loopback", False)),
    Edges("::1/128", ("loopback", False), ("loopback", False), ("unspecified", False), ("ipv4-compatible", False)),
    Edges("::ffff:0:0/96", ("ipv4-mapped", False), ("ipv4-mapped", False), RESERVED, RESERVED),
    Edges("64:ff9b::/96", ("nat64", True), ("nat64", True), RESERVED, RESERVED),
    Edges("64:ff9b:1::/48", ("nat64", False), ("nat64", False), RESERVED, RESERVED),
    Edges("100::/64", ("discard", False), ("discard", False), RESERVED, RESERVED),
    Edges("2001::/23", ("teredo", False), ("ietf-protocol", False), GLOBAL, GLOBAL),
    Edges("2001::/32", ("teredo", False), ("teredo", False), GLOBAL, ("ietf-protocol", False)),
    Edges(
        "2001:1::1/128",
        ("ietf-protocol", True),
        ("ietf-protocol", True),
        ("ietf-protocol", False),
        ("ietf-protocol", True),
    ),
    Edges(
        "2001:1::2/128",
        ("ietf-protocol", True),
        ("ietf-protocol", True),
        ("ietf-protocol", True),
        ("ietf-protocol", True),
    ),
    Edges(
        "2001:1::3/128",
        ("ietf-protocol", True),
        ("ietf-protocol", True),
        ("ietf-protocol", True),
        ("ietf-protocol", False),
    ),
    Edges(
        "2001:2::/48",
        ("benchmarking", False),
        ("benchmarking", False),
        ("ietf-protocol", False),
        ("ietf-protocol", False),
    ),
    Edges(
        "2001:3::/32",
        ("ietf-protocol", True),
        ("ietf-protocol", True),
        ("ietf-protocol", False),
        ("ietf-protocol", False),
    ),
    Edges(
        "2001:4:112::/48",
        ("ietf-protocol", True),
        ("ietf-protocol", True),
        ("ietf-protocol", False),
        ("ietf-protocol", False),
    ),
    Edges("2001:10::/28", ("orchid", False), ("orchid", False), ("ietf-protocol", False), ("orchid", True)),
    Edges("2001:20::/28", ("orchid", True), ("orchid", True), ("orchid", False), ("ietf-protocol", True)),
    Edges("2001:30::/28", ("ietf-protocol", True), ("ietf-protocol", True), ("orchid", True), ("ietf-protocol", False)),
    Edges("2001:db8::/32", ("documentation", False), ("documentation", False), GLOBAL, GLOBAL),
    Edges("2002::/16", ("6to4", False), ("6to4", False), GLOBAL, GLOBAL),
    Edges("2620:4f:8000::/48", GLOBAL, GLOBAL, GLOBAL, GLOBAL),
    Edges("3fff::/20", ("documentation", False), ("documentation", False), GLOBAL, GLOBAL),
    Edges("5f00::/16", ("segment-routing", False), ("segment-routing", False), RESERVED, RESERVED),
    Edges("fc00::/7", ("unique-local", False), ("unique-local", False), RESERVED, RESERVED),
    Edges("fe80::/10", ("link-local", False), ("link-local", False), RESERVED, ("site-local", False)),
]


def _edge_cases():
    cases = []
    for edges in BLOCK_EDGES:
        network = ipaddress.ip_network(edges.block)
        first, last = network.network_address, network.broadcast_address
        points = [("first", first, edges.first), ("last", last, edges.last)]
        if edges.below is not None:
            points.append(("below", first - 1, edges.below))
        if edges.above is not None:
            points.append(("above", last + 1, edges.above))
        cases += [pytest.param(str(address), want, id=f"{edges.block}-{edge}") for edge, address, want in points]
    return cases


@pytest.mark.parametrize(("address", "want"), _edge_cases())
def test_block_edges(address, want):
    c = classify(address)
    got = (c.address_class, c.is_global)
    assert got == want, f"{address}: got {got}; want {want}"


def test_every_row_and_class_has_edge_cases():
    assert {e.block for e in BLOCK_EDGES} == {b.prefix for b in BLOCKS}
    wanted = {w[0] for e in BLOCK_EDGES for w in (e.first, e.last, e.below, e.above) if w is not None}
    assert wanted == set(ADDRESS_CLASSES)


# --- the table itself ------------------------------------------------------------------------------


def test_table_has_no_duplicate_prefix():
    networks = [b.network for b in BLOCKS]
    duplicates = {str(n) for n in networks if networks.count(n) > 1}
    assert not duplicates, f"got duplicates {sorted(duplicates)}; want none"


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.prefix)
def test_table_row_is_well_formed(block):
    assert str(block.network) == block.prefix, f"got {block.prefix}; want the canonical {block.network}"
    assert block.address_class in ADDRESS_CLASSES, f"got class {block.address_class!r}; want one of the vocabulary"
    assert block.name and block.reference, f"got name {block.name!r}, reference {block.reference!r}; want both"
    registry = block.registry
    assert registry.name and registry.url and registry.edition, f"got registry {registry}; want name, url, edition"
    assert block.embedding is None or block.network.version == 6, "got an embedded IPv4 in an IPv4 block"


def test_table_uses_every_class():
    assert {b.address_class for b in BLOCKS} == set(ADDRESS_CLASSES)


@pytest.mark.parametrize("version", [4, 6])
def test_table_covers_every_address(version):
    networks = [b.network for b in BLOCKS if b.network.version == version]
    got = list(ipaddress.collapse_addresses(networks))
    want = [ipaddress.ip_network("0.0.0.0/0" if version == 4 else "::/0")]
    assert got == want, f"got {got}; want {want}"


def _reference_lookup(address: ipaddress.IPv4Address | ipaddress.IPv6Address):
    """The longest prefix holding `address`, by a scan over every row: what the index must agree with."""
    block = max((b for b in BLOCKS if address in b.network), key=lambda b: b.network.prefixlen)
    return block.address_class, block.is_global


@given(
    st.one_of(
        st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address), st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)
    )
)
def test_index_agrees_with_a_scan_of_the_table(address):
    c = classify(address)
    got, want = (c.address_class, c.is_global), _reference_lookup(address)
    assert got == want, f"{address}: got {got}; want {want}"


# --- multicast: a group is never global -----------------------------------------------------------

IPV4_MULTICAST = ipaddress.ip_network("224.0.0.0/4")
IPV6_MULTICAST = ipaddress.ip_network("ff00::/8")


@pytest.mark.parametrize("scope", range(16), ids=lambda s: f"scope-{s:x}")
@pytest.mark.parametrize("flags", [0x0, 0x3, 0x7], ids=lambda f: f"flags-{f:x}")
def test_ipv6_multicast_is_never_global_whatever_its_scope(flags, scope):
    address = f"ff{flags:x}{scope:x}::1"
    c = classify(address)
    got, want = (c.address_class, c.is_global), MULTICAST
    assert got == want, f"{address}: got {got}; want {want}"


# Internetwork control, AD-HOC, SSM, GLOP, unicast-prefix-based, organisation-local: the groups that
# RFC 5771 lets cross the Internet are groups all the same.
@pytest.mark.parametrize(
    "address", ["224.0.1.1", "224.2.0.1", "232.1.2.3", "233.1.2.3", "233.252.1.0", "234.192.0.2", "239.255.255.250"]
)
def test_ipv4_multicast_is_never_global(address):
    c = classify(address)
    got, want = (c.address_class, c.is_global), MULTICAST
    assert got == want, f"{address}: got {got}; want {want}"


@given(
    st.one_of(
        st.integers(0, 2**28 - 1).map(lambda low: IPV4_MULTICAST[low]),
        st.integers(0, 2**120 - 1).map(lambda low: IPV6_MULTICAST[low]),
    )
)
def test_no_multicast_address_is_global(address):
    c = classify(address)
    assert not c.is_global, f"{address}: got class {c.address_class}, global true; want global false"
    assert c.address_class in ("multicast", "documentation"), f"{address}: got class {c.address_class}"


@pytest.mark.parametrize(
    "address", ["233.252.0.0", "233.252.0.1", "233.252.0.255", "ff0e::db8:0:1", "ff02::db8:ffff:ffff", "ff05::db8:1:2"]
)
def test_documentation_multicast_is_documentation(address):
    c = classify(address)
    got, want = (c.address_class, c.is_global), DOCUMENTATION
    assert got == want, f"{address}: got {got}; want {want}"


# --- embedded IPv4 --------------------------------------------------------------------------------

EMBEDDED_CASES = [
    # RFC 4380 §4's example: client 192.0.2.45 behind server 65.54.227.120, obscured by XOR.
    pytest.param(
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "teredo",
        EmbeddedIPv4("192.0.2.45", "documentation", False),
        id="teredo-xor-documentation",
    ),
    pytest.param(
        "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
        "teredo",
        EmbeddedIPv4("8.8.8.8", "global", True),
        id="teredo-xor-global",
    ),
    pytest.param(
        "2002:c000:201::1", "6to4", EmbeddedIPv4("192.0.2.1", "documentation", False), id="6to4-documentation"
    ),
    pytest.param("2002:c0a8:101:5::1", "6to4", EmbeddedIPv4("192.168.1.1", "private", False), id="6to4-private"),
    pytest.param("2002:808:808::", "6to4", EmbeddedIPv4("8.8.8.8", "global", True), id="6to4-global"),
    pytest.param("::ffff:10.1.2.3", "ipv4-mapped", EmbeddedIPv4("10.1.2.3", "private", False), id="mapped"),
    pytest.param("::ffff:8.8.8.8", "ipv4-mapped", EmbeddedIPv4("8.8.8.8", "global", True), id="mapped-global"),
    pytest.param("::192.0.2.1", "ipv4-compatible", EmbeddedIPv4("192.0.2.1", "documentation", False), id="compatible"),
    pytest.param("::2", "ipv4-compatible", EmbeddedIPv4("0.0.0.2", "this-network", False), id="compatible-low"),
    pytest.param("64:ff9b::808:808", "nat64", EmbeddedIPv4("8.8.8.8", "global", True), id="nat64-96-global"),
    pytest.param("64:ff9b::192.168.0.1", "nat64", EmbeddedIPv4("192.168.0.1", "private", False), id="nat64-96-private"),
    pytest.param("64:ff9b:1::c000:201", "nat64", None, id="nat64-local-use-48-none"),
    pytest.param("::", "unspecified", None, id="unspecified-none"),
    pytest.param("::1", "loopback", None, id="loopback-none"),
    pytest.param("2001:db8::c000:201", "documentation", None, id="documentation-none"),
    pytest.param("192.0.2.1", "documentation", None, id="ipv4-none"),
]


@pytest.mark.parametrize(("address", "address_class", "want"), EMBEDDED_CASES)
def test_embedded_ipv4(address, address_class, want):
    c = classify(address)
    assert c.address_class == address_class, f"{address}: got class {c.address_class}; want {address_class}"
    assert c.embedded_ipv4 == want, f"{address}: got {c.embedded_ipv4}; want {want}"


def _as_embedded(ipv4: ipaddress.IPv4Address) -> EmbeddedIPv4:
    c = classify(ipv4)
    return EmbeddedIPv4(c.address, c.address_class, c.is_global)


ipv4_values = st.integers(0, 2**32 - 1)


@given(ipv4_values, st.integers(0, 2**80 - 1))
def test_6to4_carries_bits_16_to_47(value, rest):
    address = ipaddress.IPv6Address((0x2002 << 112) | (value << 80) | rest)
    assert classify(address).embedded_ipv4 == _as_embedded(ipaddress.IPv4Address(value))


@given(ipv4_values, st.integers(0, 2**64 - 1))
def test_teredo_carries_the_inverted_low_32_bits(value, server_and_flags):
    address = ipaddress.IPv6Address((0x2001_0000 << 96) | (server_and_flags << 32) | (value ^ 0xFFFF_FFFF))
    assert classify(address).embedded_ipv4 == _as_embedded(ipaddress.IPv4Address(value))


@given(ipv4_values, st.sampled_from([0xFFFF << 32, 0x64_FF9B << 96]))
def test_mapped_and_nat64_carry_the_low_32_bits(value, prefix):
    address = ipaddress.IPv6Address(prefix | value)
    assert classify(address).embedded_ipv4 == _as_embedded(ipaddress.IPv4Address(value))


# --- the API --------------------------------------------------------------------------------------


def test_as_json_of_the_documented_example():
    got = classify("2002:c000:201::1").as_json()
    want = {
        "address": "2002:c000:201::1",
        "family": "ipv6",
        "class": "6to4",
        "global": False,
        "embedded_ipv4": {"address": "192.0.2.1", "class": "documentation", "global": False},
    }
    assert got == want, f"got {got}; want {want}"


def test_as_json_without_embedded_ipv4():
    got = classify("8.8.8.8").as_json()
    want = {"address": "8.8.8.8", "family": "ipv4", "class": "global", "global": True, "embedded_ipv4": None}
    assert got == want, f"got {got}; want {want}"


@pytest.mark.parametrize(
    ("given_address", "want"),
    [
        pytest.param("2001:DB8:0:0::1", "2001:db8::1", id="ipv6-text-canonical"),
        pytest.param(ipaddress.IPv6Address("2001:db8::1"), "2001:db8::1", id="ipv6-object"),
        pytest.param(ipaddress.IPv4Address("192.0.2.1"), "192.0.2.1", id="ipv4-object"),
        pytest.param("fe80::1%eth0", "fe80::1%eth0", id="ipv6-zone-kept"),
    ],
)
def test_accepts_text_and_address_objects(given_address, want):
    assert classify(given_address).address == want


def test_family():
    assert (classify("192.0.2.1").family, classify("2001:db8::1").family) == ("ipv4", "ipv6")


@pytest.mark.parametrize("text", ["300.1.1.1", "", "2001:db8::g", "192.0.2.1/24", " 192.0.2.1"])
def test_unparsable_text_raises_value_error_naming_it(text):
    with pytest.raises(ValueError) as raised:
        classify(text)
    assert str(raised.value) == f"{text!r} is not an IPv4 or IPv6 address"


def test_rejects_other_types():
    with pytest.raises(TypeError):
        classify(3221225985)


@pytest.mark.parametrize(
    "value",
    [classify("2002:c000:201::1"), classify("2002:c000:201::1").embedded_ipv4],
    ids=["Classification", "EmbeddedIPv4"],
)
def test_results_are_frozen_with_slots(value):
    with pytest.raises(dataclasses.FrozenInstanceError):
        value.address = "192.0.2.2"
    assert not hasattr(value, "__dict__")


def test_results_compare_by_value():
    assert classify("2002:c000:201::1") == Classification(
        "2002:c000:201::1", "ipv6", "6to4", False, EmbeddedIPv4("192.0.2.1", "documentation", False)
    )
