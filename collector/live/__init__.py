# SPDX-License-Identifier: MIT
"""`addaddr run`: the collector as a service on live interfaces, and what a long run needs."""
