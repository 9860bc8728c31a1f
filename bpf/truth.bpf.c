// SPDX-License-Identifier: GPL-2.0
/*
 * Ground truth: counts every syscall entry made by tasks in the watched cgroups, keyed by
 * (cgroup id, syscall number). Counters only ever increase and nothing is buffered, so the
 * count cannot drop. The one way a count could be missed, failing to insert a new key, is
 * counted in nr_insert_failures and turns the trial into an error in user space.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "intf.h"

char LICENSE[] SEC("license") = "GPL";

/* cgroup ids whose syscalls are counted; filled by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u64);
	__type(value, __u8);
} watched_cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct truth_key);
	__type(value, __u64);
} truth_counts SEC(".maps");

__u64 nr_insert_failures = 0;

SEC("tracepoint/raw_syscalls/sys_enter")
int aegis_truth(struct sys_enter_ctx *ctx)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct truth_key key = {};
	__u64 zero = 0, *count;

	if (!bpf_map_lookup_elem(&watched_cgroups, &cgroup_id))
		return 0;

	key.cgroup_id = cgroup_id;
	key.syscall_nr = (__u32)ctx->id;
	count = bpf_map_lookup_elem(&truth_counts, &key);
	if (!count) {
		/* Another CPU may insert the same key first (EEXIST): look it up again either way.
		 */
		bpf_map_update_elem(&truth_counts, &key, &zero, BPF_NOEXIST);
		count = bpf_map_lookup_elem(&truth_counts, &key);
		if (!count) {
			__sync_fetch_and_add(&nr_insert_failures, 1);
			return 0;
		}
	}
	/* The value is per CPU and this program does not nest on one CPU. */
	*count += 1;
	return 0;
}
