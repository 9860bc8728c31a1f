// SPDX-License-Identifier: GPL-2.0
/*
 * The built-in collector, "full" architecture: one ring-buffer record per traced syscall made
 * in the target cgroup, Sysdig-like; with trace_all (--trace-scope all), also those of every
 * other task but the collector while the shared switch is on (bpf/scope.h). A record that
 * cannot be reserved because the consumer is behind is counted in a per-CPU drop counter of
 * its group; nothing else is ever lost silently.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "intf.h"
#include "scope.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by user space before load. */
const volatile __u64 target_cgroup_id = 0;
const volatile __u8 traced_syscalls[AEGIS_MAX_SYSCALL_NR] = {};
const volatile __u8 trace_all = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	/* Resized by user space to --ring-size before load. */
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* By enum trace_group. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AEGIS_NR_GROUPS);
	__type(key, __u32);
	__type(value, __u64);
} dropped_events SEC(".maps");

static __always_inline void count_drop(__u32 group)
{
	__u64 *dropped = bpf_map_lookup_elem(&dropped_events, &group);

	if (dropped)
		*dropped += 1;
}

static __always_inline void fill_header(struct prov_event *e, struct sys_enter_ctx *ctx, __u32 nr,
					__u64 cgroup_id, __u8 group)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	e->ts_ns = bpf_ktime_get_ns();
	e->cgroup_id = cgroup_id;
	e->pid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->syscall_nr = nr;
	e->payload_kind = PAYLOAD_NONE;
	e->group = group;
	e->payload_len = 0;
	e->args[0] = ctx->args[0];
	e->args[1] = ctx->args[1];
	e->args[2] = ctx->args[2];
	e->args[3] = ctx->args[3];
	e->args[4] = ctx->args[4];
	e->args[5] = ctx->args[5];
	bpf_get_current_comm(e->comm, sizeof(e->comm));
}

/*
 * The argument that points at the payload. Tracepoint context reads need constant offsets, so
 * the index is applied to the copy of the arguments already in the record.
 */
static __always_inline void *payload_pointer(struct prov_event *e, __u8 how)
{
	__u32 arg = how & TRACE_ARG_MASK;

	if (arg > 5)
		return 0;
	return (void *)e->args[arg];
}

SEC("tracepoint/raw_syscalls/sys_enter")
int aegis_collect(struct sys_enter_ctx *ctx)
{
	long id = ctx->id;
	__u8 how, group = GROUP_ATTACK;
	__u64 cgroup_id;

	if (id < 0 || id >= AEGIS_MAX_SYSCALL_NR)
		return 0;
	how = traced_syscalls[id];
	if (!(how & TRACE_RECORD))
		return 0;
	cgroup_id = bpf_get_current_cgroup_id();
	if (cgroup_id != target_cgroup_id && !(trace_all && scope_group_of(cgroup_id, &group)))
		return 0;

	if (how & (TRACE_PAYLOAD_PATH | TRACE_PAYLOAD_SOCKADDR)) {
		struct prov_event_with_payload *e;
		void *user_ptr;
		long n;

		e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (!e) {
			count_drop(group);
			return 0;
		}
		fill_header(&e->hdr, ctx, (__u32)id, cgroup_id, group);
		user_ptr = payload_pointer(&e->hdr, how);
		if (how & TRACE_PAYLOAD_PATH) {
			n = bpf_probe_read_user_str(e->payload, sizeof(e->payload), user_ptr);
			if (n > 0) {
				e->hdr.payload_kind = PAYLOAD_PATH;
				/* Without the terminating NUL. */
				e->hdr.payload_len = (__u16)(n - 1);
			}
		} else {
			/* connect(fd, addr, addrlen): copy at most a sockaddr_in6. */
			__u64 len = ctx->args[2];

			if (len > 28)
				len = 28;
			if (len > 0 && !bpf_probe_read_user(e->payload, len & 31, user_ptr)) {
				e->hdr.payload_kind = PAYLOAD_SOCKADDR;
				e->hdr.payload_len = (__u16)len;
			}
		}
		bpf_ringbuf_submit(e, 0);
	} else {
		struct prov_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

		if (!e) {
			count_drop(group);
			return 0;
		}
		fill_header(e, ctx, (__u32)id, cgroup_id, group);
		bpf_ringbuf_submit(e, 0);
	}
	return 0;
}
