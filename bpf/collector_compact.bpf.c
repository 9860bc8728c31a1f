// SPDX-License-Identifier: GPL-2.0
/*
 * The built-in collector, "compact" architecture (eAudit-like): small variable-length records
 * packed into a per-CPU batch, flushed into the ring buffer as one copy, with wakeups weighted
 * by importance instead of one per record:
 * - a batch is flushed when it holds COMPACT_FLUSH_BYTES, or at once for an important event
 *   (execve, unlink, rename, setuid, connect: the ones an attacker wants to hide);
 * - a flush wakes the consumer only for an important event or when the ring is half full;
 *   otherwise the consumer drains on its own poll timeout;
 * - a flush that does not fit is dropped whole: its records are added to a per-CPU drop
 *   counter of their group, and the gap in batch/event sequence numbers lets user space see it
 *   too.
 * With trace_all (--trace-scope all), every other task but the collector is recorded too while
 * the shared switch is on (bpf/scope.h); a batch mixes groups, each record says its own.
 * At the end, user space runs aegis_compact_flush (BPF_PROG_TEST_RUN) to flush every CPU's
 * partial batch.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "intf.h"
#include "scope.h"

char LICENSE[] SEC("license") = "GPL";

const volatile __u64 target_cgroup_id = 0;
const volatile __u8 traced_syscalls[AEGIS_MAX_SYSCALL_NR] = {};
/* 1 for syscalls whose record must reach user space without delay. */
const volatile __u8 important_syscalls[AEGIS_MAX_SYSCALL_NR] = {};
const volatile __u32 nr_cpus = 1;
const volatile __u8 trace_all = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct compact_buf);
} batches SEC(".maps");

/* By enum trace_group. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AEGIS_NR_GROUPS);
	__type(key, __u32);
	__type(value, __u64);
} dropped_events SEC(".maps");

/* Counters user space reads at the end. */
__u64 nr_flushes = 0;
__u64 nr_forced_wakeups = 0;

static __always_inline void reset(struct compact_buf *buf)
{
	buf->len = sizeof(struct compact_batch_hdr);
	buf->nr_records = 0;
	buf->nr_by_group[GROUP_ATTACK] = 0;
	buf->nr_by_group[GROUP_WORKLOAD] = 0;
	buf->nr_by_group[GROUP_REST] = 0;
}

static __always_inline void count_dropped(__u32 group, __u32 nr_records)
{
	__u64 *dropped = bpf_map_lookup_elem(&dropped_events, &group);

	if (dropped)
		*dropped += nr_records;
}

/* Copies the batch into the ring buffer (or counts it as dropped) and starts a new one. */
static __always_inline void flush(struct compact_buf *buf, __u32 cpu, int wake)
{
	struct compact_batch_hdr *hdr = (void *)buf->data;
	__u32 len = buf->len;
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (!buf->nr_records)
		return;
	if (len > COMPACT_DATA_BYTES)
		len = COMPACT_DATA_BYTES;
	hdr->bytes = len;
	hdr->cpu = cpu;
	hdr->nr_records = buf->nr_records;
	hdr->batch_seq = buf->batch_seq;
	hdr->first_event_seq = buf->event_seq - buf->nr_records;
	hdr->base_ts_ns = buf->base_ts_ns;

	if (!wake) {
		__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
		__u64 size = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);

		wake = avail + len > size / 2;
	}
	if (wake) {
		flags = BPF_RB_FORCE_WAKEUP;
		__sync_fetch_and_add(&nr_forced_wakeups, 1);
	}
	if (bpf_ringbuf_output(&events, buf->data, len, flags)) {
		count_dropped(GROUP_ATTACK, buf->nr_by_group[GROUP_ATTACK]);
		count_dropped(GROUP_WORKLOAD, buf->nr_by_group[GROUP_WORKLOAD]);
		count_dropped(GROUP_REST, buf->nr_by_group[GROUP_REST]);
	}
	__sync_fetch_and_add(&nr_flushes, 1);
	buf->batch_seq++;
	reset(buf);
}

SEC("tracepoint/raw_syscalls/sys_enter")
int aegis_compact(struct sys_enter_ctx *ctx)
{
	long id = ctx->id;
	__u32 zero = 0, off, cpu;
	struct compact_buf *buf;
	struct compact_rec *rec;
	__u8 how, group = GROUP_ATTACK;
	__u64 now, pid_tgid, cgroup_id;

	if (id < 0 || id >= AEGIS_MAX_SYSCALL_NR)
		return 0;
	how = traced_syscalls[id];
	if (!(how & TRACE_RECORD))
		return 0;
	cgroup_id = bpf_get_current_cgroup_id();
	if (cgroup_id != target_cgroup_id && !(trace_all && scope_group_of(cgroup_id, &group)))
		return 0;
	buf = bpf_map_lookup_elem(&batches, &zero);
	if (!buf)
		return 0;
	cpu = bpf_get_smp_processor_id();
	now = bpf_ktime_get_ns();
	if (buf->len < sizeof(struct compact_batch_hdr))
		reset(buf);
	/* Relative timestamps are 32-bit: start a new batch well before they wrap. */
	if (buf->nr_records && now - buf->base_ts_ns > (1ULL << 31))
		flush(buf, cpu, 0);
	if (!buf->nr_records)
		buf->base_ts_ns = now;

	off = buf->len;
	if (off > COMPACT_FLUSH_BYTES + COMPACT_REC_MAX)
		off = COMPACT_FLUSH_BYTES + COMPACT_REC_MAX;
	rec = (void *)&buf->data[off];
	pid_tgid = bpf_get_current_pid_tgid();
	rec->syscall_nr = (__u16)id;
	rec->pid = pid_tgid >> 32;
	rec->tid = (__u32)pid_tgid;
	rec->ts_delta_ns = (__u32)(now - buf->base_ts_ns);
	rec->arg0 = (__u32)ctx->args[0];
	rec->payload_kind = PAYLOAD_NONE;
	rec->group = group;
	rec->payload_len = 0;
	if (how & TRACE_PAYLOAD_PATH) {
		/* Both loads at constant offsets first: tracepoint context reads must not use a
		 * computed offset. Path arguments are argument 0 or 1. */
		__u64 arg0 = ctx->args[0], arg1 = ctx->args[1];
		__u64 ptr = (how & TRACE_ARG_MASK) ? arg1 : arg0;
		long n;

		n = bpf_probe_read_user_str(&buf->data[off + sizeof(*rec)], COMPACT_PATH_MAX,
					    (void *)ptr);
		if (n > 1) {
			rec->payload_kind = PAYLOAD_PATH;
			rec->payload_len = (__u16)(n - 1);
		}
	}
	rec->len = (sizeof(*rec) + rec->payload_len + 3) & ~3;
	buf->len = off + rec->len;
	buf->nr_records++;
	if (group < AEGIS_NR_GROUPS)
		buf->nr_by_group[group]++;
	buf->event_seq++;

	if (important_syscalls[id] || buf->len >= COMPACT_FLUSH_BYTES)
		flush(buf, cpu, important_syscalls[id]);
	return 0;
}

/* Run once per CPU index from user space after the attack: flushes partial batches. */
SEC("syscall")
int aegis_compact_flush(void *ctx)
{
	__u32 zero = 0;

	for (__u32 cpu = 0; cpu < COMPACT_MAX_CPUS && cpu < nr_cpus; cpu++) {
		struct compact_buf *buf = bpf_map_lookup_percpu_elem(&batches, &zero, cpu);

		if (buf && buf->len >= sizeof(struct compact_batch_hdr))
			flush(buf, cpu, 1);
	}
	return 0;
}
