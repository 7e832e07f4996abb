"""Keyed, prefix-preserving anonymization of the addresses in log records.

The construction is Crypto-PAn (Xu, Fan, Ammar, Moon, "Prefix-preserving IP address anonymization",
2002) with HMAC-SHA256 as the pseudorandom function instead of AES, so the standard library is
enough. Bit i of the output (most significant first) is bit i of the input XOR a pseudorandom bit
that depends only on the key and the first i input bits. Two addresses that share exactly k leading
bits therefore map to two that share exactly k leading bits, and the mapping is a bijection of each
family's address space (each output bit can be undone knowing the bits before it).

The pseudorandom bit of the first i = 8*j + r bits (0 <= r < 8) is taken from one HMAC per byte:

    D_j = HMAC-SHA256(key, bytes([version, 8*j]) + address[:j])      version: 4 or 6

the bit numbered 2**r - 1 + p of D_j, counting from its most significant bit, where p is the value
of the r leading bits of byte j. The 255 prefixes of 0 to 7 bits that extend address[:j] each get a
bit of their own among D_j's 256, so every prefix still has an independent pseudorandom bit, as in
Crypto-PAn, for one HMAC per byte instead of one per bit. The version byte keeps the two families'
mappings apart; the bit count makes every HMAC input unambiguous.

This mapping is a format: changing it would make logs anonymized before and after disagree.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import stat
from functools import lru_cache

from collector.errors import CollectorError

KEY_BYTES = 32
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

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"the key must be {KEY_BYTES} bytes, not {len(key)}")
        self._key = key
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
        packed = parsed.packed
        out = bytearray()
        for j, byte in enumerate(packed):
            pad = int.from_bytes(
                hmac.digest(self._key, bytes((parsed.version, 8 * j)) + packed[:j], "sha256"))
            flips = 0
            for r in range(8):
                index = (1 << r) - 1 + (byte >> (8 - r))
                flips = (flips << 1) | ((pad >> (255 - index)) & 1)
            out.append(byte ^ flips)
        return str(ipaddress.ip_address(bytes(out)))

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
        with open(path, "rb") as f:
            # Checked on the open file, so they are the mode and size of the file read.
            info = os.fstat(f.fileno())
            mode = stat.S_IMODE(info.st_mode)
            if mode & 0o077:
                raise CollectorError(
                    f"key file {path} has mode {mode:04o}, which lets group or others access it: "
                    f"chmod 600 {path}")
            if info.st_size != KEY_BYTES:
                raise CollectorError(
                    f"key file {path} is {info.st_size} bytes, not {KEY_BYTES}: restore the key, or "
                    f"remove the file to make a new one (addresses will then map differently)")
            return f.read()
    except OSError as exc:
        raise CollectorError(f"cannot read the key file {path}: {exc.strerror}") from None
