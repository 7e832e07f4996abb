/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
#ifndef ADDADDR_ETH_H
#define ADDADDR_ETH_H
#include <uapi/linux/if_ether.h>
#include "cursor.h"

/* 802.1ad outer tag then 802.1Q inner tag: the deepest stacking seen on servers. */
#define VLAN_MAX_DEPTH 2

struct vlan_hdr {
	__be16 h_vlan_TCI;
	__be16 h_vlan_encapsulated_proto;
};

static __always_inline int proto_is_vlan(__be16 proto)
{
	return proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD);
}

/* Returns the EtherType after any VLAN tags (network order); the cursor is left on the L3 header. */
static __always_inline int parse_ethhdr(struct cursor *c, void *data_end)
{
	struct ethhdr *eth = c->pos;
	struct vlan_hdr *vlh;
	__be16 proto;
	int i;

	if ((void *)(eth + 1) > data_end)
		return PARSE_TRUNCATED;
	proto = eth->h_proto;
	vlh = (void *)(eth + 1);
#pragma unroll
	for (i = 0; i < VLAN_MAX_DEPTH; i++) {
		if (!proto_is_vlan(proto))
			break;
		if ((void *)(vlh + 1) > data_end)
			return PARSE_TRUNCATED;
		proto = vlh->h_vlan_encapsulated_proto;
		vlh++;
	}
	c->pos = vlh;
	return proto;
}

#endif
