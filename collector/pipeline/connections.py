# SPDX-License-Identifier: MIT
"""MPTCP connections and their subflows, as far as the segments seen tell: pure state, no I/O.

A connection is named by its token: the server's (the side that received the MP_CAPABLE SYN), which
is also what every MP_JOIN SYN carries, so joins find their connection by it. Subflows are found by
their 4-tuple in either direction; each knows its client (the sender of its SYN), which tells who
sent any later segment on it.

The state is bounded, because the traffic that creates it is the peers' to choose: subflows leave
on FIN or RST, idle ones leave after `idle_timeout` of event time, and beyond `max_entries` the
least recently active subflow is evicted. Event time is the `time` the caller gives with each event
(the kernel's clock when live, the packet's timestamp in a replay), not the time of processing: a
replay ages entries as the capture did, however fast it runs. event.ktime_ns would not do, as a
replay's events carry the clock of the replay run. A connection leaves with its last subflow, for
the same reason, or with all of them on MP_FASTCLOSE.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

from collector.kernel.event import OptionEvent
from collector.pipeline.decode import FastClose, MpCapable, MpJoin, token
from collector.pipeline.decode import Record as Suboption

__all__ = [
    "ConnectionTracker",
    "Connection",
    "Subflow",
    "ConnectionStart",
    "ConnectionEnd",
    "AttemptEnd",
    "Notice",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_ENTRIES",
]

DEFAULT_IDLE_TIMEOUT = 600.0
DEFAULT_MAX_ENTRIES = 262_144

# TCP flags, byte 13 of the header.
FIN = 0x01
SYN = 0x02
RST = 0x04
ACK = 0x10

# Why a connection or an attempt left.
CLOSED = "closed"  # FIN or RST on its (last) subflow
FASTCLOSE = "fastclose"
IDLE = "idle"
EVICTED = "evicted"
SHUTDOWN = "shutdown"

# Idle entries are looked for at most this often (seconds of event time): a check per event would
# cost a peek at the oldest entry for nothing nearly every time.
_SWEEP_INTERVAL = 1.0

SubflowKey = tuple[str, int, str, int]
_SEQ_MASK = 0xFFFFFFFF


@dataclass(slots=True, eq=False)
class Connection:
    """An MPTCP connection whose MP_CAPABLE exchange completed, known by its token (from the server's
    key), with the subflows still tracked."""

    token: int
    version: int
    client: str
    client_port: int
    server: str
    server_port: int
    client_key: int
    server_key: int
    subflows: set[SubflowKey] = field(default_factory=set)  # those still tracked


@dataclass(slots=True, eq=False)
class Subflow:
    """One subflow, keyed by its 4-tuple whichever way a segment goes; `client` sent its SYN, `connection`
    once it is known."""

    key: SubflowKey
    client: str  # the sender of the SYN
    client_port: int
    server: str
    server_port: int
    initial: bool  # opened by MP_CAPABLE, not MP_JOIN
    version: int | None  # of MP_CAPABLE, for the attempt record if the handshake never completes
    connection: Connection | None  # None: handshake not (yet) complete, or a join of unknown token
    last_active: float  # event time
    isn: int  # the client's initial sequence number: what tells a repeated SYN from a new subflow

    def sent_by_client(self, event: OptionEvent) -> bool:
        """Whether the event's segment came from the client, the sender of the SYN."""
        return event.sport == self.client_port and event.src == self.client


class ConnectionStart(NamedTuple):
    """The MP_CAPABLE exchange of `connection` completed."""

    connection: Connection
    time: float


class ConnectionEnd(NamedTuple):
    """`connection` left, for `reason`: closed, fastclose, idle, evicted or shutdown."""

    connection: Connection
    reason: str
    time: float


class AttemptEnd(NamedTuple):
    """An initial subflow whose MP_CAPABLE exchange never completed left."""

    subflow: Subflow
    reason: str
    time: float


Notice = ConnectionStart | ConnectionEnd | AttemptEnd


class _Closing(NamedTuple):
    segment: tuple  # the event's fields but the option: the same for every event of one segment
    subflow: Subflow
    reason: str
    time: float


class ConnectionTracker:
    """Connections and subflows, updated one event at a time in O(1)."""

    def __init__(self, idle_timeout: float = DEFAULT_IDLE_TIMEOUT, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 2:
            raise ValueError(f"max_entries {max_entries} cannot hold a connection and its subflow")
        self._idle_timeout = idle_timeout
        self._max_entries = max_entries
        # Least recently active first.
        self._subflows: OrderedDict[SubflowKey, Subflow] = OrderedDict()
        self._by_token: dict[int, Connection] = {}
        # A segment's FIN, RST or MP_FASTCLOSE takes effect once all its events are in: a RST can
        # carry MP_FASTCLOSE then MP_TCPRST, and the second must still find the connection.
        self._closing: _Closing | None = None
        self._next_sweep = float("-inf")
        self.connections_tracked = 0
        self.connections = 0
        self.attempts = 0
        self.evictions = 0
        self.bogus_joins = 0

    @property
    def subflows_tracked(self) -> int:
        """Subflows held now: of connections, of attempts, and joins of no known token."""
        return len(self._subflows)

    def counters(self) -> dict[str, int]:
        """The tracker's counters, as a stats record's `tracker` has them: entries held now, totals since
        the start."""
        return {
            "connections_tracked": self.connections_tracked,
            "subflows_tracked": self.subflows_tracked,
            "evictions": self.evictions,
            "bogus_joins": self.bogus_joins,
            "attempts": self.attempts,
            "connections": self.connections,
        }

    def observe(self, event: OptionEvent, option: Suboption | None, time: float) -> tuple[Subflow | None, list[Notice]]:
        """Take in one event, its decoded option (None: it did not decode) and its event time.

        Returns the event's subflow (None if untracked) and what started or ended meanwhile, in
        order. Events of one segment must come in one run.
        """
        notices: list[Notice] = []
        closing = self._closing
        if closing is not None and closing.segment != event[:-1]:
            self._finish_closing(notices)
        if time >= self._next_sweep:
            self._sweep(time, notices)
        # The subflow's key: its 4-tuple with the lower endpoint first, so both directions find it.
        _ktime, _ifindex, _mark, _ip, src, dst, sport, dport, _seq, _ack, flags, _option = event
        key = (src, sport, dst, dport) if src < dst or (src == dst and sport <= dport) else (dst, dport, src, sport)
        subflows = self._subflows
        subflow = subflows.get(key)
        if subflow is not None:
            subflow.last_active = time
            subflows.move_to_end(key)
        kind = type(option)
        if kind is MpCapable:
            subflow = self._mp_capable(event, key, subflow, option, time, notices)
        elif kind is MpJoin and option.form == "syn":
            subflow = self._join(event, key, subflow, option, time, notices)
        if subflow is not None and (flags & (FIN | RST) or kind is FastClose):
            reason = FASTCLOSE if kind is FastClose else CLOSED
            self._close_after_segment(event, subflow, reason, time)
        return subflow, notices

    def expire(self, time: float) -> list[Notice]:
        """What a quiet spell ends: the last segment's close, and entries idle at event time `time`.

        For the poll loop, so that connections end on time when no event comes to end them.
        """
        notices: list[Notice] = []
        if self._closing is not None:
            self._finish_closing(notices)
        self._sweep(time, notices)
        return notices

    def close(self, time: float, most: int | None = None) -> list[Notice]:
        """End everything, or the `most` least recently active subflows (and connections left with none):
        what is still open leaves with reason "shutdown". Called again while subflows_tracked, the notices
        of a full tracker need not all be held at once."""
        notices: list[Notice] = []
        if self._closing is not None:
            self._finish_closing(notices)
        subflows = self._subflows
        ended = 0
        while subflows and (most is None or ended < most):
            self._end_subflow(self._oldest(), SHUTDOWN, time, notices)
            ended += 1
        return notices

    # --- handshakes ---------------------------------------------------------------------------

    def _mp_capable(self, event, key, subflow, option: MpCapable, time, notices) -> Subflow | None:
        flags = event.tcp_flags
        if flags & SYN:
            if not flags & ACK:
                return self._open(event, key, subflow, True, option.version, None, time, notices)
            if subflow is not None and subflow.connection is None:
                subflow.version = option.version  # the one the server accepted
            return subflow
        # Third ACK or v1 first data: the client sends both keys, the server's as receiver key.
        if option.receiver_key is None:
            return subflow
        if subflow is None:
            subflow = self._open(event, key, None, True, option.version, None, time, notices)
        if subflow.initial and subflow.connection is None:
            self._establish(subflow, option, time, notices)
        return subflow

    def _establish(self, subflow: Subflow, option: MpCapable, time, notices) -> None:
        connection = Connection(
            token(option.receiver_key, option.version),
            option.version,
            subflow.client,
            subflow.client_port,
            subflow.server,
            subflow.server_port,
            option.sender_key,
            option.receiver_key,
            {subflow.key},
        )
        subflow.connection = connection
        # Tokens are 32 bits: across many servers two live connections can share one. Joins go to
        # the newer, and the older keeps its subflows.
        self._by_token[connection.token] = connection
        self.connections_tracked += 1
        self.connections += 1
        notices.append(ConnectionStart(connection, time))
        self._evict(time, notices)

    def _join(self, event, key, subflow, option: MpJoin, time, notices) -> Subflow:
        connection = self._by_token.get(option.token)
        if connection is None:
            self.bogus_joins += 1
        return self._open(event, key, subflow, False, None, connection, time, notices)

    def _open(self, event, key, existing, initial, version, connection, time, notices) -> Subflow:
        """The subflow a SYN opens; a retransmitted SYN keeps the one it opened before."""
        # A SYN carries the ISN; anything later opening a subflow (third ACK, first data) ISN + 1.
        isn = event.seq if event.tcp_flags & SYN else (event.seq - 1) & _SEQ_MASK
        if existing is not None:
            # Per-CPU perf buffers can hand us a SYN after its third ACK, and SYNs are
            # retransmitted: the same ISN from the same client is the same subflow.
            if existing.sent_by_client(event) and existing.isn == isn:
                return existing
            # A new SYN on the 4-tuple: the old subflow ended unseen.
            self._end_subflow(existing, CLOSED, time, notices)
        subflow = Subflow(key, event.src, event.sport, event.dst, event.dport, initial, version, connection, time, isn)
        self._subflows[key] = subflow
        if connection is not None:
            connection.subflows.add(key)
        self._evict(time, notices)
        return subflow

    # --- departures ---------------------------------------------------------------------------

    def _close_after_segment(self, event, subflow: Subflow, reason: str, time: float) -> None:
        closing = self._closing
        if closing is not None and FASTCLOSE in (closing.reason, reason):
            reason = FASTCLOSE
        self._closing = _Closing(event[:-1], subflow, reason, time)

    def _finish_closing(self, notices) -> None:
        closing, self._closing = self._closing, None
        subflow = closing.subflow
        if self._subflows.get(subflow.key) is not subflow:
            return  # gone already
        if closing.reason == FASTCLOSE and subflow.connection is not None:
            self._end_connection(subflow.connection, FASTCLOSE, closing.time, notices)
        else:
            self._end_subflow(subflow, closing.reason, closing.time, notices)

    def _sweep(self, time: float, notices) -> None:
        self._next_sweep = time + _SWEEP_INTERVAL
        deadline = time - self._idle_timeout
        while self._subflows:
            oldest = self._oldest()
            if oldest.last_active >= deadline:
                break
            self._end_subflow(oldest, IDLE, time, notices)

    def _evict(self, time: float, notices) -> None:
        while len(self._subflows) + self.connections_tracked > self._max_entries:
            self.evictions += 1
            self._end_subflow(self._oldest(), EVICTED, time, notices)

    def _oldest(self) -> Subflow:
        return next(iter(self._subflows.values()))

    def _end_subflow(self, subflow: Subflow, reason: str, time: float, notices) -> None:
        del self._subflows[subflow.key]
        connection = subflow.connection
        if connection is not None:
            connection.subflows.discard(subflow.key)
            if not connection.subflows:
                self._end_connection(connection, reason, time, notices)
        elif subflow.initial:
            self.attempts += 1
            notices.append(AttemptEnd(subflow, reason, time))

    def _end_connection(self, connection: Connection, reason: str, time: float, notices) -> None:
        for key in connection.subflows:
            del self._subflows[key]
        connection.subflows.clear()
        if self._by_token.get(connection.token) is connection:
            del self._by_token[connection.token]
        self.connections_tracked -= 1
        notices.append(ConnectionEnd(connection, reason, time))
