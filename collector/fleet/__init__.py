# SPDX-License-Identifier: MIT
"""Many servers' logs as one Parquet dataset, and the study's SQL over it on DuckDB or Spark."""
