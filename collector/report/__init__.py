# SPDX-License-Identifier: MIT
"""log → report: the study's figures over logs, and their renderings for people and programs."""
