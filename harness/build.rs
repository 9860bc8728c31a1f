//! Compiles the BPF programs under `../bpf` into libbpf-rs skeletons and records the git
//! revision for trial records. The BPF compiler defaults to clang-19 (the scx crates need
//! clang >= 18); override it with `BPF_CLANG`.
use std::env;
use std::path::PathBuf;
use std::process::Command;

use libbpf_cargo::SkeletonBuilder;

const BPF_OBJECTS: &[&str] = &["truth", "collector", "collector_compact", "collector_lsm"];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let bpf_dir = manifest_dir.join("../bpf");
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let clang = env::var("BPF_CLANG").unwrap_or_else(|_| "clang-19".to_string());

    for name in BPF_OBJECTS {
        let src = bpf_dir.join(format!("{name}.bpf.c"));
        let skel = out_dir.join(format!("{name}.skel.rs"));
        SkeletonBuilder::new()
            .source(&src)
            .clang(&clang)
            .clang_args([
                "-I/usr/include/x86_64-linux-gnu".into(),
                format!("-I{}", bpf_dir.display()).into(),
                std::ffi::OsString::from("-Wall"),
            ])
            .build_and_generate(&skel)
            .unwrap_or_else(|err| {
                panic!(
                    "building {}: {err:#}\n(is {clang} installed? `make setup` installs it)",
                    src.display()
                )
            });
        println!("cargo:rerun-if-changed={}", src.display());
    }
    for header in ["intf.h", "scope.h", "lsm.h"] {
        println!("cargo:rerun-if-changed={}", bpf_dir.join(header).display());
    }
    println!("cargo:rerun-if-env-changed=BPF_CLANG");

    let git_rev = Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .current_dir(&manifest_dir)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=AEGIS_GIT_REV={git_rev}");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/index");
}
