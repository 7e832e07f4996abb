# SPDX-License-Identifier: MIT
"""A scrape of /metrics read back with prometheus_client's own parsers, in either format it is served in."""

from prometheus_client import parser as text_parser
from prometheus_client.openmetrics import parser as openmetrics_parser

PLAIN = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def parse(text: str, openmetrics: bool = False) -> tuple[dict, dict[str, str]]:
    """(samples as (name, labels) -> value, sample name -> family type) of a scrape."""
    parser = openmetrics_parser if openmetrics else text_parser
    samples, types = {}, {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.name, tuple(sorted(sample.labels.items()))
            assert key not in samples, f"{key} twice"
            samples[key] = sample.value
            types[sample.name] = family.type
    return samples, types
