# SPDX-License-Identifier: MIT
"""Kernel events to log records: decode the option, track the connection, classify the address.

Records are dicts of msgpack-friendly values; docs/records.md is their schema. An option that does
not decode becomes a `malformed` record, never a guess, and never disappears.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from collector.addresses.classify import classify_decoded
from collector.kernel.event import OptionEvent
from collector.pipeline.connections import (
    AttemptEnd,
    ConnectionEnd,
    ConnectionStart,
    ConnectionTracker,
    Notice,
    Subflow,
)
from collector.pipeline.decode import (
    AddAddr,
    FastClose,
    MalformedOption,
    MpJoin,
    RemoveAddr,
    TcpRst,
    decode_bytes,
)

__all__ = ["Recorder"]


class Recorder:
    """Turns each event, with its event time, into the records it makes."""

    def __init__(self, tracker: ConnectionTracker | None = None) -> None:
        self.tracker = ConnectionTracker() if tracker is None else tracker
        self.malformed = 0

    def handle(self, event: OptionEvent, time: float) -> list[dict]:
        """The records of one event, often none; `time` is its event time, UTC epoch seconds.

        `time` stamps the records and ages the connection state: give the time the event happened
        (the kernel's clock when live, the packet's timestamp in a replay).
        """
        return self.handle_many((event,), (time,))

    def handle_many(self, events: Iterable[OptionEvent], times: Iterable[float]) -> list[dict]:
        """The records of `events`, in order, each with its event time from `times` (as for handle).

        One call for a batch: a call and a list per event less, on the busiest path of the collector.
        """
        records: list[dict] = []
        observe = self.tracker.observe
        for event, time in zip(events, times):
            try:
                option = decode_bytes(event.option)
            except MalformedOption as exc:
                self.malformed += 1
                subflow, notices = observe(event, None, time)
                records += _notice_records(notices)
                records.append(_malformed(event, time, subflow, exc))
                continue
            subflow, notices = observe(event, option, time)
            if notices:
                records += _notice_records(notices)
            make = _SEGMENT_RECORDS.get(type(option))
            if make is not None:
                record = make(event, time, subflow, option)
                if record is not None:
                    records.append(record)
        return records

    def expire(self, time: float) -> list[dict]:
        """Records of what a quiet spell ends, as of event time `time`: call it now and then."""
        return _notice_records(self.tracker.expire(time))

    def close(self, time: float, most: int | None = None) -> list[dict]:
        """Records of everything still tracked, ended with reason "shutdown"; or of the `most` least
        recently active subflows' ends, as ConnectionTracker.close."""
        return _notice_records(self.tracker.close(time, most))

    def counters(self) -> dict[str, int]:
        """The tracker's counters, and `malformed`: options that did not decode."""
        counters = self.tracker.counters()
        counters["malformed"] = self.malformed
        return counters


# --- records of one segment -------------------------------------------------------------------


def _segment(kind: str, event: OptionEvent, time: float, subflow: Subflow | None) -> dict:
    connection = None if subflow is None else subflow.connection
    return {
        "kind": kind,
        "time": time,
        "src": event.src,
        "sport": event.sport,
        "dst": event.dst,
        "dport": event.dport,
        "ifindex": event.ifindex,
        "connection": None if connection is None else connection.token,
    }


def _announcer(event: OptionEvent, subflow: Subflow | None) -> str | None:
    if subflow is None:
        return None
    return "client" if subflow.sent_by_client(event) else "server"


def _add_addr(event: OptionEvent, time: float, subflow: Subflow | None, option: AddAddr) -> dict:
    # The busiest record (half the events of a dense capture), one literal from the event's fields
    # unpacked at once: starting from _segment's dict cost 3% of the record path's instructions.
    # _segment's keys, in its order, then its own: a test checks the order.
    _ktime, ifindex, _mark, _ip, src, dst, sport, dport, _seq, _ack, _flags, _option = event
    if subflow is None:
        connection = role = None
    else:
        connection = subflow.connection
        if connection is not None:
            connection = connection.token
        role = "initial" if subflow.initial else "join"
    address = classify_decoded(option.address)
    embedded = address.embedded_ipv4
    return {
        "kind": "add_addr",
        "time": time,
        "src": src,
        "sport": sport,
        "dst": dst,
        "dport": dport,
        "ifindex": ifindex,
        "connection": connection,
        "announcer": _announcer(event, subflow),
        "subflow": role,
        "version": option.version,
        "echo": option.echo,
        "address_id": option.address_id,
        "address": address.address,
        "port": option.port,
        "hmac": option.hmac,
        "family": address.family,
        "class": address.address_class,
        "global": address.is_global,
        "embedded_ipv4": None if embedded is None else embedded.as_json(),
    }


def _mp_join(event: OptionEvent, time: float, subflow: Subflow | None, option: MpJoin) -> dict | None:
    # Only the SYN names the connection; SYN/ACK and ACK add nothing to the log.
    if option.form != "syn":
        return None
    record = _segment("mp_join", event, time, subflow)
    record |= {
        "token": option.token,
        "address_id": option.address_id,
        "backup": option.backup,
        "form": option.form,
    }
    return record


def _remove_addr(event: OptionEvent, time: float, subflow: Subflow | None, option: RemoveAddr) -> dict:
    record = _segment("remove_addr", event, time, subflow)
    record["announcer"] = _announcer(event, subflow)
    record["address_ids"] = list(option.address_ids)
    return record


def _fastclose(event: OptionEvent, time: float, subflow: Subflow | None, option: FastClose) -> dict:
    return _segment("fastclose", event, time, subflow)


def _tcp_rst(event: OptionEvent, time: float, subflow: Subflow | None, option: TcpRst) -> dict:
    record = _segment("tcp_rst", event, time, subflow)
    record["reason"] = option.reason
    return record


_SEGMENT_RECORDS: dict[type, Callable[..., dict | None]] = {
    AddAddr: _add_addr,
    MpJoin: _mp_join,
    RemoveAddr: _remove_addr,
    FastClose: _fastclose,
    TcpRst: _tcp_rst,
}


def _malformed(event: OptionEvent, time: float, subflow: Subflow | None, exc: MalformedOption) -> dict:
    option = event.option
    record = _segment("malformed", event, time, subflow)
    record["subtype"] = option[2] >> 4 if len(option) > 2 else None
    record["reason"] = exc.reason
    record["option"] = bytes(option)
    return record


# --- records of connection state --------------------------------------------------------------


def _connection_start(notice: ConnectionStart) -> dict:
    connection = notice.connection
    return {
        "kind": "connection",
        "time": notice.time,
        "connection": connection.token,
        "version": connection.version,
        "client": connection.client,
        "client_port": connection.client_port,
        "server": connection.server,
        "server_port": connection.server_port,
        "client_key": connection.client_key,
        "server_key": connection.server_key,
    }


def _connection_end(notice: ConnectionEnd) -> dict:
    return {
        "kind": "connection_end",
        "time": notice.time,
        "connection": notice.connection.token,
        "reason": notice.reason,
    }


def _attempt_end(notice: AttemptEnd) -> dict:
    subflow = notice.subflow
    return {
        "kind": "attempt",
        "time": notice.time,
        "version": subflow.version,
        "client": subflow.client,
        "client_port": subflow.client_port,
        "server": subflow.server,
        "server_port": subflow.server_port,
        "reason": notice.reason,
    }


_NOTICE_RECORDS: dict[type, Callable[..., dict]] = {
    ConnectionStart: _connection_start,
    ConnectionEnd: _connection_end,
    AttemptEnd: _attempt_end,
}


def _notice_records(notices: list[Notice]) -> list[dict]:
    return [_NOTICE_RECORDS[type(notice)](notice) for notice in notices]
