//! Debian packages through a private apt configuration: its own source list, package lists and
//! download directory under the cache, so nothing under `/etc/apt` or `/var/lib/apt` changes.
//! The archive URIs are the ones the system's own apt sources name; the signatures are checked
//! with the system's Debian archive keyring (it carries the trixie keys too).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
const DEB822_SOURCES: &str = "/etc/apt/sources.list.d/debian.sources";
const ONE_LINE_SOURCES: &str = "/etc/apt/sources.list";

/// Which of the system's archives serves a suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Archive {
    /// The main Debian archive (bookworm, bookworm-updates, ... and the backports suites).
    Main,
    /// The security archive (`*-security` suites).
    Security,
}

/// One `deb` source of the system: an archive URI and the suites it is used for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub uri: String,
    pub suites: Vec<String>,
}

/// Parses deb822 `.sources` text: stanzas separated by blank lines, `Types:` containing `deb`.
pub fn parse_deb822(text: &str) -> Vec<Source> {
    let mut sources = Vec::new();
    for stanza in text.split("\n\n") {
        let (mut types, mut uris, mut suites) = (Vec::new(), Vec::new(), Vec::new());
        let mut enabled = true;
        for line in stanza.lines() {
            if line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let words = || value.split_whitespace().map(str::to_string);
            match key.trim().to_ascii_lowercase().as_str() {
                "types" => types = words().collect(),
                "uris" => uris = words().collect(),
                "suites" => suites = words().collect(),
                "enabled" => enabled = value.trim() != "no",
                _ => {}
            }
        }
        if enabled && types.iter().any(|t| t == "deb") {
            for uri in uris {
                sources.push(Source {
                    uri,
                    suites: suites.clone(),
                });
            }
        }
    }
    sources
}

/// Parses one-line `sources.list` text: `deb [options] URI SUITE COMPONENT...`.
pub fn parse_one_line(text: &str) -> Vec<Source> {
    let mut sources = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let rest = rest.trim_start();
        // Options such as [signed-by=...] come first, in brackets.
        let rest = match rest.strip_prefix('[') {
            Some(options) => options.split_once(']').map_or("", |(_, r)| r),
            None => rest,
        };
        let mut words = rest.split_whitespace();
        if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
            sources.push(Source {
                uri: uri.to_string(),
                suites: vec![suite.to_string()],
            });
        }
    }
    sources
}

/// The system's Debian sources, from `debian.sources` and `sources.list`.
pub fn system_sources() -> Vec<Source> {
    let mut sources = Vec::new();
    if let Ok(text) = std::fs::read_to_string(DEB822_SOURCES) {
        sources.extend(parse_deb822(&text));
    }
    if let Ok(text) = std::fs::read_to_string(ONE_LINE_SOURCES) {
        sources.extend(parse_one_line(&text));
    }
    sources
}

/// The URI of an archive among `sources`: the security archive is the one used for a
/// `*-security` suite, the main archive the one used for any other suite.
pub fn archive_uri(sources: &[Source], archive: Archive) -> Option<String> {
    sources
        .iter()
        .find(|source| {
            source.suites.iter().any(|suite| {
                let security = suite.ends_with("-security") || suite.ends_with("/updates");
                security == (archive == Archive::Security)
            })
        })
        .map(|source| source.uri.clone())
}

/// A private apt configuration for one suite of one archive, rooted at `dir`.
pub struct PrivateApt {
    dir: PathBuf,
    pub uri: String,
    pub suite: String,
}

impl PrivateApt {
    /// Sets up `dir` (source list, lists and archives directories) for `suite`, taking the
    /// archive URI from the system's sources.
    pub fn new(dir: &Path, archive: Archive, suite: &str) -> Result<PrivateApt> {
        let uri = archive_uri(&system_sources(), archive).with_context(|| {
            format!(
                "the system's apt sources ({DEB822_SOURCES}, {ONE_LINE_SOURCES}) name no {} \
                 archive, so there is no URI to fetch {suite} from",
                match archive {
                    Archive::Main => "main Debian",
                    Archive::Security => "Debian security",
                }
            )
        })?;
        if !Path::new(KEYRING).exists() {
            bail!(
                "{KEYRING} is missing, so {suite} cannot be verified: apt-get install \
                 debian-archive-keyring"
            );
        }
        for sub in ["lists/partial", "archives/partial"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path)
                .with_context(|| format!("creating {}", path.display()))?;
        }
        std::fs::write(
            dir.join("sources.list"),
            format!("deb [signed-by={KEYRING}] {uri} {suite} main\n"),
        )
        .with_context(|| format!("writing {}", dir.join("sources.list").display()))?;
        Ok(PrivateApt {
            dir: dir.to_path_buf(),
            uri,
            suite: suite.to_string(),
        })
    }

    fn options(&self) -> Vec<String> {
        let dir = self.dir.display();
        vec![
            format!("-oDir::Etc::sourcelist={dir}/sources.list"),
            "-oDir::Etc::sourceparts=-".to_string(),
            format!("-oDir::State::lists={dir}/lists"),
            format!("-oDir::Cache::archives={dir}/archives"),
            // Downloads land in our cache directory, which apt's unprivileged `_apt` user
            // cannot write to.
            "-oAPT::Sandbox::User=root".to_string(),
            "-qq".to_string(),
        ]
    }

    fn run(&self, program: &str, args: &[&str], cwd: Option<&Path>) -> Result<String> {
        let mut command = Command::new(program);
        command.args(self.options()).args(args);
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        let out = command
            .output()
            .with_context(|| format!("running {program} (is apt installed?)"))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let reason = stderr
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("no message");
            bail!(
                "`{program} {}` failed ({}): {reason}",
                args.join(" "),
                out.status
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `apt-get update` of the private lists.
    pub fn update(&self) -> Result<()> {
        self.run("apt-get", &["update"], None).map(|_| ())
    }

    /// Names of the real packages (with a version to download) matching an anchored regex.
    pub fn search_names(&self, regex: &str) -> Result<Vec<String>> {
        let out = self.run("apt-cache", &["search", "--names-only", regex], None)?;
        Ok(out
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .map(str::to_string)
            .collect())
    }

    /// Downloads `package` into `dir` and unpacks it under `root` (`dpkg-deb -x`, nothing
    /// installed), then deletes the `.deb`.
    pub fn extract(&self, package: &str, dir: &Path, root: &Path) -> Result<()> {
        let deb = self
            .download(package, dir)
            .with_context(|| format!("downloading {package} from {} ({})", self.suite, self.uri))?;
        let out = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(root)
            .output()
            .context("running dpkg-deb")?;
        if !out.status.success() {
            bail!(
                "dpkg-deb -x {} failed: {}",
                deb.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        std::fs::remove_file(&deb).ok();
        Ok(())
    }

    /// Downloads a package's `.deb` into `dest_dir` and returns its path.
    pub fn download(&self, package: &str, dest_dir: &Path) -> Result<PathBuf> {
        self.run("apt-get", &["download", package], Some(dest_dir))?;
        let prefix = format!("{}_", package.replace(':', "%3a"));
        std::fs::read_dir(dest_dir)?
            .flatten()
            .map(|entry| entry.path())
            .find(|path| {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                name.starts_with(&prefix) && name.ends_with(".deb")
            })
            .with_context(|| format!("apt-get download {package} left no .deb behind"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "Types: deb\n\
        # http://snapshot.example/archive/debian/20250520T000000Z\n\
        URIs: http://mirror.example/debian\n\
        Suites: bookworm bookworm-updates\n\
        Components: main\n\
        Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\
        \n\
        Types: deb\n\
        URIs: http://mirror.example/debian-security\n\
        Suites: bookworm-security\n\
        Components: main\n";

    #[test]
    fn finds_archives_in_deb822() {
        let sources = parse_deb822(DEB822);
        assert_eq!(sources.len(), 2);
        assert_eq!(
            archive_uri(&sources, Archive::Main).as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(
            archive_uri(&sources, Archive::Security).as_deref(),
            Some("http://mirror.example/debian-security")
        );
    }

    #[test]
    fn finds_archives_in_one_line_lists() {
        let text = "# comment\n\
            deb [signed-by=/k.gpg arch=amd64] http://a.example/debian bookworm main\n\
            deb-src http://a.example/debian bookworm main\n\
            deb http://s.example/debian-security bookworm-security main # trailing\n";
        let sources = parse_one_line(text);
        assert_eq!(sources.len(), 2);
        assert_eq!(
            archive_uri(&sources, Archive::Main).as_deref(),
            Some("http://a.example/debian")
        );
        assert_eq!(
            archive_uri(&sources, Archive::Security).as_deref(),
            Some("http://s.example/debian-security")
        );
    }

    #[test]
    fn skips_disabled_stanzas() {
        let text = "Types: deb\nURIs: http://x.example/debian\nSuites: bookworm\nEnabled: no\n";
        assert!(parse_deb822(text).is_empty());
    }
}
