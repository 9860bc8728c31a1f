//! Rust mirror of `bpf/intf.h`: the record layout the collector's BPF side writes.

/// Syscall numbers at or above this are ignored by the BPF programs.
pub const MAX_SYSCALL_NR: usize = 512;
/// Bytes of path or socket address a record can carry.
pub const PAYLOAD_MAX: usize = 256;

pub const TRACE_RECORD: u8 = 0x80;
pub const TRACE_PAYLOAD_PATH: u8 = 0x10;
pub const TRACE_PAYLOAD_SOCKADDR: u8 = 0x20;

/// `sizeof(struct prov_event)`.
pub const EVENT_HEADER_BYTES: usize = 96;
/// `sizeof(struct prov_event_with_payload)`.
pub const EVENT_WITH_PAYLOAD_BYTES: usize = EVENT_HEADER_BYTES + PAYLOAD_MAX;

/// `enum trace_group`: whose event a record is (see [`crate::results::scope::TraceGroup`]).
pub const GROUP_ATTACK: u8 = 0;
pub const GROUP_WORKLOAD: u8 = 1;
pub const GROUP_REST: u8 = 2;
pub const NR_GROUPS: usize = 3;

/// Field offsets in `struct prov_event`.
pub mod offset {
    pub const TS_NS: usize = 0;
    pub const CGROUP_ID: usize = 8;
    pub const PID: usize = 16;
    pub const TID: usize = 20;
    pub const SYSCALL_NR: usize = 24;
    pub const PAYLOAD_KIND: usize = 28;
    /// `enum trace_group`, one byte (0, the attack, under `--trace-scope attack`).
    pub const GROUP: usize = 29;
    pub const PAYLOAD_LEN: usize = 30;
    pub const ARGS: usize = 32;
    pub const COMM: usize = 80;
}

/// Encodes the collector's per-syscall table (`traced_syscalls` in collector.bpf.c) from
/// [`crate::syscalls::TRACED`].
pub fn traced_syscall_table() -> [u8; MAX_SYSCALL_NR] {
    use crate::syscalls::{Payload, TRACED};
    let mut table = [0u8; MAX_SYSCALL_NR];
    for traced in TRACED {
        table[traced.nr as usize] = TRACE_RECORD
            | match traced.payload {
                Payload::None => 0,
                Payload::Path(arg) => TRACE_PAYLOAD_PATH | arg,
                Payload::Sockaddr(arg) => TRACE_PAYLOAD_SOCKADDR | arg,
            };
    }
    table
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_hook_outside_any_syscall_gets_the_last_number() {
        assert_eq!(
            crate::syscalls::LSM_NO_SYSCALL as usize,
            super::MAX_SYSCALL_NR - 1
        );
    }

    #[test]
    fn every_traced_syscall_fits_the_table() {
        for traced in crate::syscalls::TRACED {
            assert!(
                (traced.nr as usize) < super::MAX_SYSCALL_NR,
                "{}",
                traced.nr
            );
        }
    }
}
