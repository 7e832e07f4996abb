# SPDX-License-Identifier: MIT
"""Tests of collector.pipeline.records: the records each kind of event makes, as docs/records.md has them."""

from ipaddress import ip_address

import msgpack
import pytest

from collector.pipeline.connections import ConnectionTracker
from collector.pipeline.decode import AddAddr, FastClose, MpJoin, RemoveAddr, TcpRst, token
from collector.pipeline.records import Recorder
from tests.support.option_events import (
    ACK,
    CLIENT,
    CLIENT_KEY,
    DSS,
    FIN,
    INITIAL,
    JOIN,
    OTHER,
    RST,
    SERVER,
    SERVER_KEY,
    SYN,
    SYN_ACK,
    WALL,
    Flow,
    event,
    fin,
    handshake,
    join_syn,
    mpc_syn,
)

TOKEN = token(SERVER_KEY, 1)
HMAC = bytes(range(1, 9))


def feed(recorder, events, wall=WALL):
    records = []
    for ev in events:
        records += recorder.handle(ev, wall)
    return records


def connected(*extra, version=1):
    """A Recorder that has seen INITIAL's handshake and a join on JOIN, and `extra`'s records."""
    recorder = Recorder()
    feed(recorder, handshake(INITIAL, version) + [join_syn(JOIN, token(SERVER_KEY, version), 1)])
    return recorder, feed(recorder, extra)


def add_addr(address, address_id=2, port=None, echo=False, version=1):
    hmac = None if echo or version == 0 else HMAC
    return AddAddr(version, address_id, ip_address(address), port, echo, hmac)


def only(records, kind):
    (record,) = [r for r in records if r["kind"] == kind]
    return record


# --- add_addr ---------------------------------------------------------------------------------


def test_add_addr_from_the_client_on_the_initial_subflow():
    _, records = connected(INITIAL.up(ACK, add_addr("10.1.2.3", port=8080), 2))
    assert records == [
        {
            "kind": "add_addr",
            "time": WALL,
            "src": CLIENT,
            "sport": 40000,
            "dst": SERVER,
            "dport": 443,
            "ifindex": 2,
            "connection": TOKEN,
            "announcer": "client",
            "subflow": "initial",
            "version": 1,
            "echo": False,
            "address_id": 2,
            "address": "10.1.2.3",
            "port": 8080,
            "hmac": HMAC,
            "family": "ipv4",
            "class": "private",
            "global": False,
            "embedded_ipv4": None,
        }
    ]


def test_add_addr_from_the_client_on_a_join_subflow():
    _, records = connected(JOIN.up(ACK, add_addr("10.1.2.3"), 2))
    record = only(records, "add_addr")
    assert (record["connection"], record["announcer"], record["subflow"]) == (
        TOKEN,
        "client",
        "join",
    )


def test_add_addr_from_the_server_is_classified_with_its_embedded_ipv4():
    _, records = connected(INITIAL.down(ACK, add_addr("2002:c000:201::1"), 2))
    record = only(records, "add_addr")
    assert (record["connection"], record["announcer"]) == (TOKEN, "server")
    assert (record["family"], record["class"], record["global"]) == ("ipv6", "6to4", False)
    assert record["embedded_ipv4"] == {
        "address": "192.0.2.1",
        "class": "documentation",
        "global": False,
    }


def test_v1_echo_is_kept_and_flagged():
    _, records = connected(INITIAL.up(ACK, add_addr("10.1.2.3", echo=True), 2))
    record = only(records, "add_addr")
    assert (record["echo"], record["hmac"], record["announcer"]) == (True, None, "client")


def test_v0_add_addr_on_a_v0_connection():
    _, records = connected(INITIAL.down(ACK, add_addr("203.0.113.5", version=0), 2), version=0)
    record = only(records, "add_addr")
    assert record["version"] == 0 and record["hmac"] is None
    assert record["connection"] == token(SERVER_KEY, 0)


def test_add_addr_on_an_unknown_subflow_is_kept_without_a_connection():
    records = feed(Recorder(), [OTHER.up(ACK, add_addr("10.1.2.3"), 0)])
    record = only(records, "add_addr")
    assert (record["connection"], record["announcer"], record["subflow"]) == (None, None, None)
    assert (record["address"], record["class"]) == ("10.1.2.3", "private")


# --- connection lifecycle ---------------------------------------------------------------------


def test_connection_record_once_with_both_keys():
    records = feed(Recorder(), handshake(INITIAL, 1, both_directions=True))
    assert records == [
        {
            "kind": "connection",
            "time": WALL,
            "connection": TOKEN,
            "version": 1,
            "client": CLIENT,
            "client_port": 40000,
            "server": SERVER,
            "server_port": 443,
            "client_key": CLIENT_KEY,
            "server_key": SERVER_KEY,
        }
    ]


def test_attempt_record_when_the_handshake_never_completes():
    recorder = Recorder()
    records = feed(recorder, [INITIAL.up(SYN, mpc_syn(1), 0)])
    assert records == []
    assert recorder.close(WALL + 9) == [
        {
            "kind": "attempt",
            "time": WALL + 9,
            "version": 1,
            "client": CLIENT,
            "client_port": 40000,
            "server": SERVER,
            "server_port": 443,
            "reason": "shutdown",
        }
    ]
    assert recorder.counters()["attempts"] == 1


def test_fin_on_every_subflow_ends_the_connection():
    recorder, records = connected(fin(INITIAL, 2), fin(JOIN, 3), OTHER.up(ACK, DSS, 4))
    assert records == [{"kind": "connection_end", "time": WALL, "connection": TOKEN, "reason": "closed"}]
    assert recorder.counters()["connections_tracked"] == 0


def test_expire_ends_idle_connections_in_a_quiet_spell():
    recorder, _ = connected()
    assert recorder.expire(WALL + 300) == []
    records = recorder.expire(WALL + 700)
    assert records == [{"kind": "connection_end", "time": WALL + 700, "connection": TOKEN, "reason": "idle"}]


def test_fastclose_and_tcp_rst_on_one_rst_segment_name_the_connection():
    recorder, records = connected(
        INITIAL.up(RST | ACK, FastClose(SERVER_KEY), 2),
        INITIAL.up(RST | ACK, TcpRst(0, 1), 2),
        OTHER.up(ACK, DSS, 3),
    )
    assert [(r["kind"], r["connection"], r.get("reason")) for r in records] == [
        ("fastclose", TOKEN, None),
        ("tcp_rst", TOKEN, 1),
        ("connection_end", TOKEN, "fastclose"),
    ]


# --- joins and removals -----------------------------------------------------------------------


def test_mp_join_syn_records_the_token_and_the_connection():
    recorder = Recorder()
    feed(recorder, handshake(INITIAL, 1))
    records = feed(recorder, [join_syn(JOIN, TOKEN, 1, address_id=3, backup=True)])
    assert records == [
        {
            "kind": "mp_join",
            "time": WALL,
            "src": JOIN.client,
            "sport": JOIN.client_port,
            "dst": SERVER,
            "dport": 443,
            "ifindex": 2,
            "connection": TOKEN,
            "token": TOKEN,
            "address_id": 3,
            "backup": True,
            "form": "syn",
        }
    ]
    # SYN/ACK and ACK forms change nothing worth a record.
    assert (
        feed(
            recorder,
            [
                JOIN.down(SYN_ACK, MpJoin("synack", 0, False, None, 5, HMAC), 1.1),
                JOIN.up(ACK, MpJoin("ack", None, None, None, None, bytes(20)), 1.2),
            ],
        )
        == []
    )


def test_bogus_join_is_recorded_without_a_connection_and_counted():
    recorder = Recorder()
    records = feed(recorder, [join_syn(JOIN, 0xDEADBEEF, 0)])
    record = only(records, "mp_join")
    assert (record["connection"], record["token"]) == (None, 0xDEADBEEF)
    assert recorder.counters()["bogus_joins"] == 1
    # Its subflow is known, so who announces on it is too.
    record = only(feed(recorder, [JOIN.down(ACK, add_addr("10.9.9.9"), 1)]), "add_addr")
    assert (record["connection"], record["announcer"], record["subflow"]) == (
        None,
        "server",
        "join",
    )


def test_remove_addr_names_connection_announcer_and_ids():
    _, records = connected(INITIAL.down(ACK, RemoveAddr((2, 5)), 2))
    record = only(records, "remove_addr")
    assert (record["connection"], record["announcer"], record["address_ids"]) == (
        TOKEN,
        "server",
        [2, 5],
    )


# --- malformed options ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option, subtype, reason",
    [
        (bytes([30, 9, 0x30, 1, 10, 1, 2, 3, 0]), 3, "ADD_ADDR length 9 is not one of"),
        (bytes([30, 12, 0x10, 1, 0, 0, 0, 0]), 1, "option length byte 12 differs from 8 bytes"),
        (bytes([30]), None, "truncated before its length byte"),
    ],
    ids=["add-addr-length", "length-byte", "truncated"],
)
def test_malformed_option_is_recorded_with_its_reason(option, subtype, reason):
    recorder, records = connected(INITIAL.up(ACK, option, 2))
    record = only(records, "malformed")
    assert reason in record["reason"]
    assert (record["subtype"], record["option"], record["connection"]) == (subtype, option, TOKEN)
    assert recorder.counters()["malformed"] == 1


def test_malformed_option_on_a_fin_still_ends_the_subflow():
    recorder, _ = connected(INITIAL.up(FIN | ACK, bytes([30, 3, 0x70]), 2))
    feed(recorder, [fin(JOIN, 3)])
    assert only(recorder.close(WALL), "connection_end")["reason"] == "closed"


# --- the keys of segment records ------------------------------------------------------------


SEGMENT_KEYS = ["kind", "time", "src", "sport", "dst", "dport", "ifindex", "connection"]


def test_every_segment_record_starts_with_the_segment_keys_in_order():
    # docs/records.md's "Segment records": the common fields first, in one order for every kind,
    # then the kind's own; what a reader sees (tail --json, a diff of two logs) depends on it.
    _, records = connected(
        INITIAL.up(ACK, add_addr("10.1.2.3", port=8080), 2),
        INITIAL.down(ACK, RemoveAddr((2,)), 2),
        INITIAL.up(ACK, bytes([30, 9, 0x30, 1, 10, 1, 2, 3, 0]), 3),
        INITIAL.up(RST | ACK, FastClose(SERVER_KEY), 4),
        INITIAL.up(RST | ACK, TcpRst(0, 1), 4),
    )
    records += feed(Recorder(), [join_syn(JOIN, TOKEN, 1)])
    segments = [r for r in records if r["kind"] not in ("connection", "connection_end")]
    assert [r["kind"] for r in segments] == [
        "add_addr",
        "remove_addr",
        "malformed",
        "fastclose",
        "tcp_rst",
        "mp_join",
    ]
    assert list(only(records, "fastclose")) == SEGMENT_KEYS
    for record in segments:
        assert list(record)[: len(SEGMENT_KEYS)] == SEGMENT_KEYS, record["kind"]
    assert list(only(records, "add_addr"))[len(SEGMENT_KEYS) :] == [
        "announcer",
        "subflow",
        "version",
        "echo",
        "address_id",
        "address",
        "port",
        "hmac",
        "family",
        "class",
        "global",
        "embedded_ipv4",
    ]


# --- the whole stream -------------------------------------------------------------------------


def test_records_survive_msgpack():
    _, records = connected(
        INITIAL.down(ACK, add_addr("2002:c000:201::1", port=443), 2),
        INITIAL.up(ACK, bytes([30, 9, 0x30, 1, 10, 1, 2, 3, 0]), 3),
    )
    records += feed(Recorder(), handshake(OTHER, 0))
    assert len(records) == 3
    for record in records:
        assert msgpack.unpackb(msgpack.packb(record), raw=False) == record


def test_counters_name_all_of_the_stats():
    recorder = Recorder(ConnectionTracker(idle_timeout=60, max_entries=1000))
    assert set(recorder.counters()) == {
        "connections_tracked",
        "subflows_tracked",
        "evictions",
        "bogus_joins",
        "malformed",
        "attempts",
        "connections",
    }


def test_events_of_ipv6_subflows():
    recorder = Recorder()
    records = feed(recorder, handshake(Flow("2001:db8::1", 40000, "2001:db8::2", 443), 1))
    assert only(records, "connection")["client"] == "2001:db8::1"
    ev = event("2001:db8::2", 443, "2001:db8::1", 40000, ACK, add_addr("2001:db8::9"), 1)
    record = only(feed(recorder, [ev]), "add_addr")
    assert (record["announcer"], record["class"]) == ("server", "documentation")
