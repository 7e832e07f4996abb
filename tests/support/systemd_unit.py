# SPDX-License-Identifier: MIT
"""The systemd unit deploy/addaddr.service, read as the tests need it: a key's value, its bounding set."""

import re

from tests.support.paths import REPO

UNIT = REPO / "deploy" / "addaddr.service"


def unit_value(key: str) -> str:
    (value,) = re.findall(rf"^{key}=(.*)$", UNIT.read_text(), re.MULTILINE)
    return value


def unit_capabilities() -> set[str]:
    return set(unit_value("CapabilityBoundingSet").split())
