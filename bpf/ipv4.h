/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
#ifndef ADDADDR_IPV4_H
#define ADDADDR_IPV4_H
#include <uapi/linux/ip.h>
#include "cursor.h"

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

/* Returns the L4 protocol; the cursor is left after the header and its options (any IHL). */
static __always_inline int parse_iphdr(struct cursor *c, void *data_end, struct iphdr **iphdr)
{
	struct iphdr *iph = c->pos;
	int hdrsize;

	if ((void *)(iph + 1) > data_end)
		return PARSE_TRUNCATED;
	hdrsize = iph->ihl * 4;
	/* A version other than 4 is not IPv4 (RFC 791), whatever the EtherType: the stack drops it. */
	if (iph->version != 4 || hdrsize < sizeof(*iph) || c->pos + hdrsize > data_end)
		return PARSE_TRUNCATED;
	/* Only the first fragment carries the TCP header. */
	if (iph->frag_off & bpf_htons(IP_OFFSET))
		return PARSE_FRAGMENT;
	c->pos += hdrsize;
	*iphdr = iph;
	return iph->protocol;
}

#endif
