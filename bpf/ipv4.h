#ifndef ADDADDR_IPV4_H
#define ADDADDR_IPV4_H
#include <linux/ip.h>
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
	if (hdrsize < sizeof(*iph) || c->pos + hdrsize > data_end)
		return PARSE_TRUNCATED;
	/* Only the first fragment carries the TCP header. */
	if (iph->frag_off & bpf_htons(IP_OFFSET))
		return PARSE_FRAGMENT;
	c->pos += hdrsize;
	*iphdr = iph;
	return iph->protocol;
}

#endif
