// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/* TC ingress (tcx, or clsact in direct action) program: finds MPTCP options in TCP segments and hands
 * the ones that announce addresses or make and join connections to userspace, byte for byte. It never
 * interprets an option beyond its subtype (decoding lives in Python, in one place) and returns
 * TC_ACT_UNSPEC on every path, which tcx calls TCX_NEXT (both -1): the packet goes on to the next
 * program or filter and to the stack untouched, whichever hook we are on.
 *
 * Two entry points share the code and the maps: addaddr_ingress for devices with an Ethernet header,
 * addaddr_raw_ip for those without one (tun, WireGuard, ipip/sit/gre tunnels, raw-IP modems), whose
 * packets start at the IP header; userspace attaches the one that fits the device. */
#include "event.h"
#include "compat.h"
#include <uapi/linux/pkt_cls.h>
#include <uapi/linux/if_ether.h>
#include "eth.h"
#include "ipv4.h"
#include "ipv6.h"
#include "tcp.h"
#include "tcp_options.h"
#include "mptcp.h"

#ifndef offsetof
#define offsetof(type, member) __builtin_offsetof(type, member)
#endif

/* Where the segment's headers start, as offsets from the packet's first byte: scalars, unlike packet
 * pointers, do not multiply the verifier's states across the option loop. */
struct segment {
	__u32 ip_off;
	__u32 tcp_off;
	__u8 ip_version;
	__u8 tcp_flags;
};

/* Byte offsets into the headers, for the lazy copy into an event. */
#define IPV4_ADDRS_OFF offsetof(struct iphdr, saddr)
#define IPV6_ADDRS_OFF offsetof(struct ipv6hdr, saddr)
#define TCP_FLAGS_OFF 13
#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_RST 0x04

/* Only segments with an MPTCP option of interest pay for this. The headers were checked against the
 * packet already, so the copies cannot fail on a packet that got this far. */
static __always_inline int fill_segment(struct mptcp_event *ev, struct __sk_buff *skb,
					const struct segment *seg)
{
	struct tcphdr th;
	int err;

	__builtin_memset(ev, 0, sizeof(*ev));
	ev->ktime_ns = bpf_ktime_get_ns();
	ev->ifindex = skb->ifindex;
	ev->mark = skb->mark;
	ev->ip_version = seg->ip_version;
	/* saddr and daddr are adjacent in both IP headers, as in the event. */
	if (seg->ip_version == 4) {
		err = bpf_skb_load_bytes(skb, seg->ip_off + IPV4_ADDRS_OFF, ev->saddr, 4) |
		      bpf_skb_load_bytes(skb, seg->ip_off + IPV4_ADDRS_OFF + 4, ev->daddr, 4);
	} else {
		err = bpf_skb_load_bytes(skb, seg->ip_off + IPV6_ADDRS_OFF, ev->saddr, 32);
	}
	err |= bpf_skb_load_bytes(skb, seg->tcp_off, &th, sizeof(th));
	ev->sport = bpf_ntohs(th.source);
	ev->dport = bpf_ntohs(th.dest);
	ev->seq = bpf_ntohl(th.seq);
	ev->ack_seq = bpf_ntohl(th.ack_seq);
	ev->tcp_flags = seg->tcp_flags;
	return err;
}

/* Copies len bytes, 1..MAX_TCP_OPTION_SPACE, from offset on; -1 when len is outside that range. The
 * bound is for the verifier (callers pass lengths already checked against the header), and it is
 * spelled so that every verifier tracks it on the register passed to the helper:
 * - older ones (Debian 12's 6.1) learn a bound only on the register compared, not on copies of it
 *   ("R4 unbounded"), and learn no minimum from len != 0 ("invalid zero-sized read"): so len - 1 is
 *   compared, in the register then passed on, with 1 added back after the check;
 * - the check and the call stay in one function, with no zero test of the size after it: a helper
 *   returning the size or 0 made clang test len + 1 against len (its overflow check), which 6.12
 *   refused ("R4 invalid zero-sized read: u64=[0,-1]").
 * The empty asm statements keep clang from moving the - 1 past the check or reusing the unchecked len. */
static __always_inline long load_bounded(struct __sk_buff *skb, __u32 offset, void *to, __u64 len)
{
	len -= 1;
	asm volatile("" : "+r"(len));
	if (len >= MAX_TCP_OPTION_SPACE)
		return -1;
	asm volatile("" : "+r"(len));
	return bpf_skb_load_bytes(skb, offset, to, len + 1);
}

/* len >= MPTCP_OPTION_MIN_LEN and the option lies inside the checked header. */
static __always_inline int copy_option(struct __sk_buff *skb, struct mptcp_event *ev, __u32 offset,
				       __u8 len)
{
	ev->option_len = len;
	return load_bounded(skb, offset, ev->option, len);
}

/* What Linux, and most stacks, put on every established segment: NOP, NOP, timestamps (RFC 7323
 * appendix A). An option area of exactly that carries no MPTCP option, and is told by one read. */
#define TCPOLEN_TSTAMP_ALIGNED 12
#define TCPOPT_NOP_NOP_TSTAMP 0x0101080a

/* Reads the headers up to TCP: returns IPPROTO_TCP with *seg, the option area's size and its first
 * four bytes (0 when shorter) set, another protocol, or a parse_error. Without an Ethernet header the
 * packet starts at the IP header, and skb->protocol (what the stack will go by) names its family. */
static __always_inline int parse_segment(struct __sk_buff *skb, int ethernet, struct segment *seg,
					 __u32 *opt_size, __u32 *opt_head)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct cursor c = { .pos = data };
	struct iphdr *iph;
	struct ipv6hdr *ip6h;
	struct tcphdr *th;
	__u32 ip_len = 0;	/* 0: no usable length (BIG TCP aggregates leave it 0) */
	int proto, hdrsize;

	if (ethernet) {
		proto = parse_ethhdr(&c, data_end);
		if (proto < 0)
			return proto;
	} else {
		proto = skb->protocol;
	}
	seg->ip_off = c.pos - data;
	if (proto == bpf_htons(ETH_P_IP)) {
		seg->ip_version = 4;
		proto = parse_iphdr(&c, data_end, &iph);
		if (proto >= 0)
			ip_len = bpf_ntohs(iph->tot_len);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		seg->ip_version = 6;
		proto = parse_ipv6hdr(&c, data_end, &ip6h);
		if (proto >= 0 && ip6h->payload_len)
			ip_len = sizeof(*ip6h) + bpf_ntohs(ip6h->payload_len);
	} else {
		return IPPROTO_RAW;	/* neither IPv4 nor IPv6 */
	}
	if (proto != IPPROTO_TCP)
		return proto;
	seg->tcp_off = c.pos - data;
	hdrsize = parse_tcphdr(&c, data_end, &th);
	if (hdrsize < 0)
		return hdrsize;
	/* Bytes past the IP length are link padding or trailers, never TCP options: the stack would
	 * drop a segment whose header claims them. */
	if (ip_len && seg->tcp_off + hdrsize > seg->ip_off + ip_len)
		return PARSE_TRUNCATED;
	seg->tcp_flags = ((__u8 *)th)[TCP_FLAGS_OFF];
	*opt_size = hdrsize - sizeof(*th);
	/* Within the header, which lies within the packet; the check is for the verifier. */
	if (*opt_size >= sizeof(*opt_head) && (void *)(th + 1) + sizeof(*opt_head) <= data_end)
		*opt_head = bpf_ntohl(*(__be32 *)(th + 1));
	return IPPROTO_TCP;
}

/* `ethernet` is a constant in each entry point below: the compiler keeps one parser per program. */
static __always_inline int capture(struct __sk_buff *skb, int ethernet)
{
	struct capture_counters *count;
	struct segment seg = {};
	struct tcp_option_walk walk;
	struct mptcp_event ev;
	int ev_ready = 0, mptcp_seen = 0;
	int proto, i, err, zero = 0;
	__u32 opt_off = 0, opts_off, opt_size = 0, opt_head = 0;
	__u8 len = 0, subtype;

#ifdef BCC_SEC
	count = counters.lookup(&zero);
#else
	count = bpf_map_lookup_elem(&counters, &zero);
#endif
	if (!count)
		return TC_ACT_UNSPEC;
	count->packets++;

	proto = parse_segment(skb, ethernet, &seg, &opt_size, &opt_head);
	if (proto == PARSE_TRUNCATED) {
		count->unparsed++;
		return TC_ACT_UNSPEC;
	}
	if (proto == PARSE_FRAGMENT) {
		count->fragments++;
		return TC_ACT_UNSPEC;
	}
	if (proto != IPPROTO_TCP) {
		count->not_tcp++;
		return TC_ACT_UNSPEC;
	}
	count->tcp++;
	if (opt_size == 0 || (opt_size == TCPOLEN_TSTAMP_ALIGNED && opt_head == TCPOPT_NOP_NOP_TSTAMP))
		return TC_ACT_UNSPEC;

	opts_off = seg.tcp_off + sizeof(struct tcphdr);
	/* The walk may read any byte of the area: a zeroed tail keeps the verifier content. */
	__builtin_memset(walk.area, 0, sizeof(walk.area));
	if (load_bounded(skb, opts_off, walk.area, opt_size) < 0) {
		count->unparsed++;
		return TC_ACT_UNSPEC;
	}
	walk.size = opt_size;
	walk.off = 0;

	for (i = 0; i < TCP_OPTION_MAX_STEPS; i++) {
		enum tcp_option_step step = tcp_option_step(&walk, &opt_off, &len);

		if (step == OPTION_NEXT)
			continue;
		if (step == OPTION_END)
			break;
		if (step == OPTION_MALFORMED) {
			count->malformed_options++;
			break;
		}
		/* OPTION_MPTCP */
		mptcp_seen = 1;
		if (len < MPTCP_OPTION_MIN_LEN) {
			count->malformed_options++;
			continue;
		}
		subtype = walk.area[(opt_off + 2) & TCP_OPTION_AREA_MASK] >> 4;
		count->subtypes[subtype & (MPTCP_SUBTYPES - 1)]++;
		/* A subflow's FIN or RST usually carries only DSS: its first MPTCP option goes up
		 * anyway, so userspace sees subflows end. */
		if (!(MPTCP_EVENT_SUBTYPES & (1 << subtype)) &&
		    !((seg.tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST)) && !ev_ready))
			continue;
		if (!ev_ready) {
			if (fill_segment(&ev, skb, &seg) < 0) {
				count->unparsed++;
				break;
			}
			ev_ready = 1;
		}
		if (copy_option(skb, &ev, opts_off + opt_off, len) < 0) {
			count->unparsed++;
			continue;
		}
#ifdef BCC_SEC
		err = events.perf_submit(skb, &ev, sizeof(ev));
#else
		err = bpf_perf_event_output(skb, &events, BPF_F_CURRENT_CPU, &ev, sizeof(ev));
#endif
		if (err < 0)
			count->event_errors++;
		else
			count->events++;
	}
	if (mptcp_seen)
		count->mptcp++;
	return TC_ACT_UNSPEC;
}

ADDADDR_PROGRAM int addaddr_ingress(struct __sk_buff *skb)
{
	return capture(skb, 1);
}

ADDADDR_PROGRAM int addaddr_raw_ip(struct __sk_buff *skb)
{
	return capture(skb, 0);
}
