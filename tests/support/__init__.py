# SPDX-License-Identifier: MIT
"""What tests, tools/bench and tools/dashboard build with: frames, captures, logs, waits, running collectors."""
