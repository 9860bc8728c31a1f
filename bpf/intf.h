/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Types shared by the BPF programs and the Rust harness. The Rust side mirrors them in
 * harness/src/bpf_intf.rs; a test there checks the sizes agree with this header.
 */
#ifndef AEGIS_INTF_H
#define AEGIS_INTF_H

/* x86_64 syscall numbers stay below this; larger numbers are ignored. */
#define AEGIS_MAX_SYSCALL_NR 512
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

/* One provenance record as the BPF side writes it into the ring buffer (96 bytes). */
struct prov_event {
	__u64 ts_ns;	 /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u64 cgroup_id; /* cgroup v2 id of the calling task */
	__u32 pid;	 /* thread group id */
	__u32 tid;
	__u32 syscall_nr;
	__u16 payload_kind; /* enum payload_kind */
	__u16 payload_len;  /* bytes of payload that follow the header */
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

#endif /* AEGIS_INTF_H */
