/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The Aegis Q-network in fixed point, as BPF evaluates it. Bit-exact mirror of
 * scheduler/src/aegis/qnet.rs (QNet::q_values and QNet::act); a host test runs this code through
 * BPF_PROG_TEST_RUN on random states and compares it with the Rust reference.
 */
#ifndef AEGIS_QNET_H
#define AEGIS_QNET_H

#define AEGIS_STATE_LEN 8
#define AEGIS_HIDDEN 16
#define AEGIS_NR_ACTIONS 9
#define AEGIS_WEIGHT_SHIFT 8

/* Weights: i16 scaled by 2^AEGIS_WEIGHT_SHIFT; biases i32 (644 bytes, no padding). */
struct aegis_qnet {
	__s16 w1[AEGIS_HIDDEN][AEGIS_STATE_LEN];
	__s32 b1[AEGIS_HIDDEN];
	__s16 w2[AEGIS_NR_ACTIONS][AEGIS_HIDDEN];
	__s32 b2[AEGIS_NR_ACTIONS];
};

/*
 * Fills q[] and returns the greedy action (ties to the lower index). 64-bit accumulators: no
 * overflow for any weights, so C and Rust agree without relying on wrapping.
 */
static __always_inline __u32 aegis_qnet_eval(const struct aegis_qnet *net, const __u8 *state,
					     __s64 *q)
{
	__s64 hidden[AEGIS_HIDDEN];
	__u32 best = 0;

	for (int j = 0; j < AEGIS_HIDDEN; j++) {
		__s64 acc = net->b1[j];

		for (int i = 0; i < AEGIS_STATE_LEN; i++)
			acc += (__s64)net->w1[j][i] * (__s64)state[i];
		/* ReLU, back to input scale (arithmetic shift of a non-negative value). */
		hidden[j] = (acc > 0 ? acc : 0) >> AEGIS_WEIGHT_SHIFT;
	}
	for (int k = 0; k < AEGIS_NR_ACTIONS; k++) {
		__s64 acc = net->b2[k];

		for (int j = 0; j < AEGIS_HIDDEN; j++)
			acc += (__s64)net->w2[k][j] * hidden[j];
		q[k] = acc;
	}
	for (int k = 1; k < AEGIS_NR_ACTIONS; k++) {
		if (q[k] > q[best])
			best = k;
	}
	return best;
}

#endif /* AEGIS_QNET_H */
