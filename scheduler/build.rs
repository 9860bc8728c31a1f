//! Compiles the BPF test bed of the Aegis policy core (`../bpf/aegis_qnet_test.bpf.c`) into a
//! libbpf-rs skeleton for the host tests. `BPF_CLANG` overrides the compiler (clang-19).
use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let bpf_dir = manifest_dir.join("../bpf");
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let clang = env::var("BPF_CLANG").unwrap_or_else(|_| "clang-19".to_string());
    let src = bpf_dir.join("aegis_qnet_test.bpf.c");
    SkeletonBuilder::new()
        .source(&src)
        .clang(&clang)
        .clang_args([
            std::ffi::OsString::from("-I/usr/include/x86_64-linux-gnu"),
            format!("-I{}", bpf_dir.display()).into(),
        ])
        .build_and_generate(out_dir.join("aegis_qnet_test.skel.rs"))
        .unwrap_or_else(|err| {
            panic!(
                "building {}: {err:#} (is {clang} installed?)",
                src.display()
            )
        });
    println!("cargo:rerun-if-changed={}", src.display());
    println!(
        "cargo:rerun-if-changed={}",
        bpf_dir.join("aegis_qnet.h").display()
    );
    for header in ["aegis_levels.h", "aegis_intf.h"] {
        println!("cargo:rerun-if-changed={}", bpf_dir.join(header).display());
    }
    println!("cargo:rerun-if-env-changed=BPF_CLANG");
}
