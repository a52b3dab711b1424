#!/usr/bin/env python3
"""The hostile guest (hostile.c) in `nimbus vmm`: the VMM must come out whole.

    hostile_test.py NIMBUS HOSTILE_IMAGE WORKDIR

The VM has a virtio disk on a qcow2 overlay made by qemu-img, a virtio NIC on user-mode
networking, virtio-rng and the VMM's virtio console. The guest attacks every device
through MMIO and prints "hostile: done", then idles in WFI. Checked:
  - the VMM process stays alive and answers GET / promptly while under attack and after;
  - the guest's own checks held ("hostile: failures=0": refused features and queue
    configurations, broken rings ending in NEEDS_RESET, requests working after reset);
  - every device was left in NEEDS_RESET, as the guest reads it and as GET / reports it;
  - the idle VMM uses (almost) no CPU, and its peak memory stayed bounded;
  - a snapshot of the attacked VM restores with the same device status and idles too;
  - the disk image passes `qemu-img check`.
"""
import os
import re
import select
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vmm"))
from vmm_client import VmmProcess, check  # noqa: E402

NIMBUS, IMAGE, WORK = sys.argv[1:4]
ATTACK_TIMEOUT = 240      # seconds for the whole attack (it takes a few on an idle machine)
API_SLOW = 2.0            # the slowest GET / allowed while the guest attacks
IDLE_CPU_SHARE = 0.05     # of one core, once the guest idles
PEAK_RSS_KIB = 64 * 1024  # guest RAM touched (~6 MiB) plus the VMM: about 20 MiB; one queued
                          # task per RX notify went far past this before the fix
VIRTIO_IDS = {2: "blk", 1: "net", 4: "rng", 3: "console"}


def timed_info(api):
    t0 = time.monotonic()
    info = api.info()
    return info, time.monotonic() - t0


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    disk = os.path.join(WORK, "disk.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "64M"], check=True)

    vm = VmmProcess(NIMBUS, os.path.join(WORK, "api.sock"))
    try:
        api = vm.api
        api.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 128})
        api.ok("PUT", "/boot-source", {"kernel_image_path": IMAGE, "boot_args": "hostile"})
        api.ok("PUT", "/drives/disk", {"drive_id": "disk", "path_on_host": disk, "format": "qcow2"})
        api.ok("PUT", "/network-interfaces/eth0", {"iface_id": "eth0", "mode": "user"})
        api.ok("PUT", "/actions", {"action_type": "InstanceStart"})

        # Under attack: the API answers, the process lives.
        slowest, polls = 0.0, 0
        deadline = time.monotonic() + ATTACK_TIMEOUT
        while b"hostile: done" not in vm.out:
            check(time.monotonic() < deadline, "the guest did not finish its attack in time")
            check(vm.proc.poll() is None, f"the VMM died (status {vm.proc.returncode})")
            r, _, _ = select.select([vm.proc.stdout], [], [], 0.2)
            if r:
                chunk = os.read(vm.proc.stdout.fileno(), 65536)
                check(chunk != b"", f"the VMM closed its console (status {vm.proc.poll()})")
                vm.out += chunk
            info, seconds = timed_info(api)
            check(info["state"] == "Running", f"state {info['state']} during the attack")
            slowest, polls = max(slowest, seconds), polls + 1
        check(slowest < API_SLOW, f"GET / took {slowest:.2f} s during the attack")
        text = vm.out.decode(errors="replace")
        lines = [line.strip() for line in text.splitlines() if "hostile: " in line]
        print("\n".join(line[line.index("hostile: "):] for line in lines))
        print(f"GET / during the attack: {polls} calls, slowest {slowest * 1000:.1f} ms")

        # The guest's own checks.
        check("hostile: failures=0" in text, "the guest reported failures (FAIL lines above)")
        targeted = re.findall(r"targeted attacks (\d+)/(\d+)", text)
        check(len(targeted) == len(VIRTIO_IDS) and all(a == b for a, b in targeted),
              f"targeted attacks: {targeted}")
        final = {int(slot): (int(dev), int(status, 16))
                 for slot, dev, status in re.findall(r"virtio slot=(\d+) id=(\d+) status=(0x[0-9a-f]+)", text)}
        check(sorted(dev for dev, _ in final.values()) == sorted(VIRTIO_IDS),
              f"the guest found devices {final}, want one of each of {VIRTIO_IDS}")
        for slot, (dev, status) in final.items():
            check(status & 0x40, f"{VIRTIO_IDS[dev]} (slot {slot}) status {status:#x} lacks NEEDS_RESET")

        # The VMM's view agrees, and it answers promptly once the guest idles.
        info, seconds = timed_info(api)
        check(seconds < 0.5, f"GET / took {seconds:.2f} s with the guest idle")
        check(info["state"] == "Running", f"state {info['state']} after the attack")
        virtio = info["devices"]["virtio"]
        check(len(virtio) == len(VIRTIO_IDS), f"GET / lists {virtio}")
        for d in virtio:
            check(d["needs_reset"] and d["status"] == final[d["slot"]][1],
                  f"GET / says {d}, the guest read {final.get(d['slot'])}")
        print(f"GET / devices.virtio: {virtio}")

        # Idle: the guest sleeps in WFI; the VMM must too (no device spinning).
        time.sleep(0.5)
        cpu0, t0 = vm.cpu_seconds(), time.monotonic()
        time.sleep(2)
        cpu1, t1 = vm.cpu_seconds(), time.monotonic()
        share = (cpu1 - cpu0) / (t1 - t0)
        check(share < IDLE_CPU_SHARE, f"the idle VMM used {share * 100:.1f}% of a core")
        peak = peak_rss_kib(vm.proc.pid)
        check(peak < PEAK_RSS_KIB, f"the VMM's peak RSS was {peak} KiB")
        print(f"idle: {(cpu1 - cpu0) * 1000:.0f} ms CPU in {t1 - t0:.2f} s ({share * 100:.2f}% of a core); "
              f"peak RSS {peak} KiB")
        check(vm.proc.poll() is None, "the VMM is alive")

        # The attacked state goes through a snapshot: broken queues and NEEDS_RESET load
        # back as they were, and the restored VM idles too.
        snap = os.path.join(WORK, "vm.snap")
        api.ok("PATCH", "/vm", {"state": "Paused"})
        api.ok("PUT", "/snapshot/create", {"snapshot_path": snap})
        api.ok("PUT", "/actions", {"action_type": "Stop"})
        check(api.info()["state"] == "Stopped", "Stopped after Stop")
    except BaseException:
        vm.abandon()
        raise
    vm.close()

    vm = VmmProcess(NIMBUS, os.path.join(WORK, "api2.sock"))
    try:
        vm.api.ok("PUT", "/snapshot/load", {"snapshot_path": snap, "resume_vm": True})
        info = vm.api.info()
        check(info["state"] == "Running", f"state {info['state']} after restore")
        restored = {d["slot"]: d["status"] for d in info["devices"]["virtio"]}
        check(restored == {slot: status for slot, (_, status) in final.items()},
              f"after restore GET / says {restored}, before {final}")
        time.sleep(0.5)
        cpu0, t0 = vm.cpu_seconds(), time.monotonic()
        time.sleep(2)
        share = (vm.cpu_seconds() - cpu0) / (time.monotonic() - t0)
        check(share < IDLE_CPU_SHARE, f"the restored idle VMM used {share * 100:.1f}% of a core")
        print(f"restored from the snapshot: same device status, {share * 100:.2f}% of a core idle")
        vm.api.ok("PUT", "/actions", {"action_type": "Stop"})
    except BaseException:
        vm.abandon()
        raise
    vm.close()

    out = subprocess.run(["qemu-img", "check", disk], capture_output=True, text=True)
    check(out.returncode == 0, f"qemu-img check {disk}: status {out.returncode}\n{out.stdout}{out.stderr}")
    print(out.stdout.strip().splitlines()[0])
    print("hostile guest: ok")


if __name__ == "__main__":
    main()
