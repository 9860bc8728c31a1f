// SPDX-License-Identifier: GPL-2.0
/*
 * Ground truth: counts every syscall entry made by tasks in the watched cgroups, keyed by
 * (cgroup id, syscall number). Counters only ever increase and nothing is buffered, so the
 * count cannot drop. The one way a count could be missed, failing to insert a new key, is
 * counted in nr_insert_failures and turns the trial into an error in user space.
 *
 * With --trace-scope all (trace_all), every other task's syscalls are counted too, by group
 * (bpf/scope.h) and syscall number in a fixed array, while the shared switch is on.
 *
 * With record_tids, the thread ids that made the counted syscalls are kept too: a collector
 * that records the whole machine (sysdig) is matched against the attack by them.
 *
 * For the collector at the LSM hooks (builtin-lsm), the same hooks are counted too, keyed by the
 * syscall each ran in (hook_counts): those programs are declared with "?" and loaded only when
 * user space asks, so a kernel without BPF-LSM still runs the syscall counter.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "intf.h"
#include "scope.h"
#include "lsm.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by user space before load: count the other groups too (--trace-scope all). */
const volatile __u8 trace_all = 0;
/* Set by user space before load: keep the attack's thread ids in attack_tids. */
const volatile __u8 record_tids = 0;

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

/* Index group * AEGIS_MAX_SYSCALL_NR + syscall number; the attack's stay in truth_counts. */
#define GROUP_COUNTS (AEGIS_NR_GROUPS * AEGIS_MAX_SYSCALL_NR)
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GROUP_COUNTS);
	__type(key, __u32);
	__type(value, __u64);
} group_counts SEC(".maps");

/* Thread ids that made a counted syscall (record_tids); the guest's pid_max is 32768. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} attack_tids SEC(".maps");

__u64 nr_insert_failures = 0;
__u64 nr_tid_insert_failures = 0;

/* A syscall outside the watched cgroups, under --trace-scope all. */
static __always_inline void count_group(long id, __u64 cgroup_id)
{
	__u32 index;
	__u64 *count;
	__u8 group;

	if (id < 0 || id >= AEGIS_MAX_SYSCALL_NR || !scope_group_of(cgroup_id, &group))
		return;
	index = (__u32)group * AEGIS_MAX_SYSCALL_NR + (__u32)id;
	count = bpf_map_lookup_elem(&group_counts, &index);
	if (count)
		*count += 1;
}

/*
 * The counter of `key` in `map` (a per-CPU truth_key -> count hash), inserted at 0 if new, or
 * 0 with nr_insert_failures counted if it could not be.
 */
static __always_inline __u64 *counter_of(void *map, struct truth_key *key)
{
	__u64 zero = 0, *count = bpf_map_lookup_elem(map, key);

	if (count)
		return count;
	/* Another CPU may insert the same key first (EEXIST): look it up again either way. */
	bpf_map_update_elem(map, key, &zero, BPF_NOEXIST);
	count = bpf_map_lookup_elem(map, key);
	if (!count)
		__sync_fetch_and_add(&nr_insert_failures, 1);
	return count;
}

SEC("tracepoint/raw_syscalls/sys_enter")
int aegis_truth(struct sys_enter_ctx *ctx)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct truth_key key = {};
	__u64 *count;

	if (!bpf_map_lookup_elem(&watched_cgroups, &cgroup_id)) {
		if (trace_all)
			count_group(ctx->id, cgroup_id);
		return 0;
	}

	key.cgroup_id = cgroup_id;
	key.syscall_nr = (__u32)ctx->id;
	count = counter_of(&truth_counts, &key);
	if (!count)
		return 0;
	/* The value is per CPU and this program does not nest on one CPU. */
	*count += 1;
	if (record_tids) {
		__u32 tid = (__u32)bpf_get_current_pid_tgid();
		__u8 one = 1;

		if (!bpf_map_lookup_elem(&attack_tids, &tid) &&
		    bpf_map_update_elem(&attack_tids, &tid, &one, BPF_ANY))
			__sync_fetch_and_add(&nr_tid_insert_failures, 1);
	}
	return 0;
}

/* Runs of the hooks builtin-lsm records, by (cgroup, syscall the hook ran in). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct truth_key);
	__type(value, __u64);
} hook_counts SEC(".maps");

static __always_inline void count_hook(void)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct truth_key key = {};
	__u64 *count;

	if (!bpf_map_lookup_elem(&watched_cgroups, &cgroup_id))
		return;
	key.cgroup_id = cgroup_id;
	key.syscall_nr = current_syscall_nr(current_regs());
	count = counter_of(&hook_counts, &key);
	if (!count)
		return;
	/* A preempted LSM program's CPU may run it again for another task: add atomically. */
	__sync_fetch_and_add(count, 1);
}

SEC("?lsm/file_open")
int BPF_PROG(aegis_truth_file_open, struct file___aegis *file)
{
	count_hook();
	return 0;
}

SEC("?lsm/path_unlink")
int BPF_PROG(aegis_truth_path_unlink, const struct path___aegis *dir, struct dentry___aegis *dentry)
{
	count_hook();
	return 0;
}

SEC("?lsm/bprm_check_security")
int BPF_PROG(aegis_truth_bprm_check, struct linux_binprm___aegis *bprm)
{
	count_hook();
	return 0;
}

SEC("?lsm/socket_connect")
int BPF_PROG(aegis_truth_socket_connect, void *sock, void *address, int addrlen)
{
	count_hook();
	return 0;
}
