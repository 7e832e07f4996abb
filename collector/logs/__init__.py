# SPDX-License-Identifier: MIT
"""record → log: framed, checksummed files; written, read past damage, followed, repaired."""
