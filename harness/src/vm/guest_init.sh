#!/bin/sh
# /init of the aegis-bench guest (harness/src/vm/guest_init.sh, run by busybox sh as PID 1).
#
# Mounts what the harness needs, runs the command the host wrote into /aegis/job.sh with its
# stdout and stderr on virtio ports that the host streams to its own, then sends the exit
# status and the requested files back as one tar on the results port and powers off. Writes to
# a virtio port return only once QEMU has taken the data, so nothing is lost at power-off;
# the console (ttyS0) carries only the kernel's messages and this script's own.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root

say() { echo "aegis-guest: $*"; }
# Without a status on the results port the host reports a failed guest and points here.
die() {
    say "$*"
    poweroff -f
}

mnt() { mkdir -p "$3" && mount -t "$1" "$2" "$3" || say "cannot mount $1 on $3"; }
mnt proc proc /proc
mnt sysfs sysfs /sys
mnt devtmpfs devtmpfs /dev
mnt tmpfs tmpfs /tmp
chmod 1777 /tmp
mnt tmpfs tmpfs /dev/shm
mnt tracefs tracefs /sys/kernel/tracing
mnt debugfs debugfs /sys/kernel/debug
mnt bpf bpf /sys/fs/bpf
mnt cgroup2 cgroup2 /sys/fs/cgroup
hostname aegis-guest
# The connect flood talks to 127.0.0.1.
ip link set lo up || say "cannot bring up lo"
echo "AEGIS-GUEST-START $(cut -d' ' -f1 /proc/uptime)"

# Kernels that build the virtio transport as modules (Debian's 6.1 cloud kernel) get them from
# the host, dependencies first.
if [ -f /aegis/modules/order ]; then
    while IFS= read -r module; do
        insmod "/aegis/modules/$module" || die "cannot load $module"
    done </aegis/modules/order
fi

port() {
    for dir in /sys/class/virtio-ports/*; do
        if [ "$(cat "$dir/name" 2>/dev/null)" = "$1" ] && [ -c "/dev/${dir##*/}" ]; then
            echo "/dev/${dir##*/}"
            return 0
        fi
    done
    return 1
}
tries=0
until out=$(port aegis.stdout) && err=$(port aegis.stderr) && res=$(port aegis.results); do
    tries=$((tries + 1))
    [ "$tries" -gt 100 ] && die "virtio ports aegis.stdout, aegis.stderr, aegis.results did not appear"
    sleep 0.1
done

# The parent directories of the files the host wants back.
while IFS= read -r path; do
    mkdir -p "${path%/*}/"
done </aegis/back

. /aegis/job.sh
cd /
modules() { cut -d' ' -f1 /proc/modules | sort; }
modules_before=$(modules)
controllers() { cat /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; }
controllers_before=$(controllers)
aegis_command >"$out" 2>"$err" </dev/null
status=$?
if [ "$(controllers)" = "$controllers_before" ]; then
    say "cgroup controllers as before the command"
else
    say "cgroup controllers changed by the command: '$controllers_before' -> '$(controllers)'"
fi
# Modules a collector loaded (sysdig's driver) must be gone too (the clean-up tests read this).
left=$(modules | while IFS= read -r m; do
    echo "$modules_before" | grep -qx "$m" || printf '%s ' "$m"
done)
say "modules the command left loaded: ${left:-none}"
# Whatever the command did, the scheduler it started must be gone (the clean-up tests read this).
# A scheduler killed with the harness detaches as the kernel reaps it: give that 5 s.
scx_state() { cat /sys/kernel/sched_ext/state 2>/dev/null || echo absent; }
tries=0
while [ "$(scx_state)" != disabled ] && [ "$(scx_state)" != absent ] && [ "$tries" -lt 50 ]; do
    tries=$((tries + 1))
    sleep 0.1
done
say "sched_ext after the command: $(scx_state)"

echo "$status" >/aegis/status
set -- aegis/status
while IFS= read -r path; do
    [ -e "$path" ] && set -- "$@" "${path#/}"
done </aegis/back
tar c -C / "$@" >"$res" || say "sending the results failed"
echo "AEGIS-GUEST-EXIT $status"
poweroff -f
