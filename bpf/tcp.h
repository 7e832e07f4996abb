/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
#ifndef ADDADDR_TCP_H
#define ADDADDR_TCP_H
#include <uapi/linux/tcp.h>
#include "cursor.h"

/* Returns the header length in bytes (doff * 4, options included), checked to lie within the packet;
 * the cursor is left on the first option byte. */
static __always_inline int parse_tcphdr(struct cursor *c, void *data_end, struct tcphdr **tcphdr)
{
	struct tcphdr *th = c->pos;
	int hdrsize;

	if ((void *)(th + 1) > data_end)
		return PARSE_TRUNCATED;
	hdrsize = th->doff * 4;
	if (hdrsize < sizeof(*th) || c->pos + hdrsize > data_end)
		return PARSE_TRUNCATED;
	c->pos = th + 1;
	*tcphdr = th;
	return hdrsize;
}

#endif
