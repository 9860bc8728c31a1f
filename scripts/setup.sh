#!/usr/bin/env bash
# Installs what aegis-bench needs on Debian 12 (bookworm), idempotently. Needs root.
#   clang-19/llvm-19  BPF programs (the scx crates need clang >= 18; /usr/bin/clang is 14)
#   libelf-dev zlib1g-dev pkg-config make   libbpf-sys builds its own libbpf with these
#   libseccomp-dev libclang1-19   scx_rustland (make tools): its core links libseccomp, bindgen needs libclang
#   auditd            the audit collector and `doctor`'s audit check
#   sysdig            the sysdig collector's detection (installed without its Recommends: the
#                     falcosecurity-scap-dkms module source would need kernel headers to build)
#   util-linux        setpriv/unshare used by the tests (normally present)
set -euo pipefail

packages=(clang-19 clang-format-19 llvm-19 libelf-dev zlib1g-dev pkg-config make libseccomp-dev libclang1-19 auditd sysdig util-linux)

missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing packages: ${missing[*]}; run as root (sudo make setup)" >&2
        exit 2
    fi
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (rustup)" >&2; exit 2; }
echo "setup: ok (clang-19 $(clang-19 --version | head -1 | grep -o '[0-9][0-9.]*' | head -1), $(cargo --version))"
