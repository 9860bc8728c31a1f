/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Types shared by the BPF programs and the Rust harness. The Rust side mirrors them in
 * harness/src/bpf_intf.rs; a test there checks the sizes agree with this header.
 */
#ifndef AEGIS_INTF_H
#define AEGIS_INTF_H

/* x86_64 syscall numbers stay below this; larger numbers are ignored. */
#define AEGIS_MAX_SYSCALL_NR 512
/*
 * The syscall number BPF-LSM records and counts carry for a hook reached outside any syscall
 * (the last number below AEGIS_MAX_SYSCALL_NR, which x86_64 does not use).
 */
#define AEGIS_LSM_NO_SYSCALL (AEGIS_MAX_SYSCALL_NR - 1)
/* Bytes of path or sockaddr copied from user memory into a record. */
#define AEGIS_PAYLOAD_MAX 256

/*
 * How the collector treats one syscall number, set per number in `traced_syscalls` by user
 * space before load. 0 means not traced. Otherwise TRACE_RECORD is set, and optionally one
 * payload flag plus the index of the argument that points at the payload.
 */
#define TRACE_RECORD 0x80
#define TRACE_PAYLOAD_PATH 0x10
#define TRACE_PAYLOAD_SOCKADDR 0x20
#define TRACE_ARG_MASK 0x07

enum payload_kind {
	PAYLOAD_NONE = 0,
	PAYLOAD_PATH = 1,
	PAYLOAD_SOCKADDR = 2,
};

/*
 * Whose event a record is. Under --trace-scope attack every record is the attack's (0), so the
 * byte that carries it in a record is 0 as it always was; under --trace-scope all the workload's
 * cgroup and everything else on the machine (except the collector) are traced too.
 */
enum trace_group {
	GROUP_ATTACK = 0,
	GROUP_WORKLOAD = 1,
	GROUP_REST = 2,
};
#define AEGIS_NR_GROUPS 3

/*
 * The switch that --trace-scope all's ground truth and collector both read (bpf/scope.h): user
 * space sets collector_tgid, then armed, once both programs are attached, and clears armed
 * before either is detached.
 */
struct scope_state {
	__u32 armed;
	__u32 collector_tgid; /* never traced: the collector must not record itself */
};

/* One provenance record as the BPF side writes it into the ring buffer (96 bytes). */
struct prov_event {
	__u64 ts_ns;	 /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 cgroup_id; /* cgroup v2 id of the calling task */
	__u32 pid;	 /* thread group id */
	__u32 tid;
	__u32 syscall_nr;
	__u8 payload_kind; /* enum payload_kind */
	__u8 group;	   /* enum trace_group */
	__u16 payload_len; /* bytes of payload that follow the header */
	__u64 args[6];
	char comm[16];
};

/* A record that carries a path or a socket address after the header. */
struct prov_event_with_payload {
	struct prov_event hdr;
	char payload[AEGIS_PAYLOAD_MAX];
};

/* Ground-truth counter key: one counter per (cgroup, syscall). */
struct truth_key {
	__u64 cgroup_id;
	__u32 syscall_nr;
	__u32 pad;
};

/* Layout of the raw_syscalls/sys_enter tracepoint context (see its `format` file). */
struct sys_enter_ctx {
	__u64 common; /* common_type, flags, preempt_count, pid */
	long id;
	unsigned long args[6];
};

/*
 * The compact collector (eAudit-like). Records are packed per CPU into a batch that is copied
 * into the ring buffer once it holds COMPACT_FLUSH_BYTES, when an important event arrives, or
 * when user space drains at the end. Each batch starts with a header; sequence numbers let user
 * space detect lost batches itself.
 */
#define COMPACT_FLUSH_BYTES 2048
#define COMPACT_PATH_MAX 256
#define COMPACT_MAX_CPUS 256

struct compact_batch_hdr {
	__u32 bytes; /* whole batch including this header */
	__u16 cpu;
	__u16 nr_records;
	__u64 batch_seq;       /* per CPU, +1 per flush attempt */
	__u64 first_event_seq; /* per CPU, +1 per record */
	__u64 base_ts_ns;      /* timestamps in records are relative to this */
};

/* One record, followed by payload_len bytes of payload (a path without NUL). */
struct compact_rec {
	__u16 len; /* header + payload, rounded up to 4 bytes */
	__u16 syscall_nr;
	__u32 pid;
	__u32 tid;
	__u32 ts_delta_ns;
	__u32 arg0;
	__u8 payload_kind;
	__u8 group; /* enum trace_group */
	__u16 payload_len;
};

#define COMPACT_REC_MAX (sizeof(struct compact_rec) + COMPACT_PATH_MAX)
#define COMPACT_DATA_BYTES (COMPACT_FLUSH_BYTES + 2 * COMPACT_REC_MAX)

/* Per-CPU batch being filled. */
struct compact_buf {
	__u32 len; /* bytes used in data, header included */
	__u32 nr_records;
	__u64 batch_seq;
	__u64 event_seq;
	__u64 base_ts_ns;
	/* Records in the batch by enum trace_group: a dropped batch is counted per group. */
	__u32 nr_by_group[AEGIS_NR_GROUPS];
	__u32 pad;
	__u8 data[COMPACT_DATA_BYTES];
};

#endif /* AEGIS_INTF_H */
