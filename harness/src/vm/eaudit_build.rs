//! eAudit for the guest: a copy of the user's checkout with this project's patches applied
//! (`patches/eaudit/`, embedded in the binary) and built on the host with `make all` (bookworm's
//! g++ and libstdc++, the same as the guest's Debian userland), cached under
//! `eaudit/<hash>/` by the SHA-256 of the checkout's files and the patches. Only `eauditk.c` is
//! compiled in the guest, by BCC, when eAudit starts. The checkout itself is never changed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::error::InputError;

/// The patches, in order: (file name, contents).
pub const PATCHES: &[(&str, &str)] = &[
    (
        "0001-eauditk-min-for-the-6.1-verifier.patch",
        include_str!("../../../patches/eaudit/0001-eauditk-min-for-the-6.1-verifier.patch"),
    ),
    (
        "0002-eauditk-for-7.3-and-bcc-0.35.patch",
        include_str!("../../../patches/eaudit/0002-eauditk-for-7.3-and-bcc-0.35.patch"),
    ),
];

/// Every regular file under `dir`, sorted, relative.
fn files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current)
            .with_context(|| format!("reading {}", current.display()))?
            .flatten()
        {
            let path = entry.path();
            let kind = entry.file_type()?;
            if kind.is_dir() && entry.file_name() != ".git" {
                stack.push(path);
            } else if kind.is_file() {
                found.push(path.strip_prefix(dir)?.to_path_buf());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The patched, built copy of `checkout` for the guest.
pub fn ensure(checkout: &Path, cache: &Path) -> Result<PathBuf> {
    if !checkout.join("eauditk.c").is_file() {
        return Err(InputError(format!(
            "{} is not an eAudit checkout (no eauditk.c): give --eaudit-dir DIR or set {}",
            checkout.display(),
            crate::collector::eaudit::DIR_ENV
        ))
        .into());
    }
    let mut hash = Sha256::new();
    let sources = files(checkout)?;
    for file in &sources {
        hash.update(file.to_string_lossy().as_bytes());
        hash.update(std::fs::read(checkout.join(file))?);
    }
    for (name, text) in PATCHES {
        hash.update(name.as_bytes());
        hash.update(text.as_bytes());
    }
    let key = format!("{:x}", hash.finalize());
    let root = cache.join("eaudit");
    let dest = root.join(&key[..32]);
    if dest.join("ecapd.so").is_file() && dest.join("eaudit").is_file() {
        return Ok(dest);
    }
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    crate::say!(
        "vm: building eAudit from {} with {} patch(es)",
        checkout.display(),
        PATCHES.len()
    );
    let staging = tempfile::Builder::new()
        .prefix(".build-")
        .tempdir_in(&root)?;
    let copy = staging.path().join("eaudit");
    for file in &sources {
        let target = copy.join(file);
        std::fs::create_dir_all(target.parent().context("no parent")?)?;
        std::fs::copy(checkout.join(file), &target)?;
    }
    for (name, text) in PATCHES {
        let mut child = Command::new("patch")
            .args(["-s", "-p1", "-d"])
            .arg(&copy)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running patch (apt-get install patch)")?;
        std::io::Write::write_all(child.stdin.as_mut().context("no stdin")?, text.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "patches/eaudit/{name} does not apply to {}: {}",
                checkout.display(),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
    }
    let out = Command::new("make")
        .arg("-C")
        .arg(&copy)
        .arg("all")
        .output()
        .context("running make (apt-get install make g++)")?;
    if !out.status.success() || !copy.join("ecapd.so").is_file() || !copy.join("eaudit").is_file() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!(
            "`make all` in a copy of {} failed ({}): {}",
            checkout.display(),
            out.status,
            stderr.trim().lines().last().unwrap_or("no message")
        );
    }
    let patches: Vec<&str> = PATCHES.iter().map(|(name, _)| *name).collect();
    std::fs::write(
        copy.join(crate::collector::eaudit::BUILD_FILE),
        format!("{}, patched: {}\n", checkout.display(), patches.join(", ")),
    )?;
    std::fs::rename(&copy, &dest).with_context(|| format!("moving it to {}", dest.display()))?;
    Ok(dest)
}
