#!/usr/bin/env python3
"""CPU-bound guest programs inside the booted Linux guest, Nimbus vs QEMU, same kernel and initramfs.

    bench/guest_bench.py [--nimbus build/nimbus] [--repeats N] [--only integer branchy ...]

Boots images/Image + images/initramfs.cpio.gz with ONE hart and 256 MiB under Nimbus, runs
each program below at the shell (REPEATS times, best time kept), powers off, then does the
same under `qemu-system-riscv64 -M virt` (TCG, its default OpenSBI):

    integer   nimbus-cpubench int N     straight-line integer arithmetic
    branchy   nimbus-cpubench branch N  binary search, bytecode interpreter, insertion sort
    memory    nimbus-membench MIB P     memcpy, sequential read/write, random pointer chase
    float     nimbus-fpbench SCALE      n-body and matmul (double), Mandelbrot (float)
    processes 1000 x fork+exec of /bin/true from the shell (page faults, TLB flushes)
    pipe      yes | head | wc: two processes switching over a pipe (context switches)

The last two are timed by the guest's /proc/uptime (10 ms resolution) and report no
instruction count: they measure the operating-system paths (MMU, traps, TLB), not MIPS.

Each program times its own work with clock_gettime(CLOCK_MONOTONIC) and reads the hart's
retired-instruction counter (rdinstret) around it. Nimbus counts instret exactly (one per
retired instruction), QEMU's TCG derives it from the host clock, so the instruction count
is taken from the Nimbus run and used for both: guest MIPS = that count / each emulator's
time. One hart means the program cannot migrate, so the count is its own instructions plus
the few the kernel ran meanwhile (timer interrupts). The programs are deterministic and
their checksums must agree between the two emulators (a mismatch is reported).

Prints one line per program with both times, the ratio nimbus/qemu (time: below 1 means
Nimbus is faster) and both MIPS. If $NIMBUS_BENCH_RESULTS names a file, appends rows
`name<TAB>nimbus<TAB>qemu<TAB>unit<TAB>ratio` to it (bench/run-all.sh collects them).
"""
import argparse
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "boot"))
from guest_session import READY, Session  # noqa: E402

# A shell command timed with /proc/uptime, printing what run_in_guest parses (no
# instruction count; the checksum is $n).
UPTIME_TIMED = ('a=$(cut -d" " -f1 /proc/uptime); {work}; b=$(cut -d" " -f1 /proc/uptime); '
                'awk "BEGIN{{printf \\"elapsed=%.2f s instret=0 checksum=%x\\n\\", $b - $a, $n}}"')

# name, command, what (sizes: a few seconds each under the Nimbus interpreter, 2026-11)
PROGRAMS = [
    ("integer", "nimbus-cpubench int 8000000", "integer arithmetic"),
    ("branchy", "nimbus-cpubench branch 1000000", "unpredictable branches"),
    ("memory", "nimbus-membench 16 10", "memcpy/read/write/pointer chase, 16 MiB"),
    ("float", "nimbus-fpbench 6", "n-body, matmul, Mandelbrot"),
    ("processes", UPTIME_TIMED.format(work="i=0; while [ $i -lt 1000 ]; do /bin/true; i=$((i+1)); done; n=$i"),
     "1000 fork+exec"),
    ("pipe", UPTIME_TIMED.format(work="n=$(yes | head -n 3000000 | wc -l)"), "context switches over a pipe"),
]
BOOT_TIMEOUT = 300
RUN_TIMEOUT = 600


def run_in_guest(s, command, n):
    marker = f"BENCHDONE{n}"
    t0 = time.monotonic()
    s.send(f"{command}; echo {marker}")
    text = s.expect(b"\n" + marker.encode(), RUN_TIMEOUT)
    wall = time.monotonic() - t0
    out = text[: text.rfind(b"\n" + marker.encode())].decode(errors="replace")
    m = re.search(r"elapsed=([\d.]+) s .*instret=(\d+) checksum=([0-9a-f]+)", out)
    if not m:
        raise RuntimeError(f"unexpected output of {command!r}: {out[-500:]!r}")
    return float(m.group(1)), int(m.group(2)), m.group(3), wall


def measure(argv, programs, repeats):
    """Boots one guest, runs every program REPEATS times; returns {name: (best, instret, checksum, walls)}."""
    s = Session(argv)
    res = {}
    try:
        s.expect(READY, BOOT_TIMEOUT)
        s.run("stty cols 4000", "STTYDONE")  # keep ash's line editor from wrapping the input
        n = 0
        for name, command, _ in programs:
            runs = []
            for _ in range(repeats):
                n += 1
                runs.append(run_in_guest(s, command, n))
            best = min(r[0] for r in runs)
            sums = {r[2] for r in runs}
            if len(sums) != 1:
                raise RuntimeError(f"{name}: checksum differs between runs: {sums}")
            res[name] = (best, runs[0][1], runs[0][2], [r[0] for r in runs], [r[3] for r in runs])
        s.send("poweroff -f")
        s.wait(60)
    except Exception:
        s.abandon(2000)
        raise
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nimbus", default=os.path.join(ROOT, "build", "nimbus"))
    ap.add_argument("--qemu", default="qemu-system-riscv64")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each program per emulator (best kept)")
    ap.add_argument("--only", nargs="+", choices=[p[0] for p in PROGRAMS], help="run only these programs")
    ap.add_argument("--kernel", default=os.path.join(ROOT, "images", "Image"))
    ap.add_argument("--initrd", default=os.path.join(ROOT, "images", "initramfs.cpio.gz"))
    a = ap.parse_args()
    programs = [p for p in PROGRAMS if not a.only or p[0] in a.only]
    append = "console=ttyS0 nimbus.net=0 nimbus.httpd=0"

    nimbus = [a.nimbus, "run", "--cpus", "1", "--memory", "256M", "--kernel", a.kernel,
              "--initrd", a.initrd, "--append", append]
    qemu = [a.qemu, "-M", "virt", "-smp", "1", "-m", "256M", "-nographic", "-kernel", a.kernel,
            "-initrd", a.initrd, "-append", append]
    rn = measure(nimbus, programs, a.repeats)
    rq = measure(qemu, programs, a.repeats)

    rows = []
    for name, command, what in programs:
        tn, insns, cn, runs_n, walls_n = rn[name]
        tq, _, cq, runs_q, walls_q = rq[name]
        if insns == 0 and "/proc/uptime" not in command:
            print(f"guest {name}: rdinstret not readable in the Nimbus guest; no instruction count", file=sys.stderr)
        mn = insns / tn / 1e6 if insns and tn > 0 else 0.0
        mq = insns / tq / 1e6 if insns and tq > 0 else 0.0
        ratio = tn / tq if tq > 0 else float("nan")
        note = "" if cn == cq else f"  CHECKSUM MISMATCH nimbus {cn} qemu {cq}"
        # The guest clock should follow the host's: warn if the in-guest time exceeds the
        # host-side time around the command, or falls short of it by more than the program's
        # untimed set-up (page faults, tables: about 1 s for membench under Nimbus) and the
        # shell/console overhead can explain.
        for emu, runs, walls in (("nimbus", runs_n, walls_n), ("qemu", runs_q, walls_q)):
            for t, w in zip(runs, walls):
                if t > w + 0.05 or w - t > max(2.0, 0.5 * w):
                    note += f"  (warning: {emu} in-guest {t:.2f} s vs host {w:.2f} s)"
        shown = command if "/proc/uptime" not in command else what
        desc = f"{command}; {what}" if "/proc/uptime" not in command else what
        counted = (f"; {insns / 1e6:.0f} M instructions: nimbus {mn:.0f} MIPS, qemu {mq:.0f} MIPS"
                   if insns else "")
        print(f"guest {name:9s} ({desc}): nimbus {tn:.3f} s, qemu {tq:.3f} s, "
              f"ratio nimbus/qemu {ratio:.2f} (time){counted}   "
              f"(runs: nimbus {', '.join(f'{t:.3f}' for t in runs_n)}; "
              f"qemu {', '.join(f'{t:.3f}' for t in runs_q)}){note}", flush=True)
        rows.append((f"guest {name}: `{shown}` time", f"{tn:.3f}", f"{tq:.3f}", "s", f"{ratio:.2f}"))
        if insns:
            rows.append((f"guest {name}: guest MIPS ({insns / 1e6:.0f} M instr.)", f"{mn:.0f}", f"{mq:.0f}",
                         "MIPS", f"{mn / mq:.2f}"))
    out = os.environ.get("NIMBUS_BENCH_RESULTS")
    if out:
        with open(out, "a") as f:
            for r in rows:
                f.write("\t".join(r) + "\n")


if __name__ == "__main__":
    main()
