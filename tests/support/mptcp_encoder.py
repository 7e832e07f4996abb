# SPDX-License-Identifier: MIT
"""Encode MPTCP option records back to wire bytes, for round-trip tests of the decoder.

Kept with the tests on purpose: the collector only ever reads options. Reserved bits are
written as zero, as RFC 8684 asks of a sender.
"""

import struct

from collector.pipeline.decode import (
    MPTCP_ADDR_ECHO,
    MPTCPOPT_BACKUP,
    TCPOPT_MPTCP,
    AddAddr,
    FastClose,
    MpCapable,
    MpJoin,
    OtherSuboption,
    RemoveAddr,
    TcpRst,
)

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")


def _option(subtype: int, nibble: int, body: bytes) -> bytes:
    """Kind, length, subtype/nibble byte, then `body` from byte 3 on."""
    return bytes([TCPOPT_MPTCP, 3 + len(body), subtype << 4 | nibble]) + body


def _add_addr(rec: AddAddr) -> bytes:
    if rec.version == 0:
        nibble = rec.address.version  # IPVer
    else:
        nibble = MPTCP_ADDR_ECHO if rec.echo else 0
    port = b"" if rec.port is None else _U16.pack(rec.port)
    body = bytes([rec.address_id]) + rec.address.packed + port + (rec.hmac or b"")
    return _option(rec.subtype, nibble, body)


def _mp_capable(rec: MpCapable) -> bytes:
    # The fields are cumulative: each form is the previous one plus one more field.
    body = bytes([rec.flags])
    for value, field in (
        (rec.sender_key, _U64),
        (rec.receiver_key, _U64),
        (rec.data_len, _U16),
        (rec.checksum, _U16),
    ):
        if value is None:
            break
        body += field.pack(value)
    return _option(rec.subtype, rec.version, body)


def _mp_join(rec: MpJoin) -> bytes:
    if rec.form == "ack":
        return _option(rec.subtype, 0, b"\0" + rec.hmac)
    nibble = MPTCPOPT_BACKUP if rec.backup else 0
    middle = _U32.pack(rec.token) if rec.form == "syn" else rec.hmac
    return _option(rec.subtype, nibble, bytes([rec.address_id]) + middle + _U32.pack(rec.nonce))


def _remove_addr(rec: RemoveAddr) -> bytes:
    return _option(rec.subtype, 0, bytes(rec.address_ids))


def _fast_close(rec: FastClose) -> bytes:
    return _option(rec.subtype, 0, b"\0" + _U64.pack(rec.receiver_key))


def _tcp_rst(rec: TcpRst) -> bytes:
    return _option(rec.subtype, rec.flags, bytes([rec.reason]))


def _other(rec: OtherSuboption) -> bytes:
    return rec.raw


_ENCODERS = {
    AddAddr: _add_addr,
    MpCapable: _mp_capable,
    MpJoin: _mp_join,
    RemoveAddr: _remove_addr,
    FastClose: _fast_close,
    TcpRst: _tcp_rst,
    OtherSuboption: _other,
}


def encode(rec) -> bytes:
    """The wire bytes of one whole MPTCP option for `rec`."""
    return _ENCODERS[type(rec)](rec)
