# SPDX-License-Identifier: MIT
"""`addaddr classify`: addresses by the IANA special-purpose registries, as a table or JSON lines."""

import json

from collector.addresses.classify import Classification, classify
from collector.commands import console
from collector.report.table import render_table

HEADER = ("ADDRESS", "FAMILY", "CLASS", "GLOBAL", "EMBEDDED IPV4", "EMBEDDED CLASS", "EMBEDDED GLOBAL")


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _row(c: Classification) -> tuple[str, ...]:
    e = c.embedded_ipv4
    embedded = ("-", "-", "-") if e is None else (e.address, e.address_class, _yes_no(e.is_global))
    return (c.address, c.family, c.address_class, _yes_no(c.is_global), *embedded)


def classify_addresses(addresses: tuple[str, ...], as_json: bool) -> int:
    """Addresses that do not parse are named on stderr after the others are printed (exit status 1)."""
    classified, errors = [], []
    for address in addresses:
        try:
            classified.append(classify(address))
        except ValueError as problem:
            errors.append(str(problem))

    if as_json:
        for c in classified:
            console.data(json.dumps(c.as_json()))
    elif classified:
        console.data(render_table(HEADER, [_row(c) for c in classified]))

    for text in errors:
        console.error(text)
    return console.EXIT_BAD_INPUT if errors else console.EXIT_OK
