/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/* The records the kernel program shares with userspace: one event per MPTCP suboption of interest,
 * and the per-CPU counters. Userspace mirrors both in ctypes (collector/kernel/event.py, collector/kernel/program.py);
 * tests/kernel/test_prebuilt.py reads this file and fails when the two drift apart. */
#ifndef ADDADDR_EVENT_H
#define ADDADDR_EVENT_H
#include <uapi/linux/types.h>

/* TCP header at most 60 bytes, 20 fixed: the option area and so any one option fits in 40. */
#define MAX_TCP_OPTION_SPACE 40

struct mptcp_event {
	__u64 ktime_ns;		/* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 ifindex;
	__u32 mark;		/* skb->mark: `addaddr replay` tags each packet with its index */
	__u8 saddr[16];		/* network order; IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u16 sport;		/* host order */
	__u16 dport;
	__u32 seq;		/* host order */
	__u32 ack_seq;
	__u8 ip_version;	/* 4 or 6 */
	__u8 tcp_flags;		/* byte 13 of the TCP header: CWR ECE URG ACK PSH RST SYN FIN */
	__u8 option_len;	/* the option's own length byte, <= MAX_TCP_OPTION_SPACE */
	__u8 pad;
	__u8 option[MAX_TCP_OPTION_SPACE];	/* the whole option from its kind byte, as on the wire */
};

/* 16 subtypes fit the 4-bit MPTCP subtype field. */
#define MPTCP_SUBTYPES 16

struct capture_counters {
	__u64 packets;		/* every packet the hook saw */
	__u64 not_tcp;		/* ARP, UDP, ICMP, unknown EtherType or IPv6 next header */
	__u64 fragments;	/* IPv4 or IPv6 non-first fragments: no TCP header to read */
	__u64 unparsed;		/* headers truncated or inconsistent: bad IHL, doff, IPv6 chain */
	__u64 tcp;		/* TCP segments whose header was read */
	__u64 mptcp;		/* TCP segments carrying at least one MPTCP option */
	__u64 malformed_options;	/* option areas with a length 0/1 or an option past the header */
	__u64 events;		/* events handed to the perf buffer */
	__u64 event_errors;	/* perf buffer full or unavailable: lost in the kernel */
	__u64 subtypes[MPTCP_SUBTYPES];	/* MPTCP options seen, by subtype */
};

#endif
