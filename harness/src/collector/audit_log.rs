//! Reads the log auditd writes (`log_format = RAW`): one record per line,
//! `type=SYSCALL msg=audit(1795319845.914:900): arch=c000003e syscall=257 ... key="k"`.
//!
//! One syscall event is a SYSCALL record followed by its auxiliary records, all sharing the
//! serial in `msg=audit(seconds:serial)`. The trial's rules let only SYSCALL and PATH records
//! through (see `auditd.rs`): the SYSCALL record's `items=N` says how many PATH records (one per
//! path name the syscall looked up) the kernel went on to emit for it.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::CanarySeen;
use crate::syscalls;

/// Which SYSCALL records belong to the attack: the rule key the trial installed and the
/// attack worker's pid (its own threads) or parent pid (the processes it forked).
#[derive(Clone, Debug)]
pub struct AttackFilter {
    pub pid: u32,
    pub key: String,
}

impl AttackFilter {
    fn matches(&self, record: &Record<'_>) -> bool {
        let pid = record.field(b"pid").and_then(parse_u32);
        let ppid = record.field(b"ppid").and_then(parse_u32);
        let key = record.field(b"key").map(unquote);
        key.as_deref() == Some(self.key.as_bytes())
            && (pid == Some(self.pid) || ppid == Some(self.pid))
    }
}

/// One line of the log.
pub struct Record<'a> {
    pub kind: &'a [u8],
    pub serial: u64,
    fields: &'a [u8],
}

impl<'a> Record<'a> {
    /// Parses `type=KIND msg=audit(SECONDS:SERIAL): FIELDS`; `None` for anything else.
    pub fn parse(line: &'a [u8]) -> Option<Record<'a>> {
        let rest = line.strip_prefix(b"type=")?;
        let space = rest.iter().position(|b| *b == b' ')?;
        let kind = &rest[..space];
        let rest = rest[space + 1..].strip_prefix(b"msg=audit(")?;
        let close = rest.iter().position(|b| *b == b')')?;
        let stamp = &rest[..close];
        let colon = stamp.iter().position(|b| *b == b':')?;
        let serial = std::str::from_utf8(&stamp[colon + 1..])
            .ok()?
            .parse()
            .ok()?;
        let fields = rest[close + 1..]
            .strip_prefix(b":")
            .unwrap_or(&rest[close + 1..]);
        Some(Record {
            kind,
            serial,
            fields,
        })
    }

    /// The raw value of `key=value` (quotes kept). The kernel encodes values that could hold
    /// spaces (comm, exe, name, key) in hex or quotes without spaces, so splitting on
    /// spaces is exact.
    pub fn field(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.fields
            .split(|b| *b == b' ')
            .filter_map(|word| {
                let eq = word.iter().position(|b| *b == b'=')?;
                (&word[..eq] == key).then_some(&word[eq + 1..])
            })
            .next()
    }
}

fn parse_u32(value: &[u8]) -> Option<u32> {
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Decodes an untrusted string value: `"text"`, or hex when the text holds a space, a quote
/// or a control character. `(null)` stays as it is.
pub fn unquote(value: &[u8]) -> Vec<u8> {
    if let Some(inner) = value
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
    {
        return inner.to_vec();
    }
    let is_hex =
        !value.is_empty() && value.len() % 2 == 0 && value.iter().all(|b| b.is_ascii_hexdigit());
    if is_hex {
        return value
            .chunks(2)
            .map(|pair| {
                let text = std::str::from_utf8(pair).expect("hex digits are ASCII");
                u8::from_str_radix(text, 16).expect("checked hex digits")
            })
            .collect();
    }
    value.to_vec()
}

/// Calls `each` for every parsable line of the log (with the line).
fn for_each_record(
    log: &Path,
    mut each: impl FnMut(&Record<'_>, &[u8]) -> Result<()>,
) -> Result<()> {
    let file =
        File::open(log).with_context(|| format!("opening the audit log {}", log.display()))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading {}", log.display()))?;
        if read == 0 {
            return Ok(());
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if let Some(record) = Record::parse(text) {
            each(&record, text)?;
        }
    }
}

/// What the log holds, counted for the accounting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogSummary {
    /// The attack's SYSCALL records (events received), by syscall number.
    pub received_by_syscall: BTreeMap<u32, u64>,
    /// PATH records the attack's events announced (`items`) and those in the log.
    pub path_records_announced: u64,
    pub path_records_seen: u64,
    /// SYSCALL and PATH records that are not the attack's; any of them means the kernel's
    /// `lost` counter may count records that are not the attack's.
    pub foreign_records: u64,
    /// The first of them, for the error message.
    pub first_foreign: Option<String>,
    /// Records of types the trial's rules let through by design (daemon start/stop lines).
    pub other_records: u64,
}

impl LogSummary {
    pub fn received(&self) -> u64 {
        self.received_by_syscall.values().sum()
    }

    /// PATH records announced but absent: each one was lost after its SYSCALL record was
    /// queued, and each one counted once in the kernel's `lost`.
    pub fn path_records_missing(&self) -> u64 {
        self.path_records_announced - self.path_records_seen
    }
}

/// Reads the log once and counts the attack's events and their PATH records.
pub fn summarize(log: &Path, filter: &AttackFilter) -> Result<LogSummary> {
    let mut summary = LogSummary::default();
    // serial -> (announced, seen) for the attack's events.
    let mut events: HashMap<u64, (u32, u32)> = HashMap::new();
    for_each_record(log, |record, line| {
        let mut foreign = || {
            summary.foreign_records += 1;
            if summary.first_foreign.is_none() {
                summary.first_foreign = Some(String::from_utf8_lossy(line).into_owned());
            }
        };
        match record.kind {
            b"SYSCALL" if filter.matches(record) => {
                let nr = record
                    .field(b"syscall")
                    .and_then(parse_u32)
                    .with_context(|| format!("SYSCALL record {} has no syscall", record.serial))?;
                let items = record
                    .field(b"items")
                    .and_then(parse_u32)
                    .with_context(|| format!("SYSCALL record {} has no items", record.serial))?;
                if events.insert(record.serial, (items, 0)).is_some() {
                    bail!("the audit log holds event {} twice", record.serial);
                }
                *summary.received_by_syscall.entry(nr).or_default() += 1;
                summary.path_records_announced += u64::from(items);
            }
            b"PATH" => match events.get_mut(&record.serial) {
                Some((announced, seen)) => {
                    *seen += 1;
                    if *seen > *announced {
                        bail!(
                            "event {} has more PATH records than its items={announced}",
                            record.serial
                        );
                    }
                    summary.path_records_seen += 1;
                }
                None => foreign(),
            },
            b"SYSCALL" => foreign(),
            _ => summary.other_records += 1,
        }
        Ok(())
    })?;
    Ok(summary)
}

/// Looks for the canary file among the PATH records of the attack's events: a file-creating
/// syscall (openat) and a file-removing one (unlinkat) that name it.
pub fn find_canary(log: &Path, filter: &AttackFilter, canary: &Path) -> Result<CanarySeen> {
    let wanted = canary.as_os_str().as_encoded_bytes();
    let mut syscall_of: HashMap<u64, u32> = HashMap::new();
    let mut seen = CanarySeen::default();
    for_each_record(log, |record, _| {
        match record.kind {
            b"SYSCALL" if filter.matches(record) => {
                if let Some(nr) = record.field(b"syscall").and_then(parse_u32) {
                    if syscalls::creates_file(nr) || syscalls::removes_file(nr) {
                        syscall_of.insert(record.serial, nr);
                    }
                }
            }
            b"PATH" => {
                let names_canary = record.field(b"name").map(unquote).as_deref() == Some(wanted);
                if let (true, Some(nr)) = (names_canary, syscall_of.get(&record.serial)) {
                    seen.created |= syscalls::creates_file(*nr);
                    seen.unlinked |= syscalls::removes_file(*nr);
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
type=DAEMON_START msg=audit(1795319859.793:6401): op=start ver=3.0.9 format=raw pid=19251 res=success
type=SYSCALL msg=audit(1795319845.914:899): arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=55 a2=80000 a3=0 items=1 ppid=100 pid=4242 auid=4294967295 comm=\"aegis-bench\" exe=\"/x\" key=\"aegis-bench-1\"
type=PATH msg=audit(1795319845.914:899): item=0 name=\"/dev/null\" inode=3 dev=00:06 nametype=NORMAL
type=SYSCALL msg=audit(1795319845.914:900): arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=7f a2=800c1 a3=180 items=2 ppid=100 pid=4242 comm=\"aegis-bench\" key=\"aegis-bench-1\"
type=PATH msg=audit(1795319845.914:900): item=0 name=\"/tmp/\" inode=246951 nametype=PARENT
type=PATH msg=audit(1795319845.914:900): item=1 name=2F746D702F61656769732063616E617279 inode=10010740 nametype=CREATE
type=SYSCALL msg=audit(1795319845.914:901): arch=c000003e syscall=263 success=yes exit=0 items=2 ppid=100 pid=4242 key=\"aegis-bench-1\"
type=PATH msg=audit(1795319845.914:901): item=0 name=\"/tmp/\" nametype=PARENT
type=SYSCALL msg=audit(1795319845.914:902): arch=c000003e syscall=231 a0=0 a1=e7 items=0 ppid=4242 pid=4300 key=\"aegis-bench-1\"
type=SYSCALL msg=audit(1795319845.914:903): arch=c000003e syscall=3 success=yes exit=0 items=0 ppid=1 pid=77 key=\"other\"
";

    fn log_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        file
    }

    fn filter() -> AttackFilter {
        AttackFilter {
            pid: 4242,
            key: "aegis-bench-1".into(),
        }
    }

    #[test]
    fn counts_attack_events_and_their_path_records() {
        let file = log_file(LOG);
        let summary = summarize(file.path(), &filter()).unwrap();
        let openat = libc::SYS_openat as u32;
        let unlinkat = libc::SYS_unlinkat as u32;
        let exit_group = libc::SYS_exit_group as u32;
        assert_eq!(
            summary.received_by_syscall,
            [(openat, 2), (unlinkat, 1), (exit_group, 1)]
                .into_iter()
                .collect()
        );
        assert_eq!(summary.received(), 4);
        assert_eq!(summary.path_records_announced, 5);
        assert_eq!(summary.path_records_seen, 4);
        assert_eq!(summary.path_records_missing(), 1);
        assert_eq!(summary.foreign_records, 1);
        assert_eq!(summary.other_records, 1);
    }

    #[test]
    fn finds_the_canary_by_its_hex_encoded_name() {
        let file = log_file(LOG);
        let seen = find_canary(file.path(), &filter(), Path::new("/tmp/aegis canary")).unwrap();
        // Created (PATH item 1 of event 900); the unlink's PATH naming it was lost.
        assert_eq!(
            seen,
            CanarySeen {
                created: true,
                unlinked: false
            }
        );
    }

    #[test]
    fn decodes_values() {
        assert_eq!(unquote(b"\"/dev/null\""), b"/dev/null");
        assert_eq!(unquote(b"2F746D70"), b"/tmp");
        assert_eq!(unquote(b"(null)"), b"(null)");
        let record = Record::parse(LOG.lines().nth(1).unwrap().as_bytes()).unwrap();
        assert_eq!((record.kind, record.serial), (&b"SYSCALL"[..], 899));
        assert_eq!(record.field(b"items"), Some(&b"1"[..]));
    }

    #[test]
    fn more_path_records_than_announced_is_an_error() {
        let text = format!(
            "{}type=PATH msg=audit(1795319845.914:899): item=1 name=\"/x\"\n",
            LOG
        );
        let file = log_file(&text);
        let err = summarize(file.path(), &filter()).unwrap_err().to_string();
        assert!(err.contains("more PATH records"), "{err}");
    }
}
