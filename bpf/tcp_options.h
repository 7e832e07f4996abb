/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/* The TCP option walk, as one step function called from a bounded loop (after Katran's
 * pckt_parsing.h and the kernel selftest test_parse_tcp_hdr_opt.c). It walks a stack copy of the
 * option area: with no packet pointer live in the loop, the verifier checks the loop once rather
 * than once per path through the Ethernet, VLAN and IPv6 extension headers before it. */
#ifndef ADDADDR_TCP_OPTIONS_H
#define ADDADDR_TCP_OPTIONS_H
#include "event.h"

#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_MPTCP 30

/* Every option takes at least one byte of the option space. */
#define TCP_OPTION_MAX_STEPS MAX_TCP_OPTION_SPACE
/* The stack copy is this big, and offsets into it are masked to it (a no-op: the walk checks them
 * against the area's size, at most 40). */
#define TCP_OPTION_AREA 64
#define TCP_OPTION_AREA_MASK (TCP_OPTION_AREA - 1)

enum tcp_option_step {
	OPTION_NEXT,		/* an option was skipped; call again */
	OPTION_MPTCP,		/* an MPTCP option: *found_off and *found_len are set */
	OPTION_END,		/* EOL or the end of the header */
	OPTION_MALFORMED,	/* length 0 or 1, or an option running past the header */
};

struct tcp_option_walk {
	__u8 area[TCP_OPTION_AREA];	/* the options, from right after the fixed TCP header */
	__u32 size;			/* bytes of options: doff * 4 - 20 */
	__u32 off;			/* the next option's kind byte */
};

static __always_inline enum tcp_option_step
tcp_option_step(struct tcp_option_walk *w, __u32 *found_off, __u8 *found_len)
{
	__u32 off = w->off;
	__u8 kind, len;

	if (off >= w->size)
		return OPTION_END;
	kind = w->area[off & TCP_OPTION_AREA_MASK];
	if (kind == TCPOPT_EOL)
		return OPTION_END;
	if (kind == TCPOPT_NOP) {
		w->off = (off + 1) & TCP_OPTION_AREA_MASK;
		return OPTION_NEXT;
	}
	if (off + 2 > w->size)
		return OPTION_MALFORMED;
	len = w->area[(off + 1) & TCP_OPTION_AREA_MASK];
	if (len < 2 || off + len > w->size)
		return OPTION_MALFORMED;
	w->off = (off + len) & TCP_OPTION_AREA_MASK;
	if (kind != TCPOPT_MPTCP)
		return OPTION_NEXT;
	*found_off = off;
	*found_len = len;
	return OPTION_MPTCP;
}

#endif
