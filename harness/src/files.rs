//! Files replaced whole: written to a temporary file beside the destination, synced, then
//! renamed over it, so a reader (or a run stopped half-way) finds the old file or the new one,
//! never half of one. The harness runs as root: it never replaces what is not a regular file
//! (a device such as /dev/null, a directory) nor writes through a symlink someone planted.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Why `path` cannot be an output file, or `None` when it can: it is missing (and its nearest
/// existing ancestor is a writable directory) or a regular file, not a symlink. Checked before a
/// run arms anything, so a bad path costs no measurement.
pub fn unusable_output(path: &Path) -> Option<String> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_symlink() {
            return Some("is a symlink (written as root, it could point anywhere)".into());
        }
        if !meta.is_file() {
            return Some("exists and is not a regular file".into());
        }
    }
    let mut ancestor = path.parent();
    while let Some(dir) = ancestor {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        match std::fs::metadata(dir) {
            Ok(meta) if !meta.is_dir() => {
                return Some(format!("{} is not a directory", dir.display()))
            }
            Ok(_) => {
                return nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK)
                    .err()
                    .map(|err| format!("{} is not writable ({err})", dir.display()));
            }
            Err(_) => ancestor = dir.parent(),
        }
    }
    None
}

/// Why `path` cannot hold kept logs, or `None`: a directory (not a symlink to one), or missing
/// with a writable directory above it.
pub fn unusable_output_dir(path: &Path) -> Option<String> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            Some("is a symlink (written as root, it could point anywhere)".into())
        }
        Ok(meta) if !meta.is_dir() => Some("exists and is not a directory".into()),
        Ok(_) => nix::unistd::access(path, nix::unistd::AccessFlags::W_OK)
            .err()
            .map(|err| format!("is not writable ({err})")),
        Err(_) => unusable_output(&path.join("x")),
    }
}

/// Creates `path` afresh (mode 0600) for writing, never through a symlink: whatever is at that
/// name, a file of an earlier run or a planted link, is unlinked first, and the file is created
/// with `O_EXCL`, which fails if anything appears there meanwhile.
pub fn create_fresh(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.is_dir() {
            bail!("{} is a directory", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("replacing {}", path.display()))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// The most a result, matrix or threshold file may hold: far above any run's (the paper
/// matrix's trials are a few MB), far below what exhausts the machine.
pub const MAX_INPUT_BYTES: u64 = 1 << 30;

/// `path`'s text, read only from a regular file of at most [`MAX_INPUT_BYTES`]: `/dev/zero` or
/// a FIFO given as an input would never end.
pub fn read_input(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Error::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    if meta.len() > MAX_INPUT_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{} bytes, more than {MAX_INPUT_BYTES}", meta.len()),
        ));
    }
    let mut text = String::with_capacity(meta.len() as usize);
    file.take(MAX_INPUT_BYTES).read_to_string(&mut text)?;
    Ok(text)
}

/// Replaces `path` with what `write` puts into a fresh file in the same directory (created if
/// missing).
pub fn write_atomically_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("writing into {}", dir.display()))?;
    write(tmp.as_file_mut())?;
    tmp.as_file().sync_all()?;
    // The rename would replace a device node or a symlink itself: refuse (checked up front
    // too; this catches what appeared since).
    if let Some(why) = std::fs::symlink_metadata(path)
        .ok()
        .filter(|meta| !meta.is_file())
        .map(|meta| {
            if meta.file_type().is_symlink() {
                "a symlink"
            } else {
                "not a regular file"
            }
        })
    {
        bail!("refusing to replace {}: {why}", path.display());
    }
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Replaces `path` with `bytes`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_with(path, |file| Ok(file.write_all(bytes)?))
}

/// Replaces `path` with `value` as pretty-printed JSON and a final newline.
pub fn write_json_atomically<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    write_atomically(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_nothing_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/dir/out.json");
        write_atomically(&path, b"old").unwrap();
        write_json_atomically(&path, &serde_json::json!({"a": [1, 2]})).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\n  \"a\": [\n    1,\n    2\n  ]\n}\n"
        );
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out.json"]);
    }

    #[test]
    fn never_replaces_a_symlink_or_a_special_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"precious").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let fifo = dir.path().join("fifo.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        for path in [&link, &fifo] {
            assert!(unusable_output(path).is_some(), "{}", path.display());
            assert!(write_atomically(path, b"x").is_err(), "{}", path.display());
        }
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        assert!(unusable_output(&dir.path().join("new/dir/out.json")).is_none());
        assert!(unusable_output(&target.join("out.json")).is_some());
        assert!(unusable_output_dir(&target).is_some());
        assert!(unusable_output_dir(&link).is_some());
        assert!(unusable_output_dir(&dir.path().join("logs")).is_none());

        // A fresh file replaces the link itself, not what it points at.
        let mut file = create_fresh(&link).unwrap();
        file.write_all(b"log").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
    }

    #[test]
    fn inputs_are_regular_files_only() {
        let err = read_input(Path::new("/dev/zero")).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.toml");
        std::fs::write(&path, "a = 1\n").unwrap();
        assert_eq!(read_input(&path).unwrap(), "a = 1\n");
    }

    #[test]
    fn a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        write_atomically(&path, b"old").unwrap();
        let failed = write_atomically_with(&path, |file| {
            file.write_all(b"half")?;
            anyhow::bail!("stopped")
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }
}
