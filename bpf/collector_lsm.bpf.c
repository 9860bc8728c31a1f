// SPDX-License-Identifier: GPL-2.0
/*
 * The built-in collector at the reference monitor's place (builtin-lsm, the LPM idea): one
 * ring-buffer record per BPF-LSM hook run by a task of the target cgroup, for the hooks that
 * decide on files, programs and connections (file_open, path_unlink, bprm_check_security,
 * socket_connect). Each record carries the syscall the hook ran in, that syscall's arguments,
 * and the object the hook was asked about: the file's name, the program's path, the address.
 * A record that cannot be reserved is counted in a per-CPU drop counter; nothing else is lost.
 *
 * Ground truth for these records is counted at the same hooks (truth.bpf.c). LSM programs are
 * not kept from running again on a CPU where one was preempted, so every counter is updated
 * atomically.
 *
 * An LSM program can be preempted (7.3 is PREEMPT_LAZY), and one preempted between reserving
 * its record and submitting it holds up the consumer, which reads the ring in order: a consumer
 * of higher priority (SCHED_FIFO) on that CPU then spins on the record while the ring fills,
 * and the preempted producer cannot run to finish it. So each record is reserved and submitted
 * with preemption off, where the kernel offers bpf_preempt_disable (6.10 and later).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "intf.h"
#include "lsm.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by user space before load. */
const volatile __u64 target_cgroup_id = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	/* Resized by user space to --ring-size before load. */
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* By enum trace_group; only GROUP_ATTACK is used (the attack's cgroup is all it records). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AEGIS_NR_GROUPS);
	__type(key, __u32);
	__type(value, __u64);
} dropped_events SEC(".maps");

extern void bpf_preempt_disable(void) __weak __ksym;
extern void bpf_preempt_enable(void) __weak __ksym;

static __always_inline void hold_cpu(void)
{
	if (bpf_ksym_exists(bpf_preempt_disable))
		bpf_preempt_disable();
}

static __always_inline void release_cpu(void)
{
	if (bpf_ksym_exists(bpf_preempt_enable))
		bpf_preempt_enable();
}

/*
 * A record for the current hook run of a task of the target cgroup, header filled, or 0 if it
 * was dropped. Called with preemption held off, up to the submit.
 */
static __always_inline struct prov_event_with_payload *begin_record(__u64 cgroup_id)
{
	struct prov_event_with_payload *e;
	struct pt_regs___aegis *regs;
	__u64 pid_tgid;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__u32 group = GROUP_ATTACK;
		__u64 *dropped = bpf_map_lookup_elem(&dropped_events, &group);

		if (dropped)
			__sync_fetch_and_add(dropped, 1);
		return 0;
	}
	regs = current_regs();
	pid_tgid = bpf_get_current_pid_tgid();
	e->hdr.ts_ns = bpf_ktime_get_ns();
	e->hdr.cgroup_id = cgroup_id;
	e->hdr.pid = pid_tgid >> 32;
	e->hdr.tid = (__u32)pid_tgid;
	e->hdr.syscall_nr = current_syscall_nr(regs);
	e->hdr.payload_kind = PAYLOAD_NONE;
	e->hdr.group = GROUP_ATTACK;
	e->hdr.payload_len = 0;
	e->hdr.args[0] = BPF_CORE_READ(regs, di);
	e->hdr.args[1] = BPF_CORE_READ(regs, si);
	e->hdr.args[2] = BPF_CORE_READ(regs, dx);
	e->hdr.args[3] = BPF_CORE_READ(regs, r10);
	e->hdr.args[4] = BPF_CORE_READ(regs, r8);
	e->hdr.args[5] = BPF_CORE_READ(regs, r9);
	bpf_get_current_comm(e->hdr.comm, sizeof(e->hdr.comm));
	return e;
}

/*
 * Records the current hook run with a kernel string (a name or a path) as its payload. Every
 * task on the machine runs the hooks: the cgroup is checked before preemption is touched.
 */
static __always_inline void record_name(const void *name)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct prov_event_with_payload *e;
	long n;

	if (cgroup_id != target_cgroup_id)
		return;
	hold_cpu();
	e = begin_record(cgroup_id);
	if (e) {
		n = bpf_probe_read_kernel_str(e->payload, sizeof(e->payload), name);
		if (n > 0) {
			e->hdr.payload_kind = PAYLOAD_PATH;
			/* Without the terminating NUL. */
			e->hdr.payload_len = (__u16)(n - 1);
		}
		bpf_ringbuf_submit(e, 0);
	}
	release_cpu();
}

SEC("lsm/file_open")
int BPF_PROG(aegis_lsm_file_open, struct file___aegis *file)
{
	record_name(BPF_CORE_READ(file, f_path.dentry, d_name.name));
	return 0;
}

SEC("lsm/path_unlink")
int BPF_PROG(aegis_lsm_path_unlink, const struct path___aegis *dir, struct dentry___aegis *dentry)
{
	record_name(BPF_CORE_READ(dentry, d_name.name));
	return 0;
}

SEC("lsm/bprm_check_security")
int BPF_PROG(aegis_lsm_bprm_check, struct linux_binprm___aegis *bprm)
{
	record_name(BPF_CORE_READ(bprm, filename));
	return 0;
}

SEC("lsm/socket_connect")
int BPF_PROG(aegis_lsm_socket_connect, void *sock, void *address, int addrlen)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct prov_event_with_payload *e;
	__u32 len = addrlen;

	if (cgroup_id != target_cgroup_id)
		return 0;
	hold_cpu();
	e = begin_record(cgroup_id);
	if (e) {
		/* At most a sockaddr_in6, as the tracepoint collector copies. */
		if (len > 28)
			len = 28;
		if (len > 0 && !bpf_probe_read_kernel(e->payload, len & 31, address)) {
			e->hdr.payload_kind = PAYLOAD_SOCKADDR;
			e->hdr.payload_len = (__u16)len;
		}
		bpf_ringbuf_submit(e, 0);
	}
	release_cpu();
	return 0;
}
