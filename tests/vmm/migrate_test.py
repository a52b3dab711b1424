#!/usr/bin/env python3
"""Live migration between two VMM processes on this machine (issue 19).

    migrate_test.py NIMBUS IMAGES WORKDIR

A guest with 2 vCPUs and 256 MiB runs a counter loop (10 a second) that its web server
serves through a port forward, and a client fetches it without pause. Failures first,
each of which must leave the VM running where it is: nothing listening at the
destination; a target configured differently (refused with its reason); a target out of
memory (its address space capped below the guest's RAM: refused with the reason); a target killed
-9 in the middle of the rounds (a bandwidth limit, a 1 ms budget and a guest rewriting
16 MiB of RAM in a loop keep the migration iterating); a cancel. Then the real move, over TCP to a second process that
takes the same forward port, while the guest writes numbered blocks to its qcow2 disk
(an overlay of a base image; the target has a fresh overlay of the same base): the
shell session goes on in the target, the counter never goes back nor jumps by more than
the downtime allows, every HTTP request succeeds (a request cut by the handover is
retried and counted), every block is on the target's overlay (qemu-img reads it), and
the source VMM exits with "migrated". Last, back to a third process over a unix socket.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

from vmm_client import BOOT_TIMEOUT, READY, VmmProcess, check, free_port

NIMBUS, IMAGES, WORK = sys.argv[1:4]
ARGS = "console=ttyS0 earlycon=sbi"
MAC = "52:54:00:aa:bb:01"
DISK_MIB = 32


class Fetcher(threading.Thread):
    """Fetches /counter every 20 ms; records (time, value) and retries cut requests."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.samples, self.retries, self.failures = port, [], 0, []
        self.longest_wait = 0.0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            while True:
                try:
                    body = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/counter",
                                                  timeout=5).read()
                    self.samples.append((time.monotonic(), int(body.strip() or b"0")))
                    break
                except Exception as e:  # noqa: BLE001 (reset, cut reply, timeout: retried)
                    self.retries += 1
                    if time.monotonic() - t0 > 20:
                        self.failures.append(repr(e))
                        break
                    time.sleep(0.05)
            self.longest_wait = max(self.longest_wait, time.monotonic() - t0)
            time.sleep(0.02)


def configure(api, disk, port):
    api.ok("PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 256})
    api.ok("PUT", "/boot-source", {"kernel_image_path": f"{IMAGES}/Image",
                                   "initrd_path": f"{IMAGES}/initramfs.cpio.gz",
                                   "boot_args": ARGS})
    api.ok("PUT", "/drives/data", {"drive_id": "data", "path_on_host": disk})
    api.ok("PUT", "/network-interfaces/eth0", {
        "iface_id": "eth0", "mode": "user", "guest_mac": MAC,
        "host_forwards": [{"protocol": "tcp", "host_address": "127.0.0.1", "host_port": port,
                           "guest_port": 80}]})


def overlay(name):
    path = os.path.join(WORK, name)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                    os.path.join(WORK, "base.qcow2"), path], check=True)
    return path


def wait_migration(api, states=("completed", "failed", "cancelled"), timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        m = api.ok("GET", "/migration")
        if m["state"] in states:
            return m
        check(time.monotonic() < deadline, f"the migration did not end: {m}")
        time.sleep(0.05)


def target(name, disk, port, mem=256):
    vm = VmmProcess(NIMBUS, os.path.join(WORK, name + ".sock"), "--exit-on-stop")
    configure(vm.api, disk, port)
    if mem != 256:
        vm.api.ok("PATCH", "/machine-config", {"mem_size_mib": mem})
    return vm


def running_on(vm, fetcher, what):
    """The VM runs on `vm`: its counter advances and HTTP answers."""
    check(vm.api.info()["state"] == "Running", f"{what}: {vm.api.info()}")
    n = len(fetcher.samples)
    deadline = time.monotonic() + 20
    while len(fetcher.samples) < n + 5:
        check(time.monotonic() < deadline,
              f"{what}: the web server stopped answering ({fetcher.retries} retries; "
              f"devices {json.dumps(vm.api.info()['devices'])})")
        time.sleep(0.05)
    a = int(vm.run("cat /www/counter", "C1").strip().splitlines()[-1])
    time.sleep(0.5)
    b = int(vm.run("cat /www/counter", "C2").strip().splitlines()[-1])
    check(b > a, f"{what}: the counter stands still ({a} -> {b})")


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", os.path.join(WORK, "base.qcow2"),
                    f"{DISK_MIB}M"], check=True)
    port = free_port()
    src = VmmProcess(NIMBUS, os.path.join(WORK, "src.sock"))
    vms = [src]
    fetcher = None
    try:
        configure(src.api, overlay("src.qcow2"), port)
        src.api.ok("PUT", "/actions", {"action_type": "InstanceStart"})
        src.expect(READY, BOOT_TIMEOUT)
        src.expect(b"# ", 60)
        src.run("mkdir -p /www && echo 0 > /www/counter && httpd -p 80 -h /www", "S0")
        src.send("(i=0; while :; do i=$((i+1)); echo $i > /www/counter.t; "
                 "mv /www/counter.t /www/counter; sleep 0.1; done) &")
        fetcher = Fetcher(port)
        fetcher.start()
        running_on(src, fetcher, "before")

        # 1. Nothing listens at the destination.
        dead = free_port()
        src.api.ok("PUT", "/migration", {"destination": f"tcp:127.0.0.1:{dead}"})
        m = wait_migration(src.api)
        check(m["state"] == "failed" and "connect" in m["error"], f"no listener: {m}")
        print(f"nothing listening: failed: {m['error']}")
        status, reply = src.api.call("PUT", "/migration", {"destination": "udp:1.2.3.4:5"})
        check(status == 400, f"a bad destination is 400: {status} {reply}")

        # 2. A target configured with other memory: refused with its reason.
        t = target("bad", overlay("bad.qcow2"), free_port(), mem=128)
        vms.append(t)
        listen = t.api.ok("PUT", "/migration/incoming", {"listen": "tcp:127.0.0.1:0"})["listen"]
        src.api.ok("PUT", "/migration", {"destination": listen})
        m = wait_migration(src.api)
        check(m["state"] == "failed" and "MiB" in m["error"], f"mismatched target: {m}")
        tm = wait_migration(t.api)
        check(tm["state"] == "failed" and t.api.info()["state"] == "NotStarted", f"target: {tm}")
        print(f"mismatched target: failed: {m['error']}")
        t.close()
        running_on(src, fetcher, "after a refused migration")

        # 2b. A target out of memory: its address space capped (prlimit) below what the
        # guest's RAM needs, so it cannot build the machine: refused with the reason.
        t = target("oom", overlay("oom.qcow2"), free_port())
        vms.append(t)
        with open(f"/proc/{t.proc.pid}/status") as f:
            vm_size_kib = int(re.search(r"VmSize:\s+(\d+)", f.read()).group(1))
        subprocess.run(["prlimit", "--pid", str(t.proc.pid),
                        f"--as={(vm_size_kib << 10) + (64 << 20)}"], check=True)
        listen = t.api.ok("PUT", "/migration/incoming", {"listen": "tcp:127.0.0.1:0"})["listen"]
        src.api.ok("PUT", "/migration", {"destination": listen})
        m = wait_migration(src.api)
        check(m["state"] == "failed" and "guest RAM" in m["error"], f"target out of memory: {m}")
        check(t.api.info()["state"] == "NotStarted", "the target stays NotStarted")
        print(f"target out of memory: failed: {m['error']}")
        t.close()
        running_on(src, fetcher, "after a target out of memory")

        # 3. The target killed -9 in the middle of the rounds; 4. a cancel.
        for case in ("kill", "cancel"):
            t = target(case, overlay(case + ".qcow2"), free_port())
            vms.append(t)
            listen = t.api.ok("PUT", "/migration/incoming", {"listen": "tcp:127.0.0.1:0"})["listen"]
            # 16 MiB/s: the first copy of RAM takes a second or two.
            src.api.ok("PUT", "/migration", {"destination": listen, "max_bandwidth_mib_s": 16})
            deadline = time.monotonic() + 60
            while src.api.ok("GET", "/migration")["ram_pages_sent"] < 1000:
                check(time.monotonic() < deadline, "no RAM was sent")
                time.sleep(0.02)
            if case == "kill":
                os.kill(t.proc.pid, signal.SIGKILL)
            else:
                src.api.ok("DELETE", "/migration")
            m = wait_migration(src.api)
            check(m["state"] == ("failed" if case == "kill" else "cancelled"), f"{case}: {m}")
            print(f"target {case} after {m['ram_pages_sent']} pages: {m['state']} "
                  f"({m.get('error', '')})")
            t.close()
            running_on(src, fetcher, f"after the {case}")

        # 5. The move, while the guest writes blocks 1..N of its disk.
        tgt_disk = overlay("tgt.qcow2")
        tgt = target("tgt", tgt_disk, port)
        vms.append(tgt)
        listen = tgt.api.ok("PUT", "/migration/incoming", {"listen": "tcp:127.0.0.1:0"})["listen"]
        src.send("(i=1; while [ $i -le 300 ]; do printf 'block-%05d' $i > /tmp/b; "
                 "dd if=/tmp/b of=/dev/vda bs=512 seek=$i conv=sync oflag=direct 2>/dev/null; "
                 "i=$((i+1)); done; echo writer-done > /www/writer) &")
        time.sleep(0.5)
        before = len(fetcher.samples)
        t0 = time.monotonic()
        src.api.ok("PUT", "/migration", {"destination": listen})
        m = wait_migration(src.api)
        check(m["state"] == "completed", f"the migration: {m}")
        tm = wait_migration(tgt.api)
        check(tm["state"] == "completed" and tm["downtime_ms"] >= m["downtime_ms"] * 0.5,
              f"the target knows the downtime too: {tm}")
        print(f"migrated in {m['total_ms']:.0f} ms ({time.monotonic() - t0:.2f} s seen here): "
              f"downtime {m['downtime_ms']:.1f} ms, {m['round']} rounds, "
              f"{m['ram_pages_sent']} of {m['ram_pages_total']} pages sent, "
              f"{m['zero_pages']} zero, {m['disk_bytes_sent']} disk bytes, "
              f"{m['bytes_on_wire']} bytes on the wire")
        check(m["ram_pages_sent"] < m["ram_pages_total"], "zero pages are not sent")
        info = src.api.info()
        check(info["state"] == "Stopped" and info["last_stop"] == "migrated", f"the source: {info}")
        src.close()
        # The shell session goes on in the target's console.
        out = tgt.run("cat /proc/uptime; echo moved > /root/marker; cat /root/marker", "T1")
        check("moved" in out, f"the shell on the target: {out!r}")
        running_on(tgt, fetcher, "on the target")
        deadline = time.monotonic() + 120
        while "writer-done" not in tgt.run("cat /www/writer 2>/dev/null", "T2"):
            check(time.monotonic() < deadline, "the disk writer did not finish")
            time.sleep(0.5)
        out = tgt.run("for i in 1 150 300; do dd if=/dev/vda bs=512 skip=$i count=1 iflag=direct "
                      "2>/dev/null | head -c 11; echo; done", "T3")
        for i in (1, 150, 300):
            check(f"block-{i:05d}" in out, f"block {i} on the target's disk: {out!r}")

        # The counter as the client saw it across the handover.
        samples = fetcher.samples[before:]
        values = [v for _, v in samples]
        check(all(b >= a for a, b in zip(values, values[1:])), "the counter went back")
        gaps = [(b[1] - a[1], b[0] - a[0]) for a, b in zip(samples, samples[1:])]
        worst = max(gaps, key=lambda g: g[0])
        # 10 counts a second: a jump is covered by the time between the two samples.
        check(all(d <= 10 * t + 3 for d, t in gaps), f"the counter skipped: {worst}")
        check(not fetcher.failures, f"HTTP requests failed: {fetcher.failures}")
        print(f"client: {len(samples)} requests during and after the move, {fetcher.retries} "
              f"retries in all, longest wait {fetcher.longest_wait:.2f} s, largest step "
              f"{worst[0]} in {worst[1]:.2f} s")

        # 6. Back to a third process over a unix socket.
        back = target("back", overlay("back.qcow2"), port)
        vms.append(back)
        sock = os.path.join(WORK, "m.sock")
        back.api.ok("PUT", "/migration/incoming", {"listen": f"unix:{sock}"})
        tgt.api.ok("PUT", "/migration", {"destination": f"unix:{sock}"})
        # The source exits as soon as its VM left (--exit-on-stop): the target tells.
        m = wait_migration(back.api)
        check(m["state"] == "completed", f"over unix: {m}")
        check(m["downtime_ms"] > 0, f"the target's downtime: {m}")
        print(f"over a unix socket: {m['ram_pages_sent']} pages, downtime {m['downtime_ms']:.1f} ms "
              f"(as the target saw it)")
        check(tgt.wait(30) == 0, "the second VMM exits 0 after the move (--exit-on-stop)")
        out = back.run("cat /root/marker", "B1")
        check("moved" in out, f"the file written on the target: {out!r}")
        running_on(back, fetcher, "back")
        back.api.ok("PUT", "/actions", {"action_type": "Stop"})
        fetcher.stop.set()
        # The target's overlay holds the guest's writes, and qemu-img reads it.
        subprocess.run(["qemu-img", "check", "-q", tgt_disk], check=True)
        raw = os.path.join(WORK, "tgt.raw")
        subprocess.run(["qemu-img", "convert", "-O", "raw", tgt_disk, raw], check=True)
        with open(raw, "rb") as f:
            f.seek(512)
            check(f.read(11) == b"block-00001", "block 1 in the target's overlay file")
        print("migrate: ok")
    except BaseException:
        for vm in vms:
            vm.abandon()
        raise
    finally:
        if fetcher:
            fetcher.stop.set()
        for vm in vms:
            vm.close()


if __name__ == "__main__":
    main()
