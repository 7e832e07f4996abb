# SPDX-License-Identifier: MIT
"""`addaddr replay`: capture files through the kernel program into the same logs as `run`."""
