/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
#ifndef ADDADDR_MPTCP_H
#define ADDADDR_MPTCP_H

/* Subtypes as net/mptcp/protocol.h names them. */
#define MPTCPOPT_MP_CAPABLE 0
#define MPTCPOPT_MP_JOIN 1
#define MPTCPOPT_DSS 2
#define MPTCPOPT_ADD_ADDR 3
#define MPTCPOPT_RM_ADDR 4
#define MPTCPOPT_MP_PRIO 5
#define MPTCPOPT_MP_FAIL 6
#define MPTCPOPT_MP_FASTCLOSE 7
#define MPTCPOPT_RST 8

/* Kind, length and the subtype nibble: the least an MPTCP option must hold. */
#define MPTCP_OPTION_MIN_LEN 3

/* Subtypes worth an event: what announces addresses, and what counts and joins connections.
 * DSS and MP_PRIO ride on most segments and are only counted. */
#define MPTCP_EVENT_SUBTYPES ((1 << MPTCPOPT_MP_CAPABLE) | (1 << MPTCPOPT_MP_JOIN) | \
			      (1 << MPTCPOPT_ADD_ADDR) | (1 << MPTCPOPT_RM_ADDR) | \
			      (1 << MPTCPOPT_MP_FASTCLOSE) | (1 << MPTCPOPT_RST))

#endif
