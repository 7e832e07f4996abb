/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/* The one place where the two builds of addaddr.c differ: bcc (the development path, compiled at
 * load time with bcc's helpers.h already included) and clang (the shipped object, built by
 * scripts/build-bpf with no kernel headers, only uapi ones). Everything below declares maps, helpers,
 * the program's section and the license; the program itself is the same code for both.
 *
 * One set of declarations cannot serve both, as tried with bcc 0.26 and libbpf 1.1 (Debian 12's):
 * - maps: bcc makes a map only of a variable in a "maps/<type>" section, as its BPF_* macros declare
 *   them; for a libbpf-style `SEC(".maps")` struct it makes none, loads `&counters` as 0, and the
 *   verifier refuses it ("R1 type=scalar expected=map_ptr"). libbpf reads only ".maps": it skips a
 *   "maps/percpu_array" section and fails on its use ("bad map relo against 'counters'").
 * - helpers: bcc's helpers.h declares them all, with other prototypes: declaring ours too is
 *   "redefinition of 'bpf_skb_load_bytes' with a different type". helpers.h lives inside libbcc and
 *   includes kernel headers, so the clang build cannot take bcc's instead.
 * - map calls: bcc hands a map to a helper only through its `map.call()` syntax, rewritten where the
 *   main file writes it: a plain bpf_map_lookup_elem(&counters, ...) is the same refusal as above,
 *   in a macro "cannot use map function inside a macro", in a header left as an indirect call the
 *   kernel refuses ("unknown opcode 8d"). So the two map calls are spelled per build in addaddr.c,
 *   under `#ifdef BCC_SEC`. */
#ifndef ADDADDR_COMPAT_H
#define ADDADDR_COMPAT_H

#ifdef BCC_SEC	/* bcc's helpers.h: its map macros and rewriter */

BPF_PERF_OUTPUT(events);
BPF_PERCPU_ARRAY(counters, struct capture_counters, 1);
/* bcc names the function when loading it, and puts it in a section of its own. */
#define ADDADDR_PROGRAM
/* bcc's footer declares the license from this (GPL when unset): the same as the clang build's. */
#define BPF_LICENSE Dual MIT/GPL

#else	/* clang -target bpfel: libbpf-style maps, helpers by number, as bpf_helpers.h declares them */

#include <uapi/linux/bpf.h>

#define SEC(name) __attribute__((section(name), used))
/* uapi's linux/stddef.h defines it as a plain __inline__, which clang may decline: bpf_helpers.h's. */
#undef __always_inline
#define __always_inline inline __attribute__((always_inline))

#define bpf_htons(x) __builtin_bswap16(x)
#define bpf_ntohs(x) __builtin_bswap16(x)
#define bpf_ntohl(x) __builtin_bswap32(x)

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)BPF_FUNC_ktime_get_ns;
static long (*bpf_skb_load_bytes)(const void *skb, __u32 offset, void *to, __u32 len) =
	(void *)BPF_FUNC_skb_load_bytes;
static long (*bpf_perf_event_output)(void *ctx, void *map, __u64 flags, void *data, __u64 size) =
	(void *)BPF_FUNC_perf_event_output;

/* BTF-defined maps: the types travel in the object's BTF, and libbpf sizes the perf event array
 * to the host's CPUs. */
struct {
	int (*type)[BPF_MAP_TYPE_PERF_EVENT_ARRAY];
	int (*key_size)[sizeof(int)];
	int (*value_size)[sizeof(__u32)];
} events SEC(".maps");

struct {
	int (*type)[BPF_MAP_TYPE_PERCPU_ARRAY];
	int (*max_entries)[1];
	__u32 *key;
	struct capture_counters *value;
} counters SEC(".maps");

/* perf_event_output is for GPL-compatible programs only: these sources are MIT or GPL-2.0 (their
 * SPDX lines), which the kernel spells "Dual MIT/GPL". */
char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define ADDADDR_PROGRAM SEC("tc")

#endif

#endif
