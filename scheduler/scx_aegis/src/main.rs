//! # scx_aegis: provenance-complete scheduling under a super-producer attack
//!
//! The loader of Aegis, a sched_ext scheduler (`bpf/aegis.bpf.c`) that keeps a provenance
//! collector's ring buffer from overflowing under a syscall flood without starving anyone.
//! Tasks sit in three levels served in priority order: provenance tasks (the collector,
//! registered here by pid, comm or cgroup), ordinary tasks, and producers (by their syscall
//! rate per CPU time); a task in level `k` is served ahead of every level once it has waited
//! `base_wait << k` (exponential waiting time). While the collector's ring (read exactly with
//! `--collector-ring`, else estimated) is nearly full, producers are held back. Every window a
//! fixed-point Q-network (`--model`), re-run only when its state moved more than `--delta`,
//! picks how much the collector is boosted and how hard producers are throttled.
//!
//! The algorithm, its parameters and its measured behaviour are described once, in
//! `docs/aegis.md`. This binary opens, configures, loads and attaches the BPF scheduler
//! ([`Scheduler::init`]) and reports its statistics until SIGINT or SIGTERM
//! ([`Scheduler::run`]).

mod bpf_skel {
    include!(concat!(env!("OUT_DIR"), "/bpf_skel.rs"));
}
#[allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code
)]
mod bpf_intf {
    include!(concat!(env!("OUT_DIR"), "/bpf_intf.rs"));
}
mod stats;

use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use libbpf_rs::{MapCore, MapFlags, MapHandle, OpenObject};
use scheduler::aegis::qnet::{QNet, NR_ACTIONS};
use scx_utils::{scx_ops_attach, scx_ops_load, scx_ops_open, uei_exited, uei_report, UserExitInfo};

use bpf_skel::*;
use stats::ModelInfo;

/// Aegis: a sched_ext scheduler that keeps a provenance collector complete under a
/// syscall flood without starving anyone (the algorithm: docs/aegis.md).
#[derive(Debug, Parser)]
#[command(version)]
struct Opts {
    /// Register the process with this pid (all its threads) as a provenance task.
    #[arg(long, value_name = "PID", value_delimiter = ',')]
    provenance_pid: Vec<u32>,
    /// Register tasks with these command names as provenance tasks (e.g. auditd,sysdig).
    #[arg(long, value_name = "COMM[,COMM..]", value_delimiter = ',')]
    provenance_comm: Vec<String>,
    /// Register the tasks of this cgroup (v2 directory) as provenance tasks.
    #[arg(long, value_name = "DIR")]
    provenance_cgroup: Vec<PathBuf>,
    /// The collector's pinned BPF ring buffer (bpffs path), read for the exact backlog.
    #[arg(long, value_name = "PATH")]
    collector_ring: Option<PathBuf>,
    /// Trained model (JSON: a QNet, or an object whose `fixed_network` is one). Default: the
    /// model shipped in scheduler/models/aegis.json, embedded at build time.
    #[arg(long, value_name = "FILE", conflicts_with = "no_model")]
    model: Option<PathBuf>,
    /// Run without a network: the backbone with a fixed action (the ablation baseline).
    #[arg(long)]
    no_model: bool,
    /// The fixed action (0-8, boost*3 + throttle) when there is no model.
    #[arg(long, value_name = "N", default_value_t = 3)]
    action: u32,
    /// Base time slice in microseconds.
    #[arg(long, value_name = "US", default_value_t = 3_000)]
    base_slice_us: u64,
    /// Wait bound of the provenance level in milliseconds; level k waits at most base << k.
    #[arg(long, value_name = "MS", default_value_t = 16)]
    base_wait_ms: u64,
    /// The kernel's scheduler tick in microseconds (Debian kernels: HZ=250, 4000 us); a wait
    /// past its bound plus one tick counts as a violation.
    #[arg(long, value_name = "US", default_value_t = 4_000)]
    tick_us: u64,
    /// Length of the syscall-rate and decision window in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10)]
    window_ms: u64,
    /// Syscalls per window of the task's own CPU time above which it counts as a producer
    /// (and at least 8 in the window). The default, 20 per 10 ms (one syscall per 500 us of
    /// CPU), is far above compute-bound programs and below an openat flood even in a TCG
    /// guest, where each traced syscall costs tens of microseconds; 100 missed a third of
    /// the flood's threads there.
    #[arg(long, value_name = "N", default_value_t = 20)]
    producer_syscalls_per_window: u32,
    /// Delta-based inference reduction: re-run the network only when the quantized state
    /// moved more than this (L1 distance over the 8 state bytes). 0 runs it every window.
    #[arg(long, value_name = "N", default_value_t = 8)]
    delta: u32,
    /// External collectors (no --collector-ring): collector CPU time per event, in ns.
    #[arg(long, value_name = "NS", default_value_t = 4_000)]
    est_ns_per_event: u64,
    /// External collectors: bytes per event in their buffer.
    #[arg(long, value_name = "BYTES", default_value_t = 104)]
    est_event_bytes: u64,
    /// External collectors: their buffer size in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 8 << 20)]
    est_ring_bytes: u64,
    /// Hold producers back (leave them queued unless overdue, preempt running ones) while the
    /// collector's ring is at least this full and the collector is alive (see
    /// --hold-grace-ms); 100 turns the rule off.
    #[arg(long, value_name = "PCT", default_value_t = bpf_intf::aegis_consts_AEGIS_HOLD_FILL_PCT)]
    hold_fill_pct: u32,
    /// A collector that has been neither runnable nor on a CPU for this long is taken as gone
    /// and no longer holds producers back. Shorter graces lost events in a loaded guest, where
    /// the ring's wakeup reached a live collector tens of milliseconds late.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    hold_grace_ms: u64,
    /// A collector woken by a producer's event while its ring is less full than this waits,
    /// on no CPU, until the ring reaches it (or --max-wake-defer-us passes), so that it drains
    /// in batches instead of waking on an idle CPU for every few events. Only for a collector
    /// whose ring scx_aegis sees (--collector-ring), and not while the action boosts the collector
    /// to eager (boost 2); 0 turns the rule off.
    #[arg(long, value_name = "PCT", default_value_t = bpf_intf::aegis_consts_AEGIS_WAKE_FILL_PCT)]
    wake_fill_pct: u32,
    /// The longest a collector's wakeup is deferred by --wake-fill-pct.
    #[arg(long, value_name = "US", default_value_t = 2_000)]
    max_wake_defer_us: u64,
    /// Print statistics every SECS seconds.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "1")]
    stats: Option<f64>,
    /// Write the statistics as JSON to this file (atomically, every second and at exit).
    #[arg(long, value_name = "FILE")]
    stats_file: Option<PathBuf>,
    /// Also report each BPF program's run count and run time (the scheduler's own CPU cost).
    /// The kernel keeps these statistics only while scx_aegis runs (a BPF_ENABLE_STATS file
    /// descriptor); they add two clock reads to every program run.
    #[arg(long)]
    prog_stats: bool,
}

/// The model shipped with the source tree when this binary was built ("" if none was).
const EMBEDDED_MODEL: &str = include_str!(concat!(env!("OUT_DIR"), "/default_model.json"));
const EMBEDDED_MODEL_NAME: &str = "embedded scheduler/models/aegis.json";

/// The model file's network and the SHA-256 of its text (which trials record).
fn load_model(path: &Path) -> Result<(QNet, String)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the model {}", path.display()))?;
    Ok((parse_model(&text, path)?, sha256_hex(&text)))
}

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

fn parse_model(text: &str, path: &Path) -> Result<QNet> {
    let value: serde_json::Value =
        serde_json::from_str(text).with_context(|| format!("{} is not JSON", path.display()))?;
    let network = value.get("fixed_network").cloned().unwrap_or(value);
    serde_json::from_value(network).with_context(|| {
        format!(
            "{} holds no fixed-point Q-network (expected a QNet or an object with \
             `fixed_network`, as `aegis-bench train` writes)",
            path.display()
        )
    })
}

fn cgroup_id(dir: &Path) -> Result<u64> {
    let meta = std::fs::metadata(dir)
        .with_context(|| format!("--provenance-cgroup {}: no such cgroup", dir.display()))?;
    if !meta.is_dir() {
        bail!(
            "--provenance-cgroup {} is not a cgroup directory",
            dir.display()
        );
    }
    Ok(meta.ino())
}

/// A key of the `provenance_comms` map: a command name, zero-padded like the kernel's comm.
type CommKey = [u8; bpf_intf::aegis_consts_AEGIS_COMM_LEN as usize];

fn comm_key(comm: &str) -> Result<CommKey> {
    let mut key: CommKey = [0; bpf_intf::aegis_consts_AEGIS_COMM_LEN as usize];
    let bytes = comm.as_bytes();
    if bytes.is_empty() || bytes.len() >= key.len() {
        bail!(
            "--provenance-comm '{comm}': a command name has 1 to {} bytes (the kernel's comm)",
            key.len() - 1
        );
    }
    key[..bytes.len()].copy_from_slice(bytes);
    Ok(key)
}

/// The collector's pinned ring buffer, reused by the BPF side for its exact fill.
struct CollectorRing {
    path: PathBuf,
    size_bytes: u32,
}

/// Opens the pinned map at `path` and checks that it is a ring buffer.
fn open_collector_ring(path: &Path) -> Result<CollectorRing> {
    let handle = MapHandle::from_pinned_path(path).with_context(|| {
        format!(
            "--collector-ring {}: no pinned BPF map there (is the collector running \
             and bpffs mounted?)",
            path.display()
        )
    })?;
    let info = handle.info()?;
    if info.map_type() != libbpf_rs::MapType::RingBuf {
        bail!(
            "--collector-ring {} is a {:?} map, not a ring buffer",
            path.display(),
            info.map_type()
        );
    }
    Ok(CollectorRing {
        path: path.to_path_buf(),
        size_bytes: info.info.max_entries,
    })
}

/// What the options name, read and checked before anything is loaded: the Q-network, the
/// provenance registrations as map keys, and the collector's ring.
struct Inputs {
    model: Option<QNet>,
    model_info: ModelInfo,
    cgroup_ids: Vec<u64>,
    comm_keys: Vec<CommKey>,
    ring: Option<CollectorRing>,
}

impl Inputs {
    fn from_opts(opts: &Opts) -> Result<Self> {
        if opts.action >= NR_ACTIONS as u32 {
            bail!(
                "--action {} is not an action: use 0 to {}",
                opts.action,
                NR_ACTIONS - 1
            );
        }
        if opts.window_ms == 0 || opts.base_slice_us == 0 || opts.base_wait_ms == 0 {
            bail!("--window-ms, --base-slice-us and --base-wait-ms must be positive");
        }
        let (model, model_path, model_sha256) = match (&opts.model, opts.no_model) {
            (Some(path), _) => {
                let (model, sha256) = load_model(path)?;
                (Some(model), Some(path.clone()), Some(sha256))
            }
            (None, true) => (None, None, None),
            (None, false) if EMBEDDED_MODEL.trim().is_empty() => (None, None, None),
            (None, false) => (
                Some(parse_model(EMBEDDED_MODEL, Path::new(EMBEDDED_MODEL_NAME))?),
                Some(PathBuf::from(EMBEDDED_MODEL_NAME)),
                Some(sha256_hex(EMBEDDED_MODEL)),
            ),
        };
        let cgroup_ids = opts
            .provenance_cgroup
            .iter()
            .map(|dir| cgroup_id(dir))
            .collect::<Result<Vec<_>>>()?;
        let comm_keys = opts
            .provenance_comm
            .iter()
            .map(|c| comm_key(c))
            .collect::<Result<Vec<_>>>()?;
        let ring = match &opts.collector_ring {
            Some(path) => Some(open_collector_ring(path)?),
            None => None,
        };
        let model_info = ModelInfo {
            path: model_path,
            sha256: model_sha256,
            fixed_action: model.is_none().then_some(opts.action),
        };
        Ok(Inputs {
            model,
            model_info,
            cgroup_ids,
            comm_keys,
            ring,
        })
    }
}

/// A flag that SIGINT and SIGTERM set: the signal to detach and write the final statistics.
fn shutdown_on_signals() -> Result<Arc<AtomicBool>> {
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, shutdown.clone())?;
    }
    Ok(shutdown)
}

/// Opens the BPF object and sets what it reads only: the options, in the units it counts in,
/// and the collector's ring, reused in place of its own before load.
fn open_and_configure<'obj>(
    opts: &Opts,
    inputs: &Inputs,
    open_object: &'obj mut MaybeUninit<OpenObject>,
) -> Result<OpenBpfSkel<'obj>> {
    let builder = BpfSkelBuilder::default();
    let mut skel = scx_ops_open!(
        builder,
        open_object,
        aegis_ops,
        None::<libbpf_rs::libbpf_sys::bpf_object_open_opts>
    )?;
    let rodata = skel.maps.rodata_data.as_mut().expect("rodata");
    rodata.base_slice_ns = opts.base_slice_us * 1_000;
    rodata.base_wait_ns = opts.base_wait_ms * 1_000_000;
    rodata.window_ns = opts.window_ms * 1_000_000;
    rodata.tick_ns = opts.tick_us * 1_000;
    rodata.producer_syscalls_per_window = opts.producer_syscalls_per_window;
    rodata.gate_delta = opts.delta;
    rodata.nr_cpus =
        (libbpf_rs::num_possible_cpus()? as u32).min(bpf_intf::aegis_consts_AEGIS_MAX_CPUS);
    rodata.have_ring = inputs.ring.is_some();
    rodata.have_model = inputs.model.is_some();
    rodata.fixed_action = opts.action;
    rodata.hold_fill_pct = opts.hold_fill_pct.min(100);
    rodata.hold_grace_ns = opts.hold_grace_ms * 1_000_000;
    rodata.wake_fill_pct = opts.wake_fill_pct.min(100);
    rodata.max_wake_defer_ns = opts.max_wake_defer_us * 1_000;
    rodata.est_ns_per_event = opts.est_ns_per_event;
    rodata.est_event_bytes = opts.est_event_bytes;
    rodata.est_ring_bytes = opts.est_ring_bytes;
    if let Some(ring) = &inputs.ring {
        skel.maps.events.set_max_entries(ring.size_bytes)?;
        skel.maps
            .events
            .reuse_pinned_map(&ring.path)
            .with_context(|| format!("reusing the collector's ring {}", ring.path.display()))?;
    }
    Ok(skel)
}

/// Fills the loaded object's maps: the Q-network's weights and the provenance registrations.
fn fill_maps(skel: &mut BpfSkel<'_>, opts: &Opts, inputs: &Inputs) -> Result<()> {
    if let Some(network) = &inputs.model {
        skel.maps
            .qnet_weights
            .update(&0u32.to_ne_bytes(), &network.to_bpf_bytes(), MapFlags::ANY)
            .context("loading the Q-network weights")?;
    }
    for pid in &opts.provenance_pid {
        skel.maps
            .provenance_tgids
            .update(&pid.to_ne_bytes(), &[1], MapFlags::ANY)?;
    }
    for key in &inputs.comm_keys {
        skel.maps
            .provenance_comms
            .update(key, &[1], MapFlags::ANY)?;
    }
    for id in &inputs.cgroup_ids {
        skel.maps
            .provenance_cgroups
            .update(&id.to_ne_bytes(), &[1], MapFlags::ANY)?;
    }
    Ok(())
}

/// Aegis attached, in the scx shape: [`Scheduler::init`] loads and attaches it,
/// [`Scheduler::run`] reports until told to stop and detaches it.
struct Scheduler<'a> {
    // Fields drop in this order: detach first, then stop the run-time accounting, then
    // close the object.
    struct_ops: Option<libbpf_rs::Link>,
    /// Held for as long as scx_aegis runs: closing it turns the kernel's run-time
    /// accounting off (`--prog-stats`).
    _prog_stats_fd: Option<OwnedFd>,
    skel: BpfSkel<'a>,
    opts: &'a Opts,
    model_info: ModelInfo,
}

impl<'a> Scheduler<'a> {
    /// Opens, configures, loads and attaches the BPF scheduler, with the Q-network and the
    /// provenance registrations in its maps, and says so on stderr.
    fn init(
        opts: &'a Opts,
        inputs: Inputs,
        open_object: &'a mut MaybeUninit<OpenObject>,
    ) -> Result<Self> {
        let mut skel = open_and_configure(opts, &inputs, open_object)?;
        let mut skel = scx_ops_load!(skel, aegis_ops, uei)?;
        fill_maps(&mut skel, opts, &inputs)?;
        let prog_stats_fd = if opts.prog_stats {
            Some(stats::enable_prog_run_time_stats()?)
        } else {
            None
        };
        let struct_ops = scx_ops_attach!(skel, aegis_ops)?;
        stats::mark_attached();
        eprintln!(
            "scx_aegis: enabled; {}; provenance: {} pid(s), {} comm(s), {} cgroup(s); ring: {}",
            inputs.model_info.describe(),
            opts.provenance_pid.len(),
            inputs.comm_keys.len(),
            inputs.cgroup_ids.len(),
            match &inputs.ring {
                Some(ring) => format!("{} ({} bytes, exact)", ring.path.display(), ring.size_bytes),
                None => "estimated".into(),
            }
        );
        Ok(Scheduler {
            struct_ops: Some(struct_ops),
            _prog_stats_fd: prog_stats_fd,
            skel,
            opts,
            model_info: inputs.model_info,
        })
    }

    /// Prints (`--stats`) and writes (`--stats-file`, every second) the statistics until
    /// `shutdown` is set or the BPF scheduler exits; then detaches it, reports how it exited
    /// and writes the final statistics.
    fn run(&mut self, shutdown: &AtomicBool) -> Result<UserExitInfo> {
        let print_every = self.opts.stats.map(Duration::from_secs_f64);
        let mut last_print = Instant::now();
        let mut last_write = Instant::now();
        while !shutdown.load(Ordering::Relaxed) && !uei_exited!(&self.skel, uei) {
            std::thread::sleep(Duration::from_millis(100));
            if let Some(every) = print_every {
                if last_print.elapsed() >= every {
                    last_print = Instant::now();
                    println!("{}", self.read_stats()?.one_line());
                }
            }
            if let Some(path) = &self.opts.stats_file {
                if last_write.elapsed() >= Duration::from_secs(1) {
                    last_write = Instant::now();
                    stats::write_atomically(&self.read_stats()?, path)?;
                }
            }
        }
        let final_stats = self.read_stats()?;
        drop(self.struct_ops.take());
        let exit = uei_report!(&self.skel, uei);
        if let Some(path) = &self.opts.stats_file {
            stats::write_atomically(&final_stats, path)?;
        }
        if self.opts.stats.is_some() {
            println!("{}", final_stats.one_line());
        }
        exit
    }

    fn read_stats(&self) -> Result<scheduler::stats::ScxAegisStats> {
        stats::read(&self.skel, self.opts, &self.model_info)
    }
}

fn main() -> Result<()> {
    let opts = Opts::parse();
    let inputs = Inputs::from_opts(&opts)?;
    let shutdown = shutdown_on_signals()?;
    let mut open_object = MaybeUninit::uninit();
    let mut scheduler = Scheduler::init(&opts, inputs, &mut open_object)?;
    scheduler.run(&shutdown).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::bpf_intf;
    use scheduler::aegis::{levels, qnet};

    /// The simulator trains and evaluates the policy core's copy of these rules; the BPF
    /// scheduler must apply the same.
    #[test]
    fn the_policy_core_and_the_bpf_scheduler_share_their_constants() {
        assert_eq!(
            bpf_intf::aegis_consts_AEGIS_PREEMPT_FILL_PCT,
            qnet::PREEMPT_FILL_PCT
        );
        assert_eq!(
            bpf_intf::aegis_consts_AEGIS_HOLD_FILL_PCT,
            qnet::HOLD_FILL_PCT
        );
        assert_eq!(
            bpf_intf::aegis_consts_AEGIS_MIN_PRODUCER_SYSCALLS,
            levels::MIN_PRODUCER_SYSCALLS
        );
        assert_eq!(
            bpf_intf::aegis_consts_AEGIS_MIN_RATE_RUN_US as u64 * 1_000,
            levels::MIN_RATE_RUN_NS
        );
    }
}
