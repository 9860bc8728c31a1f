//! What comes back from the guest: one tar holding `aegis/status` (the command's exit status)
//! and the requested files, unpacked onto their host paths, each file atomically (written
//! beside its destination, then renamed).

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::error::InputError;

const STATUS_ENTRY: &str = "aegis/status";

/// A guest path the guest can send back: absolute, plain, outside the runner's own `/aegis`.
pub fn check_guest_path(path: &Path) -> Result<(), InputError> {
    let text = path.to_string_lossy();
    let plain = path
        .components()
        .skip(1)
        .all(|c| matches!(c, Component::Normal(_)));
    if !path.is_absolute() || !plain || path.components().count() < 2 || text.contains('\n') {
        return Err(InputError(format!(
            "guest path '{text}' must be absolute, without '..' or newlines, and not /"
        )));
    }
    if path.starts_with("/aegis") {
        return Err(InputError(format!(
            "guest path '{text}' is inside /aegis, which the guest runner uses itself"
        )));
    }
    Ok(())
}

/// Where a tar entry goes on the host, if it is (inside) one of the requested paths.
fn destination(entry: &Path, files_back: &[(PathBuf, PathBuf)]) -> Option<(usize, PathBuf)> {
    files_back
        .iter()
        .enumerate()
        .find_map(|(index, (guest, host))| {
            let guest = guest.strip_prefix("/").ok()?;
            let rest = entry.strip_prefix(guest).ok()?;
            Some((
                index,
                if rest.as_os_str().is_empty() {
                    host.clone()
                } else {
                    host.join(rest)
                },
            ))
        })
}

/// Replaces `dest` with the bytes of `reader`, with the permission bits of `mode` (and at
/// least read and write for the owner).
fn persist(dest: &Path, reader: &mut impl Read, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    crate::files::write_atomically_with(dest, |file| {
        std::io::copy(reader, file).with_context(|| format!("writing {}", dest.display()))?;
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777 | 0o600))?;
        Ok(())
    })
}

/// Unpacks the results tar onto the host paths of `files_back` and returns the guest
/// command's exit status. A requested path the guest did not send fails the run if the
/// command succeeded, and is a warning if it failed.
pub fn unpack(tar_path: &Path, files_back: &[(PathBuf, PathBuf)]) -> Result<i32> {
    let file =
        std::fs::File::open(tar_path).with_context(|| format!("opening {}", tar_path.display()))?;
    let mut archive = tar::Archive::new(file);
    let mut status = None;
    let mut received = vec![false; files_back.len()];
    for entry in archive
        .entries()
        .context("reading the results the guest sent")?
    {
        let mut entry = entry.context("reading the results the guest sent")?;
        let path = entry.path()?.into_owned();
        if path == Path::new(STATUS_ENTRY) {
            let mut text = String::new();
            entry.read_to_string(&mut text)?;
            status = Some(
                text.trim()
                    .parse::<i32>()
                    .with_context(|| format!("the guest sent a bad exit status '{text}'"))?,
            );
            continue;
        }
        if path
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            bail!(
                "the guest sent a file with an unsafe path: {}",
                path.display()
            );
        }
        let Some((index, dest)) = destination(&path, files_back) else {
            bail!("the guest sent {}, which was not asked for", path.display());
        };
        received[index] = true;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&dest)
                .with_context(|| format!("creating {}", dest.display()))?;
        } else if kind.is_file() {
            let mode = entry.header().mode().unwrap_or(0o644);
            persist(&dest, &mut entry, mode)?;
        } else {
            crate::say!(
                "vm: warning: skipped {} from the guest: only files and directories are copied",
                path.display()
            );
        }
    }
    let status = status.context(
        "the guest's results carry no exit status: /init did not finish (guest console above)",
    )?;
    for ((guest, host), received) in files_back.iter().zip(received) {
        if received {
            crate::say!("vm: copied guest {} to {}", guest.display(), host.display());
        } else if status == 0 {
            bail!(
                "the guest command succeeded but left no {} to copy to {}",
                guest.display(),
                host.display()
            );
        } else {
            crate::say!(
                "vm: the guest command failed before writing {} (not copied to {})",
                guest.display(),
                host.display()
            );
        }
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut header = tar::Header::new_ustar();
            match data {
                Some(data) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(data.len() as u64);
                    header.set_mode(0o644);
                    header.set_cksum();
                    builder.append_data(&mut header, path, *data).unwrap();
                }
                None => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    header.set_mode(0o755);
                    header.set_cksum();
                    builder.append_data(&mut header, path, &[][..]).unwrap();
                }
            }
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn maps_files_and_directories_to_host_paths() {
        let dir = tempfile::tempdir().unwrap();
        let tar = dir.path().join("r.tar");
        std::fs::write(
            &tar,
            tar_with(&[
                ("aegis/status", Some(b"0\n")),
                ("aegis-out/json/t.json", Some(b"[1]")),
                ("aegis-out/logs/", None),
                ("aegis-out/logs/trial-0.log", Some(b"log")),
            ]),
        )
        .unwrap();
        let host_json = dir.path().join("a/b/trials.json");
        let host_logs = dir.path().join("logs");
        let status = unpack(
            &tar,
            &[
                ("/aegis-out/json/t.json".into(), host_json.clone()),
                ("/aegis-out/logs".into(), host_logs.clone()),
            ],
        )
        .unwrap();
        assert_eq!(status, 0);
        assert_eq!(std::fs::read(&host_json).unwrap(), b"[1]");
        assert_eq!(
            std::fs::read(host_logs.join("trial-0.log")).unwrap(),
            b"log"
        );
    }

    #[test]
    fn missing_files_fail_only_a_successful_command() {
        let dir = tempfile::tempdir().unwrap();
        let tar = dir.path().join("r.tar");
        let wanted = [(PathBuf::from("/out/x.json"), dir.path().join("x.json"))];
        std::fs::write(&tar, tar_with(&[("aegis/status", Some(b"0"))])).unwrap();
        let err = unpack(&tar, &wanted).unwrap_err().to_string();
        assert!(err.contains("left no /out/x.json"), "{err}");
        std::fs::write(&tar, tar_with(&[("aegis/status", Some(b"2"))])).unwrap();
        assert_eq!(unpack(&tar, &wanted).unwrap(), 2);
    }

    #[test]
    fn results_without_status_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let tar = dir.path().join("r.tar");
        std::fs::write(&tar, tar_with(&[])).unwrap();
        let err = unpack(&tar, &[]).unwrap_err().to_string();
        assert!(err.contains("no exit status"), "{err}");
    }

    #[test]
    fn checks_guest_paths() {
        assert!(check_guest_path(Path::new("/aegis-out/x.json")).is_ok());
        for bad in ["relative", "/", "/a/../b", "/aegis/status", "/a\nb"] {
            assert!(check_guest_path(Path::new(bad)).is_err(), "{bad}");
        }
    }
}
