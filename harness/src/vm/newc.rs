//! A writer for the "newc" cpio format, the one the kernel unpacks as an initramfs
//! (`Documentation/driver-api/early-userspace/buffer-format.rst`).
//!
//! Each entry is a 110-byte ASCII header (`070701` and 13 eight-digit hex fields), the name
//! with its NUL padded to a multiple of four, then the data padded likewise; a `TRAILER!!!`
//! entry ends the archive. The format is small enough to write directly, which keeps images
//! reproducible (mtime 0, owner root, inode numbers in write order) and lets the writer add
//! the parent directories the kernel's unpacker needs (it does not create them itself).

use std::collections::BTreeSet;
use std::io::{self, Write};

const MAGIC: &str = "070701";
const TRAILER: &str = "TRAILER!!!";

pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;

/// Writes entries to `out`; call [`NewcWriter::finish`] to end the archive.
pub struct NewcWriter<W: Write> {
    out: W,
    next_ino: u32,
    offset: u64,
    dirs: BTreeSet<String>,
}

fn pad_len(len: u64) -> usize {
    ((4 - len % 4) % 4) as usize
}

impl<W: Write> NewcWriter<W> {
    pub fn new(out: W) -> Self {
        NewcWriter {
            out,
            next_ino: 1,
            offset: 0,
            dirs: BTreeSet::new(),
        }
    }

    /// Paths are written relative (`bin/sh`); a leading `/` is dropped.
    fn normalize(path: &str) -> io::Result<String> {
        let path = path.trim_start_matches('/').trim_end_matches('/');
        if path.is_empty() || path.split('/').any(|part| part == ".." || part.is_empty()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad path in initramfs: '{path}'"),
            ));
        }
        Ok(path.to_string())
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> io::Result<()> {
        let ino = if name == TRAILER { 0 } else { self.next_ino };
        self.next_ino += 1;
        let name_size = name.len() as u64 + 1;
        let header = format!(
            "{MAGIC}{ino:08x}{mode:08x}{uid:08x}{gid:08x}{nlink:08x}{mtime:08x}{size:08x}\
             {major:08x}{minor:08x}{rmajor:08x}{rminor:08x}{name_size:08x}{check:08x}",
            uid = 0,
            gid = 0,
            mtime = 0,
            size = data.len(),
            major = 0,
            minor = 0,
            rmajor = rdev.0,
            rminor = rdev.1,
            check = 0,
        );
        debug_assert_eq!(header.len(), 110);
        self.out.write_all(header.as_bytes())?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        let after_name = self.offset + 110 + name_size;
        self.out.write_all(&[0; 3][..pad_len(after_name)])?;
        self.out.write_all(data)?;
        self.out.write_all(&[0; 3][..pad_len(data.len() as u64)])?;
        self.offset = after_name
            + pad_len(after_name) as u64
            + data.len() as u64
            + pad_len(data.len() as u64) as u64;
        Ok(())
    }

    /// Adds the missing parent directories of `path`.
    fn parents(&mut self, path: &str) -> io::Result<()> {
        let mut prefix = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if self.dirs.insert(prefix.clone()) {
                let dir = prefix.clone();
                self.entry(&dir, S_IFDIR | 0o755, 2, (0, 0), &[])?;
            }
        }
        Ok(())
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> io::Result<()> {
        let path = Self::normalize(path)?;
        self.parents(&path)?;
        if self.dirs.insert(path.clone()) {
            self.entry(&path, S_IFDIR | (mode & 0o7777), 2, (0, 0), &[])?;
        }
        Ok(())
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        let path = Self::normalize(path)?;
        self.parents(&path)?;
        self.entry(&path, S_IFREG | (mode & 0o7777), 1, (0, 0), data)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        let path = Self::normalize(path)?;
        self.parents(&path)?;
        self.entry(&path, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes())
    }

    pub fn char_device(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> io::Result<()> {
        let path = Self::normalize(path)?;
        self.parents(&path)?;
        self.entry(&path, S_IFCHR | (mode & 0o7777), 1, (major, minor), &[])
    }

    /// Writes the trailer and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.entry(TRAILER, 0, 1, (0, 0), &[])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, mode, rdev, data) of an entry.
    type Entry = (String, u32, (u32, u32), Vec<u8>);

    /// Every entry but the trailer.
    fn read_newc(mut bytes: &[u8]) -> Vec<Entry> {
        let mut entries = Vec::new();
        let mut offset = 0usize;
        loop {
            assert_eq!(&bytes[..6], MAGIC.as_bytes(), "magic at offset {offset}");
            let field = |i: usize| {
                u32::from_str_radix(
                    std::str::from_utf8(&bytes[6 + 8 * i..14 + 8 * i]).unwrap(),
                    16,
                )
                .unwrap()
            };
            let (mode, size, rdev, name_size) =
                (field(1), field(6), (field(9), field(10)), field(11));
            let name = std::str::from_utf8(&bytes[110..110 + name_size as usize - 1])
                .unwrap()
                .to_string();
            assert_eq!(bytes[110 + name_size as usize - 1], 0);
            let data_start = 110 + name_size as usize;
            let data_start = data_start + pad_len((offset + data_start) as u64);
            let data = bytes[data_start..data_start + size as usize].to_vec();
            let end = data_start + size as usize;
            let end = end + pad_len(end as u64);
            assert_eq!((offset + end) % 4, 0);
            bytes = &bytes[end..];
            offset += end;
            if name == TRAILER {
                assert!(bytes.iter().all(|b| *b == 0));
                return entries;
            }
            entries.push((name, mode, rdev, data));
        }
    }

    #[test]
    fn writes_aligned_entries_with_parents() {
        let mut writer = NewcWriter::new(Vec::new());
        writer.file("/usr/local/bin/tool", 0o755, b"hello").unwrap();
        writer.symlink("bin/sh", "/bin/busybox").unwrap();
        writer.dir("usr/local", 0o755).unwrap(); // already there: not repeated
        writer.char_device("dev/console", 0o600, 5, 1).unwrap();
        let bytes = writer.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let entries = read_newc(&bytes);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "usr",
                "usr/local",
                "usr/local/bin",
                "usr/local/bin/tool",
                "bin",
                "bin/sh",
                "dev",
                "dev/console"
            ]
        );
        assert_eq!(entries[3].1, S_IFREG | 0o755);
        assert_eq!(entries[3].3, b"hello");
        assert_eq!(entries[5].1, S_IFLNK | 0o777);
        assert_eq!(entries[5].3, b"/bin/busybox");
        assert_eq!(entries[7].1, S_IFCHR | 0o600);
        assert_eq!(entries[7].2, (5, 1));
    }

    #[test]
    fn refuses_escaping_paths() {
        let mut writer = NewcWriter::new(Vec::new());
        assert!(writer.file("../etc/passwd", 0o644, b"").is_err());
        assert!(writer.file("/", 0o644, b"").is_err());
    }

    #[test]
    fn busybox_cpio_reads_it() {
        let busybox = std::path::Path::new("/bin/busybox");
        if !busybox.exists() {
            eprintln!("SKIP busybox_cpio_reads_it: no /bin/busybox (make setup installs it)");
            return;
        }
        let mut writer = NewcWriter::new(Vec::new());
        writer.file("a/b/c.txt", 0o644, b"abc").unwrap();
        writer.file("a/d", 0o600, &[7u8; 1001]).unwrap();
        let bytes = writer.finish().unwrap();
        let mut child = std::process::Command::new(busybox)
            .args(["cpio", "-t"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "a\na/b\na/b/c.txt\na/d\n"
        );
    }
}
