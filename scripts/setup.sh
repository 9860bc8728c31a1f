#!/usr/bin/env bash
# Installs what aegis-bench needs on Debian 12 (bookworm), idempotently. Needs root.
#   clang-19/llvm-19  BPF programs (the scx crates need clang >= 18; /usr/bin/clang is 14)
#   libelf-dev zlib1g-dev pkg-config make   libbpf-sys builds its own libbpf with these
#   libseccomp-dev libclang1-19   scx_rustland (make tools): its core links libseccomp, bindgen needs libclang
#   auditd            the audit collector and `doctor`'s audit check
#   sysdig            the sysdig collector, copied into the cfs guest (installed without its
#                     Recommends: its driver is built for the guest's kernel, not the host's)
#   gcc-12 binutils   building sysdig's driver against the cfs guest kernel's headers (Debian
#                     built that kernel with gcc-12)
#   util-linux        setpriv/unshare used by the tests (normally present)
#   busybox-static    the guest runner's initramfs (`aegis-bench vm`, `attack --vm`)
#   stress-ng rt-tests sysbench nginx-light wrk redis-server redis-tools gcc
#                     the standard workloads (workloads/): stress-ng, hackbench, sysbench,
#                     nginx + wrk, redis-server + redis-benchmark, the compile workload's gcc
#   qemu-system-x86   the guest runner, from bookworm-backports (see below)
#   fontconfig fonts-dejavu-core   text in the PNG figures (plotters finds the font through
#                     fontconfig at run time)
set -euo pipefail

packages=(clang-19 clang-format-19 llvm-19 libelf-dev zlib1g-dev pkg-config make libseccomp-dev libclang1-19 auditd sysdig gcc-12 binutils util-linux)

# The guest runner's initramfs, and the Debian root disk of guests that need a real userland
# (eAudit: BCC and the kernel's headers), built with Debian's own mmdebstrap and mke2fs.
packages+=(busybox-static mmdebstrap e2fsprogs)

# Figures (aegis-bench train's learning curve).
packages+=(fontconfig fonts-dejavu-core)

# The standard workloads (workloads/). Their services are not started: nginx and redis run
# privately on 127.0.0.1 for a workload run only.
packages+=(stress-ng rt-tests sysbench nginx-light wrk redis-server redis-tools gcc)

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
    # nginx and redis are only run privately by the workloads: keep their packages from starting
    # system services (on :80 and :6379) at install time, unless a policy is already in place.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# QEMU comes from bookworm-backports: the preinstalled qemu-utils is the backports version, and
# bookworm's own qemu-system-x86 (7.2) would pin qemu-utils back down. The backports suite is
# added through a private apt configuration (its own source list and package lists under
# /var/cache/aegis-bench/apt), so /etc/apt stays as it is. The archive URIs are the ones the
# system's own sources name.
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# Prints "URI SUITE" for every suite of the system's Debian sources (deb822 and one-line).
system_sources() {
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        awk '/^URIs:/ {uri=$2} /^Suites:/ {for (i = 2; i <= NF; i++) print uri, $i}
             /^$/ {uri=""}' /etc/apt/sources.list.d/debian.sources
    fi
    if [ -f /etc/apt/sources.list ]; then
        sed -E 's/\[[^]]*\]//' /etc/apt/sources.list | awk '$1 == "deb" {print $2, $3}'
    fi
}

if ! installed qemu-system-x86; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: qemu-system-x86 missing; run as root (sudo make setup)" >&2
        exit 2
    fi
    archive=$(system_sources | awk '$2 == "bookworm" {print $1; exit}')
    security=$(system_sources | awk '$2 == "bookworm-security" {print $1; exit}')
    if [ -z "$archive" ]; then
        echo "setup: no bookworm suite in /etc/apt/sources.list{,.d/debian.sources}; cannot add bookworm-backports" >&2
        exit 2
    fi
    apt_dir=/var/cache/aegis-bench/apt
    mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    {
        for suite in bookworm bookworm-updates bookworm-backports; do
            echo "deb [signed-by=$keyring] $archive $suite main"
        done
        [ -n "$security" ] && echo "deb [signed-by=$keyring] $security bookworm-security main"
    } >"$apt_dir/sources.list"
    private_apt=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=-
                 -o "Dir::State::lists=$apt_dir/lists" -o "Dir::Cache::archives=$apt_dir/archives"
                 -o APT::Sandbox::User=root)
    echo "setup: installing qemu-system-x86 from bookworm-backports"
    export DEBIAN_FRONTEND=noninteractive
    apt-get "${private_apt[@]}" update -qq
    apt-get "${private_apt[@]}" install -y -qq --no-install-recommends -t bookworm-backports \
        qemu-system-x86 >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (rustup)" >&2; exit 2; }
echo "setup: ok (clang-19 $(clang-19 --version | head -1 | grep -o '[0-9][0-9.]*' | head -1), $(cargo --version), $(qemu-system-x86_64 --version | head -1))"
