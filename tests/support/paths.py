# SPDX-License-Identifier: MIT
"""Where the tests find the checkout, the public captures beside it, and the command under test."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# ../shared/pcaps beside the checkout: public captures with their decoders' outputs (read-only). Tests
# that use them skip, saying why, where it is absent.
PUBLIC_CAPTURES = REPO.parent / "shared" / "pcaps" / "tcpdump"
# The command as a user runs it: the one installed beside the interpreter running the tests.
ADDADDR = str(Path(sys.executable).with_name("addaddr"))
