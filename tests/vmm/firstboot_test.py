#!/usr/bin/env python3
"""The guest configures itself from the instance metadata service, as an EC2 instance.

    firstboot_test.py NIMBUS IMAGES_DIR WORKDIR [VMM FLAG...]

Boots images/rootfs.ext4 as the root disk, through a 64 MiB qcow2 overlay (as nimbusd's
VMs), under `nimbus vmm --metadata FILE --net user,hostfwd=tcp:127.0.0.1:PORT-:22` with
`nimbus.metadata=1` on the kernel command line and IMDSv2 required (http_tokens). The
metadata has an instance id, a local-hostname, an ed25519 public key made here with
ssh-keygen and `#!/bin/sh` user data. Checks: the console shows each nimbus-firstboot step
and the host key block; ssh (OpenSSH) logs in as root with that key, verifying the host
key the console printed, and reads /etc/hostname (the metadata's), the user data's output
and its page, and a root file system grown to ~64 MiB; another key is refused. Then the
metadata is replaced live with another instance id (an image made from another instance)
and nimbus-firstboot run again: a new host key, the new instance's user data runs; once
more: it does not run again; user data that is not a script is ignored; with the service
disabled the metadata steps are skipped. Last, the initramfs booted without
nimbus.metadata=1 runs none of it.
"""
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vmm_client import READY, BOOT_TIMEOUT, Api, Session, free_port  # noqa: E402

STEP = 60
HOSTNAME = "ip-10-0-7-9.nimbus.internal"
USER_DATA = """#!/bin/sh
echo "user data as $(id -u) for $(nimbus-metadata meta-data/instance-id)"
echo "<p>made by user data</p>" > /www/user-data.html
exit 7
"""


def ssh(key, port, known_hosts, command, timeout=STEP):
    argv = ["ssh", "-i", key, "-p", str(port), "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=30",
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "LogLevel=ERROR", "root@127.0.0.1", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def wait_for(s, needle, since):
    """`needle` in the console output from offset `since` on, now or within STEP seconds."""
    if needle not in s.out[since:]:
        s.expect(needle, STEP)


def main():
    nimbus, images, work = sys.argv[1:4]
    extra = sys.argv[4:]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    overlay = os.path.join(work, "disk.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b",
                    os.path.abspath(os.path.join(images, "rootfs.ext4")), "-F", "raw",
                    overlay, "64M"], check=True)
    key = os.path.join(work, "id_ed25519")
    other = os.path.join(work, "other_ed25519")
    for k in (key, other):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fb@test", "-f", k],
                       check=True)
    pub = open(key + ".pub").read().strip()
    data = {"meta-data": {"instance-id": "i-0firstboot0001", "local-hostname": HOSTNAME,
                          "public-keys": {"0=fb-key": {"openssh-key": pub}}},
            "user-data": base64.b64encode(USER_DATA.encode()).decode()}
    metadata = os.path.join(work, "metadata.json")
    with open(metadata, "w") as f:
        json.dump({"data": data, "http_tokens": "required"}, f)
    port = free_port()
    sock = os.path.join(work, "api.sock")
    append = "console=ttyS0 earlycon=sbi root=/dev/vda rw nimbus.hostname=before nimbus.metadata=1"
    s = Session([nimbus, "vmm", "--api-sock", sock, "--metadata", metadata,
                 "--disk", f"{overlay},format=qcow2", "--append", append,
                 "--net", f"user,hostfwd=tcp:127.0.0.1:{port}-:22",
                 "--exit-on-stop", "--log-level", "warn"] + extra)
    api = Api(sock)
    t0 = time.monotonic()
    try:
        out = s.expect(READY, BOOT_TIMEOUT).decode(errors="replace")
        boot = time.monotonic() - t0
        steps = ["nimbus-firstboot: instance id i-0firstboot0001",
                 "nimbus-firstboot: a new instance (previous: none)",
                 f"nimbus-firstboot: hostname {HOSTNAME}",
                 "nimbus-firstboot: authorized key for root: ssh-ed25519 fb@test",
                 "nimbus-firstboot: generated the SSH host key (ed25519)",
                 "-----BEGIN SSH HOST KEY FINGERPRINTS-----",
                 "-----BEGIN SSH HOST KEY KEYS-----",
                 "nimbus-firstboot: grew / on /dev/vda from 8192 to 16384 blocks",
                 "nimbus-firstboot: dropbear listening on port 22",
                 "nimbus-firstboot: running user data in the background"]
        pos = 0
        for step in steps:
            i = out.find(step, pos)
            assert i >= 0, f"console lacks (in order) {step!r}"
            pos = i
        m = re.search(r"nimbus-firstboot: starting \(uptime ([0-9.]+) s\).*"
                      r"nimbus-firstboot: done \(uptime ([0-9.]+) s\)", out, re.S)
        assert m, "no start/done lines"
        agent_s = float(m.group(2)) - float(m.group(1))
        fp = re.search(r"FINGERPRINTS-----\r?\n256 (SHA256:\S+) root@(\S+) \(ED25519\)", out)
        hostkey = re.search(r"KEYS-----\r?\n(ssh-ed25519 [A-Za-z0-9+/=]+) root@", out)
        assert fp and hostkey, "the host key block is not as EC2's"
        assert fp.group(2) == HOSTNAME, fp.group(2)
        wait_for(s, b"nimbus-firstboot: user data exited 7", 0)

        # The console's host key is the one the server shows: strict host key checking.
        known = os.path.join(work, "known_hosts")
        with open(known, "w") as f:
            f.write(f"[127.0.0.1]:{port} {hostkey.group(1)}\n")
        lf = subprocess.run(["ssh-keygen", "-l", "-f", known], capture_output=True, text=True)
        assert fp.group(1) in lf.stdout, f"fingerprint {fp.group(1)} vs {lf.stdout!r}"
        t1 = time.monotonic()
        r = ssh(key, port, known, "cat /etc/hostname; hostname; id -u; df -k / | tail -n 1; "
                "cat /var/log/user-data.log /www/user-data.html; "
                "ls -ld /root/.ssh /root/.ssh/authorized_keys")
        ssh_s = time.monotonic() - t1
        assert r.returncode == 0, f"ssh: {r.returncode} {r.stderr!r}"
        lines = r.stdout.splitlines()
        assert lines[0] == HOSTNAME and lines[1] == HOSTNAME, f"hostname: {r.stdout!r}"
        assert lines[2] == "0", r.stdout
        size_k = int(lines[3].split()[1])
        assert 60000 < size_k <= 65536, f"root fs not grown to ~64 MiB: {lines[3]!r}"
        assert "user data as 0 for i-0firstboot0001" in r.stdout, r.stdout
        assert "<p>made by user data</p>" in r.stdout, r.stdout
        assert re.search(r"^drwx------ .* /root/\.ssh$", r.stdout, re.M), r.stdout
        assert re.search(r"^-rw------- .* /root/\.ssh/authorized_keys$", r.stdout, re.M), r.stdout
        r = ssh(other, port, known, "true")
        assert r.returncode != 0, "a key that is not the instance's logged in"

        # An image made from this instance, launched as another: same disk, new id and key.
        pub2 = open(other + ".pub").read().strip()
        data["meta-data"]["instance-id"] = "i-0firstboot0002"
        data["meta-data"]["public-keys"] = {"0=other": {"openssh-key": pub2}}
        api.ok("PUT", "/mmds", data)
        since = len(s.out)
        out = s.run("nimbus-firstboot >/dev/null", "END1")
        for step in ["nimbus-firstboot: a new instance (previous: i-0firstboot0001)",
                     "nimbus-firstboot: generated the SSH host key (ed25519)",
                     "nimbus-firstboot: / is already full size",
                     "nimbus-firstboot: restarted dropbear with the new host key",
                     "nimbus-firstboot: running user data in the background"]:
            assert step in out, f"rerun: no {step!r}"
        fp2 = re.search(r"FINGERPRINTS-----\r?\n256 (SHA256:\S+) ", out)
        assert fp2 and fp2.group(1) != fp.group(1), "the host key did not change"
        hostkey2 = re.search(r"KEYS-----\r?\n(ssh-ed25519 [A-Za-z0-9+/=]+) root@", out)
        wait_for(s, b"nimbus-firstboot: user data exited 7", since)
        with open(known, "w") as f:
            f.write(f"[127.0.0.1]:{port} {hostkey2.group(1)}\n")
        r = ssh(key, port, known, "true")
        assert r.returncode != 0, "the previous instance's key still logs in"
        r = ssh(other, port, known, "cat /var/log/user-data.log")
        assert r.returncode == 0, f"ssh with the new key: {r.stderr!r}"
        assert "user data as 0 for i-0firstboot0002" in r.stdout, r.stdout
        out = s.run("nimbus-firstboot >/dev/null", "END2")
        assert "nimbus-firstboot: user data already ran for i-0firstboot0002" in out, out
        assert "generated the SSH host key" not in out, "the host key changed for the same id"
        # User data that is not a script (cloud-config) is left alone.
        data["meta-data"]["instance-id"] = "i-0firstboot0003"
        data["user-data"] = base64.b64encode(b"#cloud-config\nruncmd: [touch /x]\n").decode()
        api.ok("PUT", "/mmds", data)
        out = s.run("nimbus-firstboot >/dev/null", "END3")
        assert ("nimbus-firstboot: user data is not a script (it does not start with #!): "
                "ignored") in out, out
        # The service switched off: said, the metadata steps skipped, the rest still done.
        api.ok("PATCH", "/mmds/config", {"http_endpoint": "disabled"})
        out = s.run("nimbus-firstboot >/dev/null; cat /etc/hostname", "END4")
        assert "the metadata service refused" in out and "skipping the metadata steps" in out, out
        assert "nimbus-firstboot: dropbear already runs" in out, out
        assert f"\n{HOSTNAME}" in out and "hostname " + HOSTNAME not in out, out

        s.send("poweroff")
        status = s.wait(60)
        assert status == 0, f"nimbus vmm exited with {status}"

        # Without nimbus.metadata=1 nothing of this runs (the bundled initramfs, metadata
        # served all the same).
        plain = Session([nimbus, "vmm", "--metadata", metadata, "--net", "user",
                         "--exit-on-stop", "--log-level", "warn"] + extra)
        s = plain
        plain.expect(READY, BOOT_TIMEOUT)
        out = plain.run("pidof dropbear; ls /var/lib/nimbus; hostname", "END5")
        assert "nimbus-firstboot" not in plain.out.decode(errors="replace"), "firstboot ran"
        assert "No such file or directory" in out and out.rstrip().endswith("nimbus"), out
        plain.send("poweroff")
        assert plain.wait(60) == 0
        print(f"PASS (boot to ready {boot:.1f} s, nimbus-firstboot {agent_s:.2f} s of guest "
              f"uptime, first ssh {ssh_s:.1f} s, all {time.monotonic() - t0:.1f} s)")
        return 0
    except Exception as e:  # noqa: BLE001
        s.abandon(6000)
        print(f"\nFAIL: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
