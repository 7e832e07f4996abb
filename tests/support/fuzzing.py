# SPDX-License-Identifier: MIT
"""Differential fuzzing of the kernel program against tests/support/reference_parser.py.

Frames come from hypothesis strategies (structured: VLAN tags, IPv4 with options and fragment
fields, IPv6 extension chains, TCP option areas mixing MPTCP options of every subtype and length
with common options and garbage), each followed by byte mutants of it made with a seeded `random`,
far cheaper than a hypothesis example. Frames run through BPF_PROG_TEST_RUN in batches, each tagged
with its index in skb->mark, which its events carry back.

tests/kernel/test_fuzz.py runs a short form; `scripts/fuzz --cases N [--seed S]` runs main() for millions.
"""

from __future__ import annotations

import argparse
import errno
import random
import struct
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import NamedTuple

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from collector.kernel.event import OptionEvent
from collector.kernel.program import CaptureProgram
from collector.kernel.testrun import MIN_FRAME, TestRunner
from tests.support import frames
from tests.support.reference_parser import TCPOPT_MPTCP, ExpectedEvent, Verdict, expect

TC_ACT_UNSPEC = -1
# Frames between two reads of the perf buffer and the counters. A frame makes at most 13 events
# (3-byte options filling 40 bytes) of ~150 bytes: a batch's events fit in PAGES (4 MiB) per CPU.
BATCH = 1024
PAGES = 1024
# Byte mutants run after each structured frame in the long run: a hypothesis example costs some
# milliseconds, a mutant some microseconds.
MUTANTS = 255
# Structured frames a hypothesis run makes in the long run.
ROUND = 1000

# --- structured frames (hypothesis) ------------------------------------------------------------


def usually(usual, rare: st.SearchStrategy) -> st.SearchStrategy:
    """`usual` (a value or a strategy) 15 times in 16, else `rare`; shrinks towards `usual`.

    Each field of a frame is rarely wrong, so that most frames are wrong in one place or none."""
    if not isinstance(usual, st.SearchStrategy):
        usual = st.just(usual)
    return st.integers(0, 15).flatmap(lambda n: rare if n == 15 else usual)


def _mptcp(subtype: int, nibble: int, body: bytes) -> bytes:
    return bytes([TCPOPT_MPTCP, 3 + len(body), subtype << 4 | nibble]) + body


def _sack(blocks: bytes) -> bytes:
    return bytes([5, 2 + len(blocks)]) + blocks


# Every subtype, every length from 3 to 40, any flag nibble: the program reads only the subtype.
MPTCP_OPTIONS = st.builds(_mptcp, st.integers(0, 15), st.integers(0, 15), st.binary(max_size=37))
COMMON_OPTIONS = st.one_of(
    st.sampled_from(
        [
            b"\x01",  # NOP
            bytes.fromhex("020405b4"),  # MSS
            bytes.fromhex("030307"),  # window scale
            bytes.fromhex("0402"),  # SACK permitted
            bytes.fromhex("080a0000123400005678"),  # timestamps
        ]
    ),
    st.integers(1, 4).flatmap(lambda n: st.binary(min_size=8 * n, max_size=8 * n)).map(_sack),
)
GARBAGE_OPTIONS = st.one_of(
    st.sampled_from([b"\x00", *(bytes([TCPOPT_MPTCP, n]) for n in range(3))]),  # EOL, short MPTCP
    st.binary(min_size=1, max_size=6),  # any kind, any length byte
)
# As many MPTCP options as others, rarely garbage; cut to the 40 bytes of option space, which may
# leave a malformed last option.
OPTION_AREAS = st.lists(usually(MPTCP_OPTIONS | COMMON_OPTIONS, GARBAGE_OPTIONS), max_size=12).map(
    lambda options: b"".join(options)[:40]
)
SEGMENTS = st.builds(
    frames.tcp,
    st.integers(0, 65535),
    st.integers(0, 65535),
    seq=st.integers(0, 2**32 - 1),
    ack=st.integers(0, 2**32 - 1),
    flags=st.sampled_from(
        [frames.ACK, frames.SYN, frames.SYN | frames.ACK, frames.FIN | frames.ACK, frames.RST, frames.RST | frames.ACK]
    )
    | st.integers(0, 255),
    options=OPTION_AREAS,
    payload=st.binary(max_size=16),
    doff=usually(None, st.integers(0, 15)),
)
UPPER_PROTOCOLS = usually(
    frames.IPPROTO_TCP, st.sampled_from([frames.IPPROTO_UDP, frames.IPPROTO_ICMP, frames.IPPROTO_NONE, 255])
)
EXT_LENGTHS = usually(8, st.sampled_from([16, 24, 2048]))
EXT_HEADERS = st.one_of(
    EXT_LENGTHS.map(frames.hop_by_hop),
    EXT_LENGTHS.map(frames.dest_options),
    EXT_LENGTHS.map(frames.routing),
    st.builds(frames.fragment, usually(0, st.integers(1, 8191)), st.booleans(), st.integers(0, 99)),
)
# Up to the six extension headers the program reads, rarely more.
EXT_CHAINS = usually(st.lists(EXT_HEADERS, max_size=3), st.lists(EXT_HEADERS, min_size=4, max_size=8))
# A length field forced to another value, or None for the one the packet has.
LENGTH_FIELDS = usually(None, st.sampled_from([0, 20, 40, 65535]) | st.integers(0, 120))
VERSIONS = usually(None, st.integers(0, 15))


def _forced(packet: bytes, length_at: int, length: int | None, version: int | None) -> bytes:
    """`packet` with its version nibble and its 16-bit length field at `length_at` forced to the
    values given, if any."""
    out = bytearray(packet)
    if length is not None:
        struct.pack_into("!H", out, length_at, length)
    if version is not None:
        out[0] = version << 4 | out[0] & 0x0F
    return bytes(out)


@st.composite
def ipv4_packets(draw, segment: bytes) -> bytes:
    packet = frames.ipv4(
        str(draw(st.ip_addresses(v=4))),
        str(draw(st.ip_addresses(v=4))),
        draw(UPPER_PROTOCOLS),
        segment,
        options=draw(usually(b"", st.binary(max_size=40))),  # the program skips them by IHL
        ihl=draw(usually(None, st.integers(0, 15))),
        flags=draw(st.integers(0, 7)),
        frag_offset=draw(usually(0, st.integers(1, 8191))),
    )
    return _forced(packet, 2, draw(LENGTH_FIELDS), draw(VERSIONS))  # Total Length


@st.composite
def ipv6_packets(draw, segment: bytes) -> bytes:
    packet = frames.ipv6(
        str(draw(st.ip_addresses(v=6))),
        str(draw(st.ip_addresses(v=6))),
        draw(UPPER_PROTOCOLS),
        segment,
        ext=draw(EXT_CHAINS),
    )
    return _forced(packet, 4, draw(LENGTH_FIELDS), draw(VERSIONS))  # Payload Length


def _tags(tpids: st.SearchStrategy, most: int) -> st.SearchStrategy:
    return st.lists(st.tuples(tpids, st.integers(0, 4095)), max_size=most)


# Up to the two tags the program reads, or rarely three, or the pre-standard QinQ TPID.
VLAN_TAGS = usually(
    _tags(st.sampled_from([frames.ETH_P_8021Q, frames.ETH_P_8021AD]), 2),
    _tags(st.sampled_from([frames.ETH_P_8021Q, frames.ETH_P_8021AD, 0x9100]), 3),
)
IP_VERSIONS = st.sampled_from([(frames.ETH_P_IP, ipv4_packets), (frames.ETH_P_IPV6, ipv6_packets)])


@st.composite
def structured_frames(draw) -> bytes:
    """An Ethernet frame of a TCP segment over IPv4 or IPv6, often wrong in a field or two."""
    ethertype, packets = draw(IP_VERSIONS)
    packet = draw(packets(draw(SEGMENTS)))
    ethertype = draw(usually(ethertype, st.integers(0, 0xFFFF)))
    return frames.ether(ethertype, packet, tags=draw(VLAN_TAGS))


# --- byte mutants (random) ---------------------------------------------------------------------

# Bytes that mean something to some parser: EOL, NOP, lengths, TCP, IPv6 extension headers, MPTCP,
# version/IHL, TPID halves, all ones.
INTERESTING = bytes([0, 1, 2, 3, 5, 6, 8, 0x1E, 0x2B, 0x2C, 0x3C, 0x45, 0x60, 0x81, 0x88, 0x7F, 0x80, 0xFF])


def mutate(frame: bytes, rng: random.Random) -> bytes:
    """`frame` after 1 to 8 bit flips, byte sets, truncations or insertions at random places."""
    data = bytearray(frame)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4, 8))):
        op = rng.randrange(8)
        if op == 7:
            del data[rng.randrange(MIN_FRAME, max(MIN_FRAME, len(data)) + 1) :]  # truncation
        elif op < 3:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif op < 6:
            value = rng.choice(INTERESTING) if rng.random() < 0.5 else rng.randrange(256)
            data[rng.randrange(len(data))] = value
        else:
            at = rng.randrange(len(data) + 1)
            data[at:at] = rng.randbytes(rng.choice((1, 1, 2, 4, 8)))
    return bytes(data)


def cases(frame: bytes, rng: random.Random, mutants: int) -> Iterator[bytes]:
    """`frame`, then `mutants` byte mutants of it."""
    yield frame
    for _ in range(mutants):
        yield mutate(frame, rng)


# --- running and checking ----------------------------------------------------------------------


class Got(NamedTuple):
    retval: int
    events: list[ExpectedEvent]
    counters: dict[str, int] | None  # None: not measured alone (its batch's sum agreed)


class Mismatch(NamedTuple):
    frame: bytes
    want: Verdict
    got: Got

    def __str__(self) -> str:
        counters = "agreed in its batch's sum" if self.got.counters is None else self.got.counters
        return "\n".join(
            [
                f"frame   {self.frame.hex()}",
                f"want    retval {TC_ACT_UNSPEC}, counters {self.want.counters}",
                *(f"  event {_show(event)}" for event in self.want.events),
                f"got     retval {self.got.retval}, counters {counters}",
                *(f"  event {_show(event)}" for event in self.got.events),
            ]
        )


def _show(event: ExpectedEvent) -> str:
    return repr(event._replace(option=event.option.hex(" ")))


def _project(event: OptionEvent) -> ExpectedEvent:
    return ExpectedEvent(*(getattr(event, name) for name in ExpectedEvent._fields))


def _moved(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in after if after[name] != before[name]}


class Fuzzer:
    """Runs frames through a program of its own and checks each against the reference.

    `add` runs a frame now and checks it with its batch; a refused run (the kernel will not
    test-run some frames shorter than their IP header, or longer than a page) has no verdict and is
    only counted. Counters are read per batch; when their sum disagrees with the reference's, each
    frame of the batch runs again alone to find which.
    """

    def __init__(self, program: CaptureProgram, batch: int = BATCH) -> None:
        self.program = program
        self.batch = batch
        self.runner = TestRunner(program.fd)
        self.cases = 0
        self.refused = 0
        self.mismatches: list[Mismatch] = []
        self._pending: list[tuple[int, bytes, int]] = []  # (mark, frame, retval), not yet checked
        self._events: defaultdict[int, list[OptionEvent]] = defaultdict(list)
        self._lost = 0
        program.open_events(self._on_events, self._on_lost, pages=PAGES)
        self._counters = program.counters()

    def _on_events(self, events: list[OptionEvent]) -> None:
        for event in events:
            self._events[event.mark].append(event)

    def _on_lost(self, count: int) -> None:
        self._lost += count

    def _run(self, frame: bytes, mark: int) -> int | None:
        if len(frame) < MIN_FRAME:
            return None
        try:
            return self.runner.run(frame, mark)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            return None

    def add(self, frame: bytes) -> None:
        mark = self.cases & 0xFFFFFFFF
        self.cases += 1
        retval = self._run(frame, mark)
        if retval is None:
            self.refused += 1
            return
        self._pending.append((mark, frame, retval))
        if len(self._pending) >= self.batch:
            self.check()

    def check(self) -> list[Mismatch]:
        """Checks the frames run since the last check; returns their mismatches (also kept)."""
        batch, self._pending = self._pending, []
        wants = [expect(frame) for _, frame, _ in batch]
        moved = self._settle()
        got = [Got(retval, [_project(e) for e in self._events.pop(mark, [])], None) for mark, _, retval in batch]
        if self._events:
            raise RuntimeError(f"events of frames never run, by mark: {dict(self._events)}")
        if moved != dict(sum((Counter(want.counters) for want in wants), Counter())):
            got = [self._alone(frame) for _, frame, _ in batch]
        mismatches = [
            Mismatch(frame, want, result)
            for (_, frame, _), want, result in zip(batch, wants, got)
            if result.retval != TC_ACT_UNSPEC
            or result.events != want.events
            or result.counters not in (None, want.counters)
        ]
        self.mismatches += mismatches
        return mismatches

    def _settle(self) -> dict[str, int]:
        """Reads the perf buffer; the counters moved since the last settle."""
        self.program.drain()
        if self._lost:
            raise RuntimeError(f"the perf buffer lost {self._lost} samples: events are incomplete")
        before, self._counters = self._counters, self.program.counters()
        return _moved(before, self._counters)

    def _alone(self, frame: bytes) -> Got:
        # It ran once already, so the kernel takes it again; mark 0 is as good as any.
        retval = self.runner.run(frame, 0)
        counters = self._settle()
        return Got(retval, [_project(event) for event in self._events.pop(0, [])], counters)


# --- the long run: scripts/fuzz ----------------------------------------------------------------


def fuzz(fuzzer: Fuzzer, count: int, seed: int, mutants: int) -> list[Mismatch]:
    """Runs `count` cases: structured frames from hypothesis, each followed by `mutants` mutants.
    Returns the mismatches found."""
    rng = random.Random(seed)
    start = len(fuzzer.mismatches)

    def some_bases(frame: bytes) -> None:
        room = count - fuzzer.cases
        if room > 0:
            for case in cases(frame, rng, min(mutants, room - 1)):
                fuzzer.add(case)

    while fuzzer.cases < count:
        # A hypothesis run a round, seeded from `seed`, so that the whole run replays.
        bases = min(ROUND, -(-(count - fuzzer.cases) // (1 + mutants)))
        limits = settings(
            max_examples=bases,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        hypothesis_seed(rng.getrandbits(64))(limits(given(structured_frames())(some_bases)))()
    fuzzer.check()
    return fuzzer.mismatches[start:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000, help="frames to run (default 1000000)")
    parser.add_argument("--seed", type=int, help="makes the run repeatable (default: random, printed)")
    parser.add_argument(
        "--mutants", type=int, default=MUTANTS, help=f"byte mutants run after each structured frame (default {MUTANTS})"
    )
    parser.add_argument("--show", type=int, default=10, help="reproducers printed at most (default 10)")
    args = parser.parse_args(argv)
    seed = random.randrange(2**32) if args.seed is None else args.seed
    print(f"seed {seed}", flush=True)
    program = CaptureProgram()
    try:
        fuzzer = Fuzzer(program)
        start = time.monotonic()
        mismatches = fuzz(fuzzer, args.cases, seed, args.mutants)
        elapsed = time.monotonic() - start
        # What the cases reached, to judge them by: frames that all stop at Ethernet pass too.
        reached = {name: n for name, n in program.counters().items() if n}
    finally:
        program.close()
    for mismatch in mismatches[: args.show]:
        print(f"\nMISMATCH\n{mismatch}")
    print(f"\nkernel counters {reached}")
    print(
        f"cases {fuzzer.cases}  mismatches {len(mismatches)}  refused {fuzzer.refused}  "
        f"time {elapsed:.1f} s  cases/s {fuzzer.cases / elapsed:.0f}"
    )
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
