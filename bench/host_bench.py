#!/usr/bin/env python3
"""What a VM costs its host under nimbusd, against qemu-system-riscv64 on the same images.

    bench/host_bench.py [--nimbus build/nimbus] [--nimbusd build/nimbusd] [--qemu Q]
                        [--repeats N] [--density K]

Figures (each Nimbus figure beside QEMU's, measured in this run):
  launch    `nimbus launch --memory 256M` until the CLI returns with the guest agent ready
            (overlay disk, cgroup, VMM process, boot of the bundled kernel + root disk),
            vs QEMU started on the same kernel and a qcow2 overlay of the same root disk
            until the guest prints its ready line; median of --repeats.
  overhead  host memory of an idle 256 MiB VM above the guest's own touched RAM, 10 s
            after ready: the process's private dirty memory (smaps_rollup) and its
            resident memory (VmRSS, which also counts shared library pages), each minus
            the resident part of the guest-RAM mapping (from /proc/PID/smaps).
  idle-cpu  host CPU used by an idle VM over 10 s, in % of one core.
  density   K idle 128 MiB VMs launched together; their mean resident memory, and how many
            such VMs a 24 GiB host (1 GiB kept for itself) carries at that figure. Also
            what nimbusd's accounting admits on 24 GiB (RAM + per-VM overhead).
Appends rows for run-all.sh when $NIMBUS_BENCH_RESULTS is set.
"""
import argparse
import json
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READY = b"nimbus-guest: ready"
HOST_MIB = 24 * 1024
RESERVED_MIB = 1024


def record(*row):
    out = os.environ.get("NIMBUS_BENCH_RESULTS")
    if out:
        with open(out, "a") as f:
            f.write("\t".join(str(x) for x in row) + "\n")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def guest_ram_rss_kib(pid, mem_mib):
    """Resident KiB of the largest mapping at least as large as the guest's RAM."""
    best = 0
    size = 0
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if line.startswith("Size:"):
                size = int(line.split()[1])
            elif line.startswith("Rss:") and size >= mem_mib * 1024:
                best = max(best, int(line.split()[1]))
    return best


def private_kib(pid):
    """Memory this process has written and holds alone (Private_Dirty): what one more VM
    costs. Library code is file-backed and clean, shared by every VMM on the host."""
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Private_Dirty:"):
                total += int(line.split()[1])
    return total


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu_percent(pid, seconds=10):
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


class Nimbusd:
    def __init__(self, nimbus, nimbusd, images):
        self.nimbus = nimbus
        self.dir = tempfile.mkdtemp(prefix="nimbus-bench-host-")
        os.chmod(self.dir, 0o755)
        self.sock = os.path.join(self.dir, "nimbusd.sock")
        self.proc = subprocess.Popen([nimbusd, "--state-dir", os.path.join(self.dir, "state"), "--socket", self.sock,
                                      "--images", images, "--cgroup-parent", f"nimbus-bench-{os.getpid()}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.sock):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("nimbusd did not start")
            time.sleep(0.05)

    def cli(self, *args):
        r = subprocess.run([self.nimbus, *args, "--host", self.sock], capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"nimbus {' '.join(args)}: {r.stderr}")
        return r.stdout

    def vm(self, name):
        return json.loads(self.cli("info", name, "--json"))

    def close(self):
        try:
            self.cli("delete", "--all", "--force")
        finally:
            self.proc.terminate()
            self.proc.wait()
            shutil.rmtree(self.dir, ignore_errors=True)


class Qemu:
    def __init__(self, qemu, images, mem_mib, workdir):
        self.disk = os.path.join(workdir, f"q{time.monotonic_ns()}.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                        os.path.join(images, "rootfs.ext4"), self.disk], check=True)
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(
            [qemu, "-M", "virt", "-smp", "1", "-m", f"{mem_mib}M", "-nographic", "-kernel",
             os.path.join(images, "Image"), "-append", "console=ttyS0 root=/dev/vda rw",
             "-drive", f"file={self.disk},format=qcow2,if=none,id=d0", "-device", "virtio-blk-device,drive=d0",
             "-netdev", "user,id=n0", "-device", "virtio-net-device,netdev=n0", "-device", "virtio-rng-device"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = b""
        while READY not in out:
            r, _, _ = select.select([self.p.stdout], [], [], 300)
            chunk = os.read(self.p.stdout.fileno(), 65536) if r else b""
            if not chunk:
                raise RuntimeError(f"QEMU did not boot: {out[-800:]!r}")
            out += chunk
        self.ready_s = time.monotonic() - self.t0
        # Keep draining its console so it never blocks.
        self.p.stdout = None

    def close(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()
        os.unlink(self.disk)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nimbus", default=os.path.join(ROOT, "build", "nimbus"))
    ap.add_argument("--nimbusd", default=None)
    ap.add_argument("--qemu", default="qemu-system-riscv64")
    ap.add_argument("--images", default=os.path.join(ROOT, "images"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--density", type=int, default=8)
    a = ap.parse_args()
    nimbusd = a.nimbusd or os.path.join(os.path.dirname(os.path.abspath(a.nimbus)), "nimbusd")
    work = tempfile.mkdtemp(prefix="nimbus-bench-qemu-")
    d = Nimbusd(a.nimbus, nimbusd, a.images)
    try:
        # launch-to-ready
        tn, tq = [], []
        for i in range(a.repeats):
            t0 = time.monotonic()
            d.cli("launch", "--name", f"l{i}", "--memory", "256M")
            tn.append(time.monotonic() - t0)
            d.cli("delete", f"l{i}", "--force")
            q = Qemu(a.qemu, a.images, 256, work)
            tq.append(q.ready_s)
            q.close()
        mn, mq = statistics.median(tn), statistics.median(tq)
        print(f"launch to ready (256 MiB): nimbus {mn:.2f} s, qemu {mq:.2f} s, ratio {mn / mq:.2f}  "
              f"(runs: {', '.join(f'{t:.2f}' for t in tn)}; qemu {', '.join(f'{t:.2f}' for t in tq)})", flush=True)
        record("launch to ready, 256 MiB", f"{mn:.2f}", f"{mq:.2f}", "s", f"{mn / mq:.2f}")

        # overhead and idle CPU of one idle 256 MiB VM
        d.cli("launch", "--name", "idle", "--memory", "256M")
        q = Qemu(a.qemu, a.images, 256, work)
        time.sleep(10)
        pid = d.vm("idle")["pid"]
        n_rss, n_ram, n_priv = rss_kib(pid), guest_ram_rss_kib(pid, 256), private_kib(pid)
        q_rss, q_ram, q_priv = rss_kib(q.p.pid), guest_ram_rss_kib(q.p.pid, 256), private_kib(q.p.pid)
        n_over, q_over = (n_rss - n_ram) / 1024, (q_rss - q_ram) / 1024
        n_pover, q_pover = (n_priv - n_ram) / 1024, (q_priv - q_ram) / 1024
        print(f"idle 256 MiB VM: nimbus RSS {n_rss / 1024:.1f} MiB = guest RAM touched {n_ram / 1024:.1f} + "
              f"{n_over:.1f} MiB ({n_pover:.1f} MiB private dirty, the rest mostly library pages); "
              f"qemu RSS {q_rss / 1024:.1f} MiB = guest RAM touched {q_ram / 1024:.1f} + {q_over:.1f} MiB "
              f"({q_pover:.1f} MiB private dirty)", flush=True)
        record("per-VM overhead above guest RAM, private dirty, idle 256 MiB", f"{n_pover:.1f}", f"{q_pover:.1f}", "MiB",
               f"{n_pover / q_pover:.2f}")
        record("per-VM overhead above guest RAM, RSS, idle 256 MiB", f"{n_over:.1f}", f"{q_over:.1f}", "MiB",
               f"{n_over / q_over:.2f}")
        record("resident memory, idle 256 MiB VM", f"{n_rss / 1024:.1f}", f"{q_rss / 1024:.1f}", "MiB",
               f"{n_rss / q_rss:.2f}")
        n_cpu, q_cpu = idle_cpu_percent(pid), idle_cpu_percent(q.p.pid)
        print(f"idle CPU: nimbus {n_cpu:.2f}% of a core, qemu {q_cpu:.2f}%", flush=True)
        record("idle CPU per VM", f"{n_cpu:.2f}", f"{q_cpu:.2f}", "% core", f"{n_cpu / q_cpu:.2f}" if q_cpu else "-")
        q.close()
        d.cli("delete", "idle", "--force")

        # density: K idle 128 MiB VMs
        k = a.density
        for i in range(k):
            d.cli("launch", "--name", f"d{i}", "--memory", "128M", "--no-wait")
        deadline = time.monotonic() + 600
        while not all(d.vm(f"d{i}")["ready"] for i in range(k)):
            if time.monotonic() > deadline:
                raise RuntimeError("density VMs did not all become ready")
            time.sleep(1)
        time.sleep(10)
        rss = [rss_kib(d.vm(f"d{i}")["pid"]) / 1024 for i in range(k)]
        mean = statistics.mean(rss)
        host = json.loads(d.cli("host", "--json"))
        per_vm_alloc = 128 + host["vm_overhead_mib"]
        admitted = (HOST_MIB - RESERVED_MIB) // per_vm_alloc
        by_rss = int((HOST_MIB - RESERVED_MIB) // mean)
        qs = [Qemu(a.qemu, a.images, 128, work) for _ in range(2)]
        time.sleep(10)
        q_mean = statistics.mean(rss_kib(x.p.pid) / 1024 for x in qs)
        for x in qs:
            x.close()
        q_fit = int((HOST_MIB - RESERVED_MIB) // q_mean)
        print(f"{k} idle 128 MiB VMs: mean RSS {mean:.1f} MiB (min {min(rss):.1f}, max {max(rss):.1f}); "
              f"a 24 GiB host carries {by_rss} at that figure (qemu: {q_mean:.1f} MiB each, {q_fit}); "
              f"nimbusd's accounting admits {admitted} ({per_vm_alloc} MiB each)", flush=True)
        record("idle 128 MiB VMs per 24 GiB host (by measured RSS)", by_rss, q_fit, "VMs", f"{by_rss / q_fit:.2f}")
        record("resident memory, idle 128 MiB VM", f"{mean:.1f}", f"{q_mean:.1f}", "MiB", f"{mean / q_mean:.2f}")
    finally:
        d.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
