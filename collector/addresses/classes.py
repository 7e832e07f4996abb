# SPDX-License-Identifier: MIT
"""The prefix table that announced addresses are classified by: data only, one row per registry block.

A row's class is the vocabulary name (docs/address-classes.md) of the block that holds it: a block that a
registry lists inside a larger one, with another reachability, keeps the larger block's class and carries
its own `is_global`. `is_global` is the registry's "Globally Reachable" column with N/A read as False,
and False for every multicast group: the multicast registries have no such column, and `global` means an
address a subflow could use from anywhere, which a group never is.
The classifier takes the longest prefix that holds an address, so rows nest; the roots (0.0.0.0/0, and
the IANA IPv6 Address Space top-level blocks, which tile ::/0) give every address a row.

Rows were copied from memory of the registries as published through 2024/2025, not fetched: each
`Registry.edition` is the "Last Updated" date believed current. Check the values marked ASSUMPTION
against the live registries when bumping an edition.
"""

from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network

ADDRESS_CLASSES = (
    "global",
    "private",
    "shared",
    "loopback",
    "link-local",
    "this-network",
    "unspecified",
    "ietf-protocol",
    "documentation",
    "benchmarking",
    "6to4-relay",
    "multicast",
    "reserved",
    "broadcast",
    "ipv4-mapped",
    "ipv4-compatible",
    "nat64",
    "discard",
    "teredo",
    "orchid",
    "6to4",
    "segment-routing",
    "unique-local",
    "site-local",
)


@dataclass(frozen=True, slots=True)
class Registry:
    """A registry the rows come from: its name, where it is published, the edition copied."""

    name: str
    url: str
    edition: str


@dataclass(frozen=True, slots=True)
class Ipv4Embedding:
    """Where an IPv6 form carries an IPv4 address: the 32 bits `shift` bits up from the bottom, XOR `xor`."""

    shift: int
    xor: int


@dataclass(frozen=True, slots=True)
class Block:
    """One row: a registry's block (`name`, defined by `reference`), the class of its addresses and
    whether they are globally reachable; `embedding` when its IPv6 addresses carry an IPv4 one."""

    prefix: str
    address_class: str
    is_global: bool
    name: str
    reference: str
    registry: Registry
    embedding: Ipv4Embedding | None = None

    @property
    def network(self) -> IPv4Network | IPv6Network:
        """The block's `prefix` as a network, for the classifier's prefix index."""
        return ip_network(self.prefix)


IPV4_SPECIAL = Registry(
    "IANA IPv4 Special-Purpose Address Registry",
    "https://www.iana.org/assignments/iana-ipv4-special-registry/",
    "2017-07-03",  # ASSUMPTION: no IPv4 row changed after RFC 8155's 192.0.0.10/32.
)
IPV6_SPECIAL = Registry(
    "IANA IPv6 Special-Purpose Address Registry",
    "https://www.iana.org/assignments/iana-ipv6-special-registry/",
    "2024-10",  # ASSUMPTION: the edition with RFC 9637's 3fff::/20 and RFC 9602's 5f00::/16.
)
IPV6_ADDRESS_SPACE = Registry(
    "IANA Internet Protocol Version 6 Address Space",
    "https://www.iana.org/assignments/ipv6-address-space/",
    "2019-09-13",  # ASSUMPTION: the top-level blocks have not changed since RFC 4291 (2006).
)
IPV4_MULTICAST = Registry(
    "IANA IPv4 Multicast Address Space Registry",
    "https://www.iana.org/assignments/multicast-addresses/",
    "2024",  # ASSUMPTION: only group assignments change; MCAST-TEST-NET dates from RFC 5771 (2010).
)
IPV6_MULTICAST = Registry(
    "IANA IPv6 Multicast Address Space Registry",
    "https://www.iana.org/assignments/ipv6-multicast-addresses/",
    "2025-04-07",  # Variable Scope Multicast Addresses: FF0X::DB8:0:0/96 (RFC 6676) unchanged since 2012.
)
RFC4291 = Registry("RFC 4291 IP Version 6 Addressing Architecture", "https://www.rfc-editor.org/rfc/rfc4291", "2006-02")
RFC6890 = Registry(
    "RFC 6890 Special-Purpose IP Address Registries", "https://www.rfc-editor.org/rfc/rfc6890", "2013-04"
)

LOW_32 = Ipv4Embedding(shift=0, xor=0)
SIX_TO_FOUR = Ipv4Embedding(shift=80, xor=0)  # RFC 3056 §2: bits 16-47 of 2002:V4ADDR::/48.
TEREDO_CLIENT = Ipv4Embedding(shift=0, xor=0xFFFF_FFFF)  # RFC 4380 §4: the client's address, inverted.

IPV4_BLOCKS = (
    # Outside every special-purpose block an IPv4 address is ordinary, globally reachable unicast.
    Block("0.0.0.0/0", "global", True, "Any address in no special-purpose block", "RFC 6890 §2.2", RFC6890),
    Block("0.0.0.0/8", "this-network", False, "This network", "RFC 791 §3.2", IPV4_SPECIAL),
    Block("0.0.0.0/32", "this-network", False, "This host on this network", "RFC 1122 §3.2.1.3", IPV4_SPECIAL),
    Block("10.0.0.0/8", "private", False, "Private-Use", "RFC 1918", IPV4_SPECIAL),
    Block("100.64.0.0/10", "shared", False, "Shared Address Space", "RFC 6598", IPV4_SPECIAL),
    Block("127.0.0.0/8", "loopback", False, "Loopback", "RFC 1122 §3.2.1.3", IPV4_SPECIAL),
    Block("169.254.0.0/16", "link-local", False, "Link Local", "RFC 3927", IPV4_SPECIAL),
    Block("172.16.0.0/12", "private", False, "Private-Use", "RFC 1918", IPV4_SPECIAL),
    Block("192.0.0.0/24", "ietf-protocol", False, "IETF Protocol Assignments", "RFC 6890 §2.1", IPV4_SPECIAL),
    Block("192.0.0.0/29", "ietf-protocol", False, "IPv4 Service Continuity Prefix", "RFC 7335", IPV4_SPECIAL),
    Block("192.0.0.8/32", "ietf-protocol", False, "IPv4 dummy address", "RFC 7600", IPV4_SPECIAL),
    Block("192.0.0.9/32", "ietf-protocol", True, "Port Control Protocol Anycast", "RFC 7723", IPV4_SPECIAL),
    Block(
        "192.0.0.10/32", "ietf-protocol", True, "Traversal Using Relays around NAT Anycast", "RFC 8155", IPV4_SPECIAL
    ),
    Block("192.0.0.170/32", "ietf-protocol", False, "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 §2.2", IPV4_SPECIAL),
    Block("192.0.0.171/32", "ietf-protocol", False, "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 §2.2", IPV4_SPECIAL),
    Block("192.0.2.0/24", "documentation", False, "Documentation (TEST-NET-1)", "RFC 5737", IPV4_SPECIAL),
    Block("192.31.196.0/24", "global", True, "AS112-v4", "RFC 7535", IPV4_SPECIAL),
    Block("192.52.193.0/24", "global", True, "AMT", "RFC 7450", IPV4_SPECIAL),
    # ASSUMPTION: since RFC 7526 deprecated it, the row's reachability columns read N/A.
    Block("192.88.99.0/24", "6to4-relay", False, "Deprecated (6to4 Relay Anycast)", "RFC 7526", IPV4_SPECIAL),
    Block("192.88.99.2/32", "6to4-relay", False, "6a44-relay anycast address", "RFC 6751", IPV4_SPECIAL),
    Block("192.168.0.0/16", "private", False, "Private-Use", "RFC 1918", IPV4_SPECIAL),
    Block("192.175.48.0/24", "global", True, "Direct Delegation AS112 Service", "RFC 7534", IPV4_SPECIAL),
    Block("198.18.0.0/15", "benchmarking", False, "Benchmarking", "RFC 2544", IPV4_SPECIAL),
    Block("198.51.100.0/24", "documentation", False, "Documentation (TEST-NET-2)", "RFC 5737", IPV4_SPECIAL),
    Block("203.0.113.0/24", "documentation", False, "Documentation (TEST-NET-3)", "RFC 5737", IPV4_SPECIAL),
    Block("240.0.0.0/4", "reserved", False, "Reserved", "RFC 1112 §4", IPV4_SPECIAL),
    Block("255.255.255.255/32", "broadcast", False, "Limited Broadcast", "RFC 8190, RFC 919 §7", IPV4_SPECIAL),
    # `global` means an address a subflow could use from anywhere, so never a group, whatever its scope.
    Block("224.0.0.0/4", "multicast", False, "Multicast", "RFC 5771", IPV4_MULTICAST),
    Block("233.252.0.0/24", "documentation", False, "MCAST-TEST-NET", "RFC 5771 §9.2, RFC 6676 §2", IPV4_MULTICAST),
)

_IETF_RESERVED = (
    "::/8",
    "100::/8",
    "200::/7",
    "400::/6",
    "800::/5",
    "1000::/4",
    "4000::/3",
    "6000::/3",
    "8000::/3",
    "a000::/3",
    "c000::/3",
    "e000::/4",
    "f000::/5",
    "f800::/6",
    "fe00::/9",
)

IPV6_BLOCKS = (
    # Top level: with fc00::/7 and fe80::/10 below, these tile ::/0.
    *(
        Block(prefix, "reserved", False, "Reserved by IETF", "RFC 4291", IPV6_ADDRESS_SPACE)
        for prefix in _IETF_RESERVED
    ),
    Block("2000::/3", "global", True, "Global Unicast", "RFC 4291", IPV6_ADDRESS_SPACE),
    Block("fec0::/10", "site-local", False, "Reserved by IETF (deprecated site-local)", "RFC 3879", IPV6_ADDRESS_SPACE),
    # A group is never `global` (see 224.0.0.0/4), not even with the global scope nibble (ff0e::/16).
    Block("ff00::/8", "multicast", False, "Multicast", "RFC 4291", IPV6_ADDRESS_SPACE),
    # FF0X::DB8:0:0/96: the registry's X is the scope nibble, so one row per scope.
    *(
        Block(
            f"ff0{scope:x}::db8:0:0/96",
            "documentation",
            False,
            "Documentation Addresses",
            "RFC 6676 §3",
            IPV6_MULTICAST,
        )
        for scope in range(16)
    ),
    Block(
        "::/96",
        "ipv4-compatible",
        False,
        "IPv4-Compatible IPv6 Address (deprecated)",
        "RFC 4291 §2.5.5.1",
        RFC4291,
        LOW_32,
    ),
    Block("::/128", "unspecified", False, "Unspecified Address", "RFC 4291", IPV6_SPECIAL),
    Block("::1/128", "loopback", False, "Loopback Address", "RFC 4291", IPV6_SPECIAL),
    Block("::ffff:0:0/96", "ipv4-mapped", False, "IPv4-mapped Address", "RFC 4291", IPV6_SPECIAL, LOW_32),
    Block("64:ff9b::/96", "nat64", True, "IPv4-IPv6 Translat.", "RFC 6052", IPV6_SPECIAL, LOW_32),
    # Local use: the operator picks where the IPv4 address goes, so nothing can be read out of it.
    Block("64:ff9b:1::/48", "nat64", False, "IPv4-IPv6 Translat.", "RFC 8215", IPV6_SPECIAL),
    Block("100::/64", "discard", False, "Discard-Only Address Block", "RFC 6666", IPV6_SPECIAL),
    Block("2001::/23", "ietf-protocol", False, "IETF Protocol Assignments", "RFC 2928", IPV6_SPECIAL),
    Block("2001::/32", "teredo", False, "TEREDO", "RFC 4380, RFC 8190", IPV6_SPECIAL, TEREDO_CLIENT),
    Block("2001:1::1/128", "ietf-protocol", True, "Port Control Protocol Anycast", "RFC 7723", IPV6_SPECIAL),
    Block(
        "2001:1::2/128", "ietf-protocol", True, "Traversal Using Relays around NAT Anycast", "RFC 8155", IPV6_SPECIAL
    ),
    Block(
        "2001:1::3/128", "ietf-protocol", True, "DNS-SD Service Registration Protocol Anycast", "RFC 9665", IPV6_SPECIAL
    ),
    Block("2001:2::/48", "benchmarking", False, "Benchmarking", "RFC 5180", IPV6_SPECIAL),
    Block("2001:3::/32", "ietf-protocol", True, "AMT", "RFC 7450", IPV6_SPECIAL),
    Block("2001:4:112::/48", "ietf-protocol", True, "AS112-v6", "RFC 7535", IPV6_SPECIAL),
    Block("2001:10::/28", "orchid", False, "Deprecated (previously ORCHID)", "RFC 4843", IPV6_SPECIAL),
    Block("2001:20::/28", "orchid", True, "ORCHIDv2", "RFC 7343", IPV6_SPECIAL),
    Block(
        "2001:30::/28",
        "ietf-protocol",
        True,
        "Drone Remote ID Protocol Entity Tags (DETs) Prefix",
        "RFC 9374",
        IPV6_SPECIAL,
    ),
    Block("2001:db8::/32", "documentation", False, "Documentation", "RFC 3849", IPV6_SPECIAL),
    Block("2002::/16", "6to4", False, "6to4", "RFC 3056", IPV6_SPECIAL, SIX_TO_FOUR),
    Block("2620:4f:8000::/48", "global", True, "Direct Delegation AS112 Service", "RFC 7534", IPV6_SPECIAL),
    Block("3fff::/20", "documentation", False, "Documentation", "RFC 9637", IPV6_SPECIAL),
    # ASSUMPTION: RFC 9602 sets Globally Reachable to False (SIDs stay inside an SR domain).
    Block("5f00::/16", "segment-routing", False, "Segment Routing (SRv6) SIDs", "RFC 9602", IPV6_SPECIAL),
    Block("fc00::/7", "unique-local", False, "Unique-Local", "RFC 4193, RFC 8190", IPV6_SPECIAL),
    Block("fe80::/10", "link-local", False, "Link-Local Unicast", "RFC 4291", IPV6_SPECIAL),
)

BLOCKS = IPV4_BLOCKS + IPV6_BLOCKS
