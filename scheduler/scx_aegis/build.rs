//! Compiles `bpf/aegis.bpf.c` against the vmlinux.h and sched_ext headers that scx_cargo ships
//! (the host's BTF has no sched_ext types) and generates its skeleton and the bindings of
//! `bpf/aegis_intf.h`. `BPF_CLANG` picks the compiler (clang >= 18; clang-19 here).
fn main() {
    scx_cargo::BpfBuilder::new()
        .expect("scx_cargo: no usable clang (set BPF_CLANG=clang-19)")
        .enable_intf("../../bpf/aegis_intf.h", "bpf_intf.rs")
        .enable_skel("../../bpf/aegis.bpf.c", "bpf")
        .build()
        .expect("building bpf/aegis.bpf.c");
    // The shipped model (scheduler/models/aegis.json, written by `aegis-bench train`) is
    // embedded as the default, so the binary carries it into a guest; absent, the binary
    // has no default model and runs the fixed action.
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let model = std::path::Path::new("../models/aegis.json");
    let embedded = std::fs::read_to_string(model).unwrap_or_default();
    std::fs::write(out_dir.join("default_model.json"), embedded).unwrap();
    println!("cargo:rerun-if-changed=../models/aegis.json");
    println!("cargo:rerun-if-changed=../models");
    for header in ["aegis_intf.h", "aegis_qnet.h", "aegis_levels.h"] {
        println!("cargo:rerun-if-changed=../../bpf/{header}");
    }
}
