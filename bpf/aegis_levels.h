/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The Aegis backbone's decisions that are pure arithmetic: which level a task belongs to, the
 * exponential waiting-time bound, the state quantization the Q-network sees and the delta
 * gate's distance. Bit-exact mirror of scheduler/src/aegis/{levels,qnet,gate}.rs; the host
 * test runs it through BPF_PROG_TEST_RUN (aegis_qnet_test.bpf.c), the scheduler runs it in
 * the kernel (aegis.bpf.c).
 */
#ifndef AEGIS_LEVELS_H
#define AEGIS_LEVELS_H

#include "aegis_intf.h"
#include "aegis_qnet.h"

/* The unquantized state, as scheduler/src/aegis/qnet.rs::State. */
struct aegis_raw_state {
	__u64 production_rate_per_s;
	__u32 ring_fill_pct;
	__u32 collector_cpu_pct;
	__u32 runnable[AEGIS_NR_LEVELS];
	__u32 oldest_wait_us[2];
};

static __always_inline __u32 aegis_level_of(int provenance, __u32 recent_syscalls,
					    __u32 producer_syscalls_per_window)
{
	if (provenance)
		return AEGIS_LEVEL_PROVENANCE;
	if (recent_syscalls > producer_syscalls_per_window)
		return AEGIS_LEVEL_PRODUCER;
	return AEGIS_LEVEL_ORDINARY;
}

static __always_inline __u64 aegis_wait_bound_ns(__u32 level, __u64 base_wait_ns)
{
	return base_wait_ns << (level & 3);
}

/* Bits needed for v (0 for 0) times 8, saturated to a byte: a log2 scale. */
static __always_inline __u8 aegis_log2_byte(__u64 v)
{
	__u32 bits;

	if (!v)
		return 0;
	bits = 1;
	if (v >> 32) {
		bits += 32;
		v >>= 32;
	}
	if (v >> 16) {
		bits += 16;
		v >>= 16;
	}
	if (v >> 8) {
		bits += 8;
		v >>= 8;
	}
	if (v >> 4) {
		bits += 4;
		v >>= 4;
	}
	if (v >> 2) {
		bits += 2;
		v >>= 2;
	}
	if (v >> 1)
		bits += 1;
	bits *= 8;
	return bits > 255 ? 255 : bits;
}

static __always_inline __u8 aegis_pct_byte(__u32 pct)
{
	if (pct > 100)
		pct = 100;
	return pct * 255 / 100;
}

static __always_inline __u8 aegis_count_byte(__u32 n)
{
	return n > 255 ? 255 : n;
}

static __always_inline void aegis_quantize(const struct aegis_raw_state *s, __u8 *out)
{
	__u64 rate = s->production_rate_per_s;

	if (rate > 0xffffffffULL)
		rate = 0xffffffffULL;
	out[0] = aegis_log2_byte(rate);
	out[1] = aegis_pct_byte(s->ring_fill_pct);
	out[2] = aegis_pct_byte(s->collector_cpu_pct);
	out[3] = aegis_count_byte(s->runnable[0]);
	out[4] = aegis_count_byte(s->runnable[1]);
	out[5] = aegis_count_byte(s->runnable[2]);
	out[6] = aegis_log2_byte(s->oldest_wait_us[0]);
	out[7] = aegis_log2_byte(s->oldest_wait_us[1]);
}

/* L1 distance between two quantized states (the delta gate's measure). */
static __always_inline __u32 aegis_state_distance(const __u8 *a, const __u8 *b)
{
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < AEGIS_STATE_LEN; i++)
		sum += a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
	return sum;
}

#endif /* AEGIS_LEVELS_H */
