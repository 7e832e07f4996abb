# SPDX-License-Identifier: MIT
"""collector.live.privileges without dropping anything: the capabilities a run needs for what it is asked,
the unit's bounding set holding exactly those, and the one line for an unknown user."""

import resource

import pytest

from collector.errors import CollectorError
from collector.live import privileges
from collector.live.privileges import DROP_CAPABILITIES, RUN_CAPABILITIES, drop_to, required_capabilities
from tests.support.systemd_unit import unit_capabilities


def test_unknown_user():
    with pytest.raises(CollectorError) as raised:
        drop_to("no-such-user-for-addaddr", "/nonexistent")
    assert str(raised.value) == "no user 'no-such-user-for-addaddr' (see: getent passwd)"


def test_required_capabilities(monkeypatch):
    monkeypatch.setattr(privileges.resource, "getrlimit", lambda _: (resource.RLIM_INFINITY,) * 2)
    assert required_capabilities() == ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"]
    assert required_capabilities(netns=True) == ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON", "CAP_SYS_ADMIN"]
    monkeypatch.setattr(privileges.resource, "getrlimit", lambda _: (8 << 20,) * 2)
    assert required_capabilities() == ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON", "CAP_IPC_LOCK"]
    assert required_capabilities(drop=True) == [
        "CAP_BPF",
        "CAP_NET_ADMIN",
        "CAP_PERFMON",
        "CAP_IPC_LOCK",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_CHOWN",
    ]


def test_unit_bounds_what_the_collector_needs():
    want = set(RUN_CAPABILITIES) | set(DROP_CAPABILITIES)
    assert unit_capabilities() == want, f"got {sorted(unit_capabilities())}; want {sorted(want)}"
