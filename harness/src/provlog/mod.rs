//! The provenance logs the built-in collector writes, and their readers (`aegis-bench log
//! FILE`): the full format here, one record per event; the compact one in [`compact`].
//!
//! # Full format (version 1, all integers little-endian)
//! ```text
//! file    := magic record*
//! magic   := "AEGPROV1"                      8 bytes
//! record  := len:u32 header payload          len = 96 + payload_len
//! header  := ts_ns:u64 cgroup_id:u64 pid:u32 tid:u32 syscall_nr:u32
//!            payload_kind:u8 group:u8 payload_len:u16 args:[u64; 6] comm:[u8; 16]
//! payload := payload_len bytes: a path without its NUL (kind 1) or a sockaddr (kind 2)
//! ```
//! The header has the layout of `struct prov_event` in `bpf/intf.h`; `ts_ns` is
//! CLOCK_MONOTONIC at syscall entry, `pid` the thread group id, `group` whose event it is
//! (0 the attack, 1 the workload, 2 the rest of the machine: only `--trace-scope all` records
//! the last two; the byte was the high byte of a 16-bit `payload_kind` before, always 0).

pub mod compact;

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::bpf_intf::{
    offset, EVENT_HEADER_BYTES, GROUP_REST, GROUP_WORKLOAD, NR_GROUPS, PAYLOAD_MAX,
};

pub const MAGIC: &[u8; 8] = b"AEGPROV1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadKind {
    None,
    Path,
    Sockaddr,
}

impl PayloadKind {
    fn from_raw(raw: u8) -> Result<Self, DecodeError> {
        match raw {
            0 => Ok(PayloadKind::None),
            1 => Ok(PayloadKind::Path),
            2 => Ok(PayloadKind::Sockaddr),
            other => Err(DecodeError::PayloadKind(other)),
        }
    }

    fn to_raw(self) -> u8 {
        match self {
            PayloadKind::None => 0,
            PayloadKind::Path => 1,
            PayloadKind::Sockaddr => 2,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than the 96-byte header")]
    Short(usize),
    #[error("unknown payload kind {0}")]
    PayloadKind(u8),
    #[error("unknown group {0}")]
    Group(u8),
    #[error("payload of {len} bytes does not fit a record of {record} bytes")]
    PayloadLen { len: usize, record: usize },
}

/// One decoded record, borrowing its payload from the buffer it was decoded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProvEvent<'a> {
    pub ts_ns: u64,
    pub cgroup_id: u64,
    pub pid: u32,
    pub tid: u32,
    pub syscall_nr: u32,
    pub payload_kind: PayloadKind,
    /// `enum trace_group`: [`crate::bpf_intf::GROUP_ATTACK`], `GROUP_WORKLOAD` or `GROUP_REST`.
    pub group: u8,
    pub args: [u64; 6],
    pub comm: [u8; 16],
    pub payload: &'a [u8],
}

// Little-endian integers at a byte offset, for both formats' decoders.
fn u64_at(raw: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(raw[at..at + 8].try_into().unwrap())
}
fn u32_at(raw: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(raw[at..at + 4].try_into().unwrap())
}
fn u16_at(raw: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(raw[at..at + 2].try_into().unwrap())
}

impl<'a> ProvEvent<'a> {
    /// Decodes a record in `struct prov_event` layout (as the ring buffer or the log holds it).
    pub fn decode(raw: &'a [u8]) -> Result<Self, DecodeError> {
        if raw.len() < EVENT_HEADER_BYTES {
            return Err(DecodeError::Short(raw.len()));
        }
        let payload_len = u16_at(raw, offset::PAYLOAD_LEN) as usize;
        if payload_len > PAYLOAD_MAX || EVENT_HEADER_BYTES + payload_len > raw.len() {
            return Err(DecodeError::PayloadLen {
                len: payload_len,
                record: raw.len(),
            });
        }
        let mut args = [0u64; 6];
        for (i, arg) in args.iter_mut().enumerate() {
            *arg = u64_at(raw, offset::ARGS + 8 * i);
        }
        let group = check_group(raw[offset::GROUP])?;
        Ok(ProvEvent {
            ts_ns: u64_at(raw, offset::TS_NS),
            cgroup_id: u64_at(raw, offset::CGROUP_ID),
            pid: u32_at(raw, offset::PID),
            tid: u32_at(raw, offset::TID),
            syscall_nr: u32_at(raw, offset::SYSCALL_NR),
            payload_kind: PayloadKind::from_raw(raw[offset::PAYLOAD_KIND])?,
            group,
            args,
            comm: raw[offset::COMM..offset::COMM + 16].try_into().unwrap(),
            payload: &raw[EVENT_HEADER_BYTES..EVENT_HEADER_BYTES + payload_len],
        })
    }

    /// Writes the header in `struct prov_event` layout into `out`.
    pub fn encode_header(&self, out: &mut [u8; EVENT_HEADER_BYTES]) {
        out[offset::TS_NS..][..8].copy_from_slice(&self.ts_ns.to_le_bytes());
        out[offset::CGROUP_ID..][..8].copy_from_slice(&self.cgroup_id.to_le_bytes());
        out[offset::PID..][..4].copy_from_slice(&self.pid.to_le_bytes());
        out[offset::TID..][..4].copy_from_slice(&self.tid.to_le_bytes());
        out[offset::SYSCALL_NR..][..4].copy_from_slice(&self.syscall_nr.to_le_bytes());
        out[offset::PAYLOAD_KIND] = self.payload_kind.to_raw();
        out[offset::GROUP] = self.group;
        out[offset::PAYLOAD_LEN..][..2].copy_from_slice(&(self.payload.len() as u16).to_le_bytes());
        for (i, arg) in self.args.iter().enumerate() {
            out[offset::ARGS + 8 * i..][..8].copy_from_slice(&arg.to_le_bytes());
        }
        out[offset::COMM..][..16].copy_from_slice(&self.comm);
    }

    pub fn comm_str(&self) -> String {
        let end = self.comm.iter().position(|b| *b == 0).unwrap_or(16);
        String::from_utf8_lossy(&self.comm[..end]).into_owned()
    }

    pub fn path(&self) -> Option<&'a [u8]> {
        (self.payload_kind == PayloadKind::Path).then_some(self.payload)
    }
}

impl fmt::Display for ProvEvent<'_> {
    /// `ts_ns pid/tid comm syscall(args) payload`; the name and the path escaped, since any
    /// process chooses its own (terminal escapes included).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{} {} {}({:#x}, {:#x}, {:#x})",
            self.ts_ns,
            self.pid,
            self.tid,
            self.comm_str().escape_debug(),
            crate::syscalls::name(self.syscall_nr),
            self.args[0],
            self.args[1],
            self.args[2],
        )?;
        match self.payload_kind {
            PayloadKind::None => Ok(()),
            PayloadKind::Path => write!(f, " path={:?}", String::from_utf8_lossy(self.payload)),
            PayloadKind::Sockaddr => write!(f, " addr={}", format_sockaddr(self.payload)),
        }?;
        match self.group {
            GROUP_WORKLOAD => write!(f, " group=workload"),
            GROUP_REST => write!(f, " group=rest"),
            _ => Ok(()),
        }
    }
}

/// A record's group byte, checked.
pub(crate) fn check_group(raw: u8) -> Result<u8, DecodeError> {
    if (raw as usize) < NR_GROUPS {
        Ok(raw)
    } else {
        Err(DecodeError::Group(raw))
    }
}

fn format_sockaddr(raw: &[u8]) -> String {
    if raw.len() >= 8 && u16::from_le_bytes([raw[0], raw[1]]) == libc::AF_INET as u16 {
        let port = u16::from_be_bytes([raw[2], raw[3]]);
        format!("{}.{}.{}.{}:{port}", raw[4], raw[5], raw[6], raw[7])
    } else {
        format!("{raw:02x?}")
    }
}

/// Appends records to a log file, buffered.
pub struct LogWriter<W: Write> {
    out: W,
    header: [u8; EVENT_HEADER_BYTES],
}

impl LogWriter<BufWriter<File>> {
    pub fn create(path: &Path) -> io::Result<Self> {
        LogWriter::new(BufWriter::with_capacity(1 << 20, File::create(path)?))
    }
}

impl<W: Write> LogWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        Ok(Self {
            out,
            header: [0; EVENT_HEADER_BYTES],
        })
    }

    pub fn append(&mut self, event: &ProvEvent<'_>) -> io::Result<()> {
        let len = (EVENT_HEADER_BYTES + event.payload.len()) as u32;
        event.encode_header(&mut self.header);
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&self.header)?;
        self.out.write_all(event.payload)
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads a log back, one record at a time.
pub struct LogReader<R: Read> {
    input: R,
    record: Vec<u8>,
}

impl LogReader<BufReader<File>> {
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path).map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("cannot open log {}: {err}", path.display()),
            )
        })?;
        LogReader::new(BufReader::with_capacity(1 << 20, file))
    }
}

impl<R: Read> LogReader<R> {
    pub fn new(mut input: R) -> io::Result<Self> {
        let mut magic = [0u8; 8];
        input.read_exact(&mut magic).map_err(|_| bad_magic())?;
        if &magic != MAGIC {
            return Err(bad_magic());
        }
        Ok(Self {
            input,
            record: Vec::with_capacity(EVENT_HEADER_BYTES + PAYLOAD_MAX),
        })
    }

    /// The next record, `None` at the end of the log.
    pub fn next_event(&mut self) -> io::Result<Option<ProvEvent<'_>>> {
        let Some(len) = read_length(&mut self.input)? else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(len) as usize;
        if !(EVENT_HEADER_BYTES..=EVENT_HEADER_BYTES + PAYLOAD_MAX).contains(&len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("corrupt log: record length {len}"),
            ));
        }
        self.record.resize(len, 0);
        self.input.read_exact(&mut self.record)?;
        ProvEvent::decode(&self.record).map(Some).map_err(|err| {
            io::Error::new(io::ErrorKind::InvalidData, format!("corrupt log: {err}"))
        })
    }
}

/// A record's (or batch's) 4-byte length, `None` at a clean end of the log; 1 to 3 bytes
/// before the end mean the log was cut short, which is an error, not its end.
pub(crate) fn read_length(input: &mut impl Read) -> io::Result<Option<[u8; 4]>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < len.len() {
        match input.read(&mut len[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    match got {
        0 => Ok(None),
        4 => Ok(Some(len)),
        n => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("corrupt log: it ends {n} byte(s) into a record length (cut short)"),
        )),
    }
}

/// Calls `each` for every record of a log of either built-in architecture.
pub fn for_each_event(path: &Path, mut each: impl FnMut(&ProvEvent<'_>)) -> anyhow::Result<()> {
    if compact::is_compact_log(path) {
        return compact::read_log(path, each);
    }
    let mut reader = LogReader::open(path)?;
    while let Some(event) = reader.next_event()? {
        each(&event);
    }
    Ok(())
}

fn bad_magic() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "not an aegis-bench provenance log (expected the AEGPROV1 header)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(payload: &[u8]) -> ProvEvent<'_> {
        ProvEvent {
            ts_ns: 123,
            cgroup_id: 77,
            pid: 10,
            tid: 11,
            syscall_nr: libc::SYS_openat as u32,
            payload_kind: PayloadKind::Path,
            group: 0,
            args: [1, 2, 3, 4, 5, 6],
            comm: *b"flood-0\0\0\0\0\0\0\0\0\0",
            payload,
        }
    }

    #[test]
    fn a_process_name_with_terminal_escapes_prints_escaped() {
        let mut event = sample(b"/tmp/\x1b[2J");
        event.comm[..8].copy_from_slice(b"\x1b[31mred");
        let text = event.to_string();
        assert!(!text.contains('\x1b'), "{text}");
        assert!(text.contains("\\u{1b}[31mred"), "{text}");
    }

    #[test]
    fn a_log_cut_inside_a_length_is_an_error() {
        let mut writer = LogWriter::new(Vec::new()).unwrap();
        writer.append(&sample(b"/tmp/x")).unwrap();
        let mut bytes = writer.finish().unwrap();
        bytes.extend([1, 0]);
        let mut reader = LogReader::new(&bytes[..]).unwrap();
        assert!(reader.next_event().unwrap().is_some());
        let err = reader.next_event().unwrap_err();
        assert!(err.to_string().contains("cut short"), "{err}");
    }

    #[test]
    fn log_round_trips() {
        let events = [sample(b"/tmp/x"), sample(b"")];
        let mut writer = LogWriter::new(Vec::new()).unwrap();
        for event in &events {
            writer.append(event).unwrap();
        }
        let bytes = writer.finish().unwrap();
        let mut reader = LogReader::new(&bytes[..]).unwrap();
        for event in &events {
            assert_eq!(reader.next_event().unwrap().unwrap(), *event);
        }
        assert!(reader.next_event().unwrap().is_none());
    }

    #[test]
    fn rejects_garbage() {
        assert!(LogReader::new(&b"NOTALOG!"[..]).is_err());
        assert_eq!(ProvEvent::decode(&[0; 10]), Err(DecodeError::Short(10)));
        let mut raw = [0u8; EVENT_HEADER_BYTES];
        raw[offset::PAYLOAD_LEN] = 50;
        assert!(matches!(
            ProvEvent::decode(&raw),
            Err(DecodeError::PayloadLen { .. })
        ));
    }

    #[test]
    fn the_group_byte_is_the_old_payload_kinds_high_byte() {
        let mut event = sample(b"/etc/hosts");
        let mut header = [0u8; EVENT_HEADER_BYTES];
        event.encode_header(&mut header);
        // The attack's record: payload_kind reads as the 16-bit 1 it always was.
        assert_eq!(u16_at(&header, offset::PAYLOAD_KIND), 1);
        event.group = GROUP_REST;
        event.encode_header(&mut header);
        let mut raw = header.to_vec();
        raw.extend(event.payload);
        let back = ProvEvent::decode(&raw).unwrap();
        assert_eq!(
            (back.group, back.payload_kind),
            (GROUP_REST, PayloadKind::Path)
        );
        assert!(back.to_string().ends_with(" group=rest"), "{back}");
        raw[offset::GROUP] = 3;
        assert_eq!(ProvEvent::decode(&raw), Err(DecodeError::Group(3)));
    }

    #[test]
    fn displays_path() {
        let line = sample(b"/tmp/aegis-canary").to_string();
        assert!(
            line.contains("openat(") && line.contains("/tmp/aegis-canary"),
            "{line}"
        );
    }
}
