#!/usr/bin/env python3
"""Live migration, Nimbus vs QEMU, on the same guest in the same run (issue 19).

    bench/migrate_bench.py [--repeats N] [--nimbus build/nimbus] [--qemu Q] [--engine jit]

Both run images/Image + images/initramfs.cpio.gz with 256 MiB of RAM, 1 vCPU, no disk and
no network card ("console=ttyS0 nimbus.net=0"; QEMU: -M virt with its default OpenSBI,
-nic none). For each workload, --repeats times: a fresh source boots, the workload
starts, the guest moves to a fresh process on this machine over TCP on 127.0.0.1, and
then the shell on the target must answer a command typed on its console (else the bench
fails); the bench also checks that the rewrite loop still makes progress there and that
`sleep 0.2` returns (the guest's timer interrupts), and counts the targets where either
did not (their move's figures are kept: the move itself ran with the workload going).
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
BUSY_LOOP = ("(n=0; while :; do i=0; while [ $i -lt %d ]; "
             "do dd if=/tmp/seed of=/tmp/x bs=1M seek=$i count=1 conv=notrunc 2>/dev/null; %s"
             "i=$((i+1)); n=$((n+1)); echo $n > /tmp/mib; done; done) & echo $! > /tmp/loop.pid")
# (name, what the rewrite loop runs after each 1 MiB written; None: no loop)
WORKLOADS = [("idle", None), ("paced", "sleep 0.04; "), ("busy", "")]


def alive(vm, tag):
    out = vm.run(f"echo {tag}-$((6*7))", f"ALIVE-{tag.upper()}")
    if f"{tag}-42" not in out:
        raise AssertionError(f"the guest did not answer on the target: {out!r}")


def number(vm, command, marker):
    lines = [x.strip() for x in vm.run(command, marker).splitlines()]
    return int([x for x in lines if x.isdigit()][-1])


def mib(vm):
    return number(vm, "cat /tmp/mib 2>/dev/null || echo 0", "MIB-COUNT")


def start_loop(vm, pause, rate_window=3.0):
    """Starts the rewrite loop with `pause` after each MiB; returns the rate it reaches
    (MiB/s, host time)."""
    vm.run("head -c 1048576 /dev/urandom > /tmp/seed; "
           f"dd if=/dev/zero of=/tmp/x bs=1M count={BUSY_MIB} 2>/dev/null", "SEED-MADE")
    vm.send(BUSY_LOOP % (BUSY_MIB, pause))
    deadline = time.monotonic() + 60
    while mib(vm) < 1:  # the loop is under way
        if time.monotonic() > deadline:
            raise AssertionError("the rewrite loop did not start")
        time.sleep(0.2)
    a, t0 = mib(vm), time.monotonic()
    time.sleep(rate_window)
    b, t1 = mib(vm), time.monotonic()
    return (b - a) / (t1 - t0)


def check_target(vm, tag, loop):
    """The guest on the target answers on its console (or this raises); returns what else
    is wrong: the rewrite loop making no progress in 2 s, `sleep 0.2` not returning in 10 s
    (the guest's timer interrupts)."""
    alive(vm, tag)
    problems = []
    if loop:
        a = mib(vm)
        time.sleep(2)
        if mib(vm) <= a:
            problems.append("rewrite loop stalled")
    vm.send(f"sleep 0.2; echo TICK-$((1+1))-{tag}")
    try:
        vm.expect(f"TICK-2-{tag}".encode(), 10)
    except TimeoutError:
        problems.append("`sleep 0.2` did not return in 10 s")
    return problems


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


def nimbus_wait(api, timeout):
    deadline = time.monotonic() + timeout
    while True:
        m = api.ok("GET", "/migration")
        if m["state"] in ("completed", "failed", "cancelled"):
            return m
        if time.monotonic() > deadline:
            raise AssertionError(f"the migration did not end in {timeout} s: {m}")
        time.sleep(0.01)


class Nimbus:
    name = "nimbus"

    def __init__(self, a, work):
        self.a, self.work = a, work

    def vmm(self, name):
        vm = VmmProcess(self.a.nimbus, os.path.join(self.work, name + ".sock"), "--engine", self.a.engine)
        vm.api.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": MEM_MIB})
        vm.api.ok("PUT", "/boot-source", {"kernel_image_path": os.path.join(ROOT, "images", "Image"),
                                          "initrd_path": os.path.join(ROOT, "images", "initramfs.cpio.gz"),
                                          "boot_args": APPEND})
        return vm

    def boot(self, name):
        vm = self.vmm(name)
        vm.api.ok("PUT", "/actions", {"action_type": "InstanceStart"})
        vm.expect(READY, 240)
        vm.send("")
        vm.expect(b"# ", 60)
        return vm

    def move(self, src, name):
        tgt = self.vmm(name)
        listen = tgt.api.ok("PUT", "/migration/incoming", {"listen": "tcp:127.0.0.1:0"})["listen"]
        src.api.ok("PUT", "/migration", {"destination": listen})
        m = nimbus_wait(src.api, self.a.timeout)
        if m["state"] != "completed":
            raise AssertionError(f"nimbus migration {m['state']}: {m}")
        tm = nimbus_wait(tgt.api, 60)
        if tm["state"] != "completed":
            raise AssertionError(f"nimbus target {tm['state']}: {tm}")
        stops = STOP_LINE.findall(drain(src))
        mv = {"downtime_ms": m["downtime_ms"], "total_ms": m["total_ms"],
              "pages_sent": m["ram_pages_sent"], "pages_total": m["ram_pages_total"],
              "zero_pages": m["zero_pages"], "wire": m["bytes_on_wire"], "rounds": m["round"],
              "stop_pages": m.get("dirty_pages")}
        estimate = f", estimated {float(stops[-1][2]):.1f} ms" if stops else ""
        mv["text"] = (f"downtime {mv['downtime_ms']:.1f} ms ({mv['stop_pages']} pages in the "
                      f"stop-and-copy{estimate}), total {mv['total_ms']:.0f} ms, {mv['rounds']} rounds, "
                      f"{mv['pages_sent']} of {mv['pages_total']} pages sent ({mv['zero_pages']} zero), "
                      f"{mv['wire'] / 2**20:.1f} MiB on the wire")
        return tgt, mv


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


class Qemu:
    name = "qemu"

    def __init__(self, a, work):
        self.a, self.work = a, work
        self.shown = False

    def boot(self, name):
        vm = QemuVm(self.a, self.work, name)
        vm.expect(READY, 240)
        vm.send("")
        vm.expect(b"# ", 60)
        vm.qmp.cmd("migrate-set-parameters", **{"downtime-limit": 100})
        if not self.shown:
            self.shown = True
            p = vm.qmp.cmd("query-migrate-parameters")
            print(f"  qemu migration parameters: max-bandwidth {p.get('max-bandwidth', 0) / 2**20:.0f} MiB/s, "
                  f"downtime-limit {p.get('downtime-limit')} ms, the rest QEMU's defaults", flush=True)
        return vm

    def move(self, src, name):
        port = free_port()
        tgt = QemuVm(self.a, self.work, name, incoming=f"tcp:127.0.0.1:{port}")
        try:
            src.qmp.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
            deadline = time.monotonic() + self.a.timeout
            while True:
                m = src.qmp.cmd("query-migrate")
                if m.get("status") == "completed":
                    break
                if m.get("status") in ("failed", "cancelled"):
                    raise AssertionError(f"qemu migration {m.get('status')}: {m}")
                if time.monotonic() > deadline:
                    src.qmp.cmd("migrate_cancel")
                    ram = m.get("ram", {})
                    print(f"  qemu: not completed after {self.a.timeout} s ({ram.get('dirty-sync-count')} "
                          f"passes, {ram.get('dirty-pages-rate')} dirty pages/s): cancelled", flush=True)
                    tgt.close()
                    return None, None
                time.sleep(0.01)
            deadline = time.monotonic() + 60
            while tgt.qmp.cmd("query-status")["status"] != "running":
                if time.monotonic() > deadline:
                    raise AssertionError("the QEMU target did not run")
                time.sleep(0.01)
        except BaseException:
            tgt.abandon()
            tgt.close()
            raise
        ram = m["ram"]
        mv = {"downtime_ms": m["downtime"], "total_ms": m["total-time"],
              "pages_sent": ram["normal"], "pages_total": ram["total"] // PAGE,
              "zero_pages": ram["duplicate"], "wire": ram["transferred"],
              "rounds": ram.get("dirty-sync-count")}
        mv["text"] = (f"downtime {mv['downtime_ms']} ms, total {mv['total_ms']} ms, {mv['rounds']} dirty "
                      f"syncs, {mv['pages_sent']} of {mv['pages_total']} pages sent ({mv['zero_pages']} "
                      f"zero), {mv['wire'] / 2**20:.1f} MiB on the wire")
        return tgt, mv


def run(em, a):
    """Every move from a freshly booted source to a fresh target."""
    res = {}
    for w, pause in WORKLOADS:
        res[w], res[w + " rate"], res[w + " problems"] = [], [], 0
        for i in range(a.repeats):
            tag = f"{em.name[0]}{w[0]}{i + 1}"
            src, tgt = em.boot(tag + "-src"), None
            try:
                time.sleep(1)  # the boot's last work settles
                rate = ""
                if pause is not None:
                    r = start_loop(src, pause)
                    res[w + " rate"].append(r)
                    rate = f" [loop {r:.1f} MiB/s]"
                tgt, mv = em.move(src, tag)
                if mv is None:
                    res[w].append(None)
                    continue
                problems = check_target(tgt, tag, pause is not None)
                res[w + " problems"] += bool(problems)
                res[w].append(mv)
                print(f"  {em.name} {w} {i + 1}{rate}: {mv['text']}"
                      f"{'; ON THE TARGET: ' + ', '.join(problems) if problems else ''}", flush=True)
            except BaseException:
                for vm in (src, tgt):
                    if vm:
                        vm.abandon()
                raise
            finally:
                for vm in (src, tgt):
                    if vm:
                        vm.close()
    return res


# --- report ---------------------------------------------------------------------------

def med(moves, key):
    done = [m[key] for m in moves if m]
    return statistics.median(done) if done else None


def med_rate(res, w):
    return statistics.median(res[w + " rate"])


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
        n = run(Nimbus(a, work), a)
        print(f"qemu (TCG), 1 vCPU, {MEM_MIB} MiB, no disk, no NIC:", flush=True)
        q = run(Qemu(a, work), a)
    rows = []
    print(f"\nlive migration, {MEM_MIB} MiB guest, 1 vCPU, median of {a.repeats} (ratio nimbus/qemu)")
    for w, _ in WORKLOADS:
        nm, qm = n[w], q[w]
        failed = sum(1 for m in qm if m is None)
        nd, qd = med(nm, "downtime_ms"), med(qm, "downtime_ms")
        nt, qt = med(nm, "total_ms"), med(qm, "total_ms")
        nps, qps = med(nm, "pages_sent"), med(qm, "pages_sent")
        nw, qw = med(nm, "wire"), med(qm, "wire")
        total = nm[0]["pages_total"]
        note = f" ({failed} of {a.repeats} QEMU moves did not complete)" if failed else ""
        rate = (f" (the guest rewrites {med_rate(n, w):.1f} MiB/s in nimbus, {med_rate(q, w):.1f} MiB/s "
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
        print(f"  targets where the guest then stalled (rewrite loop or timers): nimbus "
              f"{n[w + ' problems']}, qemu {q[w + ' problems']} of {a.repeats}")
        rows += [
            (f"migrate {w}: downtime, median of {a.repeats}{note}", nd, qd, "ms", ".1f"),
            (f"migrate {w}: total time", nt and nt / 1000, qt and qt / 1000, "s", ".2f"),
            (f"migrate {w}: RAM pages sent ({total} in the guest)", nps, qps, "pages", ".0f"),
            (f"migrate {w}: bytes on the wire", nw and nw / 2**20, qw and qw / 2**20, "MiB", ".1f"),
            (f"migrate {w}: targets whose guest stalled after the move", n[w + " problems"],
             q[w + " problems"], f"of {a.repeats}", "d"),
        ]
    out = os.environ.get("NIMBUS_BENCH_RESULTS")
    if out:
        with open(out, "a") as f:
            for name, nv, qv, unit, spec in rows:
                r = "-" if unit.startswith("of ") else ratio(nv, qv)
                f.write(f"{name}\t{fmt(nv, spec)}\t{fmt(qv, spec)}\t{unit}\t{r}\n")


if __name__ == "__main__":
    main()
