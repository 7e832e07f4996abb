# SPDX-License-Identifier: MIT
"""packet → event: the kernel program (bpf/), loaded, attached to interfaces or run on frames, and its events."""
