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

if [ -n "$AEGIS_ROOT_SWITCHED" ]; then
    # The Debian userland (essential packages only: no mount, ip, poweroff): busybox's applets
    # come after its own programs.
    mkdir -p /aegis/bb
    for applet in $(/aegis/busybox --list); do
        ln -sf /aegis/busybox "/aegis/bb/$applet"
    done
    export PATH="$PATH:/aegis/bb"
fi

mnt() { mkdir -p "$3" && mount -t "$1" "$2" "$3" || say "cannot mount $1 on $3"; }
mnt proc proc /proc
mnt sysfs sysfs /sys
mnt devtmpfs devtmpfs /dev

if [ -z "$AEGIS_ROOT_SWITCHED" ]; then
    # Kernels that build the virtio transport (and virtio-blk) as modules (Debian's 6.1 cloud
    # kernel) get them from the host, dependencies first.
    if [ -f /aegis/modules/order ]; then
        while IFS= read -r module; do
            insmod "/aegis/modules/$module" || die "cannot load $module"
        done </aegis/modules/order
    fi
    # A run that needs the Debian userland (harness/src/vm/rootfs.rs) boots it as the root
    # disk: this /init, the job, our binaries and the run's files go in, then the same /init
    # runs there. QEMU's snapshot=on keeps the image itself unchanged.
    if [ -f /aegis/rootfs ]; then
        tries=0
        until [ -b /dev/vda ]; do
            tries=$((tries + 1))
            [ "$tries" -gt 100 ] && die "the root disk /dev/vda did not appear"
            sleep 0.1
        done
        mkdir -p /newroot
        mount -t ext4 /dev/vda /newroot || die "cannot mount the root disk /dev/vda"
        mkdir -p /newroot/aegis /newroot/usr/local/bin
        cp -a /aegis/. /newroot/aegis/ || die "cannot copy /aegis to the root disk"
        cp /init /newroot/aegis/init
        cp /bin/busybox /newroot/aegis/busybox
        cp -a /usr/local/bin/. /newroot/usr/local/bin/ || die "cannot copy /usr/local/bin"
        # Our programs' libraries where the Debian userland has none of that name.
        for dir in /lib /lib64 /usr/lib; do
            [ -d "$dir" ] || continue
            find "$dir" -type f | while IFS= read -r lib; do
                if [ ! -e "/newroot$lib" ]; then
                    mkdir -p "/newroot${lib%/*}" && cp "$lib" "/newroot$lib"
                fi
            done
        done
        # The run's own files (files_in) and the kernel config.
        while IFS= read -r path; do
            mkdir -p "/newroot${path%/*}" && cp -a "$path" "/newroot$path" ||
                die "cannot copy $path to the root disk"
        done </aegis/carry
        umount /proc /sys /dev
        export AEGIS_ROOT_SWITCHED=1
        exec switch_root /newroot /aegis/init
    fi
fi

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
