#!/usr/bin/env python3
"""Snapshot restore time, Nimbus vs QEMU: from the restore request to a running guest.

    bench/restore_time.py [--repeats N] [--memory MIB] [--nimbus build/nimbus] [--qemu Q]

Both boot images/Image with the initramfs (no network), wait for the shell, pause and save
the whole VM to a file, and then restore it into a fresh process, --repeats times:
  Nimbus: `nimbus vmm --api-sock S`, then PUT /snapshot/load {resume_vm: true}; the time
          runs from sending the request until the guest's shell echoes a line typed after
          the reply.
  QEMU:   `qemu-system-riscv64 ... -incoming defer`, then QMP migrate-incoming from
          "exec:cat FILE" and cont once the migration completes; the same echo ends it.
The fresh processes are started (and their sockets up) before the clock starts. Prints
the median of each and the ratio nimbus/qemu, the snapshot file sizes, and appends rows
for run-all.sh when $NIMBUS_BENCH_RESULTS is set.
"""
import argparse
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "vmm"))
from vmm_client import Api  # noqa: E402

READY = b"nimbus-guest: ready"
APPEND = "console=ttyS0 nimbus.net=0"


class Console:
    """A process's stdio as a serial console."""

    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.out = b""

    def expect(self, needle, timeout=300):
        start = len(self.out)
        deadline = time.monotonic() + timeout
        while needle not in self.out[start:]:
            r, _, _ = select.select([self.p.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not r:
                raise TimeoutError(f"waiting for {needle!r}: {self.out[-500:]!r}")
            chunk = os.read(self.p.stdout.fileno(), 65536)
            if not chunk:
                raise EOFError(f"process exited waiting for {needle!r}: {self.out[-500:]!r}")
            self.out += chunk

    def send(self, text):
        self.p.stdin.write(text.encode())
        self.p.stdin.flush()

    def echo_roundtrip(self, tag):
        self.send(f"echo {tag}-$((6*7))\n")
        self.expect(f"{tag}-42".encode())

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


class Qmp:
    def __init__(self, path):
        deadline = time.monotonic() + 30
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.f = self.s.makefile("rwb")
        self.f.readline()  # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg).encode() + b"\n")
        self.f.flush()
        while True:
            reply = json.loads(self.f.readline())
            if "event" in reply:
                continue
            if "error" in reply:
                raise RuntimeError(f"QMP {name}: {reply['error']}")
            return reply.get("return")

    def wait_migration(self):
        while True:
            st = self.cmd("query-migrate").get("status")
            if st == "completed":
                return
            if st in ("failed", "cancelled"):
                raise RuntimeError(f"migration {st}")
            time.sleep(0.005)


def nimbus_restore(a, work):
    kernel, initrd = os.path.join(ROOT, "images", "Image"), os.path.join(ROOT, "images", "initramfs.cpio.gz")
    snap = os.path.join(work, "nimbus.snap")
    sock = os.path.join(work, "src.sock")
    src = Console([a.nimbus, "vmm", "--api-sock", sock, "--memory", f"{a.memory}M", "--kernel", kernel,
                   "--initrd", initrd, "--append", APPEND])
    try:
        src.expect(READY)
        src.echo_roundtrip("src")
        api = Api(sock)
        api.ok("PATCH", "/vm", {"state": "Paused"})
        api.ok("PUT", "/snapshot/create", {"snapshot_path": snap})
    finally:
        src.close()
    times = []
    for i in range(a.repeats):
        sock = os.path.join(work, f"dst{i}.sock")
        dst = Console([a.nimbus, "vmm", "--api-sock", sock])
        try:
            while not os.path.exists(sock):
                time.sleep(0.01)
            t0 = time.monotonic()
            Api(sock).ok("PUT", "/snapshot/load", {"snapshot_path": snap, "resume_vm": True})
            dst.echo_roundtrip(f"dst{i}")
            times.append(time.monotonic() - t0)
        finally:
            dst.close()
    return statistics.median(times), os.path.getsize(snap)


def qemu_restore(a, work):
    kernel, initrd = os.path.join(ROOT, "images", "Image"), os.path.join(ROOT, "images", "initramfs.cpio.gz")
    mig = os.path.join(work, "qemu.mig")
    base = [a.qemu, "-M", "virt", "-m", f"{a.memory}M", "-smp", "1", "-nographic", "-kernel", kernel,
            "-initrd", initrd, "-append", APPEND, "-nic", "none"]
    qsock = os.path.join(work, "qsrc.sock")
    src = Console(base + ["-qmp", f"unix:{qsock},server=on,wait=off"])
    try:
        src.expect(READY)
        src.echo_roundtrip("src")
        q = Qmp(qsock)
        q.cmd("stop")
        q.cmd("migrate", uri=f"exec:cat > {mig}")
        q.wait_migration()
    finally:
        src.close()
    times = []
    for i in range(a.repeats):
        qsock = os.path.join(work, f"qdst{i}.sock")
        dst = Console(base + ["-qmp", f"unix:{qsock},server=on,wait=off", "-incoming", "defer"])
        try:
            q = Qmp(qsock)
            t0 = time.monotonic()
            q.cmd("migrate-incoming", uri=f"exec:cat {mig}")
            while q.cmd("query-status")["status"] == "inmigrate":
                time.sleep(0.002)
            q.cmd("cont")
            dst.echo_roundtrip(f"dst{i}")
            times.append(time.monotonic() - t0)
        finally:
            dst.close()
    return statistics.median(times), os.path.getsize(mig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--memory", type=int, default=256)
    ap.add_argument("--nimbus", default=os.path.join(ROOT, "build", "nimbus"))
    ap.add_argument("--qemu", default="qemu-system-riscv64")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="nimbus-restore-") as work:
        n, n_size = nimbus_restore(a, work)
        q, q_size = qemu_restore(a, work)
    print(f"restore to a running guest ({a.memory} MiB, median of {a.repeats}): "
          f"nimbus {n:.3f} s, qemu {q:.3f} s, ratio {n / q:.2f}")
    print(f"snapshot file: nimbus {n_size / 2**20:.1f} MiB (zstd, zero pages skipped), "
          f"qemu {q_size / 2**20:.1f} MiB (migration stream)")
    out = os.environ.get("NIMBUS_BENCH_RESULTS")
    if out:
        with open(out, "a") as f:
            f.write(f"restore {a.memory} MiB\t{n:.3f}\t{q:.3f}\ts\t{n / q:.2f}\n")
            f.write(f"snapshot file {a.memory} MiB\t{n_size / 2**20:.1f}\t{q_size / 2**20:.1f}\tMiB\t"
                    f"{n_size / q_size:.2f}\n")


if __name__ == "__main__":
    main()
