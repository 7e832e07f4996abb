# SPDX-License-Identifier: MIT
"""Crafted MPTCP captures for the replay tests: both directions of real-looking subflows.

`Subflow` keeps each side's sequence number, so every segment carries the seq and ack a real stack
would send (SYN and FIN take one, payload its length); `Capture` stamps the frames 1 ms apart into a
pcap and remembers, for each packet, a label and the ADD_ADDR it carries, so a test knows what the
collector must log up to any packet. Keys, tokens and HMACs are computed as RFC 8684 says, so tshark
ties the join to its connection as a real capture's.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from ipaddress import ip_address

from collector.pipeline.decode import AddAddr, MpCapable, MpJoin, OtherSuboption, token
from tests.support.capture_writer import PcapWriter
from tests.support.frames import (
    ACK,
    ETH_P_IP,
    ETH_P_IPV6,
    FIN,
    IPPROTO_TCP,
    MAC_A,
    MAC_B,
    PSH,
    SYN,
    ether,
    ipv4,
    ipv6,
    tcp,
)
from tests.support.mptcp_encoder import encode

# Nanoseconds since the epoch: 2023-11-14T22:13:20Z.
T0_NS = 1_700_000_000 * 10**9
STEP_NS = 1_000_000
MPC_FLAGS = 0x01  # H: HMAC-SHA256, no checksum


def _timestamps(value: int, echo: int) -> bytes:
    """NOP, NOP, TCP timestamps: what Linux puts on every segment."""
    return b"\x01\x01" + struct.pack("!BBII", 8, 10, value, echo)


def _syn_options() -> bytes:
    """MSS 1460, SACK permitted, timestamps, window scale 7: Linux's SYN options, MPTCP's after them."""
    return struct.pack("!BBH", 2, 4, 1460) + b"\x04\x02" + struct.pack("!BBII", 8, 10, 1, 0) + b"\x01\x03\x03\x07"


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _key_bytes(*keys: int) -> bytes:
    return b"".join(k.to_bytes(8, "big") for k in keys)


def idsn(key: int) -> int:
    """The initial data sequence number of a v1 key: the low 64 bits of SHA-256(key)."""
    return int.from_bytes(hashlib.sha256(_key_bytes(key)).digest()[-8:], "big")


def add_addr_hmac(sender_key: int, receiver_key: int, address_id: int, address: str, port: int | None) -> bytes:
    """RFC 8684 section 3.4.1: HMAC-SHA256 keyed by both keys, over id, address and port; rightmost 64 bits."""
    message = bytes([address_id]) + ip_address(address).packed + struct.pack("!H", port or 0)
    return _hmac(_key_bytes(sender_key, receiver_key), message)[-8:]


def dss_ack(data_ack: int) -> bytes:
    """A DSS carrying a 4-byte data ACK only (A flag): what pure ACKs carry."""
    return encode(OtherSuboption(2, bytes([30, 8, 0x20, 0x01]) + struct.pack("!I", data_ack & 0xFFFFFFFF)))


@dataclass(frozen=True)
class Sent:
    """One ADD_ADDR put on the wire, as the collector must log it."""

    src: str
    sport: int
    dst: str
    dport: int
    address: str
    address_id: int
    echo: bool
    hmac: bytes | None
    announcer: str  # "client" or "server": the sender's role on this subflow
    subflow: str  # "initial" or "join"


@dataclass
class Packet:
    label: str
    frame: bytes
    add_addr: Sent | None = None


class Subflow:
    """A TCP flow between a client and a server endpoint, with both sides' next sequence numbers."""

    def __init__(
        self, client: tuple[str, int], server: tuple[str, int], client_isn: int, server_isn: int, kind: str = "initial"
    ) -> None:
        self.client, self.server = client, server
        self.kind = kind
        self.next_seq = {"client": client_isn, "server": server_isn}
        self.acked = {"client": 0, "server": 0}  # what each side acknowledges: the peer's next seq
        self.tsval = {"client": 1000, "server": 5000}
        self.established = False

    def segment(self, side: str, flags: int, options: bytes = b"", payload: bytes = b"") -> bytes:
        """The frame `side` sends now; advances its sequence number and the peer's ack."""
        src, dst = (self.client, self.server) if side == "client" else (self.server, self.client)
        peer = "server" if side == "client" else "client"
        seq = self.next_seq[side]
        ack = self.acked[side] if flags & ACK else 0
        self.tsval[side] += 1
        if flags & SYN:
            options = _syn_options() + options
        else:
            options = _timestamps(self.tsval[side], self.tsval[peer]) + options
        self.next_seq[side] = (seq + len(payload) + bool(flags & SYN) + bool(flags & FIN)) & 0xFFFFFFFF
        self.acked[peer] = self.next_seq[side]
        segment = tcp(src[1], dst[1], seq=seq, ack=ack, flags=flags, options=options, payload=payload)
        mac_src, mac_dst = (MAC_A, MAC_B) if side == "client" else (MAC_B, MAC_A)
        if ":" in src[0]:
            return ether(ETH_P_IPV6, ipv6(src[0], dst[0], IPPROTO_TCP, segment), src=mac_src, dst=mac_dst)
        return ether(ETH_P_IP, ipv4(src[0], dst[0], IPPROTO_TCP, segment), src=mac_src, dst=mac_dst)

    def endpoints(self, side: str) -> tuple[str, int, str, int]:
        src, dst = (self.client, self.server) if side == "client" else (self.server, self.client)
        return (*src, *dst)


@dataclass
class Connection:
    """An MPTCP v1 connection: its keys, its subflows, and the data ACKs each side sends."""

    client_key: int
    server_key: int
    initial: Subflow
    joins: list[Subflow] = field(default_factory=list)

    @property
    def token(self) -> int:
        return token(self.server_key, 1)

    def key_of(self, side: str) -> int:
        return self.client_key if side == "client" else self.server_key

    def data_ack(self, side: str) -> int:
        """What `side` acknowledges at the data level: the peer's IDSN + 1 (no data sent yet)."""
        return idsn(self.key_of("server" if side == "client" else "client")) + 1


class Capture:
    """Packets in order, 1 ms apart, from T0_NS; `pcap()` writes them, `packet_offsets` after it."""

    def __init__(self) -> None:
        self.packets: list[Packet] = []

    def add(self, label: str, frame: bytes, sent: Sent | None = None) -> None:
        self.packets.append(Packet(label, frame, sent))

    def index(self, label: str) -> int:
        return next(i for i, p in enumerate(self.packets) if p.label == label)

    def sent(self, until: int | None = None) -> list[Sent]:
        """The ADD_ADDRs of the packets before index `until` (all of them by default)."""
        return [p.add_addr for p in self.packets[:until] if p.add_addr is not None]

    def time_of(self, index: int) -> float:
        return (T0_NS + index * STEP_NS) / 1e9

    def pcap(self) -> tuple[bytes, list[int]]:
        """The file's bytes and the offset of each packet's record."""
        writer = PcapWriter()
        for i, packet in enumerate(self.packets):
            writer.packet(T0_NS + i * STEP_NS, packet.frame)
        return writer.getvalue(), writer.packet_offsets

    # --- MPTCP exchanges ---------------------------------------------------------------------------

    def handshake(
        self,
        name: str,
        client: tuple[str, int],
        server: tuple[str, int],
        client_key: int,
        server_key: int,
        isns: tuple[int, int],
        *,
        third_ack: bool = True,
    ) -> Connection:
        """SYN with MP_CAPABLE, SYN/ACK with the server's key, third ACK with both keys (sent, and
        captured only if `third_ack`: otherwise first_data() must complete the exchange)."""
        flow = Subflow(client, server, *isns)
        conn = Connection(client_key, server_key, flow)
        mpc = encode(MpCapable(1, MPC_FLAGS, None, None, None, None))
        self.add(f"{name} SYN", flow.segment("client", SYN, mpc))
        mpc = encode(MpCapable(1, MPC_FLAGS, server_key, None, None, None))
        self.add(f"{name} SYN/ACK", flow.segment("server", SYN | ACK, mpc))
        mpc = encode(MpCapable(1, MPC_FLAGS, client_key, server_key, None, None))
        frame = flow.segment("client", ACK, mpc)
        if third_ack:
            self.add(f"{name} third ACK", frame)
        return conn

    def first_data(self, name: str, conn: Connection, size: int) -> None:
        """The client's first data, `size` bytes in one segment (a TSO super-segment when over the
        MTU, as captured on the sender), with the v1 MP_CAPABLE that carries both keys."""
        mpc = encode(MpCapable(1, MPC_FLAGS, conn.client_key, conn.server_key, size, None))
        self.add(f"{name} first data", conn.initial.segment("client", ACK | PSH, mpc, bytes(size)))

    def join(
        self, name: str, conn: Connection, client: tuple[str, int], isns: tuple[int, int], address_id: int
    ) -> Subflow:
        """MP_JOIN SYN with the connection's token, SYN/ACK and ACK with their HMACs (RFC 8684 3.2)."""
        flow = Subflow(client, conn.initial.server, *isns, kind="join")
        conn.joins.append(flow)
        nonce_client, nonce_server = 0x1A2B3C4D, 0x5E6F7081
        syn = MpJoin("syn", address_id, False, conn.token, nonce_client, None)
        self.add(f"{name} SYN", flow.segment("client", SYN, encode(syn)))
        server_mac = _hmac(_key_bytes(conn.server_key, conn.client_key), struct.pack("!II", nonce_server, nonce_client))
        synack = MpJoin("synack", 0, False, None, nonce_server, server_mac[:8])
        self.add(f"{name} SYN/ACK", flow.segment("server", SYN | ACK, encode(synack)))
        client_mac = _hmac(_key_bytes(conn.client_key, conn.server_key), struct.pack("!II", nonce_client, nonce_server))
        ack = MpJoin("ack", None, None, None, None, client_mac[:20])
        self.add(f"{name} ACK", flow.segment("client", ACK, encode(ack)))
        return flow

    def add_addr(
        self,
        label: str,
        conn: Connection,
        flow: Subflow,
        side: str,
        address: str,
        address_id: int,
        *,
        echo: bool = False,
    ) -> None:
        """A pure ACK from `side` with ADD_ADDR (with its HMAC, or as an echo) and a DSS data ACK."""
        mac = (
            None
            if echo
            else add_addr_hmac(
                conn.key_of(side), conn.key_of("server" if side == "client" else "client"), address_id, address, None
            )
        )
        option = encode(AddAddr(1, address_id, ip_address(address), None, echo, mac))
        frame = flow.segment(side, ACK, option + dss_ack(conn.data_ack(side)))
        # The announcer is the sender's role on the subflow: the client of a join is its SYN's sender.
        sent = Sent(*flow.endpoints(side), str(ip_address(address)), address_id, echo, mac, side, flow.kind)
        self.add(label, frame, sent)

    def retransmit(self, label: str, of: str) -> None:
        """The packet labelled `of` again, byte for byte (same seq: a retransmission)."""
        original = self.packets[self.index(of)]
        self.add(label, original.frame, original.add_addr)

    def close(self, name: str, conn: Connection, flow: Subflow) -> None:
        """FIN from the client, FIN/ACK from the server, last ACK: each with a DSS data ACK."""
        self.add(f"{name} FIN", flow.segment("client", FIN | ACK, dss_ack(conn.data_ack("client"))))
        self.add(f"{name} FIN/ACK", flow.segment("server", FIN | ACK, dss_ack(conn.data_ack("server"))))
        self.add(f"{name} last ACK", flow.segment("client", ACK, dss_ack(conn.data_ack("client"))))


# --- the scenario of the crafted-capture test --------------------------------------------------------

SERVER = "10.9.0.1"
SERVER_PORT = 443
ADDRESS_A = "10.1.2.3"  # announced by the clients: private
ADDRESS_B = "198.51.100.7"  # announced by the server: documentation


@dataclass
class Scenario:
    capture: Capture
    tokens: tuple[int, ...]  # of each connection, in order


def scenario(port_base: int = 40000) -> Scenario:
    """Connection 1 (v1): the client announces A, retransmits it, announces it again on a join
    subflow; the server echoes A, announces B, the client echoes B. Connection 2 announces A too.

    `port_base` moves every client port and key, so two scenarios replayed together are four
    connections, never one seen twice.
    """
    cap = Capture()
    c1 = cap.handshake(
        "c1",
        ("10.9.0.2", port_base + 1),
        (SERVER, SERVER_PORT),
        0x1111_0000_0000_0000 + port_base,
        0x2222_0000_0000_0000 + port_base,
        (1_000_000, 7_000_000),
    )
    cap.add_addr("c1 announce A", c1, c1.initial, "client", ADDRESS_A, 1)
    cap.retransmit("c1 announce A again", of="c1 announce A")
    join = cap.join("c1 join", c1, ("10.9.1.2", port_base + 2), (2_000_000, 8_000_000), address_id=2)
    cap.add_addr("c1 announce A on join", c1, join, "client", ADDRESS_A, 1)
    cap.add_addr("c1 server echoes A", c1, c1.initial, "server", ADDRESS_A, 1, echo=True)
    cap.add_addr("c1 server announces B", c1, c1.initial, "server", ADDRESS_B, 5)
    cap.add_addr("c1 client echoes B", c1, c1.initial, "client", ADDRESS_B, 5, echo=True)
    c2 = cap.handshake(
        "c2",
        ("10.9.0.3", port_base + 3),
        (SERVER, SERVER_PORT),
        0x3333_0000_0000_0000 + port_base,
        0x4444_0000_0000_0000 + port_base,
        (3_000_000, 9_000_000),
    )
    cap.add_addr("c2 announce A", c2, c2.initial, "client", ADDRESS_A, 1)
    cap.close("c2", c2, c2.initial)
    return Scenario(cap, (c1.token, c2.token))


def oversized() -> Scenario:
    """A connection whose third ACK was not captured: its first data, a 6,000-byte super-segment,
    completes the MP_CAPABLE exchange; then the client announces A."""
    cap = Capture()
    conn = cap.handshake(
        "c",
        ("10.9.0.4", 41000),
        (SERVER, SERVER_PORT),
        0x5555_0000_0000_0000,
        0x6666_0000_0000_0000,
        (4_000_000, 10_000_000),
        third_ack=False,
    )
    cap.first_data("c", conn, 6000)
    cap.add_addr("c announce A", conn, conn.initial, "client", ADDRESS_A, 1)
    return Scenario(cap, (conn.token,))
