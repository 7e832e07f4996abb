# SPDX-License-Identifier: MIT
"""anonymize: addresses/s of `--anonymize-key` (standard Crypto-PAn, AES-128 from `cryptography`, an
address's blocks encrypted in one call) against yacryptopan, the Python implementation it must equal,
and against the same construction on pycryptodome's AES, the other maintained AES that was measured
when choosing. Distinct random addresses, so the mapping's cache never answers."""

from __future__ import annotations

import ipaddress
import random
import time

from Cryptodome.Cipher import AES
from yacryptopan import CryptoPAn

from collector.addresses.anonymize import KEY_BYTES, Anonymizer, CryptoPan

from .measure import Result, Row, ratio, rounds, sample

SPEEDUP_LIMIT = 10  # times yacryptopan's rate, which takes about 0.5 ms per IPv4 address here
FAMILIES = ((4, ipaddress.IPv4Address, 32), (6, ipaddress.IPv6Address, 128))


def _pycryptodome(key: bytes) -> CryptoPan:
    """Our construction with pycryptodome's AES in place of cryptography's."""
    mapping = CryptoPan(key)
    mapping._encrypt = AES.new(key[:16], AES.MODE_ECB).encrypt
    return mapping


def _rate(anonymize, addresses: list) -> float:
    began = time.perf_counter()
    for address in addresses:
        anonymize(address)
    return len(addresses) / (time.perf_counter() - began)


def run(quick: bool) -> Result:
    count, ours_n, theirs_n = (1, 5_000, 300) if quick else (3, 100_000, 5_000)
    rng = random.Random(16)
    key = rng.randbytes(KEY_BYTES)
    result = Result("anonymize")
    for version, kind, bits in FAMILIES:
        values = [rng.getrandbits(bits) for _ in range(ours_n)]
        texts = [str(kind(value)) for value in values]
        reference, other = CryptoPAn(key), _pycryptodome(key)
        assert all(
            Anonymizer(key).anonymize_address(t) == str(ipaddress.ip_address(reference.anonymize(t)))
            for t in texts[:200]
        ), "the benchmark's mapping is not Crypto-PAn"
        mapping = CryptoPan(key)
        # Defaults bind this family's values to each measure, rather than relying on rounds() calling
        # them before the loop moves on to the next family.
        ours, theirs, mapped, aes = rounds(
            count,
            lambda texts=texts: _rate(Anonymizer(key).anonymize_address, texts),  # a new instance: an empty cache
            lambda reference=reference, texts=texts: _rate(reference.anonymize, texts[:theirs_n]),
            lambda mapping=mapping, bits=bits, values=values: _rate(lambda address: mapping.map(address, bits), values),
            lambda other=other, bits=bits, values=values: _rate(lambda address: other.map(address, bits), values),
        )
        result.rows.append(
            Row(
                f"IPv{version} addresses/s",
                sample(ours),
                sample(theirs),
                "yacryptopan",
                ratio(ours, theirs),
                SPEEDUP_LIMIT,
                better="higher",
            )
        )
        result.rows.append(
            Row(
                f"IPv{version} mapping alone (int to int), addresses/s",
                sample(mapped),
                sample(aes),
                "pycryptodome AES",
                ratio(mapped, aes),
            )
        )
    result.notes.append(
        f"{'--quick: ' if quick else ''}{ours_n:,} distinct random addresses per family for ours ({theirs_n:,} "
        f"for yacryptopan, 0.5–2 ms each), {count} round(s); 'addresses/s' includes parsing and printing the "
        "address, the mapping alone works on integers."
    )
    return result
