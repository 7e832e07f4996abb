# SPDX-License-Identifier: MIT
"""The test suite: unit/ pure Python, kernel/ the program through BPF_PROG_TEST_RUN, live/ namespaces,
project/ the whole."""
