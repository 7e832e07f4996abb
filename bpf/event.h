/* The records the kernel program shares with userspace: one event per MPTCP suboption of interest,
 * and the per-CPU counters. Userspace reads both through the ctypes that bcc derives from these
 * structs, which knows bcc's u64/u32/u16/u8 names and not the kernel's __u64 family. */
#ifndef ADDADDR_EVENT_H
#define ADDADDR_EVENT_H

/* TCP header at most 60 bytes, 20 fixed: the option area and so any one option fits in 40. */
#define MAX_TCP_OPTION_SPACE 40

struct mptcp_event {
	u64 ktime_ns;		/* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	u32 ifindex;
	u32 mark;		/* skb->mark: `addaddr replay` tags each packet with its index */
	u8 saddr[16];		/* network order; IPv4 in the first 4 bytes */
	u8 daddr[16];
	u16 sport;		/* host order */
	u16 dport;
	u32 seq;		/* host order */
	u32 ack_seq;
	u8 ip_version;	/* 4 or 6 */
	u8 tcp_flags;		/* byte 13 of the TCP header: CWR ECE URG ACK PSH RST SYN FIN */
	u8 option_len;	/* the option's own length byte, <= MAX_TCP_OPTION_SPACE */
	u8 pad;
	u8 option[MAX_TCP_OPTION_SPACE];	/* the whole option from its kind byte, as on the wire */
};

/* 16 subtypes fit the 4-bit MPTCP subtype field. */
#define MPTCP_SUBTYPES 16

struct capture_counters {
	u64 packets;		/* every packet the hook saw */
	u64 not_tcp;		/* ARP, UDP, ICMP, unknown EtherType or IPv6 next header */
	u64 fragments;	/* IPv4 or IPv6 non-first fragments: no TCP header to read */
	u64 unparsed;		/* headers truncated or inconsistent: bad IHL, doff, IPv6 chain */
	u64 tcp;		/* TCP segments whose header was read */
	u64 mptcp;		/* TCP segments carrying at least one MPTCP option */
	u64 malformed_options;	/* option areas with a length 0/1 or an option past the header */
	u64 events;		/* events handed to the perf buffer */
	u64 event_errors;	/* perf buffer full or unavailable: lost in the kernel */
	u64 subtypes[MPTCP_SUBTYPES];	/* MPTCP options seen, by subtype */
};

#endif
