#!/usr/bin/env python3
"""The disk's own sync latency, for comparing vigil's commits against
(docs/PERFORMANCE.md): an 8 KiB pwrite and an fdatasync in a loop over a
4 MiB file (its blocks written over, as vigil's WAL is), with a gap between
syncs; prints the latency's percentiles and the count of slow syncs.

  python3 scripts/fsprobe.py SECONDS GAP_MS FILE
FILE: a scratch file on the disk to measure (the state directory's, say; not
on a tmpfs, where fdatasync does nothing); it is removed afterwards.
"""
import os, sys, time

dur = float(sys.argv[1])
gap = float(sys.argv[2]) / 1000
path = sys.argv[3]
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, b"\0" * (4 << 20), 0)
os.fsync(fd)
buf = b"x" * 8192
lat, off = [], 0
end = time.time() + dur
while time.time() < end:
    os.pwrite(fd, buf, off)
    off = (off + 8192) % (4 << 20)
    t = time.perf_counter()
    os.fdatasync(fd)
    lat.append((time.perf_counter() - t) * 1000)
    time.sleep(gap)
os.close(fd)
os.unlink(path)
lat.sort()
n = len(lat)
print("gap %.1f ms: %d syncs (%.0f/s) p50=%.2f p99=%.2f max=%.1f ms; >20 ms %d, >50 ms %d, >100 ms %d"
      % (gap * 1000, n, n / dur, lat[n // 2], lat[int(n * .99)], lat[-1],
         sum(x > 20 for x in lat), sum(x > 50 for x in lat), sum(x > 100 for x in lat)))
