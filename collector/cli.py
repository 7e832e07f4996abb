"""The `addaddr` command line: a thin layer over the collector modules.

Data goes to stdout, messages to stderr as one line `addaddr: error: ...`. Exit codes: 0 when all went
well, 1 when some input could not be used (the rest is still printed), 2 for usage errors (click's).
"""

import json
from collections.abc import Sequence

import click

from collector.classify import Classification, classify

PROG = "addaddr"
EXIT_BAD_INPUT = 1

json_option = click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")


def report_error(message: str) -> None:
    click.echo(f"{PROG}: error: {message}", err=True)


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(map(len, column)) for column in zip(header, *rows)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in (header, *rows)
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="addaddr", prog_name=PROG)
def main() -> None:
    """Watch MPTCP ADD_ADDR announcements and classify the announced addresses."""


CLASSIFY_HEADER = ("ADDRESS", "FAMILY", "CLASS", "GLOBAL", "EMBEDDED IPV4", "EMBEDDED CLASS", "EMBEDDED GLOBAL")


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _classify_row(c: Classification) -> tuple[str, ...]:
    e = c.embedded_ipv4
    embedded = ("-", "-", "-") if e is None else (e.address, e.address_class, _yes_no(e.is_global))
    return (c.address, c.family, c.address_class, _yes_no(c.is_global), *embedded)


@main.command("classify")
@click.argument("addresses", nargs=-1, required=True, metavar="ADDRESS...")
@json_option
def classify_command(addresses: tuple[str, ...], as_json: bool) -> None:
    """Classify each ADDRESS by the IANA special-purpose registries.

    Addresses that do not parse are reported on stderr after the others are printed, and the exit
    status is then 1.
    """
    classified, errors = [], []
    for address in addresses:
        try:
            classified.append(classify(address))
        except ValueError as error:
            errors.append(str(error))

    if as_json:
        for c in classified:
            click.echo(json.dumps(c.as_json()))
    elif classified:
        click.echo(render_table(CLASSIFY_HEADER, [_classify_row(c) for c in classified]))

    for message in errors:
        report_error(message)
    if errors:
        click.get_current_context().exit(EXIT_BAD_INPUT)
