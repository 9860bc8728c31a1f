/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Aegis: a sched_ext scheduler that keeps a provenance collector's ring buffer from
 * overflowing under a super-producer attack, without starving anyone. The algorithm is
 * described once, in docs/aegis.md; in short:
 *
 * Three DSQs, one per level, served in priority order (vtime order inside a level):
 * provenance tasks (registered by scx_aegis), ordinary tasks, and producers (by their syscall
 * rate, counted by this object's sys_enter program). A task in level k is overdue once it has
 * waited base_wait << k less half a tick, and is then served ahead of every level
 * (promote_after_ns()). While the collector's ring (read with bpf_ringbuf_query(), or
 * estimated) is nearly full, producers are held back. Every window a timer quantizes the
 * state and, if it moved more than delta, re-runs the fixed-point Q-network, whose action
 * sets the collector's boost and the producers' throttle.
 */
#include <scx/common.bpf.h>

#include "aegis_intf.h"
#include "aegis_qnet.h"
#include "aegis_levels.h"

char _license[] SEC("license") = "GPL";

UEI_DEFINE(uei);

/* Set by scx_aegis before load. */
const volatile __u64 base_slice_ns = 3000000;
const volatile __u64 base_wait_ns = 16000000;
const volatile __u64 window_ns = 10000000;
const volatile __u64 tick_ns = 4000000;
const volatile __u32 producer_syscalls_per_window = 20;
const volatile __u32 gate_delta = 8;
const volatile __u32 nr_cpus = 1;
const volatile bool have_ring;
const volatile bool have_model;
const volatile __u32 fixed_action = 3;
const volatile __u32 hold_fill_pct = AEGIS_HOLD_FILL_PCT;
const volatile __u64 hold_grace_ns = 1000000000;
/* Deferred collector wakeups (AEGIS_WAKE_FILL_PCT); 0 turns them off. */
const volatile __u32 wake_fill_pct = AEGIS_WAKE_FILL_PCT;
const volatile __u64 max_wake_defer_ns = 2000000;
/* Estimated backlog for collectors whose ring is not visible. */
const volatile __u64 est_ns_per_event = 4000;
const volatile __u64 est_event_bytes = 104;
const volatile __u64 est_ring_bytes = 8 << 20;

/* A task caches whether it is registered as provenance until this changes; scx_aegis
 * registers its tasks before attaching, so today it stays 1 (a later writer bumps it). */
volatile __u64 registry_gen = 1;
/* Read by scx_aegis for --stats. */
volatile __u32 current_action;
volatile __u32 current_fill_pct;
__u8 last_state[AEGIS_STATE_LEN];
bool have_last_state;

struct task_ctx {
	__u64 queued_at_ns;
	__u64 started_at_ns;
	__u64 window_start_ns;
	/* CPU time in the current window, accounted up to run_mark_ns while running. */
	__u64 window_ran_ns;
	__u64 run_mark_ns;
	__u64 registry_gen;
	__u32 window_syscalls;
	/* Syscalls per window of CPU time, over the last window in which the task ran. */
	__u32 recent_syscalls;
	__u32 level;
	/* Where it waits: an AEGIS_QUEUED_* path, or the level whose DSQ it is in. */
	__u32 queued_into;
	/* Scans that looked at it while it waited; those that found it overdue where it may run. */
	__u32 nr_scanned;
	__u32 nr_scanned_overdue;
	/* When a scan first found it overdue where it could run, and when it was promoted. */
	__u64 overdue_seen_ns;
	__u64 promoted_ns;
	bool provenance;
	/* How the current run began, for the past-hold stats. */
	bool promoted;
	bool woken_on_idle_cpu;
	/* Counted in nr_provenance_runnable. */
	bool counted_runnable;
	/* Woken while the ring was nearly empty: enqueue leaves it queued, no CPU kicked. */
	bool wake_deferred;
	/* Moved to the front of its level while overdue; its own vtime, restored when it runs. */
	bool requeued;
	__u64 vtime_before_requeue;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} task_ctxs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AEGIS_MAX_REGISTERED);
	__type(key, __u32);
	__type(value, __u8);
} provenance_tgids SEC(".maps");

struct comm_key {
	char comm[AEGIS_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AEGIS_MAX_REGISTERED);
	__type(key, struct comm_key);
	__type(value, __u8);
} provenance_comms SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AEGIS_MAX_REGISTERED);
	__type(key, __u64);
	__type(value, __u8);
} provenance_cgroups SEC(".maps");

/*
 * The collector's ring buffer: scx_aegis reuses the collector's pinned map before load. Named
 * like the built-in collectors' map because libbpf renames a reused map after the original,
 * and the skeleton finds its maps by name.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct aegis_qnet);
} qnet_weights SEC(".maps");

/*
 * One stats record per CPU, in .bss: scx_aegis reads them through the mmap'd data section.
 * A per-CPU map read with the bpf() syscall raised this CPU's bpf_prog_active while the
 * reader could be preempted, and classic tracepoint programs that fired meanwhile on that CPU
 * (the harness's ground truth) were skipped as recursion.
 */
struct aegis_stats cpu_stats[AEGIS_MAX_CPUS];
/* When a busy CPU last got a tick over two periods late: the end of a stall. */
__u64 last_stall_end_ns;
/* When each CPU last ticked, or started running a task (0: idle). */
__u64 cpu_last_tick_ns[AEGIS_MAX_CPUS];

/* The last task to leave each CPU, and how long it had run: named beside the longest waits. */
struct last_run {
	char comm[16];
	__u64 ran_ns;
};
struct last_run cpu_last_run[AEGIS_MAX_CPUS];

/* The level of the task running on each CPU (AEGIS_LEVEL_NONE when idle). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AEGIS_MAX_CPUS);
	__type(key, __u32);
	__type(value, __u32);
} cpu_level SEC(".maps");

/* A BPF timer in a one-slot array map: the window timer and the deadline timer. */
struct timer_slot {
	struct bpf_timer timer;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct timer_slot);
} window_timers SEC(".maps");

/* Fires when the earliest queued task becomes overdue (see on_deadline()). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct timer_slot);
} deadline_timers SEC(".maps");

/* When the deadline timer is armed to fire (0: not armed). */
__u64 deadline_timer_at_ns;

/*
 * Arms the deadline timer for @at_ns, unless it is already armed for earlier. A moment in the
 * past (a task overdue where nobody could take it) is retried a scan interval later, not at
 * once. A timer whose moment has passed but whose callback has not run yet (timers run late
 * under TCG) is left alone: re-arming it for a later moment postponed a due kick by
 * milliseconds. Only one a whole check period overdue is taken for lost and re-armed.
 */
static void arm_deadline_timer(__u64 at_ns, __u64 now)
{
	__u64 armed = deadline_timer_at_ns;
	struct timer_slot *dt;
	__u32 zero = 0;

	if (at_ns == (__u64)-1)
		return;
	if (at_ns <= now)
		at_ns = now + AEGIS_SCAN_INTERVAL_US * 1000ULL;
	if (armed && armed <= at_ns && now < armed + AEGIS_CHECK_US * 1000ULL)
		return;
	dt = bpf_map_lookup_elem(&deadline_timers, &zero);
	if (!dt)
		return;
	deadline_timer_at_ns = at_ns;
	bpf_timer_start(&dt->timer, at_ns, BPF_F_TIMER_ABS);
}

/* Window accounting, shared by all CPUs. */
__u64 window_producer_syscalls;
__u64 provenance_runtime_total_ns;
__u64 provenance_runtime_last_ns;
__u64 window_max_wait_ns[AEGIS_NR_LEVELS];
__u64 est_backlog_events;
__u64 vtime_now[AEGIS_NR_LEVELS];
/*
 * Provenance tasks that are runnable (queued anywhere, waking onto an idle CPU, or running):
 * the collector is at its backlog or about to be.
 */
__s64 nr_provenance_runnable;
/* When a provenance task last left a CPU. */
__u64 provenance_last_run_ns;
/* Since when a provenance task's wakeup waits for its ring to fill (0: none waits). */
__u64 collector_wake_deferred_ns;
__u64 next_window_ns;

/*
 * A task the deadline timer moved to the front of its level (requeue_deep_overdue_in()) gets its
 * own vtime back once it runs or is queued anew: the front place was for the wait only.
 */
static void undo_requeue(struct task_struct *p, struct task_ctx *tctx)
{
	if (!tctx->requeued)
		return;
	tctx->requeued = false;
	p->scx.dsq_vtime = tctx->vtime_before_requeue;
}

static struct aegis_stats *my_stats(void)
{
	__u32 cpu = bpf_get_smp_processor_id();

	if (cpu >= AEGIS_MAX_CPUS)
		return NULL;
	return &cpu_stats[cpu];
}

static __u32 action_boost(void)
{
	return current_action / 3;
}

static __u32 action_throttle(void)
{
	return current_action % 3;
}

static __u64 slice_of(__u32 level)
{
	switch (level) {
	case AEGIS_LEVEL_PROVENANCE:
		return base_slice_ns << action_boost();
	case AEGIS_LEVEL_PRODUCER:
		return base_slice_ns >> action_throttle();
	default:
		return base_slice_ns;
	}
}

/* The collector's backlog in percent of its ring: exact when the ring is visible. */
static __u32 ring_fill_pct(void)
{
	__u64 size, avail;

	if (!have_ring)
		return current_fill_pct;
	size = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);
	avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	if (!size)
		return 0;
	if (avail > size)
		avail = size;
	return avail * 100 / size;
}

static bool is_registered(struct task_struct *p)
{
	struct comm_key key = {};
	__u32 tgid = p->tgid;
	__u64 cgid;

	if (bpf_map_lookup_elem(&provenance_tgids, &tgid))
		return true;
	bpf_probe_read_kernel_str(key.comm, sizeof(key.comm), p->comm);
	if (bpf_map_lookup_elem(&provenance_comms, &key))
		return true;
	cgid = BPF_CORE_READ(p, cgroups, dfl_cgrp, kn, id);
	return bpf_map_lookup_elem(&provenance_cgroups, &cgid) != NULL;
}

/* CPU time the task has used since it was last accounted (0 unless it is running). */
static void account_run(struct task_ctx *tctx, __u64 now)
{
	if (tctx->run_mark_ns && now > tctx->run_mark_ns) {
		tctx->window_ran_ns += now - tctx->run_mark_ns;
		tctx->run_mark_ns = now;
	}
}

/*
 * Rolls the task's rate window forward to now. The rate is syscalls per window of the task's
 * own CPU time (scheduler/src/aegis/levels.rs::syscalls_per_window_of_cpu): counted per wall
 * time, a producer that waits for a CPU would look idle exactly when it is picked. A window in
 * which the task ran less than AEGIS_MIN_RATE_RUN_US keeps the previous rate.
 */
static void roll_window(struct task_ctx *tctx, __u64 now)
{
	__u64 rate;

	if (now - tctx->window_start_ns < window_ns)
		return;
	account_run(tctx, now);
	/*
	 * Too little CPU time in the window to measure a rate: keep the last one. A producer that
	 * is being held back runs a syscall at a time and must stay a producer.
	 */
	if (tctx->window_ran_ns >= AEGIS_MIN_RATE_RUN_US * 1000ULL) {
		rate = (__u64)tctx->window_syscalls * window_ns / tctx->window_ran_ns;
		tctx->recent_syscalls = rate > 0xffffffffULL ? 0xffffffffU : rate;
	}
	tctx->window_syscalls = 0;
	tctx->window_ran_ns = 0;
	tctx->window_start_ns = now;
}

static bool is_provenance(struct task_struct *p, struct task_ctx *tctx)
{
	if (tctx->registry_gen != registry_gen) {
		tctx->provenance = is_registered(p);
		tctx->registry_gen = registry_gen;
	}
	return tctx->provenance;
}

static __u32 classify(struct task_struct *p, struct task_ctx *tctx, __u64 now)
{
	__u32 recent;

	is_provenance(p, tctx);
	roll_window(tctx, now);
	/* The window in progress counts too once it alone crosses the threshold. */
	recent = tctx->recent_syscalls > tctx->window_syscalls ? tctx->recent_syscalls
							       : tctx->window_syscalls;
	tctx->level = aegis_level_of(tctx->provenance, recent, producer_syscalls_per_window);
	return tctx->level;
}

/* Preempts one CPU that is running a producer, for a queued provenance task. */
static void preempt_a_producer(void)
{
	struct aegis_stats *st;
	__u32 cpu;

	bpf_for(cpu, 0, nr_cpus)
	{
		__u32 *level = bpf_map_lookup_elem(&cpu_level, &cpu);

		if (level && *level == AEGIS_LEVEL_PRODUCER) {
			scx_bpf_kick_cpu(cpu, SCX_KICK_PREEMPT);
			st = my_stats();
			if (st)
				st->nr_preempt_kicks++;
			return;
		}
	}
}

/* Whether a provenance task is on a CPU. */
static bool provenance_running(void)
{
	__u32 cpu;

	bpf_for(cpu, 0, nr_cpus)
	{
		__u32 *level = bpf_map_lookup_elem(&cpu_level, &cpu);

		if (level && *level == AEGIS_LEVEL_PROVENANCE)
			return true;
	}
	return false;
}

/* Whether a runnable provenance task should take a producer's CPU, at this ring fill. */
static bool provenance_should_preempt_at(__u32 fill)
{
	__u32 boost = action_boost();

	if (boost >= 2)
		return true;
	return boost == 1 && fill >= AEGIS_PREEMPT_FILL_PCT;
}

static bool provenance_should_preempt(void)
{
	return provenance_should_preempt_at(ring_fill_pct());
}

/*
 * Whether the collector is alive: a provenance task is runnable, or one ran within
 * hold_grace_ns. The grace covers a live collector asleep while its ring fills: in a loaded
 * guest the ring's wakeup (an irq_work) reached the collector tens of milliseconds late, and
 * producers let go meanwhile filled the ring. A collector gone for longer holds nobody back.
 */
static bool collector_active(void)
{
	if (nr_provenance_runnable > 0)
		return true;
	return bpf_ktime_get_ns() - provenance_last_run_ns < hold_grace_ns;
}

/* Whether producers are held back at this fill: the ring is nearly full, the collector alive. */
static bool holding_producers_at(__u32 fill)
{
	return fill >= hold_fill_pct && collector_active();
}

static bool holding_producers(void)
{
	return holding_producers_at(ring_fill_pct());
}

/*
 * Whether the collector has a backlog to drain: the ring past the preemption point or the hold
 * line. Only then does a queued collector go ahead of overdue tasks, and a running one keep its
 * CPU against overdue producers. Boost 2's eagerness alone (it preempts at any fill) must not:
 * with it a busy collector kept overdue producers out tick after tick.
 */
static bool collector_backlog(void)
{
	__u32 fill = ring_fill_pct();

	return fill >= AEGIS_PREEMPT_FILL_PCT || holding_producers_at(fill);
}

/*
 * How long past its bound an overdue task yields to a collector draining a backlog: half a
 * tick, then it takes a CPU, the collector's included. Producers promoted at their bound ahead
 * of a queued collector overfilled the ring when the guest's vCPUs stalled; a producer served
 * with the ring past the hold line makes one syscall before the preemption kick stops it.
 */
static __u64 drain_yield_ns(void)
{
	return collector_backlog() ? tick_ns / 2 : 0;
}

/*
 * How long a task of @level waits before it is served ahead of higher levels: half a tick
 * before its bound, plus @yield_ns. The bound promises service within a tick of it, and
 * reaching the task takes time: the deadline timer and the CPU it kicks ran up to 5-7 ms late
 * under TCG when QEMU did not run a vCPU.
 */
static __u64 promote_after_ns(__u32 level, __u64 yield_ns)
{
	__u64 bound = aegis_wait_bound_ns(level, base_wait_ns), lead = tick_ns / 2;

	return (bound > lead ? bound - lead : 0) + yield_ns;
}

/* Wakes idle CPUs so they look at the queues again (after a hold lifts, every window). */
static void kick_idle_cpus(void)
{
	__u32 cpu;

	bpf_for(cpu, 0, nr_cpus)
	{
		__u32 *level = bpf_map_lookup_elem(&cpu_level, &cpu);

		if (level && *level == AEGIS_LEVEL_NONE)
			scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
	}
}

/*
 * Whether a provenance task woken now waits for its ring to fill instead of taking an idle CPU.
 * The ring wakes its consumer on the first event after it caught up, so a collector woken at
 * once onto an idle CPU drained a few events a wakeup: with one flood thread, 19k wakeups a
 * second, each costing both sides (and, under TCG, a vCPU wake). Only when the waker is a
 * producer (the wakeup comes from its event), the ring is visible and nearly empty, and the
 * action does not ask for an eager collector (boost 2).
 */
static bool defer_collector_wake(void)
{
	struct task_struct *waker = bpf_get_current_task_btf();
	struct task_ctx *wctx;

	if (!have_ring || !wake_fill_pct || action_boost() >= 2)
		return false;
	wctx = bpf_task_storage_get(&task_ctxs, waker, 0, 0);
	if (!wctx || wctx->level != AEGIS_LEVEL_PRODUCER)
		return false;
	return ring_fill_pct() < wake_fill_pct;
}

/*
 * Ends a deferred collector wakeup once the ring reached the wake fill or the deferral lasted
 * max_wake_defer_ns: wakes the idle CPUs so one of them runs the collector (a busy CPU takes it
 * at its next dispatch, or preempts a producer as the action says).
 */
static void end_wake_deferral(__u64 now, __u32 fill)
{
	__u64 since = collector_wake_deferred_ns;
	struct aegis_stats *st;
	bool timed_out;

	if (!since)
		return;
	timed_out = now > since && now - since >= max_wake_defer_ns;
	if (fill < wake_fill_pct && !timed_out)
		return;
	/* One CPU ends it. */
	if (__sync_val_compare_and_swap(&collector_wake_deferred_ns, since, 0) != since)
		return;
	st = my_stats();
	if (st) {
		if (fill >= wake_fill_pct)
			st->nr_deferred_wakes_at_fill++;
		else
			st->nr_deferred_wakes_at_timeout++;
	}
	kick_idle_cpus();
}

/*
 * The scheduler's own syscall counter: classifies producers, feeds the production rate, and
 * preempts a producer whose events are filling the ring while a provenance task waits.
 */
SEC("tp_btf/sys_enter")
int BPF_PROG(aegis_sys_enter, struct pt_regs *regs, long id)
{
	struct task_struct *p = bpf_get_current_task_btf();
	struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);
	struct aegis_stats *st;
	__u32 fill;
	bool held;
	__u64 now;

	if (!tctx)
		return 0;
	now = bpf_ktime_get_ns();
	roll_window(tctx, now);
	tctx->window_syscalls++;
	if (tctx->level != AEGIS_LEVEL_PRODUCER) {
		__u32 cpu = bpf_get_smp_processor_id();
		__u32 *running_level;

		__u64 ran_ns, rate;

		if (tctx->level != AEGIS_LEVEL_ORDINARY ||
		    tctx->window_syscalls < AEGIS_MIN_PRODUCER_SYSCALLS)
			return 0;
		/* The rate so far in this window, per window of CPU time. */
		account_run(tctx, now);
		ran_ns = tctx->window_ran_ns ? tctx->window_ran_ns : 1;
		rate = (__u64)tctx->window_syscalls * window_ns / ran_ns;
		if (rate <= producer_syscalls_per_window)
			return 0;
		/*
		 * Crossed the threshold mid-run: a producer from now on, not from its next turn,
		 * and until a window with enough CPU time measures it below the threshold. Without
		 * keeping the rate, the next enqueue judged the task by its raw count in the window
		 * (a held producer makes one syscall a run) and queued it as ordinary, past the
		 * hold: new flood threads cycled ordinary-producer-ordinary with the ring full.
		 */
		tctx->recent_syscalls = rate > 0xffffffffULL ? 0xffffffffU : rate;
		tctx->level = AEGIS_LEVEL_PRODUCER;
		running_level = bpf_map_lookup_elem(&cpu_level, &cpu);
		if (running_level)
			*running_level = AEGIS_LEVEL_PRODUCER;
	}
	__sync_fetch_and_add(&window_producer_syscalls, 1);
	/* Read once: every rule below looks at the same fill. */
	fill = ring_fill_pct();
	if (collector_wake_deferred_ns)
		end_wake_deferral(now, fill);
	held = holding_producers_at(fill);
	st = my_stats();
	if (st) {
		st->nr_producer_syscalls++;
		if (fill >= hold_fill_pct) {
			__u32 reason = AEGIS_PAST_HOLD_BEFORE_PREEMPTION;

			if (!held)
				reason = AEGIS_PAST_HOLD_COLLECTOR_ASLEEP;
			else if (tctx->promoted)
				reason = AEGIS_PAST_HOLD_PROMOTED;
			else if (tctx->woken_on_idle_cpu)
				reason = AEGIS_PAST_HOLD_WOKEN_ON_IDLE_CPU;
			if (reason < AEGIS_NR_PAST_HOLD_REASONS)
				st->nr_past_hold_syscalls[reason]++;
		}
	}
	/* Yield to a waiting collector as the action says, and always while held. */
	if (held || (nr_provenance_runnable > 0 && provenance_should_preempt_at(fill) &&
		     !provenance_running())) {
		scx_bpf_kick_cpu(bpf_get_smp_processor_id(), SCX_KICK_PREEMPT);
		if (st)
			st->nr_preempt_kicks++;
	}
	return 0;
}

s32 BPF_STRUCT_OPS(aegis_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);
	bool is_idle = false;
	s32 cpu;

	/*
	 * Checked before an idle CPU is claimed: one claimed and left unused stays marked busy.
	 * The waking CPU runs the producer, which keeps it; enqueue kicks nobody.
	 */
	if (tctx && is_provenance(p, tctx) && defer_collector_wake()) {
		struct aegis_stats *st = my_stats();

		tctx->wake_deferred = true;
		if (!collector_wake_deferred_ns)
			collector_wake_deferred_ns = bpf_ktime_get_ns();
		if (st)
			st->nr_wakes_deferred++;
		return bpf_get_smp_processor_id();
	}
	cpu = scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);
	if (is_idle && tctx) {
		__u64 now = bpf_ktime_get_ns();
		__u32 level = classify(p, tctx, now);
		struct aegis_stats *st = my_stats();

		/* A held producer waits in its queue even when a CPU is idle. */
		if (level == AEGIS_LEVEL_PRODUCER && holding_producers())
			return cpu;

		tctx->queued_at_ns = now;
		tctx->nr_scanned = 0;
		tctx->nr_scanned_overdue = 0;
		tctx->overdue_seen_ns = 0;
		tctx->promoted_ns = 0;
		tctx->queued_into = AEGIS_QUEUED_DIRECT;
		tctx->woken_on_idle_cpu = true;
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice_of(level), 0);
		if (st)
			st->nr_direct++;
	}
	return cpu;
}

void BPF_STRUCT_OPS(aegis_enqueue, struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);
	struct aegis_stats *st = my_stats();
	__u64 now = bpf_ktime_get_ns();
	__u32 level = AEGIS_LEVEL_ORDINARY;
	__u64 vtime = p->scx.dsq_vtime;
	bool wake_deferred = false;
	__u64 floor;
	s32 idle;

	if (tctx) {
		wake_deferred = tctx->wake_deferred;
		tctx->wake_deferred = false;
		/* Left its queue before it ran (e.g. an affinity change). */
		undo_requeue(p, tctx);
		vtime = p->scx.dsq_vtime;
		level = classify(p, tctx, now);
		/* A task sent back from a CPU a higher class took has been waiting all along. */
		if (!(enq_flags & SCX_ENQ_REENQ) || !tctx->queued_at_ns) {
			tctx->queued_at_ns = now;
			tctx->nr_scanned = 0;
			tctx->nr_scanned_overdue = 0;
			tctx->overdue_seen_ns = 0;
			tctx->promoted_ns = 0;
		}
	}
	level &= 3;
	if (level >= AEGIS_NR_LEVELS)
		level = AEGIS_LEVEL_ORDINARY;
	/*
	 * The last runnable task of this CPU (SCX_OPS_ENQ_LAST) keeps its CPU, except a producer
	 * being held back: without this rule the kernel would hand it a fresh slice.
	 */
	if ((enq_flags & SCX_ENQ_LAST) && !(level == AEGIS_LEVEL_PRODUCER && holding_producers())) {
		if (tctx)
			tctx->queued_into = AEGIS_QUEUED_LAST;
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice_of(level), enq_flags);
		if (st)
			st->nr_queued[level]++;
		return;
	}
	/* A task that slept keeps at most one slice of credit within its level. */
	floor = vtime_now[level] > base_slice_ns ? vtime_now[level] - base_slice_ns : 0;
	if (vtime < floor)
		vtime = floor;
	if (tctx)
		tctx->queued_into = level;
	scx_bpf_dsq_insert_vtime(p, level, slice_of(level), vtime, enq_flags);
	if (tctx)
		arm_deadline_timer(tctx->queued_at_ns + promote_after_ns(level, 0), now);
	if (st) {
		/* The insert takes effect once enqueue returns: the task is not counted yet. */
		s32 queued = scx_bpf_dsq_nr_queued(level) + 1;

		st->nr_queued[level]++;
		if (queued > 0 && queued > st->max_queued[level])
			st->max_queued[level] = queued;
	}

	/* A deferred collector wakeup waits for the ring to fill (end_wake_deferral()). */
	if (wake_deferred && level == AEGIS_LEVEL_PROVENANCE)
		return;
	idle = scx_bpf_pick_idle_cpu(p->cpus_ptr, 0);
	if (idle >= 0)
		scx_bpf_kick_cpu(idle, SCX_KICK_IDLE);
	else if (level == AEGIS_LEVEL_PROVENANCE && provenance_should_preempt())
		preempt_a_producer();
}

/*
 * Finds the task furthest past its promotion time (promote_after_ns(), "overdue") in the lowest
 * level that has one, looking at the first AEGIS_SCAN_DEPTH tasks of each level that may run on
 * @cpu (on any CPU if @cpu < 0). Returns its level, or -1 if none is overdue;
 * *next_deadline_out is the earliest promotion time of a scanned task (on any CPU).
 *
 * A global function: the verifier checks it once, not again at each of its callers with their
 * states (inlined into tick, dispatch and the timer, loading took over a minute under TCG).
 */
__noinline int find_overdue_on(s32 cpu, __u64 yield_ns, __u64 now, s32 *pid_out,
			       __u64 *next_deadline_out)
{
	__u64 most_overdue = 0, next_deadline = (__u64)-1;
	struct task_struct *p;
	int found = -1;
	__u32 level;

	if (!pid_out || !next_deadline_out)
		return -1;
	/* Verified on its own, it is not known to run inside the callers' RCU section. */
	bpf_rcu_read_lock();
	bpf_for(level, 0, AEGIS_NR_LEVELS)
	{
		__u64 bound = promote_after_ns(level, yield_ns);
		int seen = 0;

		/*
		 * The lowest level with an overdue task wins: its bound is the tighter one, and an
		 * overdue producer promoted first kept a kworker 12 ms past its own.
		 */
		if (found >= 0)
			break;

		bpf_for_each(scx_dsq, p, level, 0)
		{
			struct task_ctx *tctx;
			__u64 waited;

			if (++seen > AEGIS_SCAN_DEPTH)
				break;
			tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);
			if (!tctx || !tctx->queued_at_ns || now < tctx->queued_at_ns)
				continue;
			if (tctx->queued_at_ns + bound < next_deadline)
				next_deadline = tctx->queued_at_ns + bound;
			tctx->nr_scanned++;
			if (cpu >= 0 && !bpf_cpumask_test_cpu(cpu, p->cpus_ptr))
				continue;
			waited = now - tctx->queued_at_ns;
			if (waited > bound) {
				tctx->nr_scanned_overdue++;
				if (!tctx->overdue_seen_ns)
					tctx->overdue_seen_ns = now;
			}
			if (waited > bound && waited - bound > most_overdue) {
				most_overdue = waited - bound;
				found = level;
				*pid_out = p->pid;
			}
		}
	}
	bpf_rcu_read_unlock();
	*next_deadline_out = next_deadline;
	return found;
}

/*
 * Moves the overdue tasks deeper than AEGIS_SCAN_DEPTH in @level's queue (up to
 * AEGIS_DEEP_SCAN_DEPTH) to the front, the most overdue first, where the scans of dispatch and
 * tick see them. The queues are in vtime order: beside hackbench ~80 producer-class tasks were
 * queued and a task behind the first 16 was found only when it reached the front, 480 ms after
 * it was queued. Called from the deadline timer only (no rq lock held, so tasks may move);
 * *next_deadline_out is lowered to the earliest promotion time of a task it looked at.
 * Returns how many tasks it moved.
 */
__noinline int requeue_deep_overdue_in(__u32 level, __u64 yield_ns, __u64 now,
				       __u64 *next_deadline_out)
{
	__u64 bound, front, next_deadline;
	struct task_struct *p;
	int moved = 0, seen = 0;

	if (!next_deadline_out || level >= AEGIS_NR_LEVELS)
		return 0;
	if (scx_bpf_dsq_nr_queued(level) <= AEGIS_SCAN_DEPTH)
		return 0;
	bound = promote_after_ns(level, yield_ns);
	next_deadline = *next_deadline_out;
	/* Ahead of every queued task and of any later waker (never below its floor). */
	front = vtime_now[level] > base_slice_ns ? vtime_now[level] - base_slice_ns : 0;
	/* Verified on its own, it is not known to run inside the callers' RCU section. */
	bpf_rcu_read_lock();
	bpf_for_each(scx_dsq, p, level, 0)
	{
		struct task_ctx *tctx;
		__u64 waited, late;

		if (++seen > AEGIS_DEEP_SCAN_DEPTH)
			break;
		if (seen == 1 && p->scx.dsq_vtime < front)
			front = p->scx.dsq_vtime;
		if (seen <= AEGIS_SCAN_DEPTH)
			continue;
		tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);
		if (!tctx || !tctx->queued_at_ns || now < tctx->queued_at_ns)
			continue;
		if (tctx->queued_at_ns + bound < next_deadline)
			next_deadline = tctx->queued_at_ns + bound;
		waited = now - tctx->queued_at_ns;
		if (waited <= bound)
			continue;
		if (!tctx->overdue_seen_ns)
			tctx->overdue_seen_ns = now;
		if (!tctx->requeued)
			tctx->vtime_before_requeue = p->scx.dsq_vtime;
		/* The most overdue goes first. */
		late = waited - bound + 1;
		scx_bpf_dsq_move_set_vtime(BPF_FOR_EACH_ITER, front > late ? front - late : 0);
		if (scx_bpf_dsq_move_vtime(BPF_FOR_EACH_ITER, p, level, 0)) {
			tctx->requeued = true;
			moved++;
		}
	}
	bpf_rcu_read_unlock();
	*next_deadline_out = next_deadline;
	return moved;
}

/*
 * When dispatch and tick next need to scan the levels for overdue tasks. A scan costs tens of
 * microseconds of BPF under TCG and ran on every dispatch; nothing scanned can become overdue
 * before the earliest deadline seen, and tasks that move into the scanned window later are
 * seen within AEGIS_SCAN_INTERVAL_US.
 */
__u64 next_overdue_scan_ns;

static int find_overdue(s32 cpu, __u64 yield_ns, __u64 now, s32 *pid_out)
{
	__u64 next_deadline, next;
	struct aegis_stats *st;
	int level;

	if (now < next_overdue_scan_ns)
		return -1;
	st = my_stats();
	if (st)
		st->nr_overdue_scans++;
	level = find_overdue_on(cpu, yield_ns, now, pid_out, &next_deadline);
	arm_deadline_timer(next_deadline, now);
	if (level >= 0) {
		/* Promoting one may leave others overdue: scan again next time. */
		next_overdue_scan_ns = 0;
		return level;
	}
	next = now + AEGIS_SCAN_INTERVAL_US * 1000ULL;
	if (next_deadline < next)
		/* Overdue but not runnable here: let other CPUs look soon, not at once. */
		next = next_deadline > now ? next_deadline : now + AEGIS_SCAN_INTERVAL_US * 100ULL;
	next_overdue_scan_ns = next;
	return -1;
}

/*
 * A task that the tick or the deadline timer found overdue (promote_after_ns()), for that CPU's
 * next dispatch to serve even ahead of a queued collector (pid, and
 * level + 1; 0: none). Without it a task that may run only there (a per-CPU kworker) waited
 * while a draining collector kept the CPU.
 */
__s32 pending_overdue_pid[AEGIS_MAX_CPUS];
__u32 pending_overdue_level[AEGIS_MAX_CPUS];
/* When the deadline timer kicked each CPU that has not dispatched or ticked since (0: none). */
__u64 overdue_kicked_at_ns[AEGIS_MAX_CPUS];

/*
 * This CPU dispatches or ticks: it runs, so the deadline timer may kick it again. Records how
 * long an earlier kick took to get here.
 */
static void kick_answered(s32 cpu, __u64 now)
{
	__u32 idx = cpu & (AEGIS_MAX_CPUS - 1);
	struct aegis_stats *st;
	__u64 kicked;

	if (cpu < 0 || cpu >= AEGIS_MAX_CPUS)
		return;
	/* Masked: the verifier tracks the signed and the unsigned bound apart. */
	kicked = overdue_kicked_at_ns[idx];
	if (!kicked)
		return;
	overdue_kicked_at_ns[idx] = 0;
	st = my_stats();
	if (st && now > kicked && now - kicked > st->max_kick_to_dispatch_ns)
		st->max_kick_to_dispatch_ns = now - kicked;
}

/* Takes this CPU's pending overdue task: its level, or -1 if none. */
static int take_pending_overdue(s32 cpu, s32 *pid_out)
{
	__u32 idx = cpu, level;

	if (idx >= AEGIS_MAX_CPUS)
		return -1;
	level = pending_overdue_level[idx];
	if (!level || level > AEGIS_NR_LEVELS)
		return -1;
	pending_overdue_level[idx] = 0;
	*pid_out = pending_overdue_pid[idx];
	return level - 1;
}

/* Moves the task with this pid from a level's DSQ to the local one. */
static bool promote(__u32 level, s32 pid)
{
	struct task_struct *p;
	int seen = 0;

	bpf_for_each(scx_dsq, p, level, 0)
	{
		if (++seen > AEGIS_SCAN_DEPTH)
			break;
		if (p->pid == pid) {
			struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);

			if (tctx) {
				tctx->promoted = true;
				tctx->promoted_ns = bpf_ktime_get_ns();
			}
			return scx_bpf_dsq_move(BPF_FOR_EACH_ITER, p, SCX_DSQ_LOCAL, 0);
		}
	}
	return false;
}

void BPF_STRUCT_OPS(aegis_dispatch, s32 cpu, struct task_struct *prev)
{
	struct aegis_stats *st = my_stats();
	__u64 now = bpf_ktime_get_ns();
	s32 pid = 0;
	int level;

	kick_answered(cpu, now);
	/* The tick or the deadline timer preempted this CPU for a task overdue here: it goes
	 * first. */
	level = take_pending_overdue(cpu, &pid);
	if (level < 0) {
		__u64 yield_ns = drain_yield_ns();

		level = find_overdue(cpu, yield_ns, now, &pid);
		/* A collector with a backlog drains ahead of tasks not yet that far overdue. */
		if (level < 0 && yield_ns && scx_bpf_dsq_move_to_local(AEGIS_LEVEL_PROVENANCE, 0)) {
			if (st)
				st->nr_dispatched[AEGIS_LEVEL_PROVENANCE]++;
			return;
		}
	}
	if (level >= 0 && level < AEGIS_NR_LEVELS && promote(level, pid)) {
		if (st) {
			st->nr_promoted[level]++;
			st->nr_dispatched[level]++;
		}
		return;
	}
	bpf_for(level, 0, AEGIS_NR_LEVELS)
	{
		if (level == AEGIS_LEVEL_PRODUCER && holding_producers()) {
			if (st)
				st->nr_producer_holds++;
			break;
		}
		if (scx_bpf_dsq_move_to_local(level, 0)) {
			if (st && level < AEGIS_NR_LEVELS)
				st->nr_dispatched[level]++;
			return;
		}
	}
}

/*
 * A higher scheduling class (an RT task, the stopper) took this CPU: the tasks already in its
 * local queue go back through enqueue, so that another CPU can serve them meanwhile.
 */
void BPF_STRUCT_OPS(aegis_cpu_release, s32 cpu, struct scx_cpu_release_args *args)
{
	scx_bpf_reenqueue_local();
}

/* Whether no task is queued in any level or on this CPU's local queue. */
static bool nobody_waiting(void)
{
	__u32 level;

	if (scx_bpf_dsq_nr_queued(SCX_DSQ_LOCAL) > 0)
		return false;
	bpf_for(level, 0, AEGIS_NR_LEVELS)
	{
		if (scx_bpf_dsq_nr_queued(level) > 0)
			return false;
	}
	return true;
}

/* Records how long this busy CPU went without a tick. */
static void account_tick(__u64 now)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct aegis_stats *st = my_stats();
	__u64 last, gap;

	if (cpu >= AEGIS_MAX_CPUS)
		return;
	last = cpu_last_tick_ns[cpu];
	cpu_last_tick_ns[cpu] = now;
	if (!st || !last || now < last)
		return;
	gap = now - last;
	if (gap > st->max_tick_gap_ns)
		st->max_tick_gap_ns = gap;
	if (gap > 2 * tick_ns) {
		st->nr_late_ticks++;
		last_stall_end_ns = now;
	}
}

void BPF_STRUCT_OPS(aegis_tick, struct task_struct *p)
{
	struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);
	s32 cpu = bpf_get_smp_processor_id();
	__u64 now = bpf_ktime_get_ns();
	bool collector_here, draining;
	__u64 yield_ns;
	s32 pid = 0;
	int level;

	account_tick(now);
	kick_answered(cpu, now);
	/* Producers that stopped making syscalls no longer end a deferral: the tick does. */
	if (collector_wake_deferred_ns)
		end_wake_deferral(now, ring_fill_pct());

	/* An overdue task that may run here takes the CPU, even from a draining collector. */
	yield_ns = drain_yield_ns();
	collector_here = tctx && tctx->level == AEGIS_LEVEL_PROVENANCE;
	/* The yield is non-zero exactly while the collector has a backlog. */
	draining = collector_here && yield_ns;
	level = find_overdue(cpu, yield_ns, now, &pid);
	if (level >= 0) {
		/*
		 * Read afresh: a copy of cpu spilled next to pid, which the scan wrote through, is
		 * unbounded to the verifier.
		 */
		__u32 idx = bpf_get_smp_processor_id();

		/* The next dispatch serves it even ahead of a queued collector. */
		if (idx < AEGIS_MAX_CPUS) {
			pending_overdue_pid[idx] = pid;
			pending_overdue_level[idx] = level + 1;
		}
		/* Give the CPU up: dispatch promotes it. */
		p->scx.slice = 0;
		return;
	}
	if (draining)
		return;
	/*
	 * Nobody waits: refill the slice rather than let it expire. An expiry reschedules even a
	 * task alone on its CPU, and under TCG that cost two CPU hogs running alone 29 % of their
	 * throughput at the 3 ms base slice. A held producer is never refilled.
	 */
	if (tctx && !(tctx->level == AEGIS_LEVEL_PRODUCER && holding_producers()) &&
	    nobody_waiting())
		p->scx.slice = slice_of(tctx->level);
}

void BPF_STRUCT_OPS(aegis_running, struct task_struct *p)
{
	struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);
	struct aegis_stats *st = my_stats();
	__u64 now = bpf_ktime_get_ns();
	__u32 cpu = bpf_get_smp_processor_id();
	__u32 *running_level = bpf_map_lookup_elem(&cpu_level, &cpu);
	__u32 level;

	if (!tctx)
		return;
	level = tctx->level;
	if (level >= AEGIS_NR_LEVELS)
		return;
	if (running_level)
		*running_level = level;
	undo_requeue(p, tctx);
	tctx->started_at_ns = now;
	if (cpu < AEGIS_MAX_CPUS)
		cpu_last_tick_ns[cpu] = now;
	tctx->run_mark_ns = now;
	if (vtime_now[level] < p->scx.dsq_vtime)
		vtime_now[level] = p->scx.dsq_vtime;
	if (tctx->queued_at_ns && now > tctx->queued_at_ns && st) {
		__u64 waited = now - tctx->queued_at_ns;
		struct aegis_wait *longest = &st->max_wait[level];

		if (waited > longest->ns) {
			longest->ns = waited;
			longest->pid = p->pid;
			longest->ended_ns = now;
			longest->scanned = tctx->nr_scanned;
			longest->scanned_overdue = tctx->nr_scanned_overdue;
			longest->overdue_seen_after_ns =
				tctx->overdue_seen_ns > tctx->queued_at_ns
					? tctx->overdue_seen_ns - tctx->queued_at_ns
					: 0;
			longest->promoted_after_ns =
				tctx->promoted_ns > tctx->queued_at_ns
					? tctx->promoted_ns - tctx->queued_at_ns
					: 0;
			if (cpu < AEGIS_MAX_CPUS) {
				struct last_run *last = &cpu_last_run[cpu];

				longest->after_ran_ns = last->ran_ns;
				__builtin_memcpy(longest->after_comm, last->comm, 16);
			}
			longest->nr_cpus_allowed = p->nr_cpus_allowed;
			longest->queued_into =
				tctx->promoted ? AEGIS_QUEUED_PROMOTED : tctx->queued_into;
			bpf_probe_read_kernel(longest->comm, sizeof(longest->comm), p->comm);
		}
		if (waited > aegis_wait_bound_ns(level, base_wait_ns) + tick_ns) {
			st->nr_bound_violations[level]++;
			if (last_stall_end_ns >= tctx->queued_at_ns)
				st->nr_bound_violations_in_stalls[level]++;
		}
		if (waited > window_max_wait_ns[level])
			window_max_wait_ns[level] = waited;
	}
	tctx->queued_at_ns = 0;
	if (level == AEGIS_LEVEL_PROVENANCE) {
		collector_wake_deferred_ns = 0;
		if (st)
			st->nr_provenance_runs++;
	}
}

void BPF_STRUCT_OPS(aegis_stopping, struct task_struct *p, bool runnable)
{
	struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);
	__u32 cpu = bpf_get_smp_processor_id();
	__u32 *running_level = bpf_map_lookup_elem(&cpu_level, &cpu);
	__u64 now = bpf_ktime_get_ns();
	__u64 used;

	if (cpu < AEGIS_MAX_CPUS) {
		/* A task that ran past two tick periods without a tick: this CPU stalled. */
		if (cpu_last_tick_ns[cpu] && now > cpu_last_tick_ns[cpu] + 2 * tick_ns)
			last_stall_end_ns = now;
		cpu_last_tick_ns[cpu] = 0;
	}
	if (running_level)
		*running_level = AEGIS_LEVEL_NONE;
	if (!tctx || !tctx->started_at_ns || now < tctx->started_at_ns)
		return;
	used = now - tctx->started_at_ns;
	tctx->started_at_ns = 0;
	if (cpu < AEGIS_MAX_CPUS) {
		struct last_run *last = &cpu_last_run[cpu];

		last->ran_ns = used;
		bpf_probe_read_kernel(last->comm, sizeof(last->comm), p->comm);
	}
	account_run(tctx, now);
	tctx->run_mark_ns = 0;
	tctx->promoted = false;
	tctx->woken_on_idle_cpu = false;
	/* Weighted vtime: nice values keep their meaning within a level. */
	p->scx.dsq_vtime += used * 100 / (p->scx.weight ? p->scx.weight : 100);
	if (tctx->level == AEGIS_LEVEL_PROVENANCE) {
		struct aegis_stats *st = my_stats();

		provenance_last_run_ns = now;
		__sync_fetch_and_add(&provenance_runtime_total_ns, used);
		if (st)
			st->provenance_runtime_ns += used;
		/* The collector drained: a hold on producers may have lifted. */
		kick_idle_cpus();
	}
}

void BPF_STRUCT_OPS(aegis_runnable, struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);

	if (tctx && !tctx->counted_runnable && is_provenance(p, tctx)) {
		tctx->counted_runnable = true;
		__sync_fetch_and_add(&nr_provenance_runnable, 1);
	}
}

void BPF_STRUCT_OPS(aegis_quiescent, struct task_struct *p, u64 deq_flags)
{
	struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);

	if (tctx && tctx->counted_runnable) {
		tctx->counted_runnable = false;
		__sync_fetch_and_sub(&nr_provenance_runnable, 1);
	}
}

void BPF_STRUCT_OPS(aegis_enable, struct task_struct *p)
{
	p->scx.dsq_vtime = vtime_now[AEGIS_LEVEL_ORDINARY];
}

s32 BPF_STRUCT_OPS(aegis_init_task, struct task_struct *p, struct scx_init_task_args *args)
{
	struct task_ctx *tctx;

	tctx = bpf_task_storage_get(&task_ctxs, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!tctx)
		return -ENOMEM;
	tctx->level = AEGIS_LEVEL_ORDINARY;
	/* A producer's new threads and children start as producers. */
	if (args->fork) {
		struct task_struct *parent = bpf_get_current_task_btf();
		struct task_ctx *pctx = bpf_task_storage_get(&task_ctxs, parent, 0, 0);

		if (pctx && pctx->level == AEGIS_LEVEL_PRODUCER) {
			tctx->level = AEGIS_LEVEL_PRODUCER;
			tctx->recent_syscalls = pctx->recent_syscalls;
		}
	}
	return 0;
}

/* A separate BPF subprogram: the network's scratch space gets its own stack frame. */
static __noinline __u32 infer(const __u8 *state)
{
	__s64 q[AEGIS_NR_ACTIONS];
	__u32 zero = 0;
	struct aegis_qnet *net = bpf_map_lookup_elem(&qnet_weights, &zero);

	if (!net)
		return AEGIS_NR_ACTIONS;
	return aegis_qnet_eval(net, state, q);
}

/* The end of a window: observe, maybe infer, act. */
static void window_end(void)
{
	struct aegis_raw_state raw = {};
	struct aegis_stats *st = my_stats();
	__u8 state[AEGIS_STATE_LEN];
	__u64 produced, runtime, ran, drained;
	int level;

	produced = __sync_lock_test_and_set(&window_producer_syscalls, 0);
	runtime = provenance_runtime_total_ns;
	ran = runtime - provenance_runtime_last_ns;
	provenance_runtime_last_ns = runtime;

	if (!have_ring) {
		/* Backlog estimate: events in, minus what the collector's CPU time drains. */
		drained = est_ns_per_event ? ran / est_ns_per_event : 0;
		est_backlog_events = est_backlog_events + produced > drained
					     ? est_backlog_events + produced - drained
					     : 0;
		if (est_ring_bytes) {
			__u64 pct = est_backlog_events * est_event_bytes * 100 / est_ring_bytes;

			current_fill_pct = pct > 100 ? 100 : pct;
		}
	}

	raw.production_rate_per_s = produced * 1000000000ULL / window_ns;
	raw.ring_fill_pct = ring_fill_pct();
	raw.collector_cpu_pct = ran * 100 / window_ns;
	bpf_for(level, 0, AEGIS_NR_LEVELS)
	{
		s32 queued = scx_bpf_dsq_nr_queued(level);

		if (level < AEGIS_NR_LEVELS)
			raw.runnable[level] = queued > 0 ? queued : 0;
	}
	raw.oldest_wait_us[0] = window_max_wait_ns[0] / 1000;
	raw.oldest_wait_us[1] = window_max_wait_ns[1] / 1000;
	window_max_wait_ns[0] = 0;
	window_max_wait_ns[1] = 0;
	window_max_wait_ns[2] = 0;
	if (have_ring)
		current_fill_pct = raw.ring_fill_pct;

	if (have_model) {
		aegis_quantize(&raw, state);
		if (have_last_state && aegis_state_distance(state, last_state) <= gate_delta) {
			if (st)
				st->nr_inferences_skipped++;
		} else {
			__u32 action = infer(state);

			if (action < AEGIS_NR_ACTIONS) {
				current_action = action;
				__builtin_memcpy(last_state, state, sizeof(last_state));
				have_last_state = true;
				if (st)
					st->nr_inferences_run++;
			}
		}
	}
}

/*
 * A task overdue at @pid in @level: kick the CPU it may run on whose running task matters
 * least (an idle one first; a producer's before an ordinary task's), so that it is served at
 * its deadline rather than at the next tick, up to a tick later. The collector's CPU only when
 * it is the one left. The task is left pending for that CPU's dispatch, as the tick does.
 */
static void kick_for_overdue(int level, s32 pid, __u64 now)
{
	struct task_struct *p = bpf_task_from_pid(pid);
	__u32 target_level = 0, best_score = 0;
	struct aegis_stats *st;
	s32 target = -1;
	__u32 cpu;

	if (!p)
		return;
	bpf_for(cpu, 0, nr_cpus)
	{
		__u32 *running = bpf_map_lookup_elem(&cpu_level, &cpu);
		__u64 kicked;
		__u32 score;

		if (!running || cpu >= AEGIS_MAX_CPUS || !bpf_cpumask_test_cpu(cpu, p->cpus_ptr))
			continue;
		/*
		 * AEGIS_LEVEL_NONE (idle) is above every level. A CPU that has not dispatched
		 * since an earlier kick comes last: under TCG a vCPU QEMU is not running answered
		 * after up to 7 ms, while the collector's CPU could have served the task at once.
		 * Masked: the verifier loses the bound on cpu across the helper calls.
		 */
		kicked = overdue_kicked_at_ns[cpu & (AEGIS_MAX_CPUS - 1)];
		score = *running + 1;
		if (!(kicked && now - kicked > AEGIS_SCAN_INTERVAL_US * 1000ULL))
			score += 2 * AEGIS_LEVEL_NONE;
		if (score > best_score) {
			best_score = score;
			target = cpu;
			target_level = *running;
		}
	}
	bpf_task_release(p);
	if (target < 0 || target >= AEGIS_MAX_CPUS)
		return;
	if (!overdue_kicked_at_ns[target])
		overdue_kicked_at_ns[target] = now;
	if (target_level == AEGIS_LEVEL_NONE) {
		scx_bpf_kick_cpu(target, SCX_KICK_IDLE);
		return;
	}
	pending_overdue_pid[target] = pid;
	pending_overdue_level[target] = level + 1;
	scx_bpf_kick_cpu(target, SCX_KICK_PREEMPT);
	st = my_stats();
	if (st)
		st->nr_deadline_kicks++;
}

/*
 * The deadline timer: at the moment the earliest queued task becomes overdue (armed at enqueue
 * and by every scan), a CPU is kicked for the most overdue task. The tick alone served
 * it at the first tick after its deadline: up to a tick later, more when a tick came late
 * (under TCG, ticks 4 to 8 ms apart at HZ=250 were common).
 */
static int on_deadline(void *map, int *key, struct bpf_timer *timer)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 armed_for = deadline_timer_at_ns;
	struct aegis_stats *st = my_stats();
	__u64 deep_deadline = (__u64)-1, next_deadline, yield_ns;
	s32 pid = 0;
	int level, moved;

	if (st && armed_for && now > armed_for && now - armed_for > st->max_deadline_timer_late_ns)
		st->max_deadline_timer_late_ns = now - armed_for;
	deadline_timer_at_ns = 0;
	yield_ns = drain_yield_ns();
	/* First, so that the scan below sees the tasks it moved. */
	moved = 0;
	bpf_for(level, 0, AEGIS_NR_LEVELS)
	{
		moved += requeue_deep_overdue_in(level, yield_ns, now, &deep_deadline);
	}
	if (st && moved > 0)
		st->nr_requeued_overdue += moved;
	level = find_overdue_on(-1, yield_ns, now, &pid, &next_deadline);
	if (level >= 0) {
		next_overdue_scan_ns = 0;
		kick_for_overdue(level, pid, now);
	}
	arm_deadline_timer(next_deadline < deep_deadline ? next_deadline : deep_deadline, now);
	return 0;
}

/*
 * Every AEGIS_CHECK_US: if a task is past its wait bound, wake the idle CPUs so they look at
 * the queues (busy CPUs see it at their next tick). Preempting a busy CPU from here as well
 * cost events in the guest: producers promoted between ticks overfilled the ring. Every
 * window: window_end().
 */
static int periodic(void *map, int *key, struct bpf_timer *timer)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 next_deadline;
	s32 pid = 0;
	__u32 cpu;

	if (find_overdue_on(-1, drain_yield_ns(), now, &pid, &next_deadline) >= 0) {
		next_overdue_scan_ns = 0;
		bpf_for(cpu, 0, nr_cpus)
		{
			__u32 *level = bpf_map_lookup_elem(&cpu_level, &cpu);

			if (level && *level == AEGIS_LEVEL_NONE)
				scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
		}
	}
	if (now >= next_window_ns) {
		next_window_ns = now + window_ns;
		window_end();
		kick_idle_cpus();
	}
	bpf_timer_start(timer, AEGIS_CHECK_US * 1000ULL, 0);
	return 0;
}

s32 BPF_STRUCT_OPS_SLEEPABLE(aegis_init)
{
	struct timer_slot *wt;
	__u32 zero = 0;
	int level, err;

	current_action = fixed_action % AEGIS_NR_ACTIONS;
	bpf_for(level, 0, AEGIS_MAX_CPUS)
	{
		__u32 cpu = level, none = AEGIS_LEVEL_NONE;

		bpf_map_update_elem(&cpu_level, &cpu, &none, BPF_ANY);
	}
	bpf_for(level, 0, AEGIS_NR_LEVELS)
	{
		err = scx_bpf_create_dsq(level, -1);
		if (err) {
			scx_bpf_error("creating the DSQ of level %d: %d", level, err);
			return err;
		}
	}
	wt = bpf_map_lookup_elem(&window_timers, &zero);
	if (!wt)
		return -ESRCH;
	bpf_timer_init(&wt->timer, &window_timers, CLOCK_MONOTONIC);
	bpf_timer_set_callback(&wt->timer, periodic);
	err = bpf_timer_start(&wt->timer, AEGIS_CHECK_US * 1000ULL, 0);
	if (err)
		return err;
	wt = bpf_map_lookup_elem(&deadline_timers, &zero);
	if (!wt)
		return -ESRCH;
	bpf_timer_init(&wt->timer, &deadline_timers, CLOCK_MONOTONIC);
	bpf_timer_set_callback(&wt->timer, on_deadline);
	return 0;
}

void BPF_STRUCT_OPS(aegis_exit, struct scx_exit_info *ei)
{
	UEI_RECORD(uei, ei);
}

SCX_OPS_DEFINE(aegis_ops, .select_cpu = (void *)aegis_select_cpu, .enqueue = (void *)aegis_enqueue,
	       .dispatch = (void *)aegis_dispatch, .tick = (void *)aegis_tick,
	       .cpu_release = (void *)aegis_cpu_release, .runnable = (void *)aegis_runnable,
	       .quiescent = (void *)aegis_quiescent, .running = (void *)aegis_running,
	       .stopping = (void *)aegis_stopping, .enable = (void *)aegis_enable,
	       .init_task = (void *)aegis_init_task, .init = (void *)aegis_init,
	       .exit = (void *)aegis_exit, .flags = SCX_OPS_ENQ_LAST, .timeout_ms = 5000,
	       .name = "aegis");
