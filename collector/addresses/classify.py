# SPDX-License-Identifier: MIT
"""Classify an address by the longest prefix of the table in `collector.addresses.classes` that holds it.

`ipaddress` only parses here: its is_private/is_global flags disagree with the registries and change
between patch releases, so class and reachability come from our table alone.
"""

import ipaddress
from dataclasses import dataclass
from functools import lru_cache

from collector.addresses.classes import BLOCKS, Block

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_IPV4_BITS = 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class EmbeddedIPv4:
    """The IPv4 address an IPv6 form carries (IPv4-mapped, NAT64, 6to4, Teredo...), classed by the
    IPv4 rows."""

    address: str
    address_class: str
    is_global: bool

    def as_json(self) -> dict:
        """The `embedded_ipv4` map of an add_addr record (docs/records.md)."""
        return {"address": self.address, "class": self.address_class, "global": self.is_global}


@dataclass(frozen=True, slots=True)
class Classification:
    """What the table says of one address: its family, class and reachability, and the IPv4 address it
    carries, if it carries one."""

    address: str
    family: str
    address_class: str
    is_global: bool
    embedded_ipv4: EmbeddedIPv4 | None

    def as_json(self) -> dict:
        """The address's line of `addaddr classify --json`."""
        return {
            "address": self.address,
            "family": self.family,
            "class": self.address_class,
            "global": self.is_global,
            "embedded_ipv4": None if self.embedded_ipv4 is None else self.embedded_ipv4.as_json(),
        }


class _PrefixIndex:
    """Longest-prefix match over one family: a dict probe per prefix length in use, longest first."""

    def __init__(self, width: int, blocks: list[Block]):
        self._width = width
        self._blocks = {self._key(b.network.prefixlen, int(b.network.network_address)): b for b in blocks}
        self._lengths = sorted({b.network.prefixlen for b in blocks}, reverse=True)

    def _key(self, length: int, value: int) -> tuple[int, int]:
        return length, value >> (self._width - length)

    def longest_match(self, address: Address) -> Block:
        value = int(address)
        for length in self._lengths:
            block = self._blocks.get(self._key(length, value))
            if block is not None:
                return block
        raise LookupError(f"no row of the address table holds {address}")


_INDEX = {
    version: _PrefixIndex(width, [b for b in BLOCKS if b.network.version == version])
    for version, width in ((4, 32), (6, 128))
}


def classify(address: str | Address) -> Classification:
    """The class and reachability of `address`, and of the IPv4 address it carries if it carries one."""
    return classify_address(_parse(address))


# A tuple: isinstance with a union type builds the union on every call.
_ADDRESS_TYPES = (ipaddress.IPv4Address, ipaddress.IPv6Address)


def _parse(address: str | Address) -> Address:
    if isinstance(address, _ADDRESS_TYPES):
        return address
    if not isinstance(address, str):
        raise TypeError(f"expected an address as str or ipaddress object, not {type(address).__name__}")
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"{address!r} is not an IPv4 or IPv6 address") from None


# Peers announce the same few addresses again and again; the bound keeps a flood of distinct ones
# from growing the cache without limit.
@lru_cache(maxsize=65536)
def classify_address(address: Address) -> Classification:
    """classify() of an ipaddress object, as decode gives it: the record path's, with nothing to parse."""
    block = _INDEX[address.version].longest_match(address)
    return Classification(
        address=str(address),
        family=f"ipv{address.version}",
        address_class=block.address_class,
        is_global=block.is_global,
        embedded_ipv4=None if block.embedding is None else _embedded(address, block),
    )


# The record path's classify_address, by the address object's identity first: decode hands the same
# object for the same bytes (pipeline/decode.py's address cache), and hashing an ipaddress object for
# classify_address's cache runs Python (hash(hex(int(...)))), ~1,000 instructions an ADD_ADDR. Each
# entry holds its address, so no other object can take its id while the entry is there.
_BY_IDENTITY: dict[int, tuple[Address, Classification]] = {}
_MAX_BY_IDENTITY = 4096


def classify_decoded(address: Address) -> Classification:
    """classify_address() of an address as decode gives it, found by the object's identity when seen before."""
    seen = _BY_IDENTITY.get(id(address))
    if seen is not None:
        return seen[1]
    if len(_BY_IDENTITY) >= _MAX_BY_IDENTITY:
        _BY_IDENTITY.clear()
    classification = classify_address(address)
    _BY_IDENTITY[id(address)] = address, classification
    return classification


def _embedded(address: ipaddress.IPv6Address, block: Block) -> EmbeddedIPv4:
    carried = ((int(address) >> block.embedding.shift) & _IPV4_BITS) ^ block.embedding.xor
    ipv4 = ipaddress.IPv4Address(carried)
    ipv4_block = _INDEX[4].longest_match(ipv4)
    return EmbeddedIPv4(str(ipv4), ipv4_block.address_class, ipv4_block.is_global)
