#!/usr/bin/env python3
"""The VM process API end to end: a real client on the unix socket drives `nimbus vmm`.

    vmm_api_test.py NIMBUS IMAGES WORKDIR lifecycle|snapshot|errors|config

lifecycle  configure through the API, boot, pause (no CPU used, no instructions run) and
           resume, graceful shutdown through the guest agent, a hard stop, resize of
           vCPUs, memory and a disk while stopped, seen by the guest at its next boot.
snapshot   a counter loop and a file in the guest, a raw disk written without sync, the
           web server behind a port forward; pause, snapshot, kill -9 the VMM, restore
           into a fresh process: the counter goes on, the file is there, the disk write
           reached the file, the web server answers, the shell session continues.
config     the same VM from --config FILE and from machine flags; bad files and flags.
errors     a table of malformed requests, each with its status and message; the VM keeps
           running untouched.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

from vmm_client import BOOT_TIMEOUT, READY, Api, VmmProcess, check, free_port

NIMBUS, IMAGES, WORK, MODE = sys.argv[1:5]
BASE_ARGS = "console=ttyS0 earlycon=sbi"


def boot(vm, body_extra=None, args=BASE_ARGS + " nimbus.net=0"):
    vm.api.ok("PUT", "/boot-source", {"kernel_image_path": f"{IMAGES}/Image",
                                      "initrd_path": f"{IMAGES}/initramfs.cpio.gz",
                                      "boot_args": args})
    vm.api.ok("PUT", "/actions", {"action_type": "InstanceStart"})
    vm.expect(READY, BOOT_TIMEOUT)
    vm.expect(b"# ", 60)


def agent_ready(api, timeout=30):
    deadline = time.monotonic() + timeout
    while not api.info()["agent"]["ready"]:
        check(time.monotonic() < deadline, "the guest agent never reported ready")
        time.sleep(0.2)


def lifecycle():
    sock = os.path.join(WORK, "api.sock")
    vm = VmmProcess(NIMBUS, sock)
    try:
        api = vm.api
        check(api.info()["state"] == "NotStarted", "a fresh VMM is NotStarted")
        api.ok("PUT", "/machine-config", {"vcpu_count": 1, "mem_size_mib": 128})
        disk = os.path.join(WORK, "data.raw")
        with open(disk, "wb") as f:
            f.truncate(16 << 20)
        api.ok("PUT", "/drives/data", {"drive_id": "data", "path_on_host": disk})
        boot(vm)
        check(api.info()["state"] == "Running", "Running after InstanceStart")
        print(vm.run("cat /sys/block/vda/size", "M1").strip().splitlines()[-1], "sectors before resize")

        # Pause: instructions stop, the process uses (almost) no CPU; resume goes on.
        api.ok("PATCH", "/vm", {"state": "Paused"})
        before = api.info()["vcpus"][0]["instructions"]
        cpu0 = vm.cpu_seconds()
        time.sleep(2)
        after = api.info()["vcpus"][0]["instructions"]
        cpu1 = vm.cpu_seconds()
        check(after == before, f"a paused VM ran instructions ({before} -> {after})")
        check(cpu1 - cpu0 < 0.1, f"a paused VM used {cpu1 - cpu0:.2f} s of CPU in 2 s")
        print(f"paused 2 s: {cpu1 - cpu0:.3f} s CPU, instructions unchanged")
        api.ok("PATCH", "/vm", {"state": "Resumed"})
        check("42" in vm.run("echo $((40 + 2))", "M2"), "the shell answers after resume")

        # Graceful shutdown through the guest agent.
        agent_ready(api)
        reply = api.ok("PUT", "/actions", {"action_type": "Shutdown", "timeout_s": 60})
        check(reply["graceful"] and reply["last_stop"] == "poweroff", f"graceful shutdown: {reply}")
        check(api.info()["state"] == "Stopped", "Stopped after Shutdown")
        print(f"graceful shutdown in {reply['seconds']:.2f} s")

        # Resize while stopped; the guest sees it at the next boot.
        api.ok("PATCH", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 192})
        reply = api.ok("PATCH", "/drives/data", {"drive_id": "data", "size_mib": 48})
        check(reply["size_bytes"] == 48 << 20, f"drive resize reply {reply}")
        check(os.path.getsize(disk) == 48 << 20, "the disk file grew")
        vm.api.ok("PUT", "/actions", {"action_type": "InstanceStart"})
        vm.expect(READY, BOOT_TIMEOUT)
        vm.expect(b"# ", 60)
        cpus = vm.run("grep -c ^processor /proc/cpuinfo", "M3").strip().splitlines()[-1]
        check(cpus == "2", f"the guest sees {cpus} CPUs after resize to 2")
        sectors = vm.run("cat /sys/block/vda/size", "M4").strip().splitlines()[-1]
        check(sectors == str((48 << 20) // 512), f"the guest sees {sectors} sectors after resize")
        mem = vm.run("grep MemTotal /proc/meminfo", "M5")
        kib = int(mem.split("MemTotal:")[1].split()[0])
        check(150_000 < kib <= 192 * 1024, f"MemTotal {kib} kB after resize to 192 MiB")
        print(f"after resize: {cpus} CPUs, {sectors} sectors, MemTotal {kib} kB")
        check(api.info()["boots"] == 2, "two boots")

        # Hard stop.
        api.ok("PUT", "/actions", {"action_type": "Stop"})
        info = api.info()
        check(info["state"] == "Stopped" and info["last_stop"] == "stopped", f"hard stop: {info}")

        # A guest without the agent: Shutdown falls back to a hard stop after its timeout.
        api.ok("PATCH", "/machine-config", {"vcpu_count": 1})
        boot(vm, args=BASE_ARGS + " nimbus.net=0 nimbus.agent=0")
        reply = api.ok("PUT", "/actions", {"action_type": "Shutdown", "timeout_s": 2})
        check(not reply["graceful"] and reply["last_stop"] == "stopped", f"shutdown without agent: {reply}")
        print(f"no agent: hard stop after {reply['seconds']:.1f} s")
    except BaseException:
        vm.abandon()
        raise
    vm.close()


def snapshot():
    sock1, sock2 = os.path.join(WORK, "a.sock"), os.path.join(WORK, "b.sock")
    snap = os.path.join(WORK, "vm.snap")
    # A qcow2 disk: its metadata lives in the VMM's memory until flushed, so only the
    # flush at pause makes the guest's write survive the kill -9 below.
    disk = os.path.join(WORK, "data.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "8M"], check=True)
    port = free_port()
    vm = VmmProcess(NIMBUS, sock1)
    try:
        api = vm.api
        api.ok("PUT", "/machine-config", {"vcpu_count": 2, "mem_size_mib": 128})
        api.ok("PUT", "/drives/data", {"drive_id": "data", "path_on_host": disk})
        api.ok("PUT", "/network-interfaces/eth0", {
            "iface_id": "eth0", "mode": "user",
            "host_forwards": [{"protocol": "tcp", "host_address": "127.0.0.1", "host_port": port, "guest_port": 80}]})
        boot(vm, args=BASE_ARGS)
        vm.run("mkdir -p /www && echo served-by-nimbus > /www/index.html && httpd -p 80 -h /www", "S0")
        vm.run("echo before-snapshot > /root/marker", "S1")
        # Written to the disk (O_DIRECT: the write reaches the device, no guest page cache).
        vm.run("printf nimbus-disk-pattern > /tmp/p; dd if=/tmp/p of=/dev/vda bs=512 conv=sync oflag=direct 2>/dev/null", "S2")
        vm.send("(i=0; while :; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.1; done) &")
        time.sleep(2)
        count_before = int(vm.run("cat /tmp/counter", "S3").strip().splitlines()[-1])
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read()
        check(b"served-by-nimbus" in page, f"web page before snapshot: {page!r}")
        devices = api.info()["devices"]
        check(devices["drives"][0]["write_requests"] >= 1, f"disk counters: {devices}")
        check(devices["network-interfaces"][0]["tx_packets"] > 0, f"NIC counters: {devices}")

        api.ok("PATCH", "/vm", {"state": "Paused"})
        reply = api.ok("PUT", "/snapshot/create", {"snapshot_path": snap})
        print(f"snapshot: {reply['bytes']} bytes, {reply['pages_stored']}/{reply['pages_total']} pages, "
              f"{reply['seconds']:.2f} s")
        # The original dies without any cleanup.
        os.kill(vm.proc.pid, signal.SIGKILL)
        vm.proc.wait()
        subprocess.run(["qemu-img", "check", "-q", disk], check=True)
        raw = os.path.join(WORK, "data.raw")
        subprocess.run(["qemu-img", "convert", "-O", "raw", disk, raw], check=True)
        with open(raw, "rb") as f:
            check(f.read(19) == b"nimbus-disk-pattern", "the disk write was flushed at pause")
    except BaseException:
        vm.abandon()
        raise

    vm2 = VmmProcess(NIMBUS, sock2)
    try:
        t0 = time.monotonic()
        reply = vm2.api.ok("PUT", "/snapshot/load", {"snapshot_path": snap, "resume_vm": True})
        print(f"restore: {reply['seconds']:.3f} s inside the VMM, {time.monotonic() - t0:.3f} s for the request")
        check(vm2.api.info()["state"] == "Running", "Running after load with resume_vm")
        # The shell session continues: no new login, no new boot.
        out = vm2.run("cat /root/marker", "R1")
        check("before-snapshot" in out, f"the file written before the snapshot: {out!r}")
        c1 = int(vm2.run("cat /tmp/counter", "R2").strip().splitlines()[-1])
        time.sleep(1.5)
        c2 = int(vm2.run("cat /tmp/counter", "R3").strip().splitlines()[-1])
        check(count_before <= c1 < c2, f"the counter goes on: {count_before} -> {c1} -> {c2}")
        print(f"counter: {count_before} at snapshot, {c1} -> {c2} after restore")
        page = b""
        deadline = time.monotonic() + 60
        while b"served-by-nimbus" not in page and time.monotonic() < deadline:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read()
            except OSError:
                time.sleep(0.5)
        check(b"served-by-nimbus" in page, "the web server answers after restore")
        check(b"nimbus-guest: ready" not in vm2.out, "the restored VM did not boot again")
        out = vm2.run("dd if=/dev/vda bs=512 count=1 iflag=direct 2>/dev/null | head -c 19; echo", "R4")
        check("nimbus-disk-pattern" in out, f"the guest reads its write back after restore: {out!r}")
        vm2.api.ok("PUT", "/actions", {"action_type": "Stop"})
    except BaseException:
        vm2.abandon()
        raise
    vm2.close()

    # A damaged snapshot is refused and the fresh VMM stays usable.
    bad = os.path.join(WORK, "bad.snap")
    data = bytearray(open(snap, "rb").read())
    data[len(data) // 2] ^= 0xff
    open(bad, "wb").write(data)
    vm3 = VmmProcess(NIMBUS, os.path.join(WORK, "c.sock"))
    try:
        status, reply = vm3.api.call("PUT", "/snapshot/load", {"snapshot_path": bad})
        check(status == 400 and "checksum" in reply["fault_message"], f"corrupt snapshot: {status} {reply}")
        open(bad, "wb").write(data[: len(data) // 3])
        status, reply = vm3.api.call("PUT", "/snapshot/load", {"snapshot_path": bad})
        check(status == 400 and "truncated" in reply["fault_message"], f"truncated snapshot: {status} {reply}")
        check(vm3.api.info()["state"] == "NotStarted", "still NotStarted after refused loads")
    finally:
        vm3.close()


ERRORS = [
    # method, path, raw body, status, text in fault_message
    ("PUT", "/machine-config", "{not json", 400, "not valid JSON"),
    ("PUT", "/machine-config", "[1,2]", 400, "JSON object"),
    ("PUT", "/machine-config", '{"vcpu_count": 2, "mem_size_mib": 128, "turbo": true}', 400, "unknown field 'turbo'"),
    ("PUT", "/machine-config", '{"vcpu_count": 0, "mem_size_mib": 128}', 400, "from 1 to 8"),
    ("PUT", "/machine-config", '{"vcpu_count": 2, "mem_size_mib": 99999999}', 400, "mem_size_mib"),
    ("PUT", "/machine-config", '{"vcpu_count": "two", "mem_size_mib": 128}', 400, "vcpu_count"),
    ("PATCH", "/machine-config", '{"vcpu_count": 2}', 409, "Running"),
    ("PUT", "/drives/data", '{"drive_id": "other", "path_on_host": "/x"}', 400, "does not match"),
    ("PUT", "/drives/bad id", '{"path_on_host": "/x"}', 404, "not a valid id"),
    ("PUT", "/drives/data", '{"drive_id": "data"}', 400, "path_on_host"),
    ("PATCH", "/drives/nosuch", '{"size_mib": 10}', 409, "Running"),
    ("PUT", "/network-interfaces/eth1", '{"iface_id": "eth1", "mode": "wifi"}', 400, "not user or switch"),
    ("PUT", "/network-interfaces/eth1", '{"iface_id": "eth1", "guest_mac": "01:00:00:00:00:01"}', 400, "multicast"),
    ("PUT", "/network-interfaces/eth1",
     '{"iface_id": "eth1", "host_forwards": [{"host_port": 70000, "guest_port": 80}]}', 400, "host_port"),
    ("PUT", "/actions", '{"action_type": "Explode"}', 400, "unknown action_type"),
    ("PUT", "/actions", '{}', 400, "action_type is required"),
    ("PUT", "/actions", '{"action_type": "InstanceStart"}', 409, "already Running"),
    ("PUT", "/actions", '{"action_type": "Stop", "timeout_s": 5}', 400, "only for the Shutdown"),
    ("PATCH", "/vm", '{"state": "Sleeping"}', 400, "not Paused or Resumed"),
    ("PATCH", "/vm", '{"state": "Resumed"}', 409, "not Paused"),
    ("PUT", "/snapshot/create", '{"snapshot_path": "/tmp/x.snap"}', 409, "pause it first"),
    ("PUT", "/snapshot/create", '{}', 400, "snapshot_path"),
    ("PUT", "/snapshot/load", '{"snapshot_path": "/tmp/x.snap"}', 409, "not running"),
    ("GET", "/no/such/thing", "", 404, "no resource"),
    ("DELETE", "/actions", "", 405, "not allowed"),
    ("PUT", "/machine-config", "", 400, "needs a JSON object body"),
    ("PUT", "/boot-source", '{"kernel_image_path": 5}', 400, "must be a string"),
]


def errors():
    sock = os.path.join(WORK, "api.sock")
    vm = VmmProcess(NIMBUS, sock)
    try:
        api = vm.api
        # Before start: a bad boot file is refused by PUT /boot-source at once (not read:
        # /dev/zero would be read until memory ran out, a FIFO would block), with a 400,
        # and the configuration stays as it was.
        fifo = os.path.join(WORK, "fifo")
        os.mkfifo(fifo)
        cut = os.path.join(WORK, "Image.cut")
        with open(f"{IMAGES}/Image", "rb") as src, open(cut, "wb") as dst:
            dst.write(src.read(100))
        before = api.ok("GET", "/vm/config")
        for body, text in [({"kernel_image_path": "/nonexistent/Image"}, "/nonexistent/Image"),
                           ({"kernel_image_path": "/dev/zero"}, "kernel '/dev/zero' is a character device"),
                           ({"initrd_path": "/dev/zero"}, "initrd '/dev/zero' is a character device"),
                           ({"firmware_path": "/dev/zero"}, "firmware '/dev/zero' is a character device"),
                           ({"initrd_path": fifo}, "is a FIFO or pipe"),
                           ({"kernel_image_path": cut}, "is truncated")]:
            t0 = time.monotonic()
            status, reply = api.call("PUT", "/boot-source", body)
            took = time.monotonic() - t0
            check(status == 400 and text in reply["fault_message"], f"boot-source {body}: {status} {reply}")
            check(took < 5, f"boot-source {body} took {took:.1f} s")
            print(f"400 PUT /boot-source {body}: {reply['fault_message']}")
        check(api.ok("GET", "/vm/config") == before, "refused boot sources leave the configuration unchanged")
        # A file that goes bad after the PUT is refused at start, clearly.
        kernel = os.path.join(WORK, "Image")
        shutil.copyfile(f"{IMAGES}/Image", kernel)
        api.ok("PUT", "/boot-source", {"kernel_image_path": kernel})
        os.remove(kernel)
        os.mkfifo(kernel)
        status, reply = api.call("PUT", "/actions", {"action_type": "InstanceStart"})
        check(status == 400 and kernel in reply["fault_message"], f"kernel now a FIFO: {status} {reply}")
        check(api.info()["state"] == "NotStarted", "still NotStarted after a failed start")
        status, reply = api.call("PUT", "/drives/d0", {"drive_id": "d0", "path_on_host": "/nonexistent.img"})
        check(status == 204, "a drive is checked at start")
        status, reply = api.call("PATCH", "/drives/d0", {"size_mib": 10})
        check(status == 400 and "/nonexistent.img" in reply["fault_message"], f"resize missing file: {reply}")
        api.ok("DELETE", "/drives/d0")
        status, reply = api.call("DELETE", "/drives/d0")
        check(status == 404, "deleting a missing drive is 404")
        status, reply = api.call("PUT", "/machine-config", raw="x" * 70000)
        check(status == 413, f"a huge body is refused: {status}")
        boot(vm)
        before = api.ok("GET", "/vm/config")
        for method, path, body, want_status, want_text in ERRORS:
            status, reply = api.call(method, path.replace(" ", "%20"), raw=body if body else None)
            message = (reply or {}).get("fault_message", "")
            check(status == want_status and want_text in message,
                  f"{method} {path} {body!r}: got {status} {message!r}, want {want_status} ~{want_text!r}")
            print(f"{status} {method} {path}: {message}")
        check(api.ok("GET", "/vm/config") == before, "the configuration is unchanged")
        check(api.info()["state"] == "Running", "the VM is still running")
        check("7" in vm.run("echo $((3 + 4))", "E1"), "the guest still answers")
    except BaseException:
        vm.abandon()
        raise
    vm.close()


def config():
    """--config FILE and machine flags: the same configuration without the API."""
    import json
    cfg = {"machine-config": {"vcpu_count": 2, "mem_size_mib": 96},
           "boot-source": {"kernel_image_path": f"{IMAGES}/Image", "initrd_path": f"{IMAGES}/initramfs.cpio.gz",
                           "boot_args": BASE_ARGS + " nimbus.net=0 nimbus.poweroff=1"}}
    path = os.path.join(WORK, "vm.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    out = subprocess.run([NIMBUS, "vmm", "--config", path], capture_output=True, timeout=BOOT_TIMEOUT)
    text = out.stdout.decode(errors="replace")
    check(out.returncode == 0 and "nimbus-guest: ready" in text, f"--config boot: {out.returncode} {text[-500:]}")
    check("smp: Brought up 1 node, 2 CPUs" in text, "two vCPUs from the config file")
    # Machine flags, as `nimbus run` takes them.
    out = subprocess.run([NIMBUS, "vmm", "--cpus", "1", "--memory", "64M", "--kernel", f"{IMAGES}/Image",
                          "--initrd", f"{IMAGES}/initramfs.cpio.gz", "--append", cfg["boot-source"]["boot_args"]],
                         capture_output=True, timeout=BOOT_TIMEOUT)
    check(out.returncode == 0 and b"nimbus-guest: ready" in out.stdout, f"flags boot: {out.returncode}")
    # Bad input: a clear message and status 2.
    cfg["machine-config"]["vcpu_count"] = 99
    with open(path, "w") as f:
        json.dump(cfg, f)
    for argv, text in [(["--config", path], "vcpu_count"),
                       (["--config", "/nonexistent.json"], "cannot read"),
                       ([], "nothing to run"),
                       (["--restore", "/nonexistent.snap"], "cannot be read"),
                       (["--memory", "10M", "--kernel", "/x"], "--memory"),
                       (["--kernel", "/dev/zero"], "kernel '/dev/zero' is a character device"),
                       (["--initrd", "/dev/zero"], "initrd '/dev/zero' is a character device"),
                       (["--api-sock", os.path.join(WORK, "vm.json")], "not a socket")]:
        out = subprocess.run([NIMBUS, "vmm", *argv], capture_output=True, timeout=60)
        err = out.stderr.decode(errors="replace")
        check(out.returncode == 2 and text in err, f"nimbus vmm {argv}: {out.returncode} {err!r}")
        print(f"nimbus vmm {' '.join(argv)}: {err.strip()}")


if __name__ == "__main__":
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    {"lifecycle": lifecycle, "snapshot": snapshot, "errors": errors, "config": config}[MODE]()
    print(f"vmm {MODE}: ok")
