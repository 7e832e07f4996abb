# SPDX-License-Identifier: MIT
"""What an address is: the IANA special-purpose classes, the classifier, Crypto-PAn anonymization."""
