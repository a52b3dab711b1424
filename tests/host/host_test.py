#!/usr/bin/env python3
"""nimbusd and the `nimbus` host verbs, driven as a user would (docs/nimbusd.md).

usage: host_test.py NIMBUS NIMBUSD WORKDIR MODE
modes:
  story     five web-server VMs of different sizes: capacity goes down, each serves through
            its forwarded port, one VMM killed by hand (the others keep serving), resize,
            snapshot + restore, delete all and the capacity comes back
  capacity  refusals when vCPUs, memory or disk are exhausted (nothing changes)
  adopt     nimbusd killed with SIGKILL and restarted re-adopts running VMs; a VM killed
            while nimbusd was down is seen as crashed; restart policy on-failure
  limits    each VMM in its own cgroup with the CPU quota and memory limit of its size,
            under its own uid, with a seccomp filter; metrics
  errors    malformed API requests and CLI arguments: clear errors, nothing changed
  forwards  a running VM's forwards changed live (PUT /v1/vms/NAME/forwards): port 80 of a
            loopback "public" address reaches the guest's web server once forwarded, and
            is refused again once the forward is gone; a port in use is refused (409) and
            changes nothing; a sandboxed VMM's only capability is CAP_NET_BIND_SERVICE
  crash     nimbusd killed with SIGKILL while three creations run: after a restart every live
            VMM belongs to exactly one VM that shows it, no disk is open twice, the
            allocation matches, start never makes a second VMM; a stray process in a VM's
            cgroup blocks start (409) and is killed by stop and by recovery
  network   private networks across hosts: two nimbusd with --tunnel-listen on 127.0.0.1,
            peers set with PUT /v1/network/peers; VM a (host 1) and b (host 2) on VNI 100,
            c (host 2) on VNI 200 with an address of the same range: a pings b and fetches
            a 4 MiB file from b's web server with the same sha256; a cannot reach c, nor c
            a; garbage and strangers' datagrams are counted, not delivered; after host 1's
            nimbusd is killed and restarted the tunnel rejoins VNI 100 and a reaches b again;
            bad network values are 400 and change nothing
  migrate   live migration between two nimbusd on this machine (--listen 127.0.0.1 with a
            token): a VM with a forward on host A; a migration to a target that is not there
            (502) and one whose target VMM is killed as it waits (502) leave it running on A
            untouched and nothing on B; then it moves to B (`nimbus migrate web --to`): the
            same page through the same forward, the file it wrote, its uptime going on (no
            reboot), the same MACs, and A has no VM left
"""
import base64
import hashlib
import threading
import http.server
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vmm"))
from vmm_client import Api  # noqa: E402

NIMBUS, NIMBUSD, WORK, MODE = sys.argv[1:5]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def http_get(port, timeout=10):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as r:
        return r.read().decode()


def http_get_path(port, path, timeout=10):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=timeout) as r:
        return r.read().decode()


def wait_for(what, fn, timeout=60, interval=0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


class Host:
    """One nimbusd with its own state directory, socket and cgroup parent."""

    def __init__(self, name, *flags):
        # Under /tmp, searchable by others: the VMMs run under uids of their own (a build
        # directory inside a private checkout may not be reachable for them).
        self.dir = tempfile.mkdtemp(prefix=f"nimbus-host-{name}-")
        os.chmod(self.dir, 0o755)
        self.state = os.path.join(self.dir, "state")
        self.sock = os.path.join(self.dir, "nimbusd.sock")
        self.cgroup_parent = f"nimbus-test-{os.getpid()}-{name}"
        self.flags = list(flags)
        self.api = Api(self.sock)
        self.proc = None
        self.start()

    def start(self):
        self.log = open(os.path.join(self.dir, "nimbusd.log"), "ab")
        self.proc = subprocess.Popen([NIMBUSD, "--state-dir", self.state, "--socket", self.sock,
                                      "--cgroup-parent", self.cgroup_parent, *self.flags],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_for("nimbusd's socket", lambda: self.proc.poll() is None and os.path.exists(self.sock)
                 and self.api.call("GET", "/v1/host")[0] == 200, timeout=30)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def cli(self, *args, ok=True, timeout=300):
        r = subprocess.run([NIMBUS, *args, "--host", self.sock], capture_output=True, text=True, timeout=timeout)
        if ok and r.returncode != 0:
            raise AssertionError(f"nimbus {' '.join(args)} -> {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def json(self, *args):
        return json.loads(self.cli(*args, "--json").stdout)

    def shell(self, vm, command, timeout=60):
        r = self.cli("shell", vm, "-c", command, "--timeout", str(timeout), ok=False, timeout=timeout + 30)
        if r.returncode != 0:
            raise AssertionError(f"shell {vm} -c {command!r} -> {r.returncode}: {r.stdout!r} {r.stderr!r}")
        return r.stdout.strip()

    def vm(self, name):
        return self.api.ok("GET", f"/v1/vms/{name}")

    def host(self):
        return self.api.ok("GET", "/v1/host")

    def cleanup(self):
        try:
            if self.proc.poll() is None:
                self.cli("delete", "--all", "--force", ok=False, timeout=120)
        finally:
            self.stop()
            self.log.close()
            with open(os.path.join(self.dir, "nimbusd.log"), "rb") as f:
                sys.stdout.write("nimbusd.log:\n" + f.read().decode(errors="replace")[-3000:])
            shutil.rmtree(self.dir, ignore_errors=True)
            for d in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/memory",
                      "/sys/fs/cgroup"):
                for p in (os.path.join(d, self.cgroup_parent), os.path.join(d, self.cgroup_parent + "-tcp")):
                    if not os.path.isdir(p):
                        continue
                    for sub in os.listdir(p):
                        if os.path.isdir(os.path.join(p, sub)):
                            try:
                                os.rmdir(os.path.join(p, sub))
                            except OSError:
                                pass
                    try:
                        os.rmdir(p)
                    except OSError:
                        pass


class ConsoleSocket:
    """A VM's console over nimbusd's WebSocket route (GET /v1/vms/NAME/console), by hand:
    the handshake, masked frames out, binary frames in (pings answered)."""

    GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, sock_path, vm):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(60)
        self.s.connect(sock_path)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET /v1/vms/{vm}/console HTTP/1.1\r\nHost: nimbusd\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:  # a byte at a time: frames may follow the head
            b = self.s.recv(1)
            assert b, f"nimbusd closed during the handshake: {head!r}"
            head += b
        accept = base64.b64encode(hashlib.sha1((key + self.GUID).encode()).digest()).decode()
        assert head.startswith(b"HTTP/1.1 101") and accept.encode() in head, head
        self.seen = ""
        self.close_code = None

    def exact(self, n):
        data = b""
        while len(data) < n:
            b = self.s.recv(n - len(data))
            assert b, "the console's WebSocket closed without a close frame"
            data += b
        return data

    def send(self, data, opcode=1):
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
        self.s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self):
        b0, b1 = self.exact(2)
        n = b1 & 0x7F
        if n >= 126:
            n = int.from_bytes(self.exact(2 if n == 126 else 8), "big")
        payload = self.exact(n)
        op = b0 & 0x0F
        if op == 9:
            self.send(payload, 10)
        elif op == 8:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
        elif op in (0, 1, 2):
            self.seen += payload.decode(errors="replace")
        return op

    def wait_for(self, text, timeout=60):
        end = time.time() + timeout
        while text not in self.seen:
            assert time.time() < end and self.close_code is None, f"no {text!r} on the console: {self.seen[-500:]!r}"
            self.recv()

    def close(self):
        self.send((1000).to_bytes(2, "big"), 8)
        while self.close_code is None:
            self.recv()
        self.s.close()


def console_over_websocket(h, vm):
    """Two viewers of a VM's console over WebSocket: a command typed in one runs in the
    guest, both see its output; one leaving does not disturb the other."""
    a, b = ConsoleSocket(h.sock, vm), ConsoleSocket(h.sock, vm)
    a.send(b"\x15echo X$(uname -m)Y\n")
    a.wait_for("Xriscv64Y")
    b.wait_for("Xriscv64Y")
    a.close()
    b.send(b"\x15echo P$((6*7))Q\n")
    b.wait_for("P42Q")
    b.close()
    log(f"{vm}'s console over WebSocket: uname -m -> riscv64 seen by two viewers; one left, the other went on")


def vmm_pid(h, name):
    pid = h.vm(name)["pid"]
    assert pid, f"{name} has no VMM process: {h.vm(name)}"
    return pid


# ---- story --------------------------------------------------------------------------

def story():
    h = Host("story")
    try:
        before = h.json("host")
        log(f"host: {before['cpus']['available']} vCPUs, {before['memory_mib']['available']} MiB available")
        sizes = [("web1", 1, 128), ("web2", 2, 192), ("web3", 1, 256), ("web4", 2, 128), ("web5", 1, 160)]
        ports = free_ports(len(sizes))
        overhead = before["vm_overhead_mib"]
        prev = before
        for (name, cpus, mem), port in zip(sizes, ports):
            h.cli("launch", "--name", name, "--cpus", str(cpus), "--memory", f"{mem}M",
                  "--forward", f"127.0.0.1:{port}:80", "--no-wait")
            now = h.json("host")
            assert now["cpus"]["available"] == prev["cpus"]["available"] - cpus, (prev, now)
            assert now["memory_mib"]["available"] == prev["memory_mib"]["available"] - mem - overhead, (prev, now)
            prev = now
            log(f"launched {name}: {cpus} vCPU, {mem} MiB; host now {now['cpus']['available']} vCPUs, "
                f"{now['memory_mib']['available']} MiB available")
        for name, _, _ in sizes:
            wait_for(f"{name} ready", lambda n=name: h.vm(n)["state"] == "running" and h.vm(n)["ready"], timeout=240)
        table = h.cli("list").stdout
        log("nimbus list:\n" + table)
        for name, _, _ in sizes:
            assert name in table and "running" in table, table
        for (name, _, _), port in zip(sizes, ports):
            page = wait_for(f"{name}'s web page", lambda p=port: http_get(p), timeout=60)
            assert "Nimbus" in page, page
        log("all five serve through their forwarded ports")
        console_over_websocket(h, "web5")
        # Each guest sees its own size.
        assert h.shell("web2", "nproc") == "2"
        assert h.shell("web1", "nproc") == "1"
        # The host network: web1 reaches web2 by its address.
        web2_ip = h.vm("web2")["addresses"]["host"]
        out = h.shell("web1", f"wget -q -O - http://{web2_ip}/ | grep -c Nimbus")
        assert int(out) >= 1, out
        log(f"web1 fetched web2's page over the host network ({web2_ip})")

        # Kill one VMM by hand: it is marked crashed, the others keep serving.
        victim = vmm_pid(h, "web3")
        os.kill(victim, signal.SIGKILL)
        wait_for("web3 crashed", lambda: h.vm("web3")["state"] == "crashed", timeout=20)
        assert "signal 9" in h.vm("web3")["last_exit"], h.vm("web3")
        for (name, _, _), port in zip(sizes, ports):
            if name != "web3":
                assert "Nimbus" in http_get(port)
        info = h.cli("info", "web3").stdout
        assert "crashed" in info, info
        log("web3's VMM killed with SIGKILL: crashed; the four others still serve")
        h.cli("start", "web3")
        assert h.vm("web3")["state"] == "running"
        assert "Nimbus" in wait_for("web3 serving again", lambda: http_get(ports[2]), timeout=60)
        log("web3 started again and serves")

        # Resize web1: 2 vCPUs, 256 MiB, 64 MiB disk.
        h.cli("stop", "web1")
        assert h.vm("web1")["state"] == "stopped"
        h.cli("resize", "web1", "--cpus", "2", "--memory", "256M", "--disk", "64M")
        h.cli("start", "web1")
        assert h.shell("web1", "nproc") == "2"
        sectors = int(h.shell("web1", "cat /sys/block/vda/size"))
        assert sectors == 64 * 2048, sectors
        mem_kb = int(h.shell("web1", "grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2"))
        assert 200_000 < mem_kb <= 262_144, mem_kb
        log(f"web1 resized: 2 vCPUs, disk {sectors} sectors, MemTotal {mem_kb} kB")

        # Snapshot web4, change it, restore: the change is gone, the page is served.
        h.shell("web4", "echo before > /root/mark; sync")
        h.cli("snapshot", "web4", "--name", "s1")
        h.shell("web4", "echo after > /root/mark; sync")
        assert h.shell("web4", "cat /root/mark") == "after"
        h.cli("restore", "web4", "s1")
        assert h.shell("web4", "cat /root/mark") == "before"
        assert "Nimbus" in wait_for("web4 serving after restore", lambda: http_get(ports[3]), timeout=60)
        snaps = h.json("snapshots", "web4")
        assert [s["name"] for s in snaps["snapshots"]] == ["s1"], snaps
        log("web4 snapshot s1 taken, file changed, restored: the file is as it was")

        # Delete them all: the capacity comes back.
        h.cli("delete", "--all", "--force")
        after = h.json("host")
        for k in ("cpus", "memory_mib", "disk_mib"):
            assert after[k]["available"] == before[k]["available"], (k, before[k], after[k])
        assert after["vms"]["total"] == 0
        assert not any(os.scandir(os.path.join(h.state, "vms"))), os.listdir(os.path.join(h.state, "vms"))
        log("all deleted: capacity back to where it started")
    finally:
        h.cleanup()


# ---- capacity -----------------------------------------------------------------------

def capacity():
    # 1 CPU x 2 = 2 vCPUs; 1600 - 1024 reserved = 576 MiB; 100 MiB of disk.
    h = Host("capacity", "--cpus", "1", "--cpu-overcommit", "2", "--memory", "1600M", "--reserved-memory", "1024M",
             "--vm-overhead", "32M", "--disk", "110M", "--reserved-disk", "10M")
    try:
        host = h.host()
        assert host["cpus"]["capacity"] == 2 and host["memory_mib"]["capacity"] == 576, host
        h.cli("launch", "--name", "a", "--memory", "256M", "--no-wait")
        # memory: needs 288, 576 - 288 = 288 free -> fits exactly.
        h.cli("launch", "--name", "b", "--memory", "256M", "--no-wait")
        r = h.cli("launch", "--name", "c", "--memory", "64M", ok=False)
        assert r.returncode == 1, r
        assert "not enough memory" in r.stderr and "96 MiB" in r.stderr, r.stderr
        assert "not enough vCPUs" in r.stderr, r.stderr
        log("refused: " + r.stderr.strip())
        names = [v["name"] for v in h.api.ok("GET", "/v1/vms")["vms"]]
        assert names == ["a", "b"], names
        assert not os.path.exists(os.path.join(h.state, "vms", "c"))
        # A stopped VM gives its vCPUs and memory back; the disk stays allocated.
        h.cli("stop", "b", "--force")
        h.cli("launch", "--name", "c", "--memory", "64M", "--no-wait")
        r = h.cli("start", "b", ok=False)
        assert r.returncode == 1 and "not enough" in r.stderr, r
        # Disk: 100 MiB, three VMs of 32 MiB hold 96; a 10 MiB larger disk does not fit.
        r = h.cli("launch", "--name", "d", "--disk", "33M", "--no-start", ok=False)
        assert r.returncode == 1 and "not enough disk" in r.stderr, r.stderr
        log("refused: " + r.stderr.strip())
        h.cli("stop", "c", "--force")
        r = h.cli("resize", "c", "--disk", "40M", ok=False)
        assert r.returncode == 1 and "not enough disk" in r.stderr, r.stderr
        assert h.vm("c")["disk_mib"] == 32
        # Equal ports are refused before anything is made.
        port = free_ports(1)[0]
        h.cli("delete", "c", "b", "--force")
        h.cli("launch", "--name", "p1", "--memory", "64M", "--forward", f"127.0.0.1:{port}:80", "--no-start")
        r = h.cli("launch", "--name", "p2", "--memory", "64M", "--forward", f"127.0.0.1:{port}:80", "--no-start",
                  ok=False)
        assert r.returncode == 1 and "already forwarded" in r.stderr, r.stderr
        log("refused: " + r.stderr.strip())
    finally:
        h.cleanup()


# ---- adopt --------------------------------------------------------------------------

def adopt():
    h = Host("adopt")
    try:
        port = free_ports(1)[0]
        h.cli("launch", "--name", "keep", "--memory", "128M", "--forward", f"127.0.0.1:{port}:80")
        h.cli("launch", "--name", "lost", "--memory", "128M", "--no-wait")
        h.cli("launch", "--name", "phoenix", "--memory", "128M", "--restart", "on-failure")
        wait_for("lost ready", lambda: h.vm("lost")["ready"], timeout=240)
        keep_pid, lost_pid = vmm_pid(h, "keep"), vmm_pid(h, "lost")
        h.kill9()
        log("nimbusd killed with SIGKILL")
        assert "Nimbus" in http_get(port), "the VM must keep serving while nimbusd is down"
        os.kill(lost_pid, signal.SIGKILL)
        h.start()
        log("nimbusd restarted")
        keep = h.vm("keep")
        assert keep["pid"] == keep_pid and keep["state"] == "running" and keep["ready"], keep
        lost = wait_for("lost crashed", lambda: h.vm("lost") if h.vm("lost")["state"] == "crashed" else None)
        assert lost["pid"] is None, lost
        log(f"keep re-adopted (pid {keep_pid}); lost seen as crashed: {lost['last_exit']}")
        # The adopted VM is fully managed: pause, resume, graceful stop.
        h.cli("pause", "keep")
        assert h.vm("keep")["state"] == "paused"
        h.cli("resume", "keep")
        assert "Nimbus" in http_get(port)
        stop = h.json("stop", "keep")
        assert stop.get("graceful") is True, stop
        assert "poweroff" in h.vm("keep")["last_exit"], h.vm("keep")
        log("adopted VM paused, resumed and shut down gracefully: " + h.vm("keep")["last_exit"])
        # Restart policy: killed by hand, started again by nimbusd.
        old = vmm_pid(h, "phoenix")
        os.kill(old, signal.SIGKILL)
        vm = wait_for("phoenix restarted", lambda: h.vm("phoenix") if h.vm("phoenix")["restarts"] == 1
                      and h.vm("phoenix")["pid"] not in (None, old) else None, timeout=30)
        wait_for("phoenix ready", lambda: h.vm("phoenix")["ready"], timeout=240)
        log(f"phoenix (on-failure) restarted after SIGKILL: pid {old} -> {vm['pid']}")
        # A clean stop does not restart it.
        h.cli("stop", "phoenix")
        time.sleep(2)
        assert h.vm("phoenix")["state"] == "stopped" and h.vm("phoenix")["pid"] is None
    finally:
        h.cleanup()


# ---- limits -------------------------------------------------------------------------

def cgroup_file(path_candidates):
    for p in path_candidates:
        if os.path.exists(p):
            with open(p) as f:
                return f.read().strip()
    raise AssertionError(f"none of {path_candidates} exists")


def limits():
    h = Host("limits", "--vm-overhead", "48M")
    try:
        h.cli("launch", "--name", "small", "--cpus", "1", "--memory", "128M")
        h.cli("launch", "--name", "big", "--cpus", "2", "--memory", "192M")
        host = h.host()
        if host["cgroup"].startswith("none"):
            raise AssertionError(f"no usable cgroups on this host: {host['cgroup']}")
        for name, cpus, mem in (("small", 1, 128), ("big", 2, 192)):
            pid = vmm_pid(h, name)
            g = h.cgroup_parent + "/" + name
            if host["cgroup"].startswith("v2"):
                quota, period = cgroup_file([f"/sys/fs/cgroup/{g}/cpu.max"]).split()
                limit = cgroup_file([f"/sys/fs/cgroup/{g}/memory.max"])
                procs = cgroup_file([f"/sys/fs/cgroup/{g}/cgroup.procs"])
            else:
                cpu = [f"/sys/fs/cgroup/cpu/{g}", f"/sys/fs/cgroup/cpu,cpuacct/{g}"]
                quota = cgroup_file([c + "/cpu.cfs_quota_us" for c in cpu])
                period = cgroup_file([c + "/cpu.cfs_period_us" for c in cpu])
                limit = cgroup_file([f"/sys/fs/cgroup/memory/{g}/memory.limit_in_bytes"])
                procs = cgroup_file([f"/sys/fs/cgroup/memory/{g}/cgroup.procs"])
            assert int(quota) == cpus * int(period), (name, quota, period)
            assert int(limit) == (mem + 48) << 20, (name, limit)
            assert str(pid) in procs.split(), (name, pid, procs)
            with open(f"/proc/{pid}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
            uid = int(status["Uid"].split()[0])
            if host["sandbox"]:
                assert uid == h.vm(name)["uid"] and uid != 0, status["Uid"]
                assert status["Seccomp"].strip() == "2", status["Seccomp"]
                assert status["NoNewPrivs"].strip() == "1"
            log(f"{name}: quota {quota}/{period} us, memory limit {int(limit) >> 20} MiB, uid {uid}, "
                f"seccomp {status['Seccomp'].strip()}")
        # Metrics.
        conn_text = subprocess.run(["curl", "-s", "--unix-socket", h.sock, "http://nimbusd/metrics"],
                                   capture_output=True, text=True).stdout
        assert 'nimbus_vm_cpu_seconds_total{vm="small"}' in conn_text, conn_text[:2000]
        assert 'nimbus_host_vcpus{kind="allocated"} 3' in conn_text, conn_text[:2000]
        info = h.json("info", "big")
        assert info["usage"]["memory_mib"] > 0 and info["usage"]["net_rx_bytes"] > 0, info
    finally:
        h.cleanup()


# ---- forwards -----------------------------------------------------------------------

def forwards():
    address = "127.100.77.9"  # Linux routes all of 127/8 to lo: no setup needed

    def page():
        with urllib.request.urlopen(f"http://{address}/", timeout=5) as r:
            return r.read().decode()

    def refused():
        try:
            socket.create_connection((address, 80), timeout=5).close()
            return False
        except ConnectionRefusedError:
            return True

    h = Host("forwards")
    try:
        t0 = time.monotonic()
        h.api.ok("POST", "/v1/vms", {"name": "fw1", "memory_mib": 128})
        wait_for("fw1 ready", lambda: h.vm("fw1")["state"] == "running" and h.vm("fw1")["ready"], timeout=120)
        log(f"fw1 running after {time.monotonic() - t0:.1f} s")
        assert refused(), f"{address}:80 answers before any forward"
        forward = {"host_address": address, "host_port": 80, "guest_port": 80}
        vm = h.api.ok("PUT", "/v1/vms/fw1/forwards", {"forwards": [forward]})
        assert vm["forwards"] == [dict(forward, protocol="tcp")], vm["forwards"]
        assert "Nimbus" in wait_for("the page through the new forward", page, timeout=30)
        log(f"PUT forwards: http://{address}/ serves the guest's page")
        if h.host()["sandbox"]:
            with open(f"/proc/{vmm_pid(h, 'fw1')}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
            for cap_set in ("CapEff", "CapPrm", "CapAmb", "CapBnd"):
                assert status[cap_set].strip() == "0000000000000400", (cap_set, status[cap_set])
            log("the sandboxed VMM holds CAP_NET_BIND_SERVICE and nothing else")

        # A port some other program holds: 409, and the forward in place keeps working.
        busy = socket.socket()
        busy.bind((address, 81))
        busy.listen(1)
        try:
            status, reply = h.api.call("PUT", "/v1/vms/fw1/forwards",
                                       {"forwards": [forward, dict(forward, host_port=81)]})
            assert status == 409 and "in use" in reply["error"]["message"], (status, reply)
        finally:
            busy.close()
        assert h.vm("fw1")["forwards"] == [dict(forward, protocol="tcp")], h.vm("fw1")
        assert "Nimbus" in page()

        h.api.ok("PUT", "/v1/vms/fw1/forwards", {"forwards": []})
        assert h.vm("fw1")["forwards"] == []
        wait_for(f"{address}:80 refused", refused, timeout=10)
        log(f"forward removed: {address}:80 refuses connections")

        # Paused: the VMM listens at once, the guest answers once resumed; the VMM's own
        # configuration has the forward (a snapshot or a reboot keeps it).
        h.api.ok("POST", "/v1/vms/fw1/pause")
        h.api.ok("PUT", "/v1/vms/fw1/forwards", {"forwards": [forward]})
        assert not refused(), "no listener after PUT on a paused VM"
        vmm_api = Api(os.path.join(h.state, "vms", "fw1", "api.sock"))
        nic = vmm_api.ok("GET", "/vm/config")["network-interfaces"][0]
        assert nic["host_forwards"] == [dict(forward, protocol="tcp")], nic
        h.api.ok("POST", "/v1/vms/fw1/resume")
        assert "Nimbus" in wait_for("the page after resume", page, timeout=30)
        h.api.ok("PUT", "/v1/vms/fw1/forwards", {"forwards": []})
        wait_for(f"{address}:80 refused", refused, timeout=10)
        log(f"paused VM: forwarded at once, in the VMM's configuration, served after resume; "
            f"{time.monotonic() - t0:.1f} s in all")
    finally:
        h.cleanup()


# ---- crash --------------------------------------------------------------------------

def vmm_processes(h):
    """{pid: VM name} of every live `nimbus vmm` of this host's state dir (from /proc)."""
    out = {}
    vms_dir = os.path.join(h.state, "vms") + "/"
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
            with open(f"/proc/{d}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
        except OSError:
            continue
        if "vmm" in argv and "--id" in argv and any(a.startswith(vms_dir) for a in argv):
            out[int(d)] = argv[argv.index("--id") + 1]
    return out


def disk_holders(h):
    """{disk path: [pids]} of the VM disks open in any process."""
    out = {}
    vms_dir = os.path.join(h.state, "vms") + "/"
    for pid in vmm_processes(h):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        seen = set()
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith(vms_dir) and target.endswith("disk.qcow2") and target not in seen:
                seen.add(target)
                out.setdefault(target, []).append(pid)
    return out


def check_accounting(h, what):
    """Every live VMM is the pid of exactly one VM, no disk is open twice, the allocation is
    what the VMs with a process (or wanting to run) hold."""
    procs = vmm_processes(h)
    vms = h.api.ok("GET", "/v1/vms")["vms"]
    shown = {v["pid"]: v["name"] for v in vms if v["pid"]}
    for pid, name in procs.items():
        assert shown.get(pid) == name, f"{what}: VMM {pid} of {name} is not shown by its VM: {vms}"
    for pid, name in shown.items():
        assert procs.get(pid) == name, f"{what}: VM {name} shows pid {pid} that is no VMM of it: {procs}"
    names = list(procs.values())
    assert len(names) == len(set(names)), f"{what}: two VMMs for one VM: {procs}"
    for disk, pids in disk_holders(h).items():
        assert len(pids) == 1, f"{what}: {disk} is open in {pids}"
    host = h.host()
    holding = [v for v in vms if v["pid"] or v["desired_state"] in ("running", "paused")]
    want_cpus = sum(v["cpus"] for v in holding)
    want_mem = sum(v["memory_mib"] + host["vm_overhead_mib"] for v in holding)
    assert host["cpus"]["allocated"] == want_cpus, (what, host["cpus"], vms)
    assert host["memory_mib"]["allocated"] == want_mem, (what, host["memory_mib"], vms)
    assert host["disk_mib"]["allocated"] == sum(v["disk_mib"] for v in vms), (what, host["disk_mib"])
    for v in vms:
        assert v["state"] != "creating", (what, v)
    return procs, vms


def stray_in_cgroup(cgroup_dir):
    """A `sleep` (not our child: reparented) moved into a VM's cgroup, as an orphaned VMM would be."""
    os.makedirs(cgroup_dir, exist_ok=True)
    out = subprocess.run(["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True,
                         check=True).stdout
    pid = int(out.strip())
    with open(os.path.join(cgroup_dir, "cgroup.procs"), "w") as f:
        f.write(str(pid))
    return pid


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def crash():
    h = Host("crash")
    try:
        # Where the kill lands depends on the machine: several delays around the fork of the
        # VMMs (the log says how many VMMs the database did not record in each round).
        rounds = [0.01, 0.02, 0.03, 0.045, 0.07, 0.12]
        for rnd, delay in enumerate(rounds):
            names = [f"r{rnd}-vm{i}" for i in range(3)]
            replies = {}

            def create(name):
                try:
                    replies[name] = h.api.call("POST", "/v1/vms", {"name": name, "memory_mib": 128})[0]
                except Exception as e:  # noqa: BLE001 - nimbusd dies under the request
                    replies[name] = repr(e)

            threads = [threading.Thread(target=create, args=(n,)) for n in names]
            for t in threads:
                t.start()
            time.sleep(delay)
            h.kill9()
            for t in threads:
                t.join(timeout=60)
            orphans = vmm_processes(h)
            db = sqlite3.connect(f"file:{os.path.join(h.state, 'nimbus.db')}?mode=ro", uri=True)
            rows = dict(db.execute("SELECT name, pid FROM vms").fetchall())
            db.close()
            unrecorded = [n for p, n in orphans.items() if rows.get(n) != p]
            log(f"round {rnd}: nimbusd killed {int(delay * 1000)} ms into three creations; replies {replies}; "
                f"VMM processes alive while it is down: {sorted(orphans.items())}; the database has {rows}; "
                f"{len(unrecorded)} VMM(s) it does not record")
            h.start()
            procs, vms = check_accounting(h, f"round {rnd} after the restart")
            for pid in orphans:
                assert pid in procs or not pid_alive(pid), f"VMM {pid} is neither adopted nor killed"
            log(f"round {rnd} recovered: " + ", ".join(f"{v['name']} {v['state']} pid {v['pid']}" for v in vms
                                                        if v["name"] in names))
            # Start every one: those with a VMM say 409, the others get exactly one.
            for v in vms:
                if v["name"] not in names:
                    continue
                status, reply = h.api.call("POST", f"/v1/vms/{v['name']}/start")
                if v["pid"]:
                    assert status == 409, (v, status, reply)
                else:
                    assert status == 200, (v, status, reply)
            for v in vms:
                if v["name"] in names:
                    wait_for(f"{v['name']} up", lambda n=v["name"]: h.vm(n)["state"] in ("starting", "running"),
                             timeout=60)
            procs, vms = check_accounting(h, f"round {rnd} after start")
            for n in (v["name"] for v in vms if v["name"] in names):
                assert list(procs.values()).count(n) == 1, (n, procs)
            h.cli("delete", *[v["name"] for v in vms if v["name"] in names], "--force")
            assert not vmm_processes(h), vmm_processes(h)
            check_accounting(h, f"round {rnd} after delete")

        # A stray process in a stopped VM's cgroup: start refuses, stop removes it.
        h.cli("launch", "--name", "quiet", "--memory", "128M", "--no-start")
        cg = h.vm("quiet")["cgroup"]
        assert cg, h.vm("quiet")
        stray = stray_in_cgroup(cg)
        status, reply = h.api.call("POST", "/v1/vms/quiet/start")
        assert status == 409 and str(stray) in reply["error"]["message"], (status, reply)
        assert pid_alive(stray) and not vmm_processes(h)
        log("start refused while a process is in the VM's cgroup: " + reply["error"]["message"])
        h.cli("stop", "quiet", "--force")
        wait_for("the stray killed by stop", lambda: not pid_alive(stray), timeout=10)
        # Recovery: a stray that does not answer as a VMM is killed before anything starts.
        stray = stray_in_cgroup(cg)
        h.kill9()
        h.start()
        assert not pid_alive(stray), "recovery left a process in the cgroup of 'quiet'"
        assert h.vm("quiet")["pid"] is None
        h.cli("start", "quiet", "--no-wait")
        procs, _ = check_accounting(h, "quiet started")
        assert list(procs.values()) == ["quiet"], procs
        log("a stray in the cgroup of a stopped VM is killed by stop and by recovery; start then works")
        # The state database is nimbusd's alone.
        for f in os.listdir(h.state):
            if f.startswith("nimbus.db"):
                mode = os.stat(os.path.join(h.state, f)).st_mode & 0o777
                assert mode == 0o600, (f, oct(mode))
        h.cli("delete", "--all", "--force")
        assert not vmm_processes(h) and h.host()["cpus"]["allocated"] == 0
        assert not any(os.scandir(os.path.join(h.state, "vms")))
    finally:
        h.cleanup()


# ---- errors -------------------------------------------------------------------------

def errors():
    h = Host("errors")
    try:
        h.cli("launch", "--name", "ok", "--memory", "128M", "--no-start")
        before = h.api.ok("GET", "/v1/vms")
        bad = [
            ("POST", "/v1/vms", '{"name": "Bad_Name"}', 400, "name"),
            ("POST", "/v1/vms", '{"cpus": 0}', 400, "cpus"),
            ("POST", "/v1/vms", '{"cpus": 99}', 400, "cpus"),
            ("POST", "/v1/vms", '{"memory_mib": "lots"}', 400, "memory_mib"),
            ("POST", "/v1/vms", '{"memory_mib": 1}', 400, "memory_mib"),
            ("POST", "/v1/vms", '{"bogus": 1}', 400, "bogus"),
            ("POST", "/v1/vms", '{"forwards": [{"host_port": 0, "guest_port": 80}]}', 400, "host_port"),
            ("POST", "/v1/vms", '{"forwards": [{"host_port": 8080}]}', 400, "guest_port"),
            ("POST", "/v1/vms", '{"forwards": "8080:80"}', 400, "forwards"),
            ("POST", "/v1/vms", '{"forwards": [{"host_port": 1, "guest_port": 1, "protocol": "sctp"}]}', 400, "protocol"),
            ("POST", "/v1/vms", '{"restart_policy": "sometimes"}', 400, "restart_policy"),
            ("POST", "/v1/vms", '{"image": "nope"}', 404, "nope"),
            ("POST", "/v1/vms", '{"name": "ok"}', 409, "already exists"),
            ("POST", "/v1/vms", '{"disk_mib": 1}', 400, "smaller"),
            ("POST", "/v1/vms", "{not json", 400, "JSON"),
            ("POST", "/v1/vms", "[1, 2]", 400, "object"),
            ("GET", "/v1/vms/missing", None, 404, "missing"),
            ("GET", "/v1/nothing", None, 404, "no resource"),
            ("PUT", "/v1/vms", "{}", 405, "PUT"),
            ("POST", "/v1/vms/ok/explode", "{}", 404, "explode"),
            ("POST", "/v1/vms/ok/pause", "{}", 409, "stopped"),
            ("POST", "/v1/vms/ok/resize", "{}", 400, "at least one"),
            ("POST", "/v1/vms/ok/resize", '{"disk_mib": 8}', 400, "only grow"),
            ("POST", "/v1/vms/ok/stop", '{"timeout_s": -1}', 400, "timeout_s"),
            ("POST", "/v1/vms/ok/restore", '{"snapshot": "none"}', 404, "none"),
            ("POST", "/v1/vms/ok/snapshots", "{}", 409, "running"),
            ("DELETE", "/v1/vms/ok/snapshots/nope", None, 404, "nope"),
            ("POST", "/v1/vms", json.dumps({"name": "x" * 70000}), 413, ""),
        ]
        for method, url, body, want, text in bad:
            status, reply = h.api.call(method, url, raw=body)
            msg = json.dumps(reply)
            assert status == want, (method, url, body[:80] if body else body, status, reply)
            assert reply and "error" in reply and text in reply["error"]["message"], (url, body and body[:80], reply)
        assert h.api.ok("GET", "/v1/vms") == before
        log(f"{len(bad)} malformed API requests refused, nothing changed")
        cli_bad = [
            (["launch", "--cpus", "many"], "cpus"),
            (["launch", "--memory", "lots"], "memory"),
            (["launch", "--forward", "80"], "forward"),
            (["launch", "--forward", "99999:80"], "port"),
            (["launch", "--name", "UPPER"], "name"),
            (["launch", "--restart", "sometimes"], "restart"),
            (["resize", "ok"], "resize"),
            (["frobnicate"], ""),
        ]
        for args, text in cli_bad:
            r = h.cli(*args, ok=False)
            assert r.returncode == 2, (args, r.returncode, r.stderr)
            assert text in r.stderr.lower(), (args, r.stderr)
            assert len(r.stderr.strip().splitlines()) <= 3, (args, r.stderr)
        r = subprocess.run([NIMBUS, "list", "--host", os.path.join(h.dir, "no.sock")], capture_output=True, text=True)
        assert r.returncode == 1 and "nimbusd" in r.stderr, r
        assert h.api.ok("GET", "/v1/vms") == before
        log(f"{len(cli_bad)} bad command lines refused with exit status 2; unreachable daemon: {r.stderr.strip()}")
        # Bad daemon flags.
        for flags, text in ((["--cpu-overcommit", "0.5"], "overcommit"), (["--memory", "lots"], "memory"),
                            (["--listen", "127.0.0.1:0"], "token")):
            r = subprocess.run([NIMBUSD, "--state-dir", os.path.join(h.dir, "other"), "--socket",
                                os.path.join(h.dir, "other.sock"), *flags], capture_output=True, text=True, timeout=30)
            assert r.returncode == 2 and text in r.stderr, (flags, r)
        # The TCP API: a bearer token is required.
        token_file = os.path.join(h.dir, "token")
        with open(token_file, "w") as f:
            f.write("s3cret-token-0123456789\n")
        port = free_ports(1)[0]
        tcp = subprocess.Popen([NIMBUSD, "--state-dir", os.path.join(h.dir, "tcp"), "--socket",
                                os.path.join(h.dir, "tcp.sock"), "--listen", f"127.0.0.1:{port}", "--token-file",
                                token_file, "--cgroup-parent", h.cgroup_parent + "-tcp"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            def get(token=None):
                req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/host")
                if token:
                    req.add_header("Authorization", f"Bearer {token}")
                try:
                    with urllib.request.urlopen(req, timeout=5) as r:
                        return r.status, json.loads(r.read())
                except urllib.error.HTTPError as e:
                    return e.code, json.loads(e.read())
            status, body = wait_for("the TCP API", lambda: get("s3cret-token-0123456789"), timeout=30)
            assert status == 200 and "cpus" in body, (status, body)
            for bad_token in (None, "wrong", "s3cret-token-012345678"):
                status, body = get(bad_token)
                assert status == 401 and body["error"]["code"] == "Unauthorized", (bad_token, status, body)
            env = dict(os.environ, NIMBUS_TOKEN="s3cret-token-0123456789")
            r = subprocess.run([NIMBUS, "host", "--json", "--host", f"http://127.0.0.1:{port}"], capture_output=True,
                               text=True, env=env, timeout=30)
            assert r.returncode == 0 and json.loads(r.stdout)["cpus"]["capacity"] > 0, r
            env["NIMBUS_TOKEN"] = "wrong"
            r = subprocess.run([NIMBUS, "list", "--host", f"http://127.0.0.1:{port}"], capture_output=True, text=True,
                               env=env, timeout=30)
            assert r.returncode == 1 and "token" in r.stderr.lower(), r
            log("TCP API: 200 with the token, 401 without or with a wrong one; the CLI works over it")
        finally:
            tcp.terminate()
            tcp.wait()
        # A second nimbusd on the same socket is refused.
        r = subprocess.run([NIMBUSD, "--state-dir", os.path.join(h.dir, "other"), "--socket", h.sock],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and "another nimbusd" in r.stderr, r
    finally:
        h.cleanup()


# ---- network -------------------------------------------------------------------------

def network():
    p1, p2 = free_udp_ports(2)
    h1 = Host("net1", "--tunnel-listen", f"127.0.0.1:{p1}")
    h2 = None
    try:
        h2 = Host("net2", "--tunnel-listen", f"127.0.0.1:{p2}")
        t0 = time.monotonic()

        def peers():
            h1.api.ok("PUT", "/v1/network/peers", {"peers": [{"host": "net2", "endpoint": f"127.0.0.1:{p2}"}]})
            h2.api.ok("PUT", "/v1/network/peers", {"peers": [{"host": "net1", "endpoint": f"127.0.0.1:{p1}"}]})
        peers()
        net = h1.api.ok("GET", "/v1/network")["tunnel"]
        assert net["endpoint"] == f"127.0.0.1:{p1}" and net["peers"] == [{"host": "net2", "endpoint": f"127.0.0.1:{p2}"}], net

        # Bad network values: 400, nothing created.
        for bad in ({"vni": 0, "address": "172.31.0.10/20"}, {"vni": 100, "address": "172.31.0.10"},
                    {"vni": 100, "address": "10.0.2.30/24"}, {"vni": 100, "address": "172.31.0.10/20", "mtu": 70000},
                    {"vni": 100, "address": "172.31.0.10/20", "gateway": "172.31.99.1"}, "vpc-1"):
            status, body = h1.api.call("POST", "/v1/vms", {"name": "bad", "network": bad})
            assert status == 400 and body["error"]["code"] == "BadRequest", (bad, status, body)
        assert h1.api.ok("GET", "/v1/vms")["vms"] == []
        status, body = h1.api.call("PUT", "/v1/network/peers", {"peers": [{"host": "x", "endpoint": "127.0.0.1"}]})
        assert status == 400, (status, body)
        assert h1.api.ok("GET", "/v1/network")["tunnel"]["peers"] == net["peers"]

        def create(h, name, vni, address):
            return h.api.ok("POST", "/v1/vms", {"name": name, "memory_mib": 128,
                                                "network": {"vni": vni, "address": address, "gateway": "172.31.0.1",
                                                            "mtu": 1450}})
        create(h1, "a", 100, "172.31.0.10/20")
        create(h2, "b", 100, "172.31.0.11/20")
        create(h2, "c", 200, "172.31.0.12/20")
        for h, n in ((h1, "a"), (h2, "b"), (h2, "c")):
            wait_for(f"{n} ready", lambda h=h, n=n: h.vm(n)["ready"], timeout=240)
        log(f"a (host 1, VNI 100), b (host 2, VNI 100), c (host 2, VNI 200) ready in {time.monotonic() - t0:.1f} s")
        a = h1.vm("a")
        assert a["network"] == {"vni": 100, "address": "172.31.0.10/20", "gateway": "172.31.0.1", "mtu": 1450,
                                "mac": "52:54:ac:1f:00:0a"}, a["network"]
        assert a["addresses"]["private"] == "172.31.0.10" and a["addresses"]["host"] is None, a["addresses"]
        assert "172.31.0.10/20" in h1.shell("a", "ip -4 addr show dev eth1")
        assert "52:54:ac:1f:00:0a" in h1.shell("a", "cat /sys/class/net/eth1/address")
        assert h1.shell("a", "cat /sys/class/net/eth1/mtu") == "1450"  # virtio-net's MTU feature

        out = h1.shell("a", "ping -c 3 -W 5 172.31.0.11")
        assert " 0% packet loss" in out, out
        log("a pings b across the tunnel")
        h2.shell("b", "dd if=/dev/urandom of=/www/blob bs=64k count=64 2>/dev/null; sha256sum /www/blob")
        want = h2.shell("b", "sha256sum /www/blob").split()[0]
        t = time.monotonic()
        got = h1.shell("a", "wget -q -O - http://172.31.0.11/blob | sha256sum", timeout=120).split()[0]
        took = time.monotonic() - t
        assert got == want, (got, want)
        log(f"a fetched 4 MiB from b's httpd across the tunnel in {took:.1f} s, sha256 {got[:16]}... matches")

        def unreachable(h, vm, ip):
            r = h.cli("shell", vm, "-c", f"ping -c 2 -W 2 {ip}", "--timeout", "30", ok=False, timeout=60)
            return r.returncode != 0
        assert unreachable(h1, "a", "172.31.0.12"), "a reached c (another network)"
        assert unreachable(h2, "c", "172.31.0.10"), "c reached a (another network)"
        assert unreachable(h2, "c", "172.31.0.11"), "c reached b (another network, same host)"
        c1 = h1.api.ok("GET", "/v1/network")["tunnel"]["counters"]
        assert c1["rx_unknown_vni"] >= 1, c1  # c's ARP requests reached host 1 and were dropped there
        log(f"a cannot reach c nor c a or b (VNI 200); host 1 dropped {c1['rx_unknown_vni']} datagrams of VNI 200")

        # Strangers and garbage: counted, never delivered, nimbusd lives on.
        before = h1.api.ok("GET", "/v1/network")["tunnel"]["counters"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for data in (b"", b"\x08", b"\x08\0\0\0\0\0\x64\0" + b"\xff" * 60, os.urandom(1400)):
                s.sendto(data, ("127.0.0.1", p1))
        wait_for("stranger datagrams counted", lambda: h1.api.ok("GET", "/v1/network")["tunnel"]["counters"]
                 ["rx_unknown_sender"] >= before["rx_unknown_sender"] + 4, timeout=10)
        assert h1.api.ok("GET", "/v1/network")["tunnel"]["counters"]["rx_packets"] >= before["rx_packets"]
        assert h1.api.call("GET", "/v1/host")[0] == 200
        log("datagrams from a stranger were counted and dropped")

        # Host 1's nimbusd killed and started again: the tunnel joins VNI 100 again (the
        # peers are set again, as a control plane's next heartbeat would).
        h1.kill9()
        h1.log.close()
        h1.start()
        assert h1.api.ok("GET", "/v1/network")["tunnel"]["networks"] == [100]
        peers()
        out = h1.shell("a", "ping -c 2 -W 5 172.31.0.11")
        assert " 0% packet loss" in out, out
        log(f"host 1's nimbusd restarted: a reaches b again (test {time.monotonic() - t0:.1f} s)")
    finally:
        h1.cleanup()
        if h2:
            h2.cleanup()


def free_udp_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def migrate():
    tokdir = tempfile.mkdtemp(prefix="nimbus-migrate-")
    os.chmod(tokdir, 0o755)
    token = "migrate-token-0123456789"
    token_file = os.path.join(tokdir, "token")
    with open(token_file, "w") as f:
        f.write(token + "\n")
    pa, pb, fwd, nobody = free_ports(4)
    a = Host("miga", "--listen", f"127.0.0.1:{pa}", "--token-file", token_file)
    b = None
    try:
        b = Host("migb", "--listen", f"127.0.0.1:{pb}", "--token-file", token_file)
        t0 = time.monotonic()
        a.api.ok("POST", "/v1/vms", {"name": "web", "memory_mib": 128, "restart_policy": "on-failure",
                                     "forwards": [{"host_port": fwd, "guest_port": 80, "host_address": "127.0.0.1"}]})
        wait_for("web ready on A", lambda: a.vm("web")["ready"], timeout=240)
        page = wait_for("web's page", lambda: http_get(fwd), timeout=60)
        assert "Nimbus" in page, page
        # A file on its disk, and one in its RAM only (a tmpfs: gone if the guest rebooted),
        # both served by its web server.
        marker = a.shell("web", "echo disk-$$-$(date +%s) > /www/marker; sync; cat /www/marker")
        ram = a.shell("web", "mkdir -p /mnt/ram && mount -t tmpfs none /mnt/ram && "
                             "echo ram-$$-$(date +%s) > /mnt/ram/x && ln -sf /mnt/ram/x /www/ram && cat /mnt/ram/x")
        assert http_get_path(fwd, "marker").strip() == marker and http_get_path(fwd, "ram").strip() == ram
        log(f"web runs on A and serves on 127.0.0.1:{fwd} ({time.monotonic() - t0:.1f} s); {marker}, {ram}")
        before = a.vm("web")
        cap_before = a.host()["cpus"]["available"]

        def still_on_a(what):
            now = a.vm("web")
            assert now["state"] == "running" and now["pid"] == before["pid"], (what, now)
            assert now["migration"]["state"] == "failed", (what, now["migration"])
            assert "Nimbus" in http_get(fwd), what
            wait_for(f"nothing left on B after {what}", lambda: b.api.call("GET", "/v1/vms/web")[0] == 404
                     and b.api.ok("GET", "/v1/vms")["vms"] == [], timeout=30)

        # Bad requests: 400, nothing happens.
        for bad in ({}, {"target": "ftp://x"}, {"target": f"http://127.0.0.1:{pb}", "max_downtime_ms": 0},
                    {"target": f"http://127.0.0.1:{pb}", "what": 1}):
            status, body = a.api.call("POST", "/v1/vms/web/migrate", bad)
            assert status == 400 and body["error"]["code"] == "BadRequest", (bad, status, body)
        # A target that is not there.
        status, body = a.api.call("POST", "/v1/vms/web/migrate", {"target": f"http://127.0.0.1:{nobody}",
                                                                    "target_token": token})
        assert status == 502 and body["error"]["code"] == "BadGateway", (status, body)
        still_on_a("no target")
        # A wrong token: the target's 401 is its refusal.
        status, body = a.api.call("POST", "/v1/vms/web/migrate", {"target": f"http://127.0.0.1:{pb}",
                                                                    "target_token": "wrong"})
        assert status == 502 and body["error"]["code"] == "BadGateway", (status, body)
        still_on_a("wrong token")
        log("a target that is not there and a wrong token: 502, web untouched on A")

        # The target's VMM killed as soon as B shows the VM (while it starts or waits).
        result = {}

        def run():
            result["reply"] = a.api.call("POST", "/v1/vms/web/migrate", {"target": f"http://127.0.0.1:{pb}",
                                                                          "target_token": token})
        th = threading.Thread(target=run)
        th.start()
        incoming = wait_for("the incoming VM on B", lambda: (lambda st, v: v if st == 200 and v["state"] == "incoming"
                                                             and v["pid"] else None)(*b.api.call("GET", "/v1/vms/web")),
                            timeout=60, interval=0.02)
        os.kill(incoming["pid"], signal.SIGKILL)
        th.join(timeout=400)
        status, body = result["reply"]
        assert status == 502 and body["error"]["code"] == "BadGateway", (status, body)
        still_on_a("target VMM killed")
        log(f"target VMM killed as it starts: 502 ({body['error']['message'][:100]}), web untouched on A")

        # A target that cuts the connection: a fake nimbusd whose "VMM" accepts the stream
        # and closes it. The source's VMM fails, web keeps running on A, and the source
        # removes the target's incoming VM (DELETE .../incoming).
        cut = socket.socket()
        cut.bind(("127.0.0.1", 0))
        cut.listen(1)
        seen = []

        class FakeTarget(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n) or b"{}")
                seen.append(("POST", self.path, self.headers.get("Authorization"), body))
                if self.path == "/v1/vms/incoming":
                    self.reply(201, {"listen": f"tcp:127.0.0.1:{cut.getsockname()[1]}", "vm": {}})
                else:
                    self.reply(409, {"error": {"code": "Conflict", "message": "not arrived"}})

            def do_DELETE(self):
                seen.append(("DELETE", self.path, self.headers.get("Authorization"), None))
                self.reply(200, {"deleted": "web"})

        fake = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeTarget)
        threading.Thread(target=fake.serve_forever, daemon=True).start()

        def cutter():
            conn, _ = cut.accept()
            conn.recv(4096)
            conn.close()
        threading.Thread(target=cutter, daemon=True).start()
        status, body = a.api.call("POST", "/v1/vms/web/migrate", {"target": f"http://127.0.0.1:{fake.server_address[1]}",
                                                                    "target_token": token})
        fake.shutdown()
        cut.close()
        assert status == 502 and body["error"]["code"] == "BadGateway", (status, body)
        assert [(m, p) for m, p, _, _ in seen] == [("POST", "/v1/vms/incoming"), ("DELETE", "/v1/vms/web/incoming")], seen
        assert all(auth == f"Bearer {token}" for _, _, auth, _ in seen), seen
        inc = seen[0][3]
        assert inc["name"] == "web" and inc["macs"] == before["macs"] and inc["forwards"] == before["forwards"], inc
        assert inc["memory_mib"] == 128 and inc["slot"] == 2 and inc["restart_policy"] == "on-failure", inc
        now = a.vm("web")
        assert now["state"] == "running" and now["pid"] == before["pid"], now
        assert "Nimbus" in http_get(fwd)
        log(f"a target that cuts the stream: 502 ({body['error']['message'][:90]}), web untouched on A, "
            "the target told to remove its VM")

        # B on its own: an incoming VM whose source sends garbage is removed by B itself.
        inc = dict(inc, name="stray", forwards=[])
        status, got = b.api.call("POST", "/v1/vms/incoming", inc)
        assert status == 201 and got["vm"]["state"] == "incoming" and got["listen"].startswith("tcp:127.0.0.1:"), (status, got)
        assert b.api.call("POST", "/v1/vms/stray/start")[0] == 409  # busy while incoming
        status, body = b.api.call("POST", "/v1/vms/stray/incoming/commit")
        assert status == 409, (status, body)  # not arrived
        with socket.create_connection(("127.0.0.1", int(got["listen"].rsplit(":", 1)[1]))) as g:
            g.sendall(os.urandom(4096))
        wait_for("B removes the stray incoming VM", lambda: b.api.call("GET", "/v1/vms/stray")[0] == 404, timeout=30)
        assert not pid_alive(got["vm"]["pid"])
        log("B removed an incoming VM whose source sent garbage")

        # The migration, while the guest keeps rewriting 4 MiB of its RAM (dirty pages
        # every round).
        a.shell("web", "nohup sh -c 'while true; do dd if=/dev/urandom of=/mnt/ram/churn bs=64k count=64 "
                       "2>/dev/null; done' >/dev/null 2>&1 &")
        t = time.monotonic()
        r = a.json("migrate", "web", "--to", f"http://127.0.0.1:{pb}", "--to-token-file", token_file,
                   "--max-downtime", "200")  # POST /v1/vms/web/migrate
        took = time.monotonic() - t
        assert r["migrated"] == "web" and r["target"] == f"http://127.0.0.1:{pb}", r
        assert r["vm"]["state"] == "running" and r["ram_bytes_sent"] > 0 and r["total_ms"] > 0, r
        log(f"migrated in {took:.1f} s: total {r['total_ms']:.0f} ms, downtime {r['downtime_ms']:.1f} ms, "
            f"RAM {r['ram_bytes_sent'] >> 20} MiB, disk {r['disk_bytes_sent'] >> 10} KiB, {r['rounds']} rounds")
        # Gone from A.
        assert a.api.call("GET", "/v1/vms/web")[0] == 404
        assert a.api.ok("GET", "/v1/vms")["vms"] == []
        assert a.host()["cpus"]["available"] == cap_before + before["cpus"], a.host()
        assert not os.path.exists(os.path.join(a.state, "vms", "web"))
        assert not pid_alive(before["pid"]), "A's VMM still runs"
        # On B: the same VM, serving through the same forward, with its disk and its RAM.
        there = b.vm("web")
        assert there["state"] == "running" and there["macs"] == before["macs"], (there, before)
        assert there["forwards"] == before["forwards"] and there["addresses"] == before["addresses"], there
        assert there["migration"]["state"] == "completed", there["migration"]
        page = wait_for("web's page from B", lambda: http_get(fwd), timeout=30)
        assert "Nimbus" in page, page
        assert http_get_path(fwd, "marker").strip() == marker  # its disk
        assert http_get_path(fwd, "ram").strip() == ram  # its RAM: no reboot
        with open(os.path.join(b.state, "vms", "web", "console.log"), errors="replace") as f:
            assert "Linux version" not in f.read(), "the guest booted on B"
        # Its console (nimbus shell) works there, and its NIC kept the MAC.
        assert b.shell("web", "cat /mnt/ram/x") == ram
        assert b.shell("web", "cat /sys/class/net/eth1/address") == before["macs"]["host"]
        log(f"web runs on B: same page, {marker} from its disk, {ram} from its RAM, same MACs")
        # An ordinary VM there: stop and start work.
        b.api.ok("POST", "/v1/vms/web/stop", {"force": True})
        b.api.ok("POST", "/v1/vms/web/start")
        wait_for("web ready again on B", lambda: b.vm("web")["ready"], timeout=240)
        assert "Nimbus" in wait_for("web's page after a restart on B", lambda: http_get(fwd), timeout=60)
        log(f"restarted on B and serves again (test {time.monotonic() - t0:.1f} s)")
    finally:
        a.cleanup()
        if b:
            b.cleanup()
        shutil.rmtree(tokdir, ignore_errors=True)


{"story": story, "capacity": capacity, "adopt": adopt, "limits": limits, "errors": errors, "crash": crash,
 "forwards": forwards, "network": network, "migrate": migrate}[MODE]()
log(f"host.{MODE}: ok")
