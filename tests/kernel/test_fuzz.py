# SPDX-License-Identifier: MIT
"""Differential fuzzing of the kernel program against the reference parser, short form (a few
thousand frames; `scripts/fuzz` runs millions): every frame must emit exactly the events the
reference names, move exactly its counters, and return TC_ACT_UNSPEC."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.kernel.program import CaptureProgram
from tests.support import fuzzing
from tests.support.frames import (
    ETH_P_IP,
    ETH_P_IPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    ether,
    hop_by_hop,
    ipv4,
    ipv6,
    tcp,
    udp,
)
from tests.support.reference_parser import Verdict, expect

# An ADD_ADDR v1 echo of 192.0.2.7, id 7: the option of interest in the frames below.
ADD_ADDR = bytes.fromhex("1e 08 31 07 c0000207")


@pytest.fixture(scope="module")
def fuzzer(loaded_program):
    """A Fuzzer on a program of its own: it reads the perf buffer by mark, a whole batch at a time.
    `loaded_program` brings its skip (root)."""
    program = CaptureProgram()
    yield fuzzing.Fuzzer(program)
    program.close()


def report(mismatches) -> str:
    return "\n\n".join(str(mismatch) for mismatch in mismatches)


@pytest.mark.slow
@settings(max_examples=250, deadline=None)
@given(frame=fuzzing.structured_frames(), seed=st.integers(0, 2**32 - 1))
def test_structured_frame_and_its_mutants(fuzzer, frame, seed):
    for case in fuzzing.cases(frame, random.Random(seed), 15):
        fuzzer.add(case)
    mismatches = fuzzer.check()
    assert not mismatches, report(mismatches)


def test_long_form(fuzzer):
    """scripts/fuzz's loop: whole batches, whose events find their frames by mark."""
    mismatches = fuzzing.fuzz(fuzzer, 2 * fuzzing.BATCH, seed=7, mutants=fuzzing.MUTANTS)
    assert not mismatches, report(mismatches)


def test_a_disagreement_is_reported_with_its_frame(fuzzer, monkeypatch):
    """A fuzzer that cannot fail proves nothing: a reference blind to options must show, on the one
    frame that has some, with what the kernel did with that frame alone."""
    plain, announcing = (
        ether(ETH_P_IP, ipv4("192.0.2.1", "192.0.2.2", IPPROTO_TCP, tcp(1, 2, options=options)))
        for options in (b"", ADD_ADDR)
    )
    monkeypatch.setattr(fuzzing, "expect", lambda frame: Verdict([], {"packets": 1, "tcp": 1}))
    for frame in (plain, announcing, plain):
        fuzzer.add(frame)
    mismatches = fuzzer.check()
    assert [m.frame for m in mismatches] == [announcing], report(mismatches)
    got, truth = mismatches[0].got, expect(announcing)
    assert (got.events, got.counters) == (truth.events, truth.counters), report(mismatches)


# Frames on which the fuzzer found the program and the reference at odds, now agreeing: a version
# nibble contradicting the EtherType (RFC 791, RFC 8200), and an IPv6 extension header running past
# the frame before a protocol other than TCP (unparsed, not not_tcp).
V4_PACKET = ipv4("192.0.2.1", "192.0.2.2", IPPROTO_TCP, tcp(1, 2, options=ADD_ADDR))
V6_PACKET = ipv6("2001:db8::1", "2001:db8::2", IPPROTO_TCP, tcp(1, 2, options=ADD_ADDR))
UNPARSED = {"packets": 1, "unparsed": 1}
FORMER_DISAGREEMENTS = [
    pytest.param(ether(ETH_P_IP, bytes([0x65]) + V4_PACKET[1:]), id="ipv4-version-6"),
    pytest.param(ether(ETH_P_IPV6, bytes([0x40]) + V6_PACKET[1:]), id="ipv6-version-4"),
    pytest.param(ether(ETH_P_IPV6, V4_PACKET), id="ipv4-packet-under-ipv6-ethertype"),
    pytest.param(
        ether(ETH_P_IPV6, ipv6("2001:db8::1", "2001:db8::2", IPPROTO_UDP, udp(1, 2), ext=[hop_by_hop(16)]))[
            : 14 + 40 + 8
        ],
        id="ipv6-hop-by-hop-cut-before-udp",
    ),
]


@pytest.mark.parametrize("frame", FORMER_DISAGREEMENTS)
def test_former_disagreement(kernel, frame):
    want = expect(frame)
    assert want == Verdict([], UNPARSED), f"the reference says {want}"
    result = kernel.run(frame)
    assert (result.retval, result.events) == (-1, [])
    assert {name: n for name, n in result.counters_delta.items() if n} == UNPARSED
