// SPDX-License-Identifier: GPL-2.0
/*
 * Host test bed for the Aegis Q-network: a BPF_PROG_TYPE_SYSCALL program that evaluates the
 * network in the weights map on the state in its context and writes the Q-values and action
 * back. Runs through BPF_PROG_TEST_RUN on kernels without sched_ext.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "aegis_qnet.h"
#include "aegis_levels.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct aegis_qnet);
} qnet_weights SEC(".maps");

struct qnet_test_ctx {
	__u8 state[AEGIS_STATE_LEN];
	__s64 q[AEGIS_NR_ACTIONS];
	__u32 action;
};

SEC("syscall")
int aegis_qnet_test(struct qnet_test_ctx *ctx)
{
	__u32 zero = 0;
	struct aegis_qnet *net = bpf_map_lookup_elem(&qnet_weights, &zero);
	__u8 state[AEGIS_STATE_LEN];
	__s64 q[AEGIS_NR_ACTIONS];
	__u32 action;

	if (!net)
		return 1;
	/* The context only takes constant offsets: copy in and out with unrolled loops. */
#pragma unroll
	for (int i = 0; i < AEGIS_STATE_LEN; i++)
		state[i] = ctx->state[i];
	action = aegis_qnet_eval(net, state, q);
#pragma unroll
	for (int k = 0; k < AEGIS_NR_ACTIONS; k++)
		ctx->q[k] = q[k];
	ctx->action = action;
	return 0;
}

/* The backbone's arithmetic: quantization, level choice, wait bound, delta-gate distance. */
struct levels_test_ctx {
	__u64 production_rate_per_s;
	__u64 base_wait_ns;
	__u32 ring_fill_pct;
	__u32 collector_cpu_pct;
	__u32 runnable[AEGIS_NR_LEVELS];
	__u32 oldest_wait_us[2];
	__u32 provenance;
	__u32 recent_syscalls;
	__u32 producer_syscalls_per_window;
	__u8 last_state[AEGIS_STATE_LEN];
	/* Out. */
	__u8 state[AEGIS_STATE_LEN];
	__u64 bound_ns[AEGIS_NR_LEVELS];
	__u32 level;
	__u32 distance;
};

SEC("syscall")
int aegis_levels_test(struct levels_test_ctx *ctx)
{
	struct aegis_raw_state raw = {};
	__u8 last[AEGIS_STATE_LEN];
	__u8 state[AEGIS_STATE_LEN];

	raw.production_rate_per_s = ctx->production_rate_per_s;
	raw.ring_fill_pct = ctx->ring_fill_pct;
	raw.collector_cpu_pct = ctx->collector_cpu_pct;
	raw.runnable[0] = ctx->runnable[0];
	raw.runnable[1] = ctx->runnable[1];
	raw.runnable[2] = ctx->runnable[2];
	raw.oldest_wait_us[0] = ctx->oldest_wait_us[0];
	raw.oldest_wait_us[1] = ctx->oldest_wait_us[1];
	aegis_quantize(&raw, state);
#pragma unroll
	for (int i = 0; i < AEGIS_STATE_LEN; i++) {
		last[i] = ctx->last_state[i];
		ctx->state[i] = state[i];
	}
	ctx->level = aegis_level_of(ctx->provenance, ctx->recent_syscalls,
				    ctx->producer_syscalls_per_window);
	ctx->bound_ns[0] = aegis_wait_bound_ns(0, ctx->base_wait_ns);
	ctx->bound_ns[1] = aegis_wait_bound_ns(1, ctx->base_wait_ns);
	ctx->bound_ns[2] = aegis_wait_bound_ns(2, ctx->base_wait_ns);
	ctx->distance = aegis_state_distance(state, last);
	return 0;
}
