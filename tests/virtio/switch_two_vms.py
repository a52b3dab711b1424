#!/usr/bin/env python3
"""Two VMs on one host-local switch reach each other by IP and transfer a file.

    switch_two_vms.py NIMBUS IMAGES_DIR WORKDIR

Each VM boots its own copy of rootfs.ext4 with a static address on the switch; they ping
each other, then A downloads a file B serves over HTTP and both compute its sha256.
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "boot"))
from guest_session import READY, BOOT_TIMEOUT, Session  # noqa: E402


def boot(nimbus, disk, sock, ip, name):
    append = f"console=ttyS0 root=/dev/vda rw nimbus.hostname={name} nimbus.ip={ip}/24 nimbus.httpd=0"
    return Session([nimbus, "run", "--disk", disk, "--net", f"switch,path={sock}", "--append", append])


def main():
    nimbus, images, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    sock = os.path.join(work, "net0.sock")
    shutil.rmtree(sock + ".d", ignore_errors=True)
    disks = []
    for n in ("a", "b"):
        d = os.path.join(work, f"{n}.ext4")
        shutil.copyfile(os.path.join(images, "rootfs.ext4"), d)
        disks.append(d)
    a = boot(nimbus, disks[0], sock, "10.1.0.1", "vm-a")
    b = boot(nimbus, disks[1], sock, "10.1.0.2", "vm-b")
    try:
        a.expect(READY, BOOT_TIMEOUT)
        b.expect(READY, BOOT_TIMEOUT)
        out = a.run("ping -c 3 -W 5 10.1.0.2", "END1")
        assert "3 packets received" in out or " 0% packet loss" in out, out
        out = b.run("ping -c 2 -W 5 10.1.0.1", "END2")
        assert " 0% packet loss" in out, out
        # B serves 256 KiB of random data over HTTP; A downloads it; both hash it.
        b.run("mkdir -p /tmp/www && dd if=/dev/urandom of=/tmp/www/blob bs=1k count=256 2>/dev/null"
              " && httpd -p 8000 -h /tmp/www", "END3")
        sent = b.run("sha256sum /tmp/www/blob", "END4").split()[-2]
        a.run("wget -q -O /tmp/got http://10.1.0.2:8000/blob", "END5")
        got = a.run("sha256sum /tmp/got", "END6").split()[-2]
        assert sent == got and len(sent) == 64, f"sent {sent}, received {got}"
        for s in (a, b):
            s.send("poweroff")
            assert s.wait(60) == 0
    except Exception as e:
        for tag, s in (("A", a), ("B", b)):
            print(f"--- VM {tag} ---")
            s.abandon()
        print(f"\nFAIL: {e}")
        return 1
    print(f"PASS: file of 256 KiB crossed the switch intact (sha256 {sent[:16]}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
