# SPDX-License-Identifier: MIT
"""Decode one MPTCP TCP option (kind 30) from its wire bytes.

The kernel side hands over the option exactly as on the wire; every interpretation happens here.
Layouts follow RFC 8684 (MPTCP v1) and, where they differ, RFC 6824 (v0). Anything that does not
fit a layout raises MalformedOption with a reason: a decoder that guesses would let a corrupt or
hostile option turn into a plausible-looking announcement.

Decoded options are NamedTuples: immutable like the frozen dataclasses they were, made in a third of
the time (a frozen dataclass sets each field through object.__setattr__), and shareable, so that
an option seen again (an ADD_ADDR echo, the MP_CAPABLE SYN) is decoded once.
"""

import hashlib
import struct
from collections.abc import Callable
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address
from typing import NamedTuple

__all__ = [
    "decode",
    "decode_bytes",
    "token",
    "MalformedOption",
    "AddAddr",
    "MpCapable",
    "MpJoin",
    "RemoveAddr",
    "FastClose",
    "TcpRst",
    "OtherSuboption",
]

TCPOPT_MPTCP = 30

# Subtypes, named as in the Linux kernel's net/mptcp/protocol.h.
MPTCPOPT_MP_CAPABLE = 0
MPTCPOPT_MP_JOIN = 1
MPTCPOPT_DSS = 2
MPTCPOPT_ADD_ADDR = 3
MPTCPOPT_RM_ADDR = 4
MPTCPOPT_MP_PRIO = 5
MPTCPOPT_MP_FAIL = 6
MPTCPOPT_MP_FASTCLOSE = 7
MPTCPOPT_RST = 8

# Option lengths, named as in net/mptcp/protocol.h.
TCPOLEN_MPTCP_MPC_SYN = 4
TCPOLEN_MPTCP_MPC_SYNACK = 12
TCPOLEN_MPTCP_MPC_ACK = 20
TCPOLEN_MPTCP_MPC_ACK_DATA = 22
TCPOLEN_MPTCP_DSS_CHECKSUM = 2
TCPOLEN_MPTCP_MPC_ACK_DATA_CSUM = TCPOLEN_MPTCP_DSS_CHECKSUM + TCPOLEN_MPTCP_MPC_ACK_DATA
TCPOLEN_MPTCP_MPJ_SYN = 12
TCPOLEN_MPTCP_MPJ_SYNACK = 16
TCPOLEN_MPTCP_MPJ_ACK = 24
TCPOLEN_MPTCP_ADD_ADDR = 16
TCPOLEN_MPTCP_ADD_ADDR_PORT = 18
TCPOLEN_MPTCP_ADD_ADDR_BASE = 8
TCPOLEN_MPTCP_ADD_ADDR_BASE_PORT = 10
TCPOLEN_MPTCP_ADD_ADDR6 = 28
TCPOLEN_MPTCP_ADD_ADDR6_PORT = 30
TCPOLEN_MPTCP_ADD_ADDR6_BASE = 20
TCPOLEN_MPTCP_ADD_ADDR6_BASE_PORT = 22
TCPOLEN_MPTCP_PORT_LEN = 2
TCPOLEN_MPTCP_RM_ADDR_BASE = 3
TCPOLEN_MPTCP_PRIO = 3
TCPOLEN_MPTCP_FASTCLOSE = 12
TCPOLEN_MPTCP_RST = 4
TCPOLEN_MPTCP_FAIL = 12

# The kernel has no names for these: v0 (RFC 6824) only knows the key-carrying MP_CAPABLE forms.
TCPOLEN_MPTCP_MPC_V0_SYN = TCPOLEN_MPTCP_MPC_SYNACK
TCPOLEN_MPTCP_MPC_V0_ACK = TCPOLEN_MPTCP_MPC_ACK
# Smallest MPTCP option: kind, length and the subtype byte (MP_PRIO is exactly this long).
TCPOLEN_MPTCP_MIN = 3
MPTCPOPT_THMAC_LEN = 8
MPTCPOPT_BACKUP = 0x01
MPTCP_ADDR_ECHO = 0x01


class MalformedOption(ValueError):
    """The bytes are not a well-formed MPTCP option; `reason` says which rule they break."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AddAddr(NamedTuple):
    """ADD_ADDR: an address, and maybe a port, the sender announces as `address_id`; an `echo` is the
    receiver's acknowledgement. `hmac` only on a v1 announcement, not on its echo."""

    subtype = MPTCPOPT_ADD_ADDR
    version: int
    address_id: int
    address: IPv4Address | IPv6Address
    port: int | None
    echo: bool
    hmac: bytes | None


class MpCapable(NamedTuple):
    """MP_CAPABLE: the version and flags; the keys, data-level length and checksum its form carries,
    None where it has none."""

    subtype = MPTCPOPT_MP_CAPABLE
    version: int
    flags: int
    sender_key: int | None
    receiver_key: int | None
    data_len: int | None
    checksum: int | None


class MpJoin(NamedTuple):
    """MP_JOIN in one of its forms (`form`: syn, synack or ack); a field the form lacks is None."""

    subtype = MPTCPOPT_MP_JOIN
    form: str
    address_id: int | None
    backup: bool | None
    token: int | None
    nonce: int | None
    hmac: bytes | None


class RemoveAddr(NamedTuple):
    """REMOVE_ADDR: the address ids the sender withdraws."""

    subtype = MPTCPOPT_RM_ADDR
    address_ids: tuple[int, ...]


class FastClose(NamedTuple):
    """MP_FASTCLOSE: the connection closed at once; `receiver_key` is the receiver's key."""

    subtype = MPTCPOPT_MP_FASTCLOSE
    receiver_key: int


class TcpRst(NamedTuple):
    """MP_TCPRST: a subflow reset, with its flags and reason code (RFC 8684, section 3.6)."""

    subtype = MPTCPOPT_RST
    flags: int
    reason: int


class OtherSuboption(NamedTuple):
    """A subtype this module does not interpret; `raw` is the whole option, kind byte included."""

    subtype: int
    raw: bytes


Record = AddAddr | MpCapable | MpJoin | RemoveAddr | FastClose | TcpRst | OtherSuboption

# Options are made with tuple.__new__, as event.py makes events: a NamedTuple's own __new__ is a
# Python-level call, a tenth of the instructions of decoding an option.
_new = tuple.__new__
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")


def _lengths_text(lengths) -> str:
    return ", ".join(str(n) for n in sorted(lengths))


# --- ADD_ADDR ----------------------------------------------------------------------------------

# The length alone fixes the layout: (IP version, port present, HMAC present).
_ADD_ADDR_LAYOUTS: dict[int, tuple[int, bool, bool]] = {
    TCPOLEN_MPTCP_ADD_ADDR_BASE: (4, False, False),
    TCPOLEN_MPTCP_ADD_ADDR_BASE_PORT: (4, True, False),
    TCPOLEN_MPTCP_ADD_ADDR: (4, False, True),
    TCPOLEN_MPTCP_ADD_ADDR_PORT: (4, True, True),
    TCPOLEN_MPTCP_ADD_ADDR6_BASE: (6, False, False),
    TCPOLEN_MPTCP_ADD_ADDR6_BASE_PORT: (6, True, False),
    TCPOLEN_MPTCP_ADD_ADDR6: (6, False, True),
    TCPOLEN_MPTCP_ADD_ADDR6_PORT: (6, True, True),
}
_ADD_ADDR_LENGTHS = _lengths_text(_ADD_ADDR_LAYOUTS)
_ADDRESS_SIZES = {4: 4, 6: 16}
# Peers announce the same few addresses again and again (HMACs make each ADD_ADDR's bytes unique,
# not its address): an address object is made once, in a bounded cache that a flood of distinct
# addresses only cycles through.
_CACHED_ADDRESSES = 4096


@lru_cache(maxsize=_CACHED_ADDRESSES)
def _address(packed: bytes) -> IPv4Address | IPv6Address:
    return IPv4Address(packed) if len(packed) == 4 else IPv6Address(packed)


def _add_addr_version(nibble: int, length: int, ipver: int, has_hmac: bool) -> tuple[int, bool]:
    """Return (version, echo) from the low nibble of byte 2, checked against the length.

    v0 puts IPVer (4 or 6) there and v1 the E flag (0 or 1), and v0 lengths equal v1 echo
    lengths, so only the nibble tells the versions apart. An IPVer at an HMAC length is the
    out-of-tree multipath-tcp.org kernel, which sent v0 ADD_ADDR with an HMAC.
    """
    if nibble == 4 or nibble == 6:
        if nibble != ipver:
            raise MalformedOption(f"ADD_ADDR IPVer {nibble} contradicts length {length}, an IPv{ipver} length")
        return 0, False
    if nibble == 0 or nibble == MPTCP_ADDR_ECHO:
        echo = nibble == MPTCP_ADDR_ECHO
        if echo and has_hmac:
            raise MalformedOption(f"ADD_ADDR E flag 1 (echo) at length {length}, an HMAC length")
        if not echo and not has_hmac:
            raise MalformedOption(f"ADD_ADDR E flag 0 at length {length}, which has no HMAC")
        return 1, echo
    raise MalformedOption(f"ADD_ADDR IPVer {nibble} is neither 4 nor 6 (nor a v1 E flag, 0 or 1)")


def _decode_add_addr(option: bytes) -> AddAddr:
    length = len(option)
    layout = _ADD_ADDR_LAYOUTS.get(length)
    if layout is None:
        raise MalformedOption(f"ADD_ADDR length {length} is not one of {_ADD_ADDR_LENGTHS}")
    ipver, has_port, has_hmac = layout
    version, echo = _add_addr_version(option[2] & 0x0F, length, ipver, has_hmac)
    end = 4 + _ADDRESS_SIZES[ipver]
    address = _address(option[4:end])
    port = None
    if has_port:
        (port,) = _U16.unpack_from(option, end)
        end += TCPOLEN_MPTCP_PORT_LEN
    hmac = option[end:] if has_hmac else None
    return _new(AddAddr, (version, option[3], address, port, echo, hmac))


# --- MP_CAPABLE --------------------------------------------------------------------------------

# Fields after the flags byte, by length: keys, then the data-level length, then the checksum.
_MPC_FIELDS = {
    TCPOLEN_MPTCP_MPC_SYN: struct.Struct("!"),
    TCPOLEN_MPTCP_MPC_SYNACK: struct.Struct("!Q"),
    TCPOLEN_MPTCP_MPC_ACK: struct.Struct("!QQ"),
    TCPOLEN_MPTCP_MPC_ACK_DATA: struct.Struct("!QQH"),
    TCPOLEN_MPTCP_MPC_ACK_DATA_CSUM: struct.Struct("!QQHH"),
}
_MPC_LENGTHS = {
    0: frozenset({TCPOLEN_MPTCP_MPC_V0_SYN, TCPOLEN_MPTCP_MPC_V0_ACK}),
    1: frozenset(_MPC_FIELDS),
}
_MPC_FIELD_COUNT = 4


def _decode_mp_capable(option: bytes) -> MpCapable:
    length = len(option)
    version = option[2] & 0x0F
    lengths = _MPC_LENGTHS.get(version)
    if lengths is None:
        raise MalformedOption(f"MP_CAPABLE version {version} is neither 0 nor 1")
    if length not in lengths:
        raise MalformedOption(f"MP_CAPABLE v{version} length {length} is not one of {_lengths_text(lengths)}")
    fields = _MPC_FIELDS[length].unpack_from(option, 4)
    fields += (None,) * (_MPC_FIELD_COUNT - len(fields))
    return _new(MpCapable, (version, option[3], *fields))


# --- MP_JOIN -----------------------------------------------------------------------------------

_MPJ_SYN = struct.Struct("!BII")  # address id, receiver's token, sender's nonce
_MPJ_SYNACK = struct.Struct(f"!B{MPTCPOPT_THMAC_LEN}sI")  # address id, truncated HMAC, nonce
_MPJ_ACK_HMAC_OFFSET = 4  # after two reserved bytes


def _mp_join_syn(option: bytes) -> MpJoin:
    address_id, token_, nonce = _MPJ_SYN.unpack_from(option, 3)
    return _new(MpJoin, ("syn", address_id, bool(option[2] & MPTCPOPT_BACKUP), token_, nonce, None))


def _mp_join_synack(option: bytes) -> MpJoin:
    address_id, hmac, nonce = _MPJ_SYNACK.unpack_from(option, 3)
    return _new(MpJoin, ("synack", address_id, bool(option[2] & MPTCPOPT_BACKUP), None, nonce, hmac))


def _mp_join_ack(option: bytes) -> MpJoin:
    return _new(MpJoin, ("ack", None, None, None, None, option[_MPJ_ACK_HMAC_OFFSET:]))


_MPJ_FORMS: dict[int, Callable[[bytes], MpJoin]] = {
    TCPOLEN_MPTCP_MPJ_SYN: _mp_join_syn,
    TCPOLEN_MPTCP_MPJ_SYNACK: _mp_join_synack,
    TCPOLEN_MPTCP_MPJ_ACK: _mp_join_ack,
}


def _decode_mp_join(option: bytes) -> MpJoin:
    form = _MPJ_FORMS.get(len(option))
    if form is None:
        raise MalformedOption(f"MP_JOIN length {len(option)} is not 12 (SYN), 16 (SYN/ACK) or 24 (ACK)")
    return form(option)


# --- the short fixed forms ---------------------------------------------------------------------


def _decode_rm_addr(option: bytes) -> RemoveAddr:
    if len(option) == TCPOLEN_MPTCP_RM_ADDR_BASE:
        raise MalformedOption("RM_ADDR length 3 lists no address id")
    return _new(RemoveAddr, (tuple(option[TCPOLEN_MPTCP_RM_ADDR_BASE:]),))


def _decode_fastclose(option: bytes) -> FastClose:
    if len(option) != TCPOLEN_MPTCP_FASTCLOSE:
        raise MalformedOption(f"MP_FASTCLOSE length {len(option)} is not {TCPOLEN_MPTCP_FASTCLOSE}")
    return _new(FastClose, _U64.unpack_from(option, 4))


def _decode_rst(option: bytes) -> TcpRst:
    if len(option) != TCPOLEN_MPTCP_RST:
        raise MalformedOption(f"MP_TCPRST length {len(option)} is not {TCPOLEN_MPTCP_RST}")
    return _new(TcpRst, (option[2] & 0x0F, option[3]))


_DECODERS: dict[int, Callable[[bytes], Record]] = {
    MPTCPOPT_MP_CAPABLE: _decode_mp_capable,
    MPTCPOPT_MP_JOIN: _decode_mp_join,
    MPTCPOPT_ADD_ADDR: _decode_add_addr,
    MPTCPOPT_RM_ADDR: _decode_rm_addr,
    MPTCPOPT_MP_FASTCLOSE: _decode_fastclose,
    MPTCPOPT_RST: _decode_rst,
}


# --- entry points ------------------------------------------------------------------------------


def _check_framing(option: bytes) -> None:
    given = len(option)
    if given < 2:
        raise MalformedOption(f"option of {given} bytes is truncated before its length byte")
    if option[0] != TCPOPT_MPTCP:
        raise MalformedOption(f"option kind {option[0]} is not {TCPOPT_MPTCP} (MPTCP)")
    if option[1] != given:
        raise MalformedOption(f"option length byte {option[1]} differs from {given} bytes given")
    if given < TCPOLEN_MPTCP_MIN:
        raise MalformedOption(f"MPTCP option length {given} is shorter than {TCPOLEN_MPTCP_MIN}: no subtype")


def decode(option: bytes) -> Record:
    """Decode ONE whole MPTCP option: kind 30, its length byte (== len(option)), then the rest.

    Subtypes not interpreted here (DSS, MP_PRIO, MP_FAIL, unknown) come back as OtherSuboption.
    Raises MalformedOption, and only that, for bytes that break the option's rules.
    """
    if option.__class__ is not bytes:
        # Perf-buffer readers may hand a bytearray or memoryview; records must hold plain bytes.
        option = bytes(memoryview(option))
    return decode_bytes(option)


# Options repeat across segments and connections: an ADD_ADDR echo carries no HMAC, the MP_CAPABLE
# SYN no key, so their bytes recur and decode to the same immutable option. The bound keeps options
# that never recur (keys, HMACs, nonces) from growing the cache; an option that does not decode
# raises, and is never cached.
_CACHED_OPTIONS = 4096


@lru_cache(maxsize=_CACHED_OPTIONS)
def decode_bytes(option: bytes) -> Record:
    """decode() of an option that is `bytes` already, as OptionEvent.option always is: the record
    path's, one Python call less an event (~300 instructions)."""
    _check_framing(option)
    subtype = option[2] >> 4
    decoder = _DECODERS.get(subtype)
    if decoder is None:
        return _new(OtherSuboption, (subtype, option))
    return decoder(option)


_TOKEN_HASHES = {0: hashlib.sha1, 1: hashlib.sha256}


def token(key: int, version: int) -> int:
    """The connection token of `key`: the top 32 bits of SHA-1 (v0) or SHA-256 (v1) of the key.

    Same as the kernel's mptcp_crypto_key_sha: the key is hashed as 8 big-endian bytes.
    """
    hash_ = _TOKEN_HASHES.get(version)
    if hash_ is None:
        raise ValueError(f"MPTCP version {version} is neither 0 nor 1")
    return int.from_bytes(hash_(key.to_bytes(8, "big")).digest()[:4], "big")
