//! `freeze-on-fill`: the back-pressure a user could script without a scheduler. While the
//! collector's ring buffer is at least [`FREEZE_FILL_PCT`] full the attack's cgroup is frozen
//! (cgroup v2 `cgroup.freeze`: its tasks stop wherever they are), and it is thawed once the
//! collector has drained it below [`THAW_FILL_PCT`].
//!
//! The fill is read as the consumer sees it, from the ring's own positions: the collector pins
//! its ring map (as it does for Aegis), and the freezer maps the map's consumer and producer
//! position pages read-only and polls them every [`POLL`] from a thread outside the attack's
//! cgroup (a poll is two loads; only a change writes `cgroup.freeze`).
//!
//! The freezer never outlives the flood: past the flood's end, and on every exit path (drop),
//! it thaws the group, so a frozen attack cannot keep a trial from ending.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use libbpf_rs::libbpf_sys;
use serde::Serialize;

/// The attack is frozen from this ring fill on...
pub const FREEZE_FILL_PCT: u32 = 75;
/// ...and thawed below this one.
pub const THAW_FILL_PCT: u32 = 50;
/// How often the fill is read.
pub const POLL: Duration = Duration::from_micros(500);

/// The positions of a BPF ring buffer, mapped read-only.
struct RingFill {
    _map: OwnedFd,
    consumer: *const u64,
    producer: *const u64,
    page_bytes: usize,
    size_bytes: u64,
}

// SAFETY: the mapped pages are only read, with volatile loads, and live as long as the value.
unsafe impl Send for RingFill {}

impl RingFill {
    fn open(pin: &Path) -> Result<RingFill> {
        let path = CString::new(pin.as_os_str().as_encoded_bytes())?;
        // SAFETY: a NUL-terminated path; the fd returned is ours.
        let fd = unsafe { libbpf_sys::bpf_obj_get(path.as_ptr()) };
        if fd < 0 {
            bail!(
                "opening the collector's pinned ring {}: {}",
                pin.display(),
                std::io::Error::last_os_error()
            );
        }
        // SAFETY: `fd` was just returned by bpf_obj_get and is owned by nothing else.
        let map = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut info: libbpf_sys::bpf_map_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libbpf_sys::bpf_map_info>() as u32;
        // SAFETY: `info` is as large as `len` says.
        if unsafe { libbpf_sys::bpf_map_get_info_by_fd(map.as_raw_fd(), &mut info, &mut len) } != 0
        {
            bail!(
                "reading the collector's ring map: {}",
                std::io::Error::last_os_error()
            );
        }
        if info.type_ != libbpf_sys::BPF_MAP_TYPE_RINGBUF {
            bail!("{} is not a BPF ring buffer", pin.display());
        }
        // SAFETY: sysconf has no preconditions.
        let page_bytes = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let map_page = |page: usize| -> Result<*const u64> {
            // SAFETY: a shared read-only mapping of one page of the ring map; the kernel lays
            // out the consumer position at page 0 and the producer position at page 1.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    page_bytes,
                    libc::PROT_READ,
                    libc::MAP_SHARED,
                    map.as_raw_fd(),
                    (page * page_bytes) as libc::off_t,
                )
            };
            if ptr == libc::MAP_FAILED {
                bail!(
                    "mapping the collector's ring: {}",
                    std::io::Error::last_os_error()
                );
            }
            Ok(ptr as *const u64)
        };
        let consumer = map_page(0)?;
        let producer = match map_page(1) {
            Ok(producer) => producer,
            Err(err) => {
                // SAFETY: unmapping the page mapped just above.
                unsafe { libc::munmap(consumer as *mut _, page_bytes) };
                return Err(err);
            }
        };
        Ok(RingFill {
            _map: map,
            consumer,
            producer,
            page_bytes,
            size_bytes: u64::from(info.max_entries),
        })
    }

    /// Bytes written and not yet consumed, as a percentage of the ring.
    fn fill_pct(&self) -> f64 {
        // SAFETY: both pages stay mapped for the value's life; the kernel and the consumer
        // update the positions concurrently, hence volatile loads.
        let (consumer, producer) = unsafe {
            (
                std::ptr::read_volatile(self.consumer),
                std::ptr::read_volatile(self.producer),
            )
        };
        100.0 * producer.saturating_sub(consumer) as f64 / self.size_bytes.max(1) as f64
    }
}

impl Drop for RingFill {
    fn drop(&mut self) {
        // SAFETY: the two pages mapped in `open`.
        unsafe {
            libc::munmap(self.consumer as *mut _, self.page_bytes);
            libc::munmap(self.producer as *mut _, self.page_bytes);
        }
    }
}

/// What the freezer did, recorded as the trial's `scheduler_stats`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FreezeStats {
    pub freeze_fill_pct: u32,
    pub thaw_fill_pct: u32,
    pub nr_freezes: u64,
    pub frozen_s: f64,
    pub max_fill_pct: f64,
    pub nr_polls: u64,
}

/// The polling thread, freezing and thawing one cgroup; thaws it when dropped.
pub struct Freezer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<FreezeStats>>,
    freeze_file: PathBuf,
}

impl Freezer {
    /// Starts freezing `cgroup` by the fill of the ring pinned at `pin`, until `until`.
    pub fn start(pin: &Path, cgroup: &Path, until: Instant) -> Result<Freezer> {
        let ring = RingFill::open(pin)?;
        let freeze_file = cgroup.join("cgroup.freeze");
        if !freeze_file.exists() {
            bail!(
                "freeze-on-fill needs the cgroup v2 freezer ({} is missing)",
                freeze_file.display()
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, file) = (stop.clone(), freeze_file.clone());
            std::thread::Builder::new()
                .name("freeze-on-fill".into())
                .spawn(move || run(&ring, &file, &stop, until))
                .context("starting the freeze-on-fill thread")?
        };
        Ok(Freezer {
            stop,
            thread: Some(thread),
            freeze_file,
        })
    }

    /// Stops polling, thaws the group, and returns what it did.
    pub fn finish(mut self) -> Result<FreezeStats> {
        self.stop.store(true, Ordering::SeqCst);
        let stats = self
            .thread
            .take()
            .map(|thread| thread.join())
            .transpose()
            .map_err(|_| anyhow::anyhow!("the freeze-on-fill thread panicked"))?
            .unwrap_or_default();
        set_frozen(&self.freeze_file, false)?;
        Ok(stats)
    }
}

impl Drop for Freezer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = set_frozen(&self.freeze_file, false);
    }
}

fn set_frozen(file: &Path, frozen: bool) -> Result<()> {
    std::fs::write(file, if frozen { "1" } else { "0" })
        .with_context(|| format!("writing {}", file.display()))
}

fn run(ring: &RingFill, file: &Path, stop: &AtomicBool, until: Instant) -> FreezeStats {
    let mut stats = FreezeStats {
        freeze_fill_pct: FREEZE_FILL_PCT,
        thaw_fill_pct: THAW_FILL_PCT,
        ..FreezeStats::default()
    };
    let mut frozen_since: Option<Instant> = None;
    while !stop.load(Ordering::SeqCst) && Instant::now() < until {
        let fill = ring.fill_pct();
        stats.nr_polls += 1;
        stats.max_fill_pct = stats.max_fill_pct.max(fill);
        match frozen_since {
            None if fill >= f64::from(FREEZE_FILL_PCT) && set_frozen(file, true).is_ok() => {
                frozen_since = Some(Instant::now());
                stats.nr_freezes += 1;
            }
            Some(since) if fill < f64::from(THAW_FILL_PCT) && set_frozen(file, false).is_ok() => {
                stats.frozen_s += since.elapsed().as_secs_f64();
                frozen_since = None;
            }
            _ => {}
        }
        std::thread::sleep(POLL);
    }
    if let Some(since) = frozen_since {
        let _ = set_frozen(file, false);
        stats.frozen_s += since.elapsed().as_secs_f64();
    }
    stats
}
