//! SIGINT/SIGTERM/SIGHUP become a flag that long waits poll, so that an interrupted run unwinds
//! through the same clean-up as a finished one instead of dying with kernel state changed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::error::Interrupted;

static RECEIVED: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// Installs the handlers (idempotent).
pub fn install() -> anyhow::Result<()> {
    let flag = RECEIVED.get_or_init(|| Arc::new(AtomicUsize::new(0)));
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        signal_hook::flag::register_usize(signal, flag.clone(), signal as usize)?;
    }
    Ok(())
}

/// The signal received so far, if any.
pub fn received() -> Option<i32> {
    let signal = RECEIVED.get()?.load(Ordering::SeqCst);
    (signal != 0).then_some(signal as i32)
}

/// Fails with [`Interrupted`] once a signal arrived.
pub fn check() -> Result<(), Interrupted> {
    match received() {
        Some(signal) => Err(Interrupted(signal)),
        None => Ok(()),
    }
}
