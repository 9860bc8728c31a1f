// SPDX-License-Identifier: GPL-2.0
/*
 * Host test bed for the Aegis Q-network: a BPF_PROG_TYPE_SYSCALL program that evaluates the
 * network in the weights map on the state in its context and writes the Q-values and action
 * back. Runs through BPF_PROG_TEST_RUN on kernels without sched_ext.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "aegis_qnet.h"

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
