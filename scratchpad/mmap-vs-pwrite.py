# Does this VM charge page-cache writes through pwrite(2) more than through a shared file mapping (libtorrent 2.0's
# disk I/O)? Writes SIZE bytes to a new file each way, alternating which goes first, and prints each one's system
# time (getrusage of this process). Usage: python3 scratchpad/mmap-vs-pwrite.py DIR [MiB] [rounds] [idle_s]
import mmap, os, resource, sys, time

d = sys.argv[1]
size = int(sys.argv[2] if len(sys.argv) > 2 else 1024) << 20
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 4
idle = float(sys.argv[4]) if len(sys.argv) > 4 else 5.0
chunk = 128 << 10
buf = os.urandom(chunk)

def usage():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, time.monotonic()

def via_pwrite(path):
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
    for off in range(0, size, chunk):
        os.pwrite(fd, buf, off)
    os.close(fd)

def via_mmap(path):
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_RDWR, 0o644)
    os.ftruncate(fd, size)
    m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    block = 16 << 10  # libtorrent copies each 16 KiB block into the mapping as it arrives
    b = buf[:block]
    for off in range(0, size, block):
        m[off:off + block] = b
    m.close()
    os.close(fd)

for r in range(rounds):
    order = [("pwrite", via_pwrite), ("mmap", via_mmap)]
    if r % 2: order.reverse()
    for name, fn in order:
        path = os.path.join(d, f"mvp-{name}.bin")
        u0, s0, t0 = usage()
        fn(path)
        u1, s1, t1 = usage()
        print(f"round {r + 1} {name:6}: wall {t1 - t0:.2f} s, user {u1 - u0:.2f}, sys {s1 - s0:.2f}", flush=True)
        os.unlink(path)
        time.sleep(idle)
