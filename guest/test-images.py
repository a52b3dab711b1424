#!/usr/bin/env python3
"""Boot the committed guest images under QEMU and check they work.

Not run in CI (needs qemu-system-riscv64 and takes a minute or two). Checks:
  1. initramfs + nimbus.poweroff=1: the ready line appears and QEMU exits.
  2. initramfs, interactive: shell commands and the guest programs work.
  3. rootfs.ext4 on virtio-blk with user networking: the ready line appears,
     DHCP configured eth0, and the host fetches the web page through hostfwd.
  4. the guest agent on a virtio console (virtio-serial-device + virtconsole on a
     unix socket, /dev/hvc1 in the guest): "nimbus-agent: ready", ping/pong, an
     unknown line ignored, reboot (the guest comes back, the agent says ready
     again), then poweroff ends QEMU with status 0.
usage: guest/test-images.py [--smp N]
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BOOT = os.path.join(HERE, "qemu-boot.sh")
READY = "nimbus-guest: ready"


class Guest:
    def __init__(self, args, log_name):
        self.log = open(log_name, "w")
        self.proc = subprocess.Popen([BOOT] + args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.buf = ""
        self.pos = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        while True:
            data = self.proc.stdout.read1(4096)
            if not data:
                return
            text = data.decode("utf-8", "replace")
            self.log.write(text)
            self.log.flush()
            with self.lock:
                self.buf += text

    def expect(self, pattern, timeout=60):
        """Waits for a regex after the last match; returns the match."""
        deadline = time.time() + timeout
        rx = re.compile(pattern)
        while time.time() < deadline:
            with self.lock:
                m = rx.search(self.buf, self.pos)
                if m:
                    self.pos = m.end()
                    return m
            if self.proc.poll() is not None:
                time.sleep(0.2)
                with self.lock:
                    m = rx.search(self.buf, self.pos)
                if m:
                    self.pos = m.end()
                    return m
                raise RuntimeError(f"QEMU exited while waiting for {pattern!r}")
            time.sleep(0.05)
        raise RuntimeError(f"timeout waiting for {pattern!r}")

    def shell_ready(self):
        """Waits for the first prompt and widens the tty so that ash's line
        editor does not wrap (and mangle the echo of) long command lines."""
        self.expect(r"[#$] ", 30)
        self.run("stty cols 4000 rows 50")

    def run(self, cmd, timeout=60):
        """Runs a shell command on the console and returns its output."""
        tag = f"END{int(time.time() * 1000) % 100000}"
        self.proc.stdin.write(f"{cmd}; echo {tag}-$?-DONE\n".encode())
        self.proc.stdin.flush()
        m = self.expect(rf"\n{tag}-(\d+)-DONE", timeout)
        with self.lock:
            out = self.buf[:m.start()]
        # Output starts after the echoed command line.
        out = out[out.rfind(f"{tag}-$?-DONE") + len(f"{tag}-$?-DONE"):]
        return int(m.group(1)), out.strip()

    def wait_exit(self, timeout=60):
        return self.proc.wait(timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def check(cond, what):
    print(("PASS " if cond else "FAIL ") + what, flush=True)
    if not cond:
        global failures
        failures += 1


failures = 0


class AgentLink:
    """The host end of the guest agent's virtio console (a unix socket QEMU listens on)."""

    def __init__(self, path, proc, timeout=60):
        deadline = time.time() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.time() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        self.sock.settimeout(timeout)
        self.buf = b""

    def expect(self, line):
        """Waits for a whole line; returns what came before it."""
        want = line.encode() + b"\n"
        while want not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                raise EOFError(f"agent socket closed while waiting for {line!r}")
            self.buf += data
        i = self.buf.index(want)
        before, self.buf = self.buf[:i], self.buf[i + len(want):]
        return before

    def send(self, line):
        self.sock.sendall(line.encode() + b"\n")


def agent_check(smp, logdir):
    sockdir = tempfile.mkdtemp(prefix="nimbus-agent-")  # short path: AF_UNIX limit
    sock = os.path.join(sockdir, "agent.sock")
    # wait=on: QEMU starts the guest only once the socket is connected, so nothing is lost.
    g = Guest(["--no-net", "--smp", smp, "--", "-device", "virtio-serial-device",
               "-chardev", f"socket,id=agent,path={sock},server=on,wait=on",
               "-device", "virtconsole,chardev=agent"], os.path.join(logdir, "nimbus-agent.log"))
    try:
        link = AgentLink(sock, g.proc)
        link.expect("nimbus-agent: ready")
        g.expect(READY, 120)
        check(True, "agent: 'nimbus-agent: ready' on the virtio console (/dev/hvc1)")
        link.send("hello")            # not a command: ignored
        link.send("ping")
        check(link.expect("nimbus-agent: pong") == b"", "agent: ping -> pong (unknown line ignored)")
        link.sock.sendall(b"ping\r\n")  # CRLF line ends work too
        link.expect("nimbus-agent: pong")
        link.send("reboot")
        link.expect("nimbus-agent: reboot")
        g.expect(r"reboot: Restarting system", 60)
        g.expect(READY, 120)
        link.expect("nimbus-agent: ready")
        check(True, "agent: reboot -> the guest restarts and the agent comes back")
        link.send("poweroff")
        link.expect("nimbus-agent: poweroff")
        rc = g.wait_exit(60)
        check(rc == 0, f"agent: poweroff -> QEMU exited (rc {rc})")
    except Exception as e:  # noqa: BLE001
        check(False, f"agent: {e}")
    finally:
        g.kill()
        shutil.rmtree(sockdir, ignore_errors=True)


def main():
    smp = "2"
    if len(sys.argv) == 3 and sys.argv[1] == "--smp":
        smp = sys.argv[2]
    logdir = os.environ.get("NIMBUS_TEST_LOGS", "/tmp")

    # 1. initramfs boot-to-ready-and-power-off.
    t0 = time.time()
    g = Guest(["--poweroff", "--no-net", "--smp", smp], os.path.join(logdir, "nimbus-initramfs-poweroff.log"))
    try:
        g.expect(READY, 120)
        t_ready = time.time() - t0
        rc = g.wait_exit(60)
        check(rc == 0, f"initramfs: ready line after {t_ready:.1f} s, QEMU exited (rc {rc}) "
                       f"after {time.time() - t0:.1f} s")
    finally:
        g.kill()

    # 2. initramfs, interactive shell.
    port = free_port()
    g = Guest(["--smp", smp, "--port", str(port), "--append", "nimbus.hostname=testvm"],
              os.path.join(logdir, "nimbus-initramfs-shell.log"))
    try:
        g.expect(READY, 120)
        g.shell_ready()
        rc, out = g.run("echo hello-$((6*7))")
        check(rc == 0 and "hello-42" in out, "initramfs: shell arithmetic")
        rc, out = g.run("hostname")
        check(out.splitlines()[-1:] == ["testvm"], "initramfs: hostname from nimbus.hostname")
        rc, out = g.run("grep -c ^processor /proc/cpuinfo")
        check(out.splitlines()[-1:] == [smp], f"initramfs: {smp} harts online")
        rc, out = g.run("ls -l /dev/console && mount | grep -c -e devtmpfs -e devpts -e tmpfs")
        check(rc == 0, "initramfs: /dev/console and mounts")
        rc, out = g.run("ip -4 addr show eth0 && ip route && cat /etc/resolv.conf")
        check(rc == 0 and "10.0.2.15" in out and "default via 10.0.2.2" in out,
              "initramfs: eth0 configured by udhcpc (address, route, resolv.conf)")
        rc, out = g.run("sleep 5 & jobs; kill %1; wait; echo jobctl-ok")
        check("jobctl-ok" in out, "initramfs: job control")
        rc, out = g.run("echo abc | sha256sum; seq 1 5 | awk '{s+=$1} END {print s}'")
        check("edeaaff3f1774ad2888673770c6d64097e391bc362d7d6fb34982ddf0efd18cb" in out
              and "\n15" in "\n" + out, "initramfs: sha256sum / awk")
        rc, out = g.run("nimbus-cpubench 200000", 120)
        check(rc == 0 and "checksum=" in out, "initramfs: nimbus-cpubench: " + out.splitlines()[-1])
        rc, out = g.run("nimbus-cpubench int 200000 && nimbus-cpubench branch 20000", 120)
        check(rc == 0 and out.count("checksum=") == 2, "initramfs: nimbus-cpubench int / branch")
        rc, out = g.run("nimbus-fpbench 1", 120)
        check(rc == 0 and "nimbus-fpbench: scale=1" in out and "checksum=" in out,
              "initramfs: nimbus-fpbench: " + out.splitlines()[-1])
        rc, out = g.run("nimbus-membench 4 2", 120)
        check(rc == 0 and "memcpy:" in out, "initramfs: nimbus-membench")
        rc, out = g.run("nimbus-diskbench /tmp/bench 8 && rm /tmp/bench", 120)
        check(rc == 0 and "verify: ok" in out, "initramfs: nimbus-diskbench (tmpfs)")
        rc, out = g.run("nimbus-netbench server 5201 >/tmp/nb.log & sleep 1; "
                        "nimbus-netbench send 127.0.0.1 16 && nimbus-netbench recv 127.0.0.1 16; "
                        "r=$?; kill %1; exit_status=$r; (exit $r)", 120)
        check(rc == 0 and "sent 16.0 MiB" in out and "received 16.0 MiB" in out,
              "initramfs: nimbus-netbench over loopback")
        rc, out = g.run("free -m && ps && uname -a && dmesg | tail -n 3 && date")
        check(rc == 0 and "riscv64" in out and "Mem:" in out, "initramfs: free/ps/uname/dmesg/date")
        g.proc.stdin.write(b"poweroff -f\n")
        g.proc.stdin.flush()
        rc = g.wait_exit(60)
        check(rc == 0, "initramfs: poweroff -f stops QEMU")
    finally:
        g.kill()

    # 3. ext4 disk root + web server reachable from the host.
    port = free_port()
    g = Guest(["--disk", "--smp", smp, "--port", str(port)], os.path.join(logdir, "nimbus-disk.log"))
    try:
        g.expect(READY, 120)
        body = ""
        for _ in range(20):
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode()
                break
            except OSError:
                time.sleep(1)
        check("Hello from a Nimbus VM" in body, f"disk: host fetched the page via hostfwd port {port}")
        g.shell_ready()
        rc, out = g.run("mount | grep ' / '; cat /proc/cmdline")
        check("/dev/root on / type ext4" in out and "(rw" in out, "disk: root is ext4 on /dev/vda, rw")
        rc, out = g.run("nimbus-diskbench /root/bench 16 && rm /root/bench", 180)
        check(rc == 0 and "verify: ok" in out, "disk: nimbus-diskbench on ext4/virtio-blk")
        rc, out = g.run("cat /dev/hwrng | head -c 16 | wc -c")
        check(out.splitlines()[-1:] == ["16"], "disk: virtio-rng /dev/hwrng")
        g.proc.stdin.write(b"sync; poweroff -f\n")
        g.proc.stdin.flush()
        rc = g.wait_exit(60)
        check(rc == 0, "disk: poweroff -f stops QEMU")
    finally:
        g.kill()

    # 4. The guest agent on /dev/hvc1.
    agent_check(smp, logdir)

    print("all checks passed" if failures == 0 else f"{failures} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
