#!/usr/bin/env python3
"""Time from process start to the guest's ready line, Nimbus vs QEMU, same kernel and initramfs.

    bench/boot_time.py [--repeats N] [--cpus 1 4] [--nimbus build/nimbus]

Both boot images/Image with images/initramfs.cpio.gz and the argument nimbus.poweroff=1,
so each guest powers off right after printing `nimbus-guest: ready`. QEMU runs
`qemu-system-riscv64 -M virt` with its default OpenSBI firmware; Nimbus uses its built-in
SBI. Prints the median of N runs for each and the ratio nimbus/qemu (below 1: faster).
If $NIMBUS_BENCH_RESULTS names a file, appends rows `name<TAB>nimbus<TAB>qemu<TAB>unit<TAB>ratio`
to it (bench/run-all.sh collects them).
"""
import argparse
import os
import select
import statistics
import subprocess
import sys
import time

READY = b"nimbus-guest: ready"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def time_to_ready(argv, timeout=300):
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = b""
    ready = None
    while True:
        r, _, _ = select.select([p.stdout], [], [], 1.0)
        if r:
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            out += chunk
            if ready is None and READY in out:
                ready = time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            p.kill()
            break
    p.wait()
    if ready is None:
        sys.stderr.write(out.decode(errors="replace")[-2000:])
        raise RuntimeError(f"no ready line from {argv[0]}")
    return ready


def record(*row):
    out = os.environ.get("NIMBUS_BENCH_RESULTS")
    if out:
        with open(out, "a") as f:
            f.write("\t".join(row) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cpus", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--nimbus", default=os.path.join(ROOT, "build", "nimbus"))
    ap.add_argument("--qemu", default="qemu-system-riscv64")
    a = ap.parse_args()
    kernel = os.path.join(ROOT, "images", "Image")
    initrd = os.path.join(ROOT, "images", "initramfs.cpio.gz")
    append = "console=ttyS0 nimbus.poweroff=1"
    for n in a.cpus:
        nimbus = [a.nimbus, "run", "--cpus", str(n), "--memory", "256M", "--kernel", kernel,
                  "--initrd", initrd, "--append", append]
        qemu = [a.qemu, "-M", "virt", "-smp", str(n), "-m", "256M", "-nographic", "-kernel", kernel,
                "-initrd", initrd, "-append", append]
        tn = [time_to_ready(nimbus) for _ in range(a.repeats)]
        tq = [time_to_ready(qemu) for _ in range(a.repeats)]
        mn, mq = statistics.median(tn), statistics.median(tq)
        print(f"boot to ready, {n} hart(s): nimbus {mn:.2f} s, qemu {mq:.2f} s, "
              f"ratio nimbus/qemu {mn / mq:.2f}   (runs: nimbus {', '.join(f'{t:.2f}' for t in tn)}; "
              f"qemu {', '.join(f'{t:.2f}' for t in tq)})", flush=True)
        record(f"boot to ready, {n} hart(s), median of {a.repeats}", f"{mn:.2f}", f"{mq:.2f}", "s", f"{mn / mq:.2f}")


if __name__ == "__main__":
    main()
