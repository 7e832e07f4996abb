# SPDX-License-Identifier: MIT
"""Keyed, prefix-preserving anonymization of the addresses in log records: standard Crypto-PAn.

Crypto-PAn (Xu, Fan, Ammar, Moon, "Prefix-preserving IP address anonymization", 2002) as its
reference implementation computes it for IPv4, and over 128 bits for IPv6 as yacryptopan and CAIDA's
cryptopANT do, so that one key maps an address here as it does in those tools' output (flow records,
sanitized captures) and the logs can be joined with them.

The 32-byte key is an AES-128 key (its first 16 bytes) and a pad, the AES encryption of its last 16
bytes under that key. For an address of n bits (32 or 128), output bit i (most significant first) is
input bit i XOR the first bit of AES(the first i input bits followed by bits i to 127 of the pad).
Two addresses that share exactly k leading bits therefore map to two that share exactly k, and the
mapping is a bijection of each family's address space. The n blocks of one address are encrypted in
one ECB call.

SCHEME names this mapping in the log header (`anonymization`). Logs anonymized before it, with a
private HMAC-SHA256 variant, have no such header field: see the README, "Anonymized logs".
"""

from __future__ import annotations

import ipaddress
import os
import stat
from functools import lru_cache

from collector.errors import CollectorError

SCHEME = "crypto-pan"
KEY_BYTES = 32
_AES_KEY_BYTES = 16  # the rest of the key is the pad's plaintext
KEY_FILE_MODE = 0o600

# The fields of a record that hold an address (docs/records.md), where the record has them.
ADDRESS_FIELDS = ("src", "dst", "client", "server", "address")
# The map whose "address" is the IPv4 address an IPv6 one carries (6to4, Teredo, NAT64, ...). It is
# anonymized as an IPv4 address, so it maps as the same address announced on its own does.
EMBEDDED_FIELD = "embedded_ipv4"

# A malformed ADD_ADDR may still carry its address after kind, length, subtype and address id.
_ADD_ADDR_SUBTYPE = 3
_ADD_ADDR_ADDRESS_OFFSET = 4

# Peers announce the same few addresses again and again; the bound keeps a flood of distinct ones
# from growing the cache without limit.
_CACHE_SIZE = 65536

_BLOCK_BITS = 128
_ALL_ONES = (1 << _BLOCK_BITS) - 1
# bytes.translate table: a byte to the ASCII digit of its first bit, so int(..., 2) gathers them.
_FIRST_BIT = b"0" * 128 + b"1" * 128


class CryptoPan:
    """The Crypto-PAn mapping of one key, on address values (int) of 32 or 128 bits."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"the key must be {KEY_BYTES} bytes, not {len(key)}")
        # Imported here: only an anonymizing run pays for loading cryptography (~20 ms of every start).
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        # ECB keeps no state between blocks, so one encryptor serves every call.
        self._encrypt = Cipher(algorithms.AES(key[:_AES_KEY_BYTES]), modes.ECB()).encryptor().update
        self._pad = int.from_bytes(self._encrypt(key[_AES_KEY_BYTES:]))
        self._layouts = {bits: self._layout(bits) for bits in (32, 128)}

    def _layout(self, bits: int) -> tuple[int, int, int]:
        """The `bits` blocks of one address as big ints: (ones, pads, prefixes). Block i is the pad
        with its first i bits replaced by the address's, that is pad ^ ((address ^ pad) & prefix_i):
        built for all blocks at once, `address * ones` repeating the address in every block."""
        ones = pads = prefixes = 0
        for i in range(bits):
            ones = ones << _BLOCK_BITS | 1
            pads = pads << _BLOCK_BITS | self._pad
            prefixes = prefixes << _BLOCK_BITS | (_ALL_ONES ^ _ALL_ONES >> i)
        return ones, pads, prefixes

    def map(self, value: int, bits: int) -> int:
        """The anonymized form of the `bits`-bit address `value`."""
        ones, pads, prefixes = self._layouts[bits]
        differs = (value << (_BLOCK_BITS - bits)) ^ self._pad
        blocks = self._encrypt((pads ^ (differs * ones & prefixes)).to_bytes(bits * 16))
        return value ^ int(blocks[::16].translate(_FIRST_BIT), 2)


class Anonymizer:
    """Maps addresses, and the address fields of log records, under one 32-byte key.

    What stays as it was in an anonymized record:

    - `family`, `class`, `global` and `embedded_ipv4`'s `class` and `global`: the collector classifies
      the real address before anonymizing, so reports over anonymized logs equal those over the
      originals. Classifying an anonymized address gives an unrelated class.
    - ports, MPTCP keys (`client_key`, `server_key`), tokens and `hmac` bytes: random per connection,
      they can tell a connection apart but do not name a host.
    - the `header`'s `host` and `interfaces`, which name the collector's own machine.

    A `malformed` ADD_ADDR's raw `option` cannot be decoded, so its address cannot be mapped: every
    byte after the address id is zeroed instead, the length kept.
    """

    scheme = SCHEME

    def __init__(self, key: bytes) -> None:
        self._mapping = CryptoPan(key)
        # Per instance, so that the cache holds no other key's addresses and dies with the key.
        self._cached = lru_cache(maxsize=_CACHE_SIZE)(self._anonymize)

    @classmethod
    def from_key_file(cls, path: str | os.PathLike) -> Anonymizer:
        """The key in `path`, made of os.urandom bytes (mode 0600) if there is no file there yet.

        A key file that group or others may access, or that does not hold exactly 32 bytes, is
        refused with a CollectorError.
        """
        path = os.fspath(path)
        try:
            return cls(_create_key(path))
        except FileExistsError:
            return cls(_read_key(path))
        except OSError as exc:
            raise CollectorError(f"cannot create the key file {path}: {exc.strerror}") from None

    def anonymize_address(self, address: str) -> str:
        """The anonymized form of `address` (a str of an IPv4 or IPv6 address), of the same family."""
        return self._cached(address)

    def _anonymize(self, address: str) -> str:
        parsed = ipaddress.ip_address(address)
        return str(type(parsed)(self._mapping.map(int(parsed), parsed.max_prefixlen)))

    def anonymize_record(self, record: dict) -> dict:
        """A copy of `record` with the addresses of ADDRESS_FIELDS and EMBEDDED_FIELD anonymized."""
        out = dict(record)
        for field in ADDRESS_FIELDS:
            if out.get(field) is not None:
                out[field] = self.anonymize_address(out[field])
        embedded = out.get(EMBEDDED_FIELD)
        if embedded is not None:
            out[EMBEDDED_FIELD] = {**embedded, "address": self.anonymize_address(embedded["address"])}
        if out.get("kind") == "malformed" and out.get("subtype") == _ADD_ADDR_SUBTYPE:
            option = out["option"]
            kept = option[:_ADD_ADDR_ADDRESS_OFFSET]
            out["option"] = kept + bytes(len(option) - len(kept))
        return out


def _create_key(path: str) -> bytes:
    """A new key written to `path`; FileExistsError if there is a file already."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, KEY_FILE_MODE)
    try:
        with open(fd, "wb") as f:
            os.fchmod(fd, KEY_FILE_MODE)  # os.open's mode is filtered by the umask
            key = os.urandom(KEY_BYTES)
            f.write(key)
            f.flush()
            os.fsync(fd)
    except BaseException:
        # A short key file would be refused at every later start: the next one makes a new key.
        os.unlink(path)
        raise
    return key


def _read_key(path: str) -> bytes:
    try:
        # O_NONBLOCK: a FIFO there must not hang the start waiting for a writer.
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC), "rb") as f:
            # Checked on the open file, so they are the mode and size of the file read.
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise CollectorError(
                    f"key file {path} is not a regular file: give the key's file, or the path of a file to make"
                )
            mode = stat.S_IMODE(info.st_mode)
            if mode & 0o077:
                raise CollectorError(
                    f"key file {path} has mode {mode:04o}, which lets group or others access it: chmod 600 {path}"
                )
            if info.st_size != KEY_BYTES:
                raise CollectorError(
                    f"key file {path} is {info.st_size} bytes, not {KEY_BYTES}: restore the key, or "
                    f"remove the file to make a new one (addresses will then map differently)"
                )
            return f.read()
    except OSError as exc:
        raise CollectorError(f"cannot read the key file {path}: {exc.strerror}") from None
