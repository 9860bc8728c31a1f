/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the BPF-LSM programs (truth.bpf.c's hook counters and collector_lsm.bpf.c) read of the
 * kernel's objects. Each type declares only the fields used; CO-RE relocates them by name
 * against the running kernel's BTF (the ___aegis suffix is dropped when matching), so no
 * vmlinux.h is needed.
 *
 * A hook runs inside the syscall that reached it; the syscall's number and arguments are read
 * from the task's saved registers, so hook records and counts are keyed by syscall like the
 * tracepoint collectors' and can sit beside them in one table.
 */
#ifndef AEGIS_LSM_H
#define AEGIS_LSM_H

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "intf.h"

struct qstr___aegis {
	const unsigned char *name;
} __attribute__((preserve_access_index));

struct dentry___aegis {
	struct qstr___aegis d_name;
} __attribute__((preserve_access_index));

struct path___aegis {
	struct dentry___aegis *dentry;
} __attribute__((preserve_access_index));

struct file___aegis {
	struct path___aegis f_path;
} __attribute__((preserve_access_index));

struct linux_binprm___aegis {
	const char *filename;
} __attribute__((preserve_access_index));

struct pt_regs___aegis {
	unsigned long di;
	unsigned long si;
	unsigned long dx;
	unsigned long r10;
	unsigned long r8;
	unsigned long r9;
	unsigned long orig_ax;
} __attribute__((preserve_access_index));

/* The saved user registers of the current task (x86_64). */
static __always_inline struct pt_regs___aegis *current_regs(void)
{
	return (struct pt_regs___aegis *)bpf_task_pt_regs(bpf_get_current_task_btf());
}

/*
 * The number of the syscall the current task is in; a hook reached outside a syscall (orig_ax
 * is -1 there) or from a number this project does not know gets AEGIS_LSM_NO_SYSCALL.
 */
static __always_inline __u32 current_syscall_nr(struct pt_regs___aegis *regs)
{
	long nr = BPF_CORE_READ(regs, orig_ax);

	if (nr < 0 || nr >= AEGIS_LSM_NO_SYSCALL)
		return AEGIS_LSM_NO_SYSCALL;
	return (__u32)nr;
}

#endif /* AEGIS_LSM_H */
