/* SPDX-License-Identifier: GPL-2.0 */
/*
 * --trace-scope all: the state ground truth (truth.bpf.c) and the built-in collectors share.
 * The harness creates these maps with the ground-truth object and hands their ids to the
 * collector process, which reuses them, so both programs read one switch and one table. For
 * each event outside the attack's cgroup each program decides, on its own, whether and as
 * which group the event is traced; they can only disagree about an event whose two program
 * runs straddle a write of `armed` (at most one per CPU per write).
 */
#ifndef AEGIS_SCOPE_H
#define AEGIS_SCOPE_H

#include "intf.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scope_state);
} scope_state SEC(".maps");

/* cgroup id -> enum trace_group, for the workload's cgroup; every other cgroup is the rest.
 * Written before any task is in the cgroup, so no event ever sees it change. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u64);
	__type(value, __u8);
} scope_groups SEC(".maps");

/*
 * The group of the current task, which is outside the attack's cgroup: 0 when the event is not
 * traced (the switch is off, or the task is the collector), else 1 with *group set.
 */
static __always_inline int scope_group_of(__u64 cgroup_id, __u8 *group)
{
	struct scope_state *state;
	__u32 zero = 0;
	__u8 *known;

	state = bpf_map_lookup_elem(&scope_state, &zero);
	if (!state || !state->armed)
		return 0;
	if ((__u32)(bpf_get_current_pid_tgid() >> 32) == state->collector_tgid)
		return 0;
	known = bpf_map_lookup_elem(&scope_groups, &cgroup_id);
	*group = known ? *known : GROUP_REST;
	return 1;
}

#endif /* AEGIS_SCOPE_H */
