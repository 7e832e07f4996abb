# SPDX-License-Identifier: MIT
"""The study on Spark: study.sql over an export's dataset, the report's JSON on stdout.

    spark-submit collector/fleet/spark.py PATH [--since T] [--until T]     (or python -m collector.fleet.spark)

PATH is a local directory or any URI Spark reads (s3a://, hdfs://). The same statements as
`addaddr report --parquet` runs on DuckDB, so both give the JSON of `addaddr report` over the logs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

from collector.fleet.study import TABLES, figures, statements, window_microseconds
from collector.report.figures import parse_time


def spark_report(spark, dataset: str, since: float | None = None, until: float | None = None) -> dict:
    """The report's figures: study.sql on the `spark` session over the export at `dataset`, records in
    [since, until)."""
    low, high = window_microseconds(since, -math.inf), window_microseconds(until, math.inf)
    for table in TABLES:
        frame = spark.read.option("basePath", f"{dataset}/{table}").parquet(f"{dataset}/{table}")
        if low != -math.inf:
            frame = frame.where(f"unix_micros(time) >= {low}")
        if high != math.inf:
            frame = frame.where(f"unix_micros(time) < {high}")
        frame.createOrReplaceTempView(table)
    rows = {name: [row.asDict() for row in spark.sql(sql).collect()] for name, sql in statements().items()}
    return figures(rows)


def main(argv: list[str] | None = None) -> int:
    """The command line of the module's docstring: the report's JSON on stdout."""
    parser = argparse.ArgumentParser(prog="python -m collector.fleet.spark", description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="the --to of `addaddr export`")
    parser.add_argument("--since", type=parse_time, help="as `addaddr report --since`")
    parser.add_argument("--until", type=parse_time, help="as `addaddr report --until`")
    args = parser.parse_args(argv)
    # Timestamps come back to Python as naive local times: UTC everywhere keeps them the logs'.
    os.environ["TZ"] = "UTC"
    time.tzset()
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.appName("addaddr-study")
        .config("spark.sql.session.timeZone", "UTC")
        # A host named 2024 stays the string "2024", as DuckDB reads it.
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        print(json.dumps(spark_report(spark, args.dataset, args.since, args.until)))
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
