#!/usr/bin/env python3
"""Live migration, Nimbus vs QEMU, on the same guest in the same run (issue 19).

    bench/migrate_bench.py [--repeats N] [--nimbus build/nimbus] [--qemu Q] [--engine jit]

Both run images/Image + images/initramfs.cpio.gz with 256 MiB of RAM, 1 vCPU, no disk and
no network card ("console=ttyS0 nimbus.net=0"; QEMU: -M virt with its default OpenSBI,
-nic none). Each boots once; its guest then moves --repeats times to a fresh process on
this machine over TCP on 127.0.0.1 (source -> target 1 -> target 2 ...), first idle, then
paced, then busy, and after every move the shell on the target must answer a command typed on its
console:
  idle: booted to the shell prompt, nothing running.
  busy: a shell loop rewrites a 64 MiB file in /tmp (tmpfs: guest RAM) in place without
        end: `dd if=/tmp/seed of=/tmp/x bs=1M seek=I count=1 conv=notrunc` for I = 0..63,
        over and over, from a 1 MiB seed of /dev/urandom (neither zero pages nor
        compressible), as fast as the guest goes. Its speed differs between the two
        (fork + exec + copy per MiB), so the guest dirties RAM faster in one of them; the
        rate each reaches (MiB/s, host time, over 5 s) is measured and printed.
  paced: the same loop with `sleep 0.04` after each MiB: at most 25 MiB/s, a dirty rate
        both emulators reach, for a like-for-like comparison.
  Nimbus: `nimbus vmm` configured through the API; the target configured the same, then
          PUT /migration/incoming {"listen": "tcp:127.0.0.1:0"}; PUT /migration
          {"destination": ...} on the source with its defaults (max_downtime_ms 100,
          max_rounds 30, no bandwidth limit); GET /migration on both until completed.
  QEMU:   the target `-incoming tcp:127.0.0.1:PORT`; the source over QMP:
          migrate-set-parameters {"downtime-limit": 100}, migrate, query-migrate every
          10 ms until completed (other parameters QEMU's defaults: the bandwidth limit
          is printed). A move that has not completed after --timeout s is cancelled
          and counted as not converged.
Prints per move and the medians of downtime, total time, RAM pages sent (resends
included) against the guest's pages, bytes on the wire, and the ratios nimbus/qemu;
appends rows for run-all.sh when $NIMBUS_BENCH_RESULTS is set.

The two downtimes are each emulator's own figure, measured on the source: Nimbus from
its pause to the commit (the rest of the RAM, the machine state, the target's load and
its ready answer); QEMU from its stop to the end of the stream on the source (the target
loads the device state after that).
"""
import argparse
import os
import re
import select
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "vmm"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from restore_time import Qmp  # noqa: E402
from vmm_client import READY, Session, VmmProcess, free_port  # noqa: E402

APPEND = "console=ttyS0 nimbus.net=0"
MEM_MIB = 256
PAGE = 4096
BUSY_MIB = 64
BUSY_LOOP = ("(n=0; while [ ! -e /tmp/stop ]; do i=0; while [ $i -lt %d ] && [ ! -e /tmp/stop ]; "
             "do dd if=/tmp/seed of=/tmp/x bs=1M seek=$i count=1 conv=notrunc 2>/dev/null; %s"
             "i=$((i+1)); n=$((n+1)); echo $n > /tmp/mib; done; done; echo stopped > /tmp/stopped) &")
# The workloads after idle: (name, what follows each 1 MiB written).
BUSY = [("paced", "sleep 0.04; "), ("busy", "")]


def alive(vm, tag):
    out = vm.run(f"echo {tag}-$((6*7))", tag.upper())
    if f"{tag}-42" not in out:
        raise AssertionError(f"the guest did not answer on the target: {out!r}")


def start_busy(vm, pause, rate_window=5.0):
    """Stops a rewrite loop already running, starts one that runs `pause` after each MiB;
    returns the rate it reaches (MiB/s, host time)."""
    vm.run("touch /tmp/stop; while [ -e /tmp/mib ] && [ ! -e /tmp/stopped ]; do sleep 0.1; done; "
           "rm -f /tmp/stop /tmp/stopped; echo 0 > /tmp/mib; "
           "[ -e /tmp/seed ] || head -c 1048576 /dev/urandom > /tmp/seed; "
           f"[ -e /tmp/x ] || dd if=/dev/zero of=/tmp/x bs=1M count={BUSY_MIB} 2>/dev/null", "SEEDED")
    vm.send(BUSY_LOOP % (BUSY_MIB, pause))

    def mib():
        return int(vm.run("cat /tmp/mib", "M").strip().splitlines()[-1])

    deadline = time.monotonic() + 60
    while mib() < 1:  # the loop is under way
        if time.monotonic() > deadline:
            raise AssertionError("the rewrite loop did not start")
        time.sleep(0.2)
    a, t0 = mib(), time.monotonic()
    time.sleep(rate_window)
    b, t1 = mib(), time.monotonic()
    return (b - a) / (t1 - t0)


# --- Nimbus ---------------------------------------------------------------------------

STOP_LINE = re.compile(rb"migration: (\d+) dirty pages and \d+ disk chunks left after round "
                       rb"(\d+) \(about ([0-9.]+) ms")


def drain(vm):
    """What the process printed (its console and its log on stderr) that is not read yet."""
    while select.select([vm.proc.stdout], [], [], 0.05)[0]:
        chunk = os.read(vm.proc.stdout.fileno(), 65536)
        if not chunk:
            break
        vm.out += chunk
    return vm.out


def nimbus_vmm(a, work, name):
    vm = VmmProcess(a.nimbus, os.path.join(work, name + ".sock"), "--engine", a.engine)
    vm.api.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": MEM_MIB})
    vm.api.ok("PUT", "/boot-source", {"kernel_image_path": os.path.join(ROOT, "images", "Image"),
                                      "initrd_path": os.path.join(ROOT, "images", "initramfs.cpio.gz"),
                                      "boot_args": APPEND})
    return vm


def nimbus_wait(api, timeout):
    deadline = time.monotonic() + timeout
    while True:
        m = api.ok("GET", "/migration")
        if m["state"] in ("completed", "failed", "cancelled"):
            return m
        if time.monotonic() > deadline:
            raise AssertionError(f"the migration did not end in {timeout} s: {m}")
        time.sleep(0.01)


def nimbus_moves(a, work, workload, src, first):
    moves = []
    for i in range(a.repeats):
        tgt = nimbus_vmm(a, work, f"n{first + i}")
        try:
            listen = tgt.api.ok("PUT", "/migration/incoming", {"listen": "tcp:127.0.0.1:0"})["listen"]
            src.api.ok("PUT", "/migration", {"destination": listen})
            m = nimbus_wait(src.api, a.timeout)
            if m["state"] != "completed":
                raise AssertionError(f"nimbus migration {m['state']}: {m}")
            tm = nimbus_wait(tgt.api, 60)
            if tm["state"] != "completed":
                raise AssertionError(f"nimbus target {tm['state']}: {tm}")
            alive(tgt, f"n{first + i}")
        except BaseException:
            tgt.abandon()
            tgt.close()
            raise
        stops = STOP_LINE.findall(drain(src))
        src.close()
        src = tgt
        mv = {"downtime_ms": m["downtime_ms"], "total_ms": m["total_ms"],
              "pages_sent": m["ram_pages_sent"], "pages_total": m["ram_pages_total"],
              "zero_pages": m["zero_pages"], "wire": m["bytes_on_wire"], "rounds": m["round"],
              "stop_pages": m.get("dirty_pages")}
        moves.append(mv)
        estimate = f", estimated {float(stops[-1][2]):.1f} ms" if stops else ""
        print(f"  nimbus {workload} {i + 1}: downtime {mv['downtime_ms']:.1f} ms "
              f"({mv['stop_pages']} pages in the stop-and-copy{estimate}), total "
              f"{mv['total_ms']:.0f} ms, {mv['rounds']} rounds, {mv['pages_sent']} of "
              f"{mv['pages_total']} pages sent ({mv['zero_pages']} zero), "
              f"{mv['wire'] / 2**20:.1f} MiB on the wire", flush=True)
    return src, moves


def nimbus_run(a, work):
    vm = nimbus_vmm(a, work, "n0")
    try:
        vm.api.ok("PUT", "/actions", {"action_type": "InstanceStart"})
        vm.expect(READY, 240)
        vm.send("")
        vm.expect(b"# ", 60)
        time.sleep(2)  # let the boot's last work settle
        res = {}
        vm, res["idle"] = nimbus_moves(a, work, "idle", vm, 1)
        for k, (w, pause) in enumerate(BUSY):
            res[w + " rate"] = start_busy(vm, pause)
            print(f"  nimbus {w} loop: {res[w + ' rate']:.1f} MiB/s rewritten", flush=True)
            vm, res[w] = nimbus_moves(a, work, w, vm, 1 + (k + 1) * a.repeats)
        return res
    except BaseException:
        vm.abandon()
        raise
    finally:
        vm.close()


# --- QEMU -----------------------------------------------------------------------------

class QemuVm(Session):
    def __init__(self, a, work, name, incoming=None):
        self.qmp_path = os.path.join(work, name + ".qmp")
        argv = [a.qemu, "-M", "virt", "-m", f"{MEM_MIB}M", "-smp", "1", "-nographic",
                "-kernel", os.path.join(ROOT, "images", "Image"),
                "-initrd", os.path.join(ROOT, "images", "initramfs.cpio.gz"),
                "-append", APPEND, "-nic", "none",
                "-qmp", f"unix:{self.qmp_path},server=on,wait=off"]
        if incoming:
            argv += ["-incoming", incoming]
        super().__init__(argv)
        self.qmp = Qmp(self.qmp_path)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def qemu_moves(a, work, workload, src, first):
    moves = []
    for i in range(a.repeats):
        port = free_port()
        tgt = QemuVm(a, work, f"q{first + i}", incoming=f"tcp:127.0.0.1:{port}")
        try:
            src.qmp.cmd("migrate-set-parameters", **{"downtime-limit": 100})
            src.qmp.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
            deadline = time.monotonic() + a.timeout
            while True:
                m = src.qmp.cmd("query-migrate")
                if m.get("status") == "completed":
                    break
                if m.get("status") in ("failed", "cancelled"):
                    raise AssertionError(f"qemu migration {m.get('status')}: {m}")
                if time.monotonic() > deadline:
                    src.qmp.cmd("migrate_cancel")
                    ram = m.get("ram", {})
                    print(f"  qemu {workload} {i + 1}: not completed after {a.timeout} s "
                          f"({ram.get('dirty-sync-count')} passes, {ram.get('dirty-pages-rate')} "
                          f"dirty pages/s, {ram.get('mbps')} Mbit/s): cancelled", flush=True)
                    moves.append(None)
                    tgt.close()
                    tgt = None
                    break
                time.sleep(0.01)
            if tgt is None:
                continue
            deadline = time.monotonic() + 60
            while tgt.qmp.cmd("query-status")["status"] != "running":
                if time.monotonic() > deadline:
                    raise AssertionError("the QEMU target did not run")
                time.sleep(0.01)
            alive(tgt, f"q{first + i}")
        except BaseException:
            if tgt:
                tgt.abandon()
                tgt.close()
            raise
        src.close()
        src = tgt
        ram = m["ram"]
        mv = {"downtime_ms": m["downtime"], "total_ms": m["total-time"],
              "pages_sent": ram["normal"], "pages_total": ram["total"] // PAGE,
              "zero_pages": ram["duplicate"], "wire": ram["transferred"],
              "rounds": ram.get("dirty-sync-count")}
        moves.append(mv)
        print(f"  qemu {workload} {i + 1}: downtime {mv['downtime_ms']} ms, total "
              f"{mv['total_ms']} ms, {mv['rounds']} dirty syncs, {mv['pages_sent']} of "
              f"{mv['pages_total']} pages sent ({mv['zero_pages']} zero), "
              f"{mv['wire'] / 2**20:.1f} MiB on the wire", flush=True)
    return src, moves


def qemu_run(a, work):
    vm = QemuVm(a, work, "q0")
    try:
        vm.expect(READY, 240)
        vm.send("")
        vm.expect(b"# ", 60)
        params = vm.qmp.cmd("query-migrate-parameters")
        print(f"  qemu migration parameters: max-bandwidth {params.get('max-bandwidth', 0) / 2**20:.0f} "
              f"MiB/s, downtime-limit set to 100 ms (default {params.get('downtime-limit')})", flush=True)
        time.sleep(2)
        res = {}
        vm, res["idle"] = qemu_moves(a, work, "idle", vm, 1)
        for k, (w, pause) in enumerate(BUSY):
            res[w + " rate"] = start_busy(vm, pause)
            print(f"  qemu {w} loop: {res[w + ' rate']:.1f} MiB/s rewritten", flush=True)
            vm, res[w] = qemu_moves(a, work, w, vm, 1 + (k + 1) * a.repeats)
        return res
    except BaseException:
        vm.abandon()
        raise
    finally:
        vm.close()


# --- report ---------------------------------------------------------------------------

def med(moves, key):
    done = [m[key] for m in moves if m]
    return statistics.median(done) if done else None


def ratio(n, q):
    return f"{n / q:.2f}" if n is not None and q else "-"


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--nimbus", default=os.path.join(ROOT, "build", "nimbus"))
    ap.add_argument("--qemu", default="qemu-system-riscv64")
    ap.add_argument("--engine", default="jit", choices=["jit", "interp"])
    ap.add_argument("--timeout", type=float, default=120, help="seconds before a move is cancelled")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="nimbus-migrate-") as work:
        print(f"nimbus ({a.engine}), 1 vCPU, {MEM_MIB} MiB, no disk, no NIC:", flush=True)
        n = nimbus_run(a, work)
        print(f"qemu (TCG), 1 vCPU, {MEM_MIB} MiB, no disk, no NIC:", flush=True)
        q = qemu_run(a, work)
    rows = []
    print(f"\nlive migration, {MEM_MIB} MiB guest, 1 vCPU, median of {a.repeats} (ratio nimbus/qemu)")
    for w in ["idle"] + [b[0] for b in BUSY]:
        nm, qm = n[w], q[w]
        failed = sum(1 for m in qm if m is None)
        nd, qd = med(nm, "downtime_ms"), med(qm, "downtime_ms")
        nt, qt = med(nm, "total_ms"), med(qm, "total_ms")
        nps, qps = med(nm, "pages_sent"), med(qm, "pages_sent")
        nw, qw = med(nm, "wire"), med(qm, "wire")
        total = nm[0]["pages_total"]
        note = f" ({failed} of {a.repeats} QEMU moves did not complete)" if failed else ""
        rate = (f" (the guest rewrites {n[w + ' rate']:.1f} MiB/s in nimbus, {q[w + ' rate']:.1f} MiB/s "
                f"in qemu)") if w != "idle" else ""
        print(f"{w}{rate}{note}:")
        print(f"  downtime:     nimbus {fmt(nd, '.1f')} ms, qemu {fmt(qd, '.1f')} ms, ratio {ratio(nd, qd)}")
        print(f"  total time:   nimbus {fmt(nt, '.0f')} ms, qemu {fmt(qt, '.0f')} ms, ratio {ratio(nt, qt)}")
        print(f"  pages sent:   nimbus {fmt(nps, '.0f')} ({fmt(nps and nps / total * 100, '.1f')}% of "
              f"{total}), qemu {fmt(qps, '.0f')} ({fmt(qps and qps / total * 100, '.1f')}%), "
              f"ratio {ratio(nps, qps)}")
        print(f"  on the wire:  nimbus {fmt(nw and nw / 2**20, '.1f')} MiB, qemu "
              f"{fmt(qw and qw / 2**20, '.1f')} MiB (guest RAM {MEM_MIB} MiB), ratio {ratio(nw, qw)}")
        n_runs = ", ".join(f"{m['downtime_ms']:.1f}" for m in nm)
        q_runs = ", ".join("-" if m is None else str(m["downtime_ms"]) for m in qm)
        print(f"  downtime runs: nimbus {n_runs}; qemu {q_runs}")
        rows += [
            (f"migrate {w}: downtime, median of {a.repeats}{note}", nd, qd, "ms", ".1f"),
            (f"migrate {w}: total time", nt and nt / 1000, qt and qt / 1000, "s", ".2f"),
            (f"migrate {w}: RAM pages sent ({total} in the guest)", nps, qps, "pages", ".0f"),
            (f"migrate {w}: bytes on the wire", nw and nw / 2**20, qw and qw / 2**20, "MiB", ".1f"),
        ]
    out = os.environ.get("NIMBUS_BENCH_RESULTS")
    if out:
        with open(out, "a") as f:
            for name, nv, qv, unit, spec in rows:
                f.write(f"{name}\t{fmt(nv, spec)}\t{fmt(qv, spec)}\t{unit}\t{ratio(nv, qv)}\n")


if __name__ == "__main__":
    main()
