# SPDX-License-Identifier: MIT
"""Tests of collector.pipeline.connections: handshakes, joins, departures and the bounds on the state.

The events are built as the kernel program would hand them over (tests/support/option_events.py).
"""

import time as clock

import pytest

from collector.kernel.event import OptionEvent
from collector.pipeline.connections import (
    DEFAULT_MAX_ENTRIES,
    AttemptEnd,
    ConnectionEnd,
    ConnectionStart,
    ConnectionTracker,
)
from collector.pipeline.decode import FastClose, MpJoin, TcpRst, decode, token
from tests.support.mptcp_encoder import encode
from tests.support.option_events import (
    ACK,
    CLIENT,
    CLIENT_KEY,
    DSS,
    FIN,
    INITIAL,
    JOIN,
    OTHER,
    PSH,
    RST,
    SERVER,
    SERVER_KEY,
    SYN,
    SYN_ACK,
    WALL,
    Flow,
    fin,
    handshake,
    join_syn,
    mpc_ack,
    mpc_syn,
    mpc_synack,
)


def time_of(ev):
    """The event time of `ev`, as a live collector derives it from the kernel's clock."""
    return WALL + ev.ktime_ns / 1e9


def feed(tracker, events):
    """Observe each event; returns every notice, in order, and the last event's subflow."""
    notices, subflow = [], None
    for ev in events:
        subflow, new = tracker.observe(ev, decode(ev.option), time_of(ev))
        notices += new
    return notices, subflow


def kinds(notices):
    return [(type(n), getattr(n, "reason", None)) for n in notices]


# --- handshakes -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("both_directions", [False, True], ids=["client-to-server", "both"])
def test_handshake_names_the_connection_by_the_server_token(version, both_directions):
    tracker = ConnectionTracker()
    notices, subflow = feed(tracker, handshake(INITIAL, version, both_directions=both_directions))
    assert kinds(notices) == [(ConnectionStart, None)]
    connection = notices[0].connection
    assert connection.token == token(SERVER_KEY, version)
    assert (connection.client, connection.client_port) == (CLIENT, 40000)
    assert (connection.server, connection.server_port) == (SERVER, 443)
    assert (connection.client_key, connection.server_key) == (CLIENT_KEY, SERVER_KEY)
    assert subflow.connection is connection and subflow.initial
    assert tracker.counters() == {
        "connections_tracked": 1,
        "subflows_tracked": 1,
        "evictions": 0,
        "bogus_joins": 0,
        "attempts": 0,
        "connections": 1,
    }


def test_connection_starts_once_though_first_data_repeats_the_keys():
    tracker = ConnectionTracker()
    events = handshake(INITIAL, 1) + [INITIAL.up(ACK | PSH, mpc_ack(1, data_len=100), 0.01)]
    notices, _ = feed(tracker, events)
    assert kinds(notices) == [(ConnectionStart, None)]


def test_v1_first_data_completes_the_handshake_when_the_third_ack_is_missed():
    tracker = ConnectionTracker()
    events = [INITIAL.up(SYN, mpc_syn(1), 0), INITIAL.up(ACK | PSH, mpc_ack(1, data_len=10), 0.01)]
    notices, _ = feed(tracker, events)
    assert kinds(notices) == [(ConnectionStart, None)]
    assert notices[0].connection.token == token(SERVER_KEY, 1)


def test_third_ack_without_the_syn_still_names_client_and_server():
    tracker = ConnectionTracker()
    notices, _ = feed(tracker, [INITIAL.up(ACK, mpc_ack(1), 0)])
    connection = notices[0].connection
    assert (connection.client, connection.server) == (CLIENT, SERVER)


def test_retransmitted_syn_keeps_one_attempt():
    tracker = ConnectionTracker()
    notices, _ = feed(tracker, [INITIAL.up(SYN, mpc_syn(1), 0), INITIAL.up(SYN, mpc_syn(1), 1)])
    assert notices == []
    assert tracker.counters()["subflows_tracked"] == 1


# --- attempts ---------------------------------------------------------------------------------


def test_syn_only_then_rst_is_an_attempt_not_a_connection():
    tracker = ConnectionTracker()
    rst = INITIAL.down(RST | ACK, DSS, 0.001)
    feed(tracker, [INITIAL.up(SYN, mpc_syn(1), 0), rst])
    notices = tracker.expire(WALL + 1)
    assert kinds(notices) == [(AttemptEnd, "closed")]
    attempt = notices[0].subflow
    assert (attempt.client, attempt.client_port, attempt.server, attempt.server_port) == (
        CLIENT,
        40000,
        SERVER,
        443,
    )
    assert attempt.version == 1
    assert notices[0].time == time_of(rst)  # not the time of the expiry
    counters = tracker.counters()
    assert counters["attempts"] == 1
    assert counters["connections"] == counters["subflows_tracked"] == 0


def test_attempt_reports_the_version_the_server_answered():
    tracker = ConnectionTracker()
    feed(tracker, [INITIAL.up(SYN, mpc_syn(1), 0), INITIAL.down(SYN_ACK, mpc_synack(0), 0.001)])
    (notice,) = tracker.close(WALL)
    assert notice.subflow.version == 0


def test_syn_only_times_out():
    tracker = ConnectionTracker(idle_timeout=600)
    feed(tracker, [INITIAL.up(SYN, mpc_syn(1), 0)])
    notices, _ = feed(tracker, [OTHER.up(SYN, mpc_syn(1), 599)])
    assert notices == []
    notices, _ = feed(tracker, [OTHER.up(SYN, mpc_syn(1), 601)])
    assert kinds(notices) == [(AttemptEnd, "idle")]
    assert notices[0].subflow.client_port == 40000


def test_idle_is_measured_in_the_event_time_given_not_in_ktime():
    # A replay: ktime is the clock of the replay run, the event time that of the capture.
    tracker = ConnectionTracker(idle_timeout=600)
    first = INITIAL.up(SYN, mpc_syn(1), 0)
    second = Flow(CLIENT, 40002, SERVER, 443).up(SYN, mpc_syn(1), 1000)
    third = OTHER.up(SYN, mpc_syn(1), 1000.001)
    assert tracker.observe(first, decode(first.option), WALL)[1] == []
    assert tracker.observe(second, decode(second.option), WALL + 1)[1] == []
    _, notices = tracker.observe(third, decode(third.option), WALL + 601)
    assert kinds(notices) == [(AttemptEnd, "idle")]
    assert notices[0].subflow.client_port == 40000


def test_close_ends_attempts_and_connections_as_shutdown():
    tracker = ConnectionTracker()
    feed(tracker, [INITIAL.up(SYN, mpc_syn(1), 0)] + handshake(OTHER, 0, at=1))
    notices = tracker.close(WALL + 5)
    assert kinds(notices) == [(AttemptEnd, "shutdown"), (ConnectionEnd, "shutdown")]
    assert all(n.time == WALL + 5 for n in notices)
    assert tracker.counters()["subflows_tracked"] == tracker.counters()["connections_tracked"] == 0


# --- joins ------------------------------------------------------------------------------------


def test_join_subflow_maps_to_the_connection_of_its_token():
    tracker = ConnectionTracker()
    notices, initial = feed(tracker, handshake(INITIAL, 1))
    _, joined = feed(tracker, [join_syn(JOIN, token(SERVER_KEY, 1), 1)])
    assert joined.connection is initial.connection and not joined.initial
    # The other direction of the join finds the same subflow.
    reply = JOIN.down(SYN_ACK, MpJoin("synack", 1, False, None, 7, b"\x01" * 8), 1.001)
    _, found = feed(tracker, [reply])
    assert found is joined
    assert tracker.counters()["subflows_tracked"] == 2
    assert tracker.counters()["bogus_joins"] == 0


def test_join_with_unknown_token_is_bogus_but_its_subflow_is_known():
    tracker = ConnectionTracker()
    feed(tracker, handshake(INITIAL, 1))
    notices, joined = feed(tracker, [join_syn(JOIN, 0xDEADBEEF, 1)])
    assert notices == []
    assert joined.connection is None and not joined.initial
    assert tracker.counters()["bogus_joins"] == 1
    # A bogus join is no attempt to make a connection.
    assert kinds(tracker.close(WALL)) == [(ConnectionEnd, "shutdown")]
    assert tracker.counters()["attempts"] == 0


def test_tokens_shared_by_two_live_connections_send_joins_to_the_newer():
    tracker = ConnectionTracker()
    notices, _ = feed(tracker, handshake(INITIAL, 1) + handshake(OTHER, 1, at=1))
    older, newer = (n.connection for n in notices)
    assert older.token == newer.token
    _, joined = feed(tracker, [join_syn(JOIN, older.token, 2)])
    assert joined.connection is newer
    # The older one leaving does not take the token from the newer.
    feed(tracker, [fin(INITIAL, 3)])
    _, joined_again = feed(tracker, [join_syn(Flow(CLIENT, 40005, SERVER, 443), older.token, 4)])
    assert joined_again.connection is newer


# --- departures -------------------------------------------------------------------------------


def test_connection_ends_with_its_last_subflow():
    tracker = ConnectionTracker()
    feed(tracker, handshake(INITIAL, 1) + [join_syn(JOIN, token(SERVER_KEY, 1), 1)])
    notices, _ = feed(tracker, [fin(INITIAL, 2), fin(JOIN, 3)])
    assert notices == []  # the second FIN's effect waits for the end of its segment
    notices = tracker.expire(WALL + 3.5)
    assert kinds(notices) == [(ConnectionEnd, "closed")]
    assert notices[0].connection.token == token(SERVER_KEY, 1)
    assert tracker.counters()["connections_tracked"] == tracker.counters()["subflows_tracked"] == 0


def test_fin_from_either_side_ends_the_subflow():
    tracker = ConnectionTracker()
    feed(tracker, handshake(INITIAL, 1))
    notices, _ = feed(tracker, [INITIAL.down(FIN | ACK, DSS, 1), OTHER.up(SYN, mpc_syn(1), 2)])
    assert kinds(notices) == [(ConnectionEnd, "closed")]


def test_every_event_of_a_rst_segment_finds_the_connection_before_fastclose_ends_it():
    tracker = ConnectionTracker()
    feed(tracker, handshake(INITIAL, 1) + [join_syn(JOIN, token(SERVER_KEY, 1), 1)])
    # One RST segment with MP_FASTCLOSE then MP_TCPRST: two events, same fields but the option.
    rst = [INITIAL.up(RST | ACK, FastClose(SERVER_KEY), 2), INITIAL.up(RST | ACK, TcpRst(0, 1), 2)]
    notices, subflow = feed(tracker, rst)
    assert notices == [] and subflow.connection.token == token(SERVER_KEY, 1)
    notices, _ = feed(tracker, [JOIN.up(ACK, DSS, 3)])
    assert kinds(notices) == [(ConnectionEnd, "fastclose")]
    # MP_FASTCLOSE ends the join subflow too, though it was sent on the other one.
    assert tracker.counters()["subflows_tracked"] == 0


def test_idle_connection_leaves_after_the_timeout_in_event_time():
    tracker = ConnectionTracker(idle_timeout=600)
    feed(tracker, handshake(INITIAL, 1))
    notices, _ = feed(tracker, [INITIAL.up(ACK, DSS, 500)])  # activity restarts the clock
    assert notices == []
    assert tracker.expire(WALL + 1000) == []
    notices = tracker.expire(WALL + 1101)
    assert kinds(notices) == [(ConnectionEnd, "idle")]


def test_new_syn_on_a_tracked_4_tuple_ends_the_old_subflow():
    tracker = ConnectionTracker()
    feed(tracker, handshake(INITIAL, 1))
    new_isn = INITIAL.up(SYN, mpc_syn(1), 5)._replace(seq=7777)
    notices, subflow = feed(tracker, [new_isn])
    assert kinds(notices) == [(ConnectionEnd, "closed")]
    assert subflow.connection is None


def test_syn_read_after_its_third_ack_is_the_same_subflow():
    """Per-CPU perf buffers: the SYN (ISN 1) can reach us after the third ACK (seq ISN + 1)."""
    tracker = ConnectionTracker()
    syn, *rest = handshake(INITIAL, 1)
    third_ack = [e._replace(seq=2) for e in rest]
    notices, _ = feed(tracker, third_ack + [syn])
    assert kinds(notices) == [(ConnectionStart, None)], f"got {kinds(notices)}; want one connection start"
    assert tracker.counters()["connections"] == 1


# --- bounds -----------------------------------------------------------------------------------


def test_eviction_takes_the_least_recently_active_subflow():
    tracker = ConnectionTracker(max_entries=4)
    second = Flow(CLIENT, 40010, SERVER, 443)
    feed(tracker, handshake(INITIAL, 1) + handshake(second, 1, at=1))
    feed(tracker, [INITIAL.up(ACK, DSS, 2)])  # INITIAL is now the more recent
    notices, _ = feed(tracker, [Flow(CLIENT, 40020, SERVER, 443).up(SYN, mpc_syn(1), 3)])
    assert kinds(notices) == [(ConnectionEnd, "evicted")]
    assert notices[0].connection.client_port == 40010
    assert tracker.counters()["evictions"] == 1


@pytest.mark.slow
def test_a_million_syns_stay_within_the_cap():
    tracker = ConnectionTracker()
    syn = encode(mpc_syn(1))
    option = decode(syn)
    sources = [f"10.0.{i}.1" for i in range(16)]
    started = clock.perf_counter()
    for i in range(1_000_000):
        ev = OptionEvent(i, 2, 0, 4, sources[i >> 16], SERVER, i & 0xFFFF, 443, 0, 0, SYN, syn)
        tracker.observe(ev, option, WALL)
    elapsed = clock.perf_counter() - started
    counters = tracker.counters()
    assert counters["subflows_tracked"] + counters["connections_tracked"] <= DEFAULT_MAX_ENTRIES
    assert counters["evictions"] == counters["attempts"] == 1_000_000 - DEFAULT_MAX_ENTRIES
    print(f"1,000,000 SYNs in {elapsed:.2f} s")
