# A tiny BCC program for the Debian guest userland's test (harness/tests/vm.rs): BCC compiles
# it against the running kernel's headers, attaches it to the openat tracepoint, and counts
# this process's own openat calls.
import os
import time

started = time.monotonic()
from bcc import BPF  # noqa: E402

b = BPF(text=r"""
BPF_HASH(counts, u32, u64);
TRACEPOINT_PROBE(syscalls, sys_enter_openat) {
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    counts.increment(tgid);
    return 0;
}
""")
print("bcc compiled and attached in %.1f s" % (time.monotonic() - started), flush=True)
for _ in range(100):
    os.close(os.open("/etc/hostname", os.O_RDONLY))
me = os.getpid()
counted = sum(v.value for k, v in b["counts"].items() if k.value == me)
print("openat counted for this process: %d" % counted, flush=True)
