# SPDX-License-Identifier: MIT
"""The decoder and the collector under hostile options: every MPTCP subtype at every option length
with garbage around it, absurd addresses and ports. `decode` may raise MalformedOption and nothing
else; `Recorder.handle` raises nothing, and an option that does not decode becomes a `malformed`
record with its reason, never a record of a guessed value."""

import itertools
from ipaddress import ip_address

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.addresses.classify import classify
from collector.kernel.event import OptionEvent
from collector.pipeline.decode import AddAddr, MalformedOption, OtherSuboption, decode
from collector.pipeline.records import Recorder
from tests.support.mptcp_encoder import encode

TCPOPT_MPTCP = 30
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
FLAGS = [SYN, SYN | ACK, ACK, FIN | ACK, RST]
# Kinds made from one segment's option (docs/records.md, "Segment records").
SEGMENT_KINDS = {"add_addr", "mp_join", "remove_addr", "fastclose", "tcp_rst", "malformed"}
MAX_OPTION = 40  # the TCP option space
T0 = 1_700_000_000.0


def option(subtype: int, nibble: int, length: int, filler: bytes) -> bytes:
    """Kind 30, length byte `length`, the subtype byte, then `filler` repeated: `length` bytes in
    all, so that lengths 0 to 2 cut the option before its subtype or length byte."""
    body = (filler * MAX_OPTION)[: max(0, length - 3)]
    return (bytes([TCPOPT_MPTCP, length, subtype << 4 | nibble]) + body)[:length]


FILLERS = [b"\x00", b"\xff", bytes(range(1, 256, 7))]  # zeros, all ones, a counting garbage


def every_option(subtype: int):
    """Every length 0..40 and flag nibble of `subtype`, with each filler."""
    for length, nibble, filler in itertools.product(range(MAX_OPTION + 1), range(16), FILLERS):
        yield option(subtype, nibble, length, filler)


def decoded(raw: bytes):
    """decode(raw): a record, or the MalformedOption it raised; any other exception fails the test."""
    try:
        return decode(raw)
    except MalformedOption as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - the point of the test
        pytest.fail(f"decode({raw.hex(' ')}) raised {exc!r}, not MalformedOption")


def check_decode(raw: bytes) -> None:
    """A MalformedOption says why; a record holds only what a real layout of its subtype says:
    written back by the encoder, it has the option's length and decodes to itself."""
    record = decoded(raw)
    if isinstance(record, MalformedOption):
        assert isinstance(record.reason, str) and record.reason, f"{raw.hex(' ')}: no reason"
        return
    where = f"decode({raw.hex(' ')}) = {record}"
    assert record.subtype == raw[2] >> 4, where
    if isinstance(record, OtherSuboption):
        assert record.raw == raw, where
        return
    written = encode(record)
    assert len(written) == len(raw), f"{where}, written back as {written.hex(' ')}"
    assert decode(written) == record, f"{where}, written back as {written.hex(' ')}"


@pytest.mark.parametrize("subtype", range(16))
def test_decode_gives_a_record_or_malformed(subtype):
    for raw in every_option(subtype):
        check_decode(raw)


def event(raw: bytes, flags: int, *, src="192.0.2.1", dst="198.51.100.7", sport=40000, dport=443) -> OptionEvent:
    return OptionEvent(0, 2, 0, ip_address(src).version, src, dst, sport, dport, 1, 2, flags, raw)


def handled(recorder: Recorder, ev: OptionEvent, time: float) -> list[dict]:
    """recorder.handle(ev, time), failing the test on any exception or unloggable record."""
    try:
        records = recorder.handle(ev, time)
    except Exception as exc:  # noqa: BLE001 - the point of the test
        pytest.fail(f"handle({ev}) raised {exc!r}")
    msgpack.packb(records, use_bin_type=True)  # as collector.logs.writer writes them
    return records


def check_handled(raw: bytes, records: list[dict]) -> None:
    """The segment records of an option: one `malformed` record with the decoder's reason when it
    does not decode, and then nothing else."""
    segment = [record for record in records if record["kind"] in SEGMENT_KINDS]
    result = decoded(raw)
    if not isinstance(result, MalformedOption):
        assert all(record["kind"] != "malformed" for record in segment), (raw.hex(" "), segment)
        return
    assert len(segment) == 1 and segment[0]["kind"] == "malformed", (raw.hex(" "), segment)
    (record,) = segment
    assert record["reason"] == result.reason, (raw.hex(" "), record)
    assert record["option"] == raw, (raw.hex(" "), record)
    assert record["subtype"] == (raw[2] >> 4 if len(raw) > 2 else None), (raw.hex(" "), record)


@pytest.mark.parametrize("subtype", range(16))
def test_recorder_takes_every_option(subtype):
    # One recorder through them all, on one 4-tuple: garbage handshakes and closes must not upset
    # the connection state either.
    recorder = Recorder()
    for i, raw in enumerate(every_option(subtype)):
        flags = FLAGS[i % len(FLAGS)]
        check_handled(raw, handled(recorder, event(raw, flags), T0 + i))


PORTS = st.sampled_from([0, 1, 65535]) | st.integers(0, 65535)
ADDRESSES = st.ip_addresses().map(str)


@given(
    raw=st.binary(max_size=MAX_OPTION + 2)
    | st.builds(
        lambda sub, body: bytes([TCPOPT_MPTCP, 3 + len(body), sub]) + body,
        st.integers(0, 255),
        st.binary(max_size=MAX_OPTION - 3),
    ),
    flags=st.integers(0, 255),
    src=ADDRESSES,
    dst=ADDRESSES,
    sport=PORTS,
    dport=PORTS,
)
def test_garbage_bytes(raw, flags, src, dst, sport, dport):
    """Any bytes at all, even a kind or length byte the kernel would never hand over."""
    check_decode(raw)
    records = handled(Recorder(), event(raw, flags, src=src, dst=dst, sport=sport, dport=dport), T0)
    check_handled(raw, records)


ODD_ADDRESSES = [
    "0.0.0.0",
    "255.255.255.255",
    "127.0.0.1",
    "224.0.0.1",
    "239.255.255.255",
    "169.254.0.1",
    "100.64.0.1",
    "192.0.0.8",
    "240.0.0.1",
    "::",
    "::1",
    "ff02::1",
    "ff0e::1",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fe80::1",
    "::ffff:0.0.0.0",
    "::ffff:255.255.255.255",
    "64:ff9b::ffff:ffff",
    "2002:ffff:ffff::",
    "2001::ffff:ffff:ffff:ffff",
    "2001:db8::",
    "100::1",
    "fc00::",
]
# Each layout that carries an address: v0, v1 with HMAC, v1 echo; with and without a port.
FORMS = [(version, echo, port) for version, echo in ((0, False), (1, False), (1, True)) for port in (None, 0, 65535)]


@pytest.mark.parametrize("address", ODD_ADDRESSES)
def test_odd_addresses_and_ports_are_classified(address):
    recorder = Recorder()
    for i, (version, echo, port) in enumerate(FORMS):
        hmac = bytes(8) if version == 1 and not echo else None
        raw = encode(AddAddr(version, 0, ip_address(address), port, echo, hmac))
        # The segment's own endpoints as odd as the address announced.
        ev = event(raw, ACK, src=address, dst=address, sport=port or 0, dport=65535)
        (record,) = handled(recorder, ev, T0 + i)
        want = classify(address)
        assert (record["kind"], record["address"], record["port"]) == ("add_addr", want.address, port)
        assert (record["family"], record["class"], record["global"]) == (
            want.family,
            want.address_class,
            want.is_global,
        )
        assert isinstance(record["global"], bool) and record["class"], record
