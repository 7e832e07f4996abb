# SPDX-License-Identifier: MIT
"""One module per `addaddr` command, between the command line and the library.

cli.py parses options with click and calls these; they call the library and print: data on stdout,
messages on stderr through `console`. Nothing here imports click or cli, and nothing in the library
imports from here.
"""
