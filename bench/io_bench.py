#!/usr/bin/env python3
"""Disk and network throughput in the guest, Nimbus vs QEMU on the same images.

    bench/io_bench.py [--mib 64] [--nimbus build/nimbus]

Each machine boots images/Image with images/initramfs.cpio.gz, one raw 128 MiB data disk
(virtio-blk, /dev/vda) and user-mode networking (slirp) forwarding a host port to the
guest's nimbus-netbench server. In the guest, `nimbus-diskbench -d /dev/vda MIB` writes
then reads MIB MiB sequentially with O_DIRECT (1 MiB requests). Then the host connects
through the forwarded port and receives MIB MiB sent by the guest (guest-to-host TCP).
Prints each figure and the ratio nimbus/qemu (above 1: Nimbus is faster).
If $NIMBUS_BENCH_RESULTS names a file, appends rows `name<TAB>nimbus<TAB>qemu<TAB>unit<TAB>ratio`
to it (bench/run-all.sh collects them).
"""
import argparse
import os
import re
import socket
import struct
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "boot"))
from guest_session import READY, Session  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def receive_from_guest(port, mib):
    """Guest-to-host TCP: ask the guest's netbench server to send MIB MiB; returns MB/s."""
    want = mib << 20
    deadline = time.monotonic() + 60
    while True:
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=60)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    with c:
        t0 = time.monotonic()
        c.sendall(b"NBN1r" + struct.pack(">Q", want))
        got = 0
        while got < want:
            chunk = c.recv(1 << 20)
            if not chunk:
                raise RuntimeError(f"connection closed after {got} bytes")
            got += len(chunk)
        secs = time.monotonic() - t0
        c.sendall(struct.pack(">Q", got))
    return got / (1 << 20) / secs


def measure(argv, port, mib):
    s = Session(argv)
    try:
        s.expect(READY, 300)
        out = s.run(f"nimbus-diskbench -d /dev/vda {mib}", "DISKDONE")
        w = float(re.search(r"write:\s+([\d.]+) MB/s", out).group(1))
        r = float(re.search(r"read:\s+([\d.]+) MB/s", out).group(1))
        s.run("(nimbus-netbench server 5201 > /dev/null 2>&1 &)", "SERVERUP")
        time.sleep(1)
        net = receive_from_guest(port, mib)
        s.send("poweroff -f")
        s.wait(60)
        return w, r, net
    finally:
        if s.proc.poll() is None:
            s.proc.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--nimbus", default=os.path.join(ROOT, "build", "nimbus"))
    ap.add_argument("--qemu", default="qemu-system-riscv64")
    a = ap.parse_args()
    kernel = os.path.join(ROOT, "images", "Image")
    initrd = os.path.join(ROOT, "images", "initramfs.cpio.gz")
    append = "console=ttyS0 nimbus.httpd=0"
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data.raw")
        with open(data, "wb") as f:
            f.truncate(128 << 20)
        p1 = free_port()
        nimbus = [a.nimbus, "run", "--memory", "256M", "--kernel", kernel, "--initrd", initrd,
                  "--append", append, "--disk", f"{data},format=raw",
                  "--net", f"user,hostfwd=tcp:127.0.0.1:{p1}-:5201"]
        nw, nr, nn = measure(nimbus, p1, a.mib)
        p2 = free_port()
        qemu = [a.qemu, "-M", "virt", "-m", "256M", "-nographic", "-kernel", kernel, "-initrd", initrd,
                "-append", append,
                "-drive", f"file={data},format=raw,if=none,id=hd0,cache=none", "-device", "virtio-blk-device,drive=hd0",
                "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{p2}-:5201", "-device", "virtio-net-device,netdev=n0"]
        qw, qr, qn = measure(qemu, p2, a.mib)
    print(f"disk write ({a.mib} MiB, O_DIRECT): nimbus {nw:.1f} MB/s, qemu {qw:.1f} MB/s, ratio {nw / qw:.2f}")
    print(f"disk read  ({a.mib} MiB, O_DIRECT): nimbus {nr:.1f} MB/s, qemu {qr:.1f} MB/s, ratio {nr / qr:.2f}")
    print(f"guest-to-host TCP ({a.mib} MiB):    nimbus {nn:.1f} MB/s, qemu {qn:.1f} MB/s, ratio {nn / qn:.2f}")
    out = os.environ.get("NIMBUS_BENCH_RESULTS")
    if out:
        with open(out, "a") as f:
            for name, n, q in ((f"disk write, O_DIRECT, {a.mib} MiB", nw, qw),
                               (f"disk read, O_DIRECT, {a.mib} MiB", nr, qr),
                               (f"guest-to-host TCP, {a.mib} MiB", nn, qn)):
                f.write(f"{name}\t{n:.1f}\t{q:.1f}\tMB/s\t{n / q:.2f}\n")


if __name__ == "__main__":
    main()
