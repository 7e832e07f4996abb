# SPDX-License-Identifier: MIT
"""The kernel program run through BPF_PROG_TEST_RUN (root), and replays of captures through it."""
