# SPDX-License-Identifier: MIT
"""Events as the kernel program would hand them over for an MPTCP connection's segments: the subflows'
4-tuples, TCP flags, the MP_CAPABLE handshake in either version, joins and FINs."""

from typing import NamedTuple

from collector.kernel.event import OptionEvent
from collector.pipeline.decode import MpCapable, MpJoin
from tests.support.mptcp_encoder import encode

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
SYN_ACK = SYN | ACK

CLIENT, SERVER = "192.0.2.1", "198.51.100.7"
CLIENT_KEY, SERVER_KEY = 0x8F0C7C64A6A32AC1, 0x73BB150358A0AECB
# MP_CAPABLE flags as Linux sends them: checksum (v0 only), HMAC-SHA1/256.
FLAGS = {0: 0x81, 1: 0x01}
WALL = 1_700_000_000.0
# A DSS option: the first MPTCP option of a FIN or RST segment, the only one on most.
DSS = bytes([30, 8, 0x20, 0x01, 0, 0, 0, 1])


class Flow(NamedTuple):
    """A subflow's 4-tuple, client first; `up` builds client→server events, `down` the reverse."""

    client: str
    client_port: int
    server: str
    server_port: int

    def up(self, flags: int, option, at: float) -> OptionEvent:
        return event(*self, flags, option, at)

    def down(self, flags: int, option, at: float) -> OptionEvent:
        client, client_port, server, server_port = self
        return event(server, server_port, client, client_port, flags, option, at)


INITIAL = Flow(CLIENT, 40000, SERVER, 443)
JOIN = Flow("203.0.113.9", 40001, SERVER, 443)
OTHER = Flow("203.0.113.50", 50000, "198.51.100.99", 80)  # another connection altogether


def event(src, sport, dst, dport, flags, option, at) -> OptionEvent:
    """One event at `at` seconds of ktime; `option` is wire bytes or an mptcp_option record."""
    wire = option if isinstance(option, bytes) else encode(option)
    return OptionEvent(round(at * 1e9), 2, 0, 6 if ":" in src else 4, src, dst, sport, dport, 1, 1, flags, wire)


def mpc_syn(version):
    key = CLIENT_KEY if version == 0 else None  # v1 sends its key only from the third ACK on
    return MpCapable(version, FLAGS[version], key, None, None, None)


def mpc_synack(version):
    return MpCapable(version, FLAGS[version], SERVER_KEY, None, None, None)


def mpc_ack(version, data_len=None):
    return MpCapable(version, FLAGS[version], CLIENT_KEY, SERVER_KEY, data_len, None)


def handshake(flow, version, at=0.0, both_directions=False):
    """SYN, (SYN/ACK,) third ACK: what a collector at the server's ingress (or a capture) sees."""
    events = [flow.up(SYN, mpc_syn(version), at)]
    if both_directions:
        events.append(flow.down(SYN_ACK, mpc_synack(version), at + 0.001))
    events.append(flow.up(ACK, mpc_ack(version), at + 0.002))
    return events


def join_syn(flow, token_, at, address_id=1, backup=False):
    return flow.up(SYN, MpJoin("syn", address_id, backup, token_, 0x1234, None), at)


def fin(flow, at):
    return flow.up(FIN | ACK, DSS, at)
