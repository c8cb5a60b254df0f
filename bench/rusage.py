#!/usr/bin/env python3
"""Run a command as a child subreaper and report, as JSON, its wall time and the peak RSS of the
processes orphaned under it (for bench/measure.mjs).
usage: rusage.py OUT.json COMMAND [ARGS...]
The harness runs `/usr/bin/time -f %M -o FILE client ...` through this: GNU time gives the
client's own peak RSS (it and the children it reaped), while the remote side, detached by
bench/fakersh.sh (BENCH_RSH_DETACH=1), is re-parented here (prctl PR_SET_CHILD_SUBREAPER),
reaped, and reported as "other_maxrss_kb". (The figure of a process started straight from here
would include this interpreter's pages, hence GNU time in between.) Times are in seconds."""
import ctypes, json, os, sys, time

PR_SET_CHILD_SUBREAPER = 36
out, cmd = sys.argv[1], sys.argv[2:]
libc = ctypes.CDLL(None, use_errno=True)
subreaper = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
t0 = time.perf_counter()
pid = os.posix_spawnp(cmd[0], cmd, os.environ)
_, status, _ = os.wait4(pid, 0)
wall = time.perf_counter() - t0
other = 0
while True:
    try:
        _, _, r = os.wait4(-1, 0)
    except ChildProcessError:
        break
    other = max(other, r.ru_maxrss)
with open(out, "w") as f:
    json.dump({"wall": wall, "exit": os.waitstatus_to_exitcode(status), "other_maxrss_kb": other,
               "subreaper": subreaper}, f)
