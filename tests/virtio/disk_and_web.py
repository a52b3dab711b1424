#!/usr/bin/env python3
"""Virtio disks and the web-server image, end to end.

    disk_and_web.py NIMBUS IMAGES_DIR WORKDIR raw|qcow2|web|console

raw:   boot from a copy of rootfs.ext4, write a file, sync, power off; boot again and read
       it back; the file system checks clean.
qcow2: the same through a qcow2 overlay made by `qemu-img create -b base`; afterwards
       `qemu-img check` passes on the overlay and the base is byte-for-byte untouched.
web:   boot the web-server image with --net user,hostfwd=tcp:127.0.0.1:PORT-:80 and fetch
       its page from the host.
console: what the guest writes to the virtio console (/dev/hvc1; hvc0 is the SBI console) arrives in the --virtio-console file.
"""
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "boot"))
from guest_session import READY, BOOT_TIMEOUT, Session  # noqa: E402


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def boot(nimbus, disk, *extra):
    s = Session([nimbus, "run", "--disk", disk] + list(extra))
    s.expect(READY, BOOT_TIMEOUT)
    return s


def power_off(s):
    s.send("poweroff")
    status = s.wait(60)
    assert status == 0, f"nimbus exited with {status} after poweroff"


def persistence(nimbus, disk):
    s = boot(nimbus, disk)
    s.run("echo persisted-$((40 + 2)) > /root/note && sync", "END1")
    power_off(s)
    s = boot(nimbus, disk)
    out = s.run("cat /root/note", "END2")
    assert "persisted-42" in out, f"read back {out!r}"
    power_off(s)


def main():
    nimbus, images, work, mode = sys.argv[1:5]
    os.makedirs(work, exist_ok=True)
    base = os.path.join(images, "rootfs.ext4")
    s = None
    try:
        if mode == "raw":
            disk = os.path.join(work, "raw.ext4")
            shutil.copyfile(base, disk)
            persistence(nimbus, disk)
            fsck = subprocess.run(["e2fsck", "-fn", disk], capture_output=True, text=True)
            assert fsck.returncode == 0, fsck.stdout + fsck.stderr
        elif mode == "qcow2":
            base_copy = os.path.join(work, "base.ext4")
            shutil.copyfile(base, base_copy)
            before = sha256(base_copy)
            overlay = os.path.join(work, "overlay.qcow2")
            if os.path.exists(overlay):
                os.remove(overlay)
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base_copy, "-F", "raw", overlay],
                           check=True)
            persistence(nimbus, overlay)
            check = subprocess.run(["qemu-img", "check", overlay], capture_output=True, text=True)
            assert check.returncode == 0, check.stdout + check.stderr
            assert sha256(base_copy) == before, "the base image changed under its overlay"
        elif mode == "web":
            disk = os.path.join(work, "web.ext4")
            shutil.copyfile(base, disk)
            with socket.socket() as probe:  # a free local port
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            s = boot(nimbus, disk, "--net", f"user,hostfwd=tcp:127.0.0.1:{port}-:80")
            page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read().decode()
            assert "Hello from a Nimbus VM" in page, page
            power_off(s)
        elif mode == "console":
            log = os.path.join(work, "hvc1.log")
            if os.path.exists(log):
                os.remove(log)
            s = Session([nimbus, "run", "--virtio-console", log])
            s.expect(READY, BOOT_TIMEOUT)
            s.run("echo second-console-$((6 * 7)) > /dev/hvc1", "END1")
            power_off(s)
            with open(log) as f:
                text = f.read()
            assert "second-console-42" in text, f"hvc1 wrote {text!r}"
        else:
            raise ValueError(f"unknown mode {mode}")
    except Exception as e:
        if s is not None:
            s.abandon()
        print(f"\nFAIL ({mode}): {e}")
        return 1
    print(f"PASS ({mode})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
