"""collector.anonymize: the Crypto-PAn properties of the address mapping, the key file's creation and
refusals, anonymized records, and reports over anonymized logs equal to those over the originals."""

from __future__ import annotations

import hmac
import ipaddress
import os
import random
import stat

import pytest
from hypothesis import assume, given, strategies as st

from collector.address_classes import BLOCKS
from collector.anonymize import ADDRESS_FIELDS, KEY_BYTES, Anonymizer
from collector.classify import classify
from collector.errors import CollectorError
from collector.logfile import LogWriter
from collector.report import report

KEY = bytes(range(KEY_BYTES))
OTHER_KEY = bytes(range(1, KEY_BYTES + 1))
WIDTH = {4: 32, 6: 128}
T0 = 1700000000.0

keys = st.binary(min_size=KEY_BYTES, max_size=KEY_BYTES)
versions = st.sampled_from([4, 6])


def anonymizer(key: bytes = KEY) -> Anonymizer:
    return Anonymizer(key)


def address(version: int, value: int) -> str:
    return str(ipaddress.IPv6Address(value) if version == 6 else ipaddress.IPv4Address(value))


def value_of(text: str) -> int:
    return int(ipaddress.ip_address(text))


def common_prefix(a: str, b: str) -> int:
    """How many leading bits two addresses of one family share."""
    width = WIDTH[ipaddress.ip_address(a).version]
    return width - (value_of(a) ^ value_of(b)).bit_length()


# --- the mapping ---------------------------------------------------------------------------------


@st.composite
def pairs_sharing_exactly(draw):
    """(version, k, a, b): two addresses whose leading k bits are equal and bit k differs."""
    version = draw(versions)
    width = WIDTH[version]
    k = draw(st.integers(0, width - 1))
    a = draw(st.integers(0, 2**width - 1))
    low = draw(st.integers(0, 2 ** (width - k - 1) - 1))
    # a's first k bits, the opposite of a's bit k, then any bits.
    b = (a >> (width - k) << (width - k)) | ((~a >> (width - k - 1) & 1) << (width - k - 1)) | low
    return version, k, address(version, a), address(version, b)


@given(pairs_sharing_exactly(), keys)
def test_addresses_sharing_exactly_k_leading_bits_map_to_addresses_sharing_exactly_k(pair, key):
    version, k, a, b = pair
    assert common_prefix(a, b) == k
    mapped = Anonymizer(key)
    assert common_prefix(mapped.anonymize_address(a), mapped.anonymize_address(b)) == k


@given(st.ip_addresses(), keys)
def test_the_family_is_kept_and_the_mapping_is_deterministic_for_a_key(ip, key):
    got = Anonymizer(key).anonymize_address(str(ip))
    assert ipaddress.ip_address(got).version == ip.version
    assert Anonymizer(key).anonymize_address(str(ip)) == got, "want one mapping per key, in every instance"


@given(st.ip_addresses(), keys, keys)
def test_different_keys_give_different_mappings(ip, key, other):
    assume(key != other)
    # Equal by chance with probability 2**-32 at most (IPv4): never in a test run.
    assert Anonymizer(key).anonymize_address(str(ip)) != Anonymizer(other).anonymize_address(str(ip))


@pytest.mark.slow
@pytest.mark.parametrize("version, count", [(4, 100_000), (6, 20_000)])
def test_no_two_of_many_random_addresses_collide(version, count):
    rng = random.Random(version)
    values = set()
    while len(values) < count:
        values.add(rng.getrandbits(WIDTH[version]))
    mapped = anonymizer()
    assert len({mapped.anonymize_address(address(version, value)) for value in values}) == count


def test_a_whole_subnet_maps_onto_a_whole_subnet():
    # Bijective on the /20, and prefix-preserving: all outputs share one /20.
    mapped = anonymizer()
    outputs = {value_of(mapped.anonymize_address(address(4, 0x0A010000 + low))) for low in range(2**12)}
    assert len(outputs) == 2**12
    assert len({value >> 12 for value in outputs}) == 1


def reference(key: bytes, text: str) -> str:
    """The module docstring's definition, one bit at a time and as plainly as it reads."""
    ip = ipaddress.ip_address(text)
    width = WIDTH[ip.version]
    bits = [(int(ip) >> (width - 1 - i)) & 1 for i in range(width)]
    out = 0
    for i, bit in enumerate(bits):
        j, r = divmod(i, 8)
        digest = hmac.new(key, bytes([ip.version, 8 * j]) + ip.packed[:j], "sha256").digest()
        p = int("".join(map(str, bits[8 * j:i])) or "0", 2)
        n = 2**r - 1 + p
        out = out << 1 | bit ^ (digest[n // 8] >> (7 - n % 8) & 1)
    return address(ip.version, out)


@given(st.ip_addresses(), keys)
def test_the_mapping_is_the_documented_construction(ip, key):
    assert Anonymizer(key).anonymize_address(str(ip)) == reference(key, str(ip))


def test_the_mapping_does_not_change_between_versions():
    # Logs anonymized before and after a change would disagree: these outputs are fixed.
    mapped = anonymizer()
    assert {a: mapped.anonymize_address(a) for a in ("192.0.2.1", "2001:db8::1")} == {
        "192.0.2.1": "87.36.156.237",
        "2001:db8::1": "6f3e:27b6:187a:d03b:f9ab:61dc:c030:ca8e",
    }


# --- the key file --------------------------------------------------------------------------------


@pytest.fixture
def umask():
    """Sets the umask for the test and puts the old one back."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask", [0o000, 0o077, 0o277])
def test_a_missing_key_file_is_made_with_mode_0600_and_kept(tmp_path, umask, mask):
    # 0o277 would leave os.open's mode 0400: the explicit fchmod makes it 0600 whatever the umask.
    umask(mask)
    path = tmp_path / "key"
    first = Anonymizer.from_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_size == KEY_BYTES
    again = Anonymizer.from_key_file(path)
    assert again.anonymize_address("192.0.2.1") == first.anonymize_address("192.0.2.1"), \
        "want the second start to read the key the first one made"


def test_two_new_key_files_hold_different_keys(tmp_path):
    assert (Anonymizer.from_key_file(tmp_path / "a").anonymize_address("192.0.2.1")
            != Anonymizer.from_key_file(tmp_path / "b").anonymize_address("192.0.2.1"))


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o601, 0o710, 0o644])
def test_a_key_file_group_or_others_may_access_is_refused(tmp_path, mode):
    path = tmp_path / "key"
    path.write_bytes(KEY)
    path.chmod(mode)
    with pytest.raises(CollectorError) as error:
        Anonymizer.from_key_file(path)
    message = str(error.value)
    assert "\n" not in message
    assert f"{mode:04o}" in message and f"chmod 600 {path}" in message, message


@pytest.mark.parametrize("size", [0, KEY_BYTES - 1, KEY_BYTES + 1])
def test_a_key_file_of_the_wrong_size_is_refused(tmp_path, size):
    path = tmp_path / "key"
    path.write_bytes(b"k" * size)
    path.chmod(0o600)
    with pytest.raises(CollectorError, match=f"is {size} bytes, not {KEY_BYTES}"):
        Anonymizer.from_key_file(path)


def test_a_key_file_in_a_missing_directory_is_one_clear_error(tmp_path):
    with pytest.raises(CollectorError, match="cannot create the key file .*No such file"):
        Anonymizer.from_key_file(tmp_path / "absent" / "key")


# --- records -------------------------------------------------------------------------------------


def add_addr(time: float, token: int | None, announced: str, *, announcer: str | None = "client",
             src: str = "198.51.100.2", dst: str = "198.51.100.1", echo: bool = False) -> dict:
    # Class fields from the real classifier, as the Recorder fills them.
    c = classify(announced)
    return {"kind": "add_addr", "time": time, "src": src, "sport": 40000, "dst": dst, "dport": 443,
            "ifindex": 2, "connection": token, "announcer": announcer,
            "subflow": None if token is None else "initial", "version": 1, "echo": echo, "address_id": 1,
            "address": c.address, "port": None, "hmac": None if echo else b"\x01" * 8,
            "family": c.family, "class": c.address_class, "global": c.is_global,
            "embedded_ipv4": None if c.embedded_ipv4 is None else c.embedded_ipv4.as_json()}


def connection(time: float, token: int, client: str, server: str) -> dict:
    return {"kind": "connection", "time": time, "connection": token, "version": 1, "client": client,
            "client_port": 40000, "server": server, "server_port": 443, "client_key": 2**63 + token,
            "server_key": 2**62 + token}


def attempt(time: float, client: str, server: str) -> dict:
    return {"kind": "attempt", "time": time, "version": 1, "client": client, "client_port": 40001,
            "server": server, "server_port": 443, "reason": "closed"}


def test_an_anonymized_add_addr_keeps_its_classes_and_prefix_relations():
    record = add_addr(T0, 7, "2002:c000:201::1", src="10.0.0.1", dst="10.0.0.2")
    got = anonymizer().anonymize_record(record)
    changed = {"src", "dst", "address", "embedded_ipv4"}
    assert {k: v for k, v in got.items() if k not in changed} == {k: v for k, v in record.items() if k not in changed}
    for field in ("src", "dst", "address"):
        assert got[field] != record[field]
    assert got["embedded_ipv4"]["address"] != "192.0.2.1"
    assert {k: v for k, v in got["embedded_ipv4"].items() if k != "address"} == {"class": "documentation",
                                                                               "global": False}
    assert (got["family"], got["class"], got["global"]) == ("ipv6", "6to4", False)
    assert common_prefix(got["src"], got["dst"]) == common_prefix("10.0.0.1", "10.0.0.2") == 30
    # The embedded address maps as that IPv4 address does anywhere else.
    assert got["embedded_ipv4"]["address"] == anonymizer().anonymize_address("192.0.2.1")
    assert record["embedded_ipv4"]["address"] == "192.0.2.1", "want the caller's record untouched"


@pytest.mark.parametrize("record", [
    connection(T0, 1, "203.0.113.5", "198.51.100.1"),
    attempt(T0, "2001:db8::5", "2001:db8::1"),
], ids=["connection", "attempt"])
def test_client_and_server_are_anonymized_and_nothing_else_changes(record):
    got = anonymizer().anonymize_record(record)
    assert got["client"] == anonymizer().anonymize_address(record["client"])
    assert got["server"] == anonymizer().anonymize_address(record["server"])
    assert {k: v for k, v in got.items() if k not in ("client", "server")} == \
        {k: v for k, v in record.items() if k not in ("client", "server")}


def test_every_address_field_is_listed():
    # The record kinds of docs/records.md that carry addresses, and where.
    assert set(ADDRESS_FIELDS) == {"src", "dst", "client", "server", "address"}


def test_a_malformed_add_addr_keeps_no_address_bytes():
    option = bytes([30, 11, 0x30, 5]) + ipaddress.ip_address("203.0.113.9").packed + b"\x01\x02\x03"
    record = {"kind": "malformed", "time": T0, "src": "10.0.0.1", "sport": 1, "dst": "10.0.0.2", "dport": 2,
              "ifindex": 2, "connection": None, "subtype": 3, "reason": "bad length", "option": option}
    got = anonymizer().anonymize_record(record)
    assert got["option"] == option[:4] + bytes(len(option) - 4)
    other = dict(record, subtype=1, option=bytes([30, 12, 0x10, 1]) + b"\xaa" * 8)
    assert anonymizer().anonymize_record(other)["option"] == other["option"], "want only ADD_ADDR bytes cut"


def test_records_without_addresses_pass_unchanged():
    for record in ({"kind": "lost", "time": T0, "count": 3},
                   {"kind": "connection_end", "time": T0, "connection": 1, "reason": "idle"}):
        assert anonymizer().anonymize_record(record) == record


def many_records() -> list[dict]:
    """Connections announcing addresses of every class of the table, repeats and echoes included."""
    rng = random.Random(1)
    announced = [str(block.network.network_address + rng.randrange(block.network.num_addresses))
                 for block in BLOCKS] * 2
    # 6to4 carrying documentation and private IPv4, and IPv4-mapped carrying a private one.
    announced += ["2002:c000:201::1", "2002:a00:1::1", "::ffff:192.168.1.1"] * 4
    records = []
    for token in range(1, 60):
        client = f"198.18.{token}.{rng.randrange(256)}"
        records.append(connection(T0 + token, token, client, "198.51.100.1"))
        for n in range(rng.randrange(5)):
            records.append(add_addr(T0 + 100 + token + n / 10, token, rng.choice(announced), src=client,
                                    echo=n == 3, announcer=rng.choice(["client", "client", "server"])))
    records += [attempt(T0 + 200, "192.0.2.7", "198.51.100.1"),
                add_addr(T0 + 201, None, "10.9.9.9", announcer=None),
                {"kind": "connection_end", "time": T0 + 300, "connection": 1, "reason": "closed"}]
    return records


def test_a_report_over_anonymized_logs_equals_the_report_over_the_originals(tmp_path):
    records = many_records()
    mapped = anonymizer()
    for name, log in (("original", records), ("anonymized", [mapped.anonymize_record(r) for r in records])):
        with LogWriter(tmp_path / name, {"host": "alpha", "interfaces": ["eth0"], "source": "live"}) as writer:
            for record in log:
                writer.write(record)
    original = report(tmp_path / "original")
    assert original["announcements"] > 50 and len(original["ipv6"]["embedded"]) > 1, "want a varied log"
    assert report(tmp_path / "anonymized") == original
