/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
#ifndef ADDADDR_IPV6_H
#define ADDADDR_IPV6_H
#include <uapi/linux/in.h>
#include <uapi/linux/ipv6.h>
#include "cursor.h"

/* RFC 8200 recommends each extension header at most once (destination options twice):
 * hop-by-hop, destination, routing, fragment, destination, plus one to spare. */
#define IPV6_EXT_MAX_CHAIN 6

#define IP6_OFFSET 0xfff8

struct ipv6_ext_hdr {
	__u8 nexthdr;
	__u8 hdrlen;		/* in 8-byte units, not counting the first 8 */
};

struct ipv6_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 identification;
};

/* Returns the upper-layer protocol after the fixed header and up to IPV6_EXT_MAX_CHAIN extension
 * headers; the cursor is left on the upper-layer header. */
static __always_inline int parse_ipv6hdr(struct cursor *c, void *data_end, struct ipv6hdr **ip6hdr)
{
	struct ipv6hdr *ip6h = c->pos;
	struct ipv6_ext_hdr *ext;
	struct ipv6_frag_hdr *frag;
	__u8 nexthdr;
	int i;

	/* A version other than 6 is not IPv6 (RFC 8200), whatever the EtherType: the stack drops it. */
	if ((void *)(ip6h + 1) > data_end || ip6h->version != 6)
		return PARSE_TRUNCATED;
	nexthdr = ip6h->nexthdr;
	c->pos = ip6h + 1;
	*ip6hdr = ip6h;

	for (i = 0; i <= IPV6_EXT_MAX_CHAIN; i++) {
		switch (nexthdr) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS:
			ext = c->pos;
			if ((void *)(ext + 1) > data_end)
				return PARSE_TRUNCATED;
			nexthdr = ext->nexthdr;
			c->pos += (ext->hdrlen + 1) * 8;
			/* The next parser would catch a header past the end, but not before UDP, say. */
			if (c->pos > data_end)
				return PARSE_TRUNCATED;
			break;
		case IPPROTO_FRAGMENT:
			frag = c->pos;
			if ((void *)(frag + 1) > data_end)
				return PARSE_TRUNCATED;
			if (frag->frag_off & bpf_htons(IP6_OFFSET))
				return PARSE_FRAGMENT;
			nexthdr = frag->nexthdr;
			c->pos = frag + 1;
			break;
		default:
			return nexthdr;
		}
	}
	/* Longer chains are not worth the verifier's time: treat as unparsable. */
	return PARSE_TRUNCATED;
}

#endif
