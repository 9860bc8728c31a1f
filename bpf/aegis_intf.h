/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What bpf/aegis.bpf.c and scx_aegis (scheduler/scx_aegis) share: levels, limits and the stats
 * record. Plain C types only, so bindgen reads it without vmlinux.h. The algorithm these
 * serve is described in docs/aegis.md.
 */
#ifndef AEGIS_INTF_H
#define AEGIS_INTF_H

enum aegis_consts {
	/* Levels, served in this order: provenance, ordinary, producer. DSQ id = level. */
	AEGIS_NR_LEVELS = 3,
	AEGIS_LEVEL_PROVENANCE = 0,
	AEGIS_LEVEL_ORDINARY = 1,
	AEGIS_LEVEL_PRODUCER = 2,
	/* Per-CPU "what runs here" value for an idle CPU. */
	AEGIS_LEVEL_NONE = 255,
	/* boost 1: a queued provenance task preempts a producer once the ring is this full. */
	AEGIS_PREEMPT_FILL_PCT = 50,
	/*
	 * Backbone rule (default of scx_aegis --hold-fill-pct): while the ring is this full and the
	 * collector is running or queued, producers are held in their queue (unless overdue) and
	 * the CPU preempts them.
	 */
	AEGIS_HOLD_FILL_PCT = 75,
	/*
	 * Default of scx_aegis --wake-fill-pct: a collector woken by a producer's event while its
	 * ring is emptier than this waits (on no CPU) until the ring reaches it, so that it drains
	 * in batches instead of waking on an idle CPU for every few events.
	 */
	AEGIS_WAKE_FILL_PCT = 25,
	/* Tasks looked at per level when searching for one past its wait bound. */
	AEGIS_SCAN_DEPTH = 16,
	/*
	 * Tasks the deadline timer looks at per level, beyond AEGIS_SCAN_DEPTH, for overdue ones
	 * to move to the front of their level (requeue_deep_overdue_in()).
	 */
	AEGIS_DEEP_SCAN_DEPTH = 512,
	/* Longest time between two such searches while none is due (the bound's extra slack). */
	AEGIS_SCAN_INTERVAL_US = 1000,
	/* Fewer syscalls than this in a window of wall time never make a task a producer. */
	AEGIS_MIN_PRODUCER_SYSCALLS = 8,
	/* CPU time a task must run in a window for its syscall rate to be re-measured. */
	AEGIS_MIN_RATE_RUN_US = 1000,
	/*
	 * Period of the BPF timer that checks for tasks past their wait bound and ends windows:
	 * 1 ms cost a CPU-bound workload running alone a third of its throughput under TCG.
	 */
	AEGIS_CHECK_US = 10000,
	AEGIS_MAX_CPUS = 512,
	AEGIS_MAX_REGISTERED = 64,
	AEGIS_COMM_LEN = 16,
	/* Why a producer made a syscall with the ring past the hold line (stats). */
	AEGIS_PAST_HOLD_COLLECTOR_ASLEEP = 0,
	AEGIS_PAST_HOLD_PROMOTED = 1,
	AEGIS_PAST_HOLD_WOKEN_ON_IDLE_CPU = 2,
	AEGIS_PAST_HOLD_BEFORE_PREEMPTION = 3,
	AEGIS_NR_PAST_HOLD_REASONS = 4,
	/*
	 * Where a task waited before it ran (stats: the longest wait's path): a level's DSQ (its
	 * level number), a local DSQ straight from select_cpu or as the CPU's last task, or a
	 * level's DSQ and then promoted past its bound.
	 */
	AEGIS_QUEUED_DIRECT = 3,
	AEGIS_QUEUED_LAST = 4,
	AEGIS_QUEUED_PROMOTED = 5,
};

/* A level's longest wait, and what is known of the task that waited it. */
struct aegis_wait {
	unsigned long long ns;
	/* The task: pid, the CPUs it may run on, comm (16 bytes), where it waited (AEGIS_QUEUED_*).
	 */
	unsigned long long pid;
	unsigned long long nr_cpus_allowed;
	unsigned long long comm[2];
	unsigned long long queued_into;
	/* When the wait ended (bpf_ktime_get_ns, CLOCK_MONOTONIC). */
	unsigned long long ended_ns;
	/* The task that left the CPU just before it (comm, how long it had run, in ns). */
	unsigned long long after_comm[2];
	unsigned long long after_ran_ns;
	/*
	 * How many overdue scans looked at the task while it waited, and how many of them found
	 * it past its bound on a CPU where it could run.
	 */
	unsigned long long scanned;
	unsigned long long scanned_overdue;
	/*
	 * How long after it was queued a scan first found it due for promotion where it could
	 * run, and when it was promoted (ns; 0: never): splits a late wait into finding it,
	 * getting a CPU to take it, and waiting in that CPU's local queue.
	 */
	unsigned long long overdue_seen_after_ns;
	unsigned long long promoted_after_ns;
};

/* Counters, one record per CPU; user space sums them (and keeps the longest max_wait). */
struct aegis_stats {
	unsigned long long nr_queued[AEGIS_NR_LEVELS];
	unsigned long long nr_dispatched[AEGIS_NR_LEVELS];
	/* Served ahead of higher levels because the task's wait bound had passed. */
	unsigned long long nr_promoted[AEGIS_NR_LEVELS];
	struct aegis_wait max_wait[AEGIS_NR_LEVELS];
	/* The most tasks seen in each level's DSQ (at an enqueue). */
	unsigned long long max_queued[AEGIS_NR_LEVELS];
	/* Waits longer than the level's bound plus one scheduler tick. */
	unsigned long long nr_bound_violations[AEGIS_NR_LEVELS];
	/* Of those, the waits during which some busy CPU went over two tick periods untimed. */
	unsigned long long nr_bound_violations_in_stalls[AEGIS_NR_LEVELS];
	/* Woken onto an idle CPU directly by select_cpu. */
	unsigned long long nr_direct;
	unsigned long long nr_inferences_run;
	unsigned long long nr_inferences_skipped;
	/* CPUs running a producer preempted for a provenance task. */
	unsigned long long nr_preempt_kicks;
	unsigned long long nr_producer_syscalls;
	/* Times a provenance task was put on a CPU, and its CPU time. */
	unsigned long long nr_provenance_runs;
	unsigned long long provenance_runtime_ns;
	/* Scans of the levels for overdue tasks (dispatch and tick, when one is due). */
	unsigned long long nr_overdue_scans;
	/* Dispatches that left producers queued because the ring was nearly full. */
	unsigned long long nr_producer_holds;
	/*
	 * Producer syscalls made while the ring was past the hold line, by why the producer had a
	 * CPU: these are the events that can overflow the ring.
	 */
	unsigned long long nr_past_hold_syscalls[AEGIS_NR_PAST_HOLD_REASONS];
	/*
	 * The longest time between two ticks of this CPU while it was busy, and the ticks that
	 * came over twice the tick period late: a CPU that does not tick cannot enforce the
	 * wait bound (under TCG, a vCPU QEMU did not run).
	 */
	unsigned long long max_tick_gap_ns;
	unsigned long long nr_late_ticks;
	/* CPUs kicked by the deadline timer for an overdue task. */
	unsigned long long nr_deadline_kicks;
	/* The latest the deadline timer ran after the moment it was armed for. */
	unsigned long long max_deadline_timer_late_ns;
	/* The longest a CPU the deadline timer kicked took to dispatch or tick. */
	unsigned long long max_kick_to_dispatch_ns;
	/*
	 * Collector wakeups deferred until the ring filled (--wake-fill-pct), and how the
	 * deferral ended: the ring reached the wake fill, or --max-wake-defer-us passed.
	 */
	unsigned long long nr_wakes_deferred;
	unsigned long long nr_deferred_wakes_at_fill;
	unsigned long long nr_deferred_wakes_at_timeout;
	/*
	 * Overdue tasks the deadline timer found deeper than AEGIS_SCAN_DEPTH in their level's
	 * queue and moved to its front, where the scans see them.
	 */
	unsigned long long nr_requeued_overdue;
};

#endif /* AEGIS_INTF_H */
