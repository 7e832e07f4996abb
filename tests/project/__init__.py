# SPDX-License-Identifier: MIT
"""The project as a whole: setup, the layout, the bench, the dashboard."""
