#!/usr/bin/python3
"""What the control plane (nimbus-cloud, docs/cloud.md) adds, and what it costs.

    bench/cloud_bench.py [--build build] [--repeats N] [--instances 1000] [--describes 200]

Needs root (nimbusd's cgroups) and Debian's python3 with python3-boto3 (hence
/usr/bin/python3 above: another python3 first on PATH may lack boto3). Everything runs on
this machine: the control plane, its hosts and their VMs.

Figures:
  launch    RunInstances (n1.tiny: 1 vCPU, 128 MiB) until DescribeInstances, polled every
            100 ms, says `running` (the guest agent said ready), for 1 instance and for 10
            in one call (MinCount=MaxCount=10); a control plane with two nimbusd hosts.
            Peer: the same VMs (1 vCPU, 128 MiB, the bundled image) created directly on
            one nimbusd through its API (POST /v1/vms, all N at once), polled every 100 ms
            until running and ready. For 10, also directly on the cloud's own two nimbusd
            (5 each): one nimbusd booting 10 is slower than two booting 5 each on this
            machine, so that row isolates what the control plane adds. Median of
            --repeats; everything terminated/deleted and the hosts empty between rounds;
            cloud and direct rounds alternate.
  describe  DescribeInstances with --instances records in the store: a second control plane
            whose hosts are fake (registered by heartbeat with a large capacity and an API
            URL on a closed port, then silent, so they are down after --host-timeout 2 and
            the reconciler leaves their instances alone), filled by RunInstances of 40.
            --describes calls each of: everything, Filter instance-id (one random id),
            InstanceId.1 (one random id); as a raw HTTP POST signed with botocore's
            SigV4Auth over a kept-alive connection (the server verifies signatures:
            --credentials), and through boto3 (which also parses the XML; everything only
            --describes/10 times, each call takes most of a second: its p99 is the maximum).
            p50 and p99 (nearest rank).
            No peer on this machine (moto and LocalStack are not in Debian): ratio "-".
  memory    nimbus-cloud's VmRSS after start and with the instances after the describes;
            the store's size on disk (cloud.db + WAL).
Appends rows for run-all.sh when $NIMBUS_BENCH_RESULTS is set (peer column: the direct
nimbusd run for launches, "-" otherwise).
"""
import argparse
import base64
import concurrent.futures
import glob
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGION = "nimbus-west-1"
KEY, SECRET = "AKIDNIMBUSBENCH", "nimbus-bench-secret"
POLL_S = 0.1


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def record(*row):
    out = os.environ.get("NIMBUS_BENCH_RESULTS")
    if out:
        with open(out, "a") as f:
            f.write("\t".join(str(x) for x in row) + "\n")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(what, fn, timeout=60, interval=0.1):
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
    raise RuntimeError(f"timed out waiting for {what}: {last!r}")


def rss_kib(pid, field="VmRSS:"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def pct(values, p):
    """The p-th percentile, nearest rank."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))]


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class Nimbusd:
    """One nimbusd on this machine, optionally joined to a control plane."""

    def __init__(self, build, workdir, name, cloud=None, zone=None):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)  # the VMMs run under uids of their own
        self.sock = os.path.join(self.dir, "nimbusd.sock")
        args = [os.path.join(build, "nimbusd"), "--state-dir", os.path.join(self.dir, "state"),
                "--socket", self.sock, "--cgroup-parent", f"nimbus-bench-cloud-{os.getpid()}-{name}",
                "--memory", "3G", "--cpus", "3", "--reserved-memory", "0",
                "--images", os.path.join(ROOT, "images")]
        if cloud:
            token = os.path.join(self.dir, "token")
            with open(token, "w") as f:
                f.write(base64.b16encode(os.urandom(16)).decode() + "\n")
            os.chmod(token, 0o600)
            args += ["--listen", f"127.0.0.1:{free_port()}", "--token-file", token, "--cloud", cloud.endpoint,
                     "--zone", zone, "--join-token-file", cloud.token_file, "--host-id", name]
        self.log = open(os.path.join(self.dir, "nimbusd.log"), "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(f"nimbusd {name}", lambda: self.proc.poll() is None and os.path.exists(self.sock) and self.api("GET", "/v1/host"),
                 timeout=30)

    def api(self, method, path, body=None):
        c = UnixHTTPConnection(self.sock)
        try:
            c.request(method, path, body=json.dumps(body) if body is not None else None,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            if r.status >= 300:
                raise RuntimeError(f"nimbusd {method} {path}: {r.status} {data[:300]!r}")
            return json.loads(data) if data else {}
        finally:
            c.close()

    def vms(self):
        return self.api("GET", "/v1/vms")["vms"]

    def delete_all(self):
        for vm in self.vms():
            try:
                self.api("DELETE", "/v1/vms/" + vm["name"])
            except Exception as e:  # noqa: BLE001 - cleanup goes on
                log(f"delete {vm['name']}: {e}")

    def close(self):
        if self.proc.poll() is None:
            try:
                self.delete_all()
            finally:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()


class ControlPlane:
    def __init__(self, build, workdir, name, prefix, host_timeout, credentials=False):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        self.state = os.path.join(self.dir, "state")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        args = [os.path.join(build, "nimbus-cloud"), "--state-dir", self.state, "--listen",
                f"127.0.0.1:{self.port}", "--zones", "a", "--host-timeout", str(host_timeout),
                "--public-prefix", prefix, "--images", os.path.join(ROOT, "images"), "--log-level", "warn"]
        if credentials:
            path = os.path.join(self.dir, "credentials")
            with open(path, "w") as f:
                f.write(f"{KEY} {SECRET}\n")
            args += ["--credentials", path]
        self.log = open(os.path.join(self.dir, "cloud.log"), "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        wait_for("the control plane", lambda: self.proc.poll() is None and json.loads(
            urllib.request.urlopen(self.endpoint + "/nimbus/v1/health", timeout=2).read()), timeout=30)
        self.token_file = os.path.join(self.state, "join-token")
        with open(self.token_file) as f:
            self.token = f.read().strip()
        self.ec2 = boto3.client("ec2", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=KEY,
                                aws_secret_access_key=SECRET,
                                config=botocore.config.Config(retries={"max_attempts": 1}))

    def operator(self, path, body=None):
        req = urllib.request.Request(self.endpoint + path, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(req, timeout=10).read())

    def store_bytes(self):
        total = 0
        for suffix in ("", "-wal", "-shm"):
            p = os.path.join(self.state, "cloud.db" + suffix)
            if os.path.exists(p):
                total += os.path.getsize(p)
        return total

    def close(self):
        # First: its reconciler would otherwise restart what the hosts stop.
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def instances_of(desc):
    return [i for r in desc["Reservations"] for i in r["Instances"]]


# --- 1. launch to running ------------------------------------------------------------

def cloud_launch(cp, hosts, ami, n):
    t0 = time.monotonic()
    r = cp.ec2.run_instances(ImageId=ami, InstanceType="n1.tiny", MinCount=n, MaxCount=n)
    ids = [i["InstanceId"] for i in r["Instances"]]
    while True:
        states = [i["State"]["Name"] for i in instances_of(cp.ec2.describe_instances(InstanceIds=ids))]
        if all(s == "running" for s in states):
            elapsed = time.monotonic() - t0
            break
        if any(s in ("terminated", "shutting-down", "stopped") for s in states):
            raise RuntimeError(f"launch failed: {states}")
        if time.monotonic() - t0 > 120:
            raise RuntimeError(f"not running after 120 s: {states}")
        time.sleep(POLL_S)
    on = sorted({i["Placement"]["HostId"] for i in instances_of(cp.ec2.describe_instances(InstanceIds=ids))})
    cp.ec2.terminate_instances(InstanceIds=ids)

    # Back when no claim is left and the hosts (asked directly: their heartbeats come every
    # 2 s) hold no VM.
    def capacity_back():
        claims = sum(len(h["instances"]) for h in cp.operator("/nimbus/v1/hosts")["hosts"])
        return claims == 0 and all(not h.vms() for h in hosts)

    wait_for("the cloud's capacity to come back", capacity_back, timeout=120, interval=0.2)
    return elapsed, on


def direct_launch(targets, tag):
    """One VM per entry of targets (a nimbusd may appear several times), all created at once."""
    jobs = [(d, f"d{tag}-{k}") for k, d in enumerate(targets)]
    daemons = list({id(d): d for d in targets}.values())
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        list(pool.map(lambda j: j[0].api("POST", "/v1/vms", {"name": j[1], "image": "default", "cpus": 1,
                                                             "memory_mib": 128, "start": True}), jobs))
    names = {name for _, name in jobs}
    while True:
        vms = {v["name"]: v for d in daemons for v in d.vms() if v["name"] in names}
        if len(vms) == len(names) and all(v["state"] == "running" and v.get("ready") for v in vms.values()):
            elapsed = time.monotonic() - t0
            break
        if any(v["state"] in ("crashed", "stopped") for v in vms.values()):
            raise RuntimeError(f"direct launch failed: {list(vms.values())}")
        if time.monotonic() - t0 > 120:
            raise RuntimeError("direct VMs not ready after 120 s")
        time.sleep(POLL_S)
    for d in daemons:
        d.delete_all()
    wait_for("the direct hosts to be empty", lambda: all(not d.vms() for d in daemons), timeout=60)
    return elapsed


def runs(ts):
    return ", ".join(f"{t:.2f}" for t in ts)


def bench_launch(build, work, repeats):
    cp = ControlPlane(build, work, "cloud-launch", "127.107", host_timeout=4)
    hosts = []
    direct = None
    try:
        for name in ("h1", "h2"):
            hosts.append(Nimbusd(build, work, name, cloud=cp, zone=f"{REGION}a"))
        wait_for("both hosts alive", lambda: sum(h["alive"] for h in cp.operator("/nimbus/v1/hosts")["hosts"]) == 2,
                 timeout=30)
        direct = Nimbusd(build, work, "direct")
        ami = cp.ec2.describe_images()["Images"][0]["ImageId"]
        for n in (1, 10):
            tc, td, t2, placed = [], [], [], []
            for r in range(repeats):  # alternated, so a change in the machine's load hits both
                t, on = cloud_launch(cp, hosts, ami, n)
                tc.append(t)
                placed.append("+".join(on))
                td.append(direct_launch([direct] * n, f"{n}x{r}"))
                if n > 1:
                    # The same two nimbusd the cloud uses, driven directly, n/2 VMs each.
                    t2.append(direct_launch([hosts[k % 2] for k in range(n)], f"{n}y{r}"))
            mc, md = statistics.median(tc), statistics.median(td)
            what = "1 instance" if n == 1 else f"{n} at once"
            log(f"RunInstances to running, {what}: cloud (2 hosts) {mc:.2f} s, direct on one nimbusd {md:.2f} s, "
                f"ratio {mc / md:.2f}  (cloud runs: {runs(tc)} on {', '.join(placed)}; direct: {runs(td)})")
            record(f"cloud: RunInstances to running, {what} n1.tiny (peer: direct, one nimbusd)",
                   f"{mc:.2f}", f"{md:.2f}", "s", f"{mc / md:.2f}")
            if t2:
                m2 = statistics.median(t2)
                log(f"RunInstances to running, {what}: direct on the cloud's two nimbusd ({n // 2} each) {m2:.2f} s, "
                    f"ratio cloud/that {mc / m2:.2f}  (runs: {runs(t2)})")
                record(f"cloud: RunInstances to running, {what} n1.tiny (peer: direct, the same two nimbusd)",
                       f"{mc:.2f}", f"{m2:.2f}", "s", f"{mc / m2:.2f}")
    finally:
        cp.close()
        for h in hosts + ([direct] if direct else []):
            h.close()


# --- 2. DescribeInstances with many records, 3. memory ------------------------------------

class RawClient:
    """EC2 Query calls signed with botocore's SigV4Auth, over one kept-alive connection."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.netloc = urllib.parse.urlsplit(endpoint).netloc
        self.signer = botocore.auth.SigV4Auth(botocore.credentials.Credentials(KEY, SECRET), "ec2", REGION)
        self.conn = None

    def prepare(self, params):
        body = urllib.parse.urlencode({"Version": "2016-11-15", **params})
        req = botocore.awsrequest.AWSRequest(method="POST", url=self.endpoint + "/", data=body, headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        self.signer.add_auth(req)
        return body, dict(req.headers.items())

    def send(self, body, headers):
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.netloc, timeout=30)
            try:
                self.conn.request("POST", "/", body=body, headers=headers)
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                if r.status != 200:
                    raise RuntimeError(f"{r.status}: {data[:300]!r}")
                return data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closes a connection after its 100th request: open another.
                self.conn.close()
                self.conn = None
                if attempt:
                    raise

    def close(self):
        if self.conn:
            self.conn.close()


def fake_heartbeat(cp, hosts, closed_port):
    huge = 1 << 40
    for h in hosts:
        cp.operator("/nimbus/v1/hosts/heartbeat", {
            "host_id": h, "zone": f"{REGION}a", "api_url": f"http://127.0.0.1:{closed_port}", "api_token": "x",
            "host": {"cpus": {"capacity": huge}, "memory_mib": {"capacity": huge}, "disk_mib": {"capacity": huge},
                     "vm_overhead_mib": 64},
            "vms": [], "images": []})


def timed(fn, count):
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def bench_describe(build, work, count, describes):
    cp = ControlPlane(build, work, "cloud-describe", "127.108", host_timeout=2, credentials=True)
    try:
        time.sleep(0.5)
        rss_start = rss_kib(cp.proc.pid)
        store_start = cp.store_bytes()
        # A host's public pool holds 253 addresses: enough fake hosts for the instances.
        fakes = [f"fake{k}" for k in range(max(1, -(-count // 200)))]
        closed = free_port()  # nothing listens there: the reconciler's calls fail at once
        ami = cp.ec2.describe_images()["Images"][0]["ImageId"]
        t0 = time.monotonic()
        ids = []
        while len(ids) < count:
            n = min(40, count - len(ids))
            fake_heartbeat(cp, fakes, closed)
            r = cp.ec2.run_instances(ImageId=ami, InstanceType="n1.tiny", MinCount=n, MaxCount=n)
            ids += [i["InstanceId"] for i in r["Instances"]]
        fill_s = time.monotonic() - t0
        # Silent from now on: after --host-timeout the hosts are down and the reconciler waits.
        wait_for("the fake hosts to be down",
                 lambda: not any(h["alive"] for h in cp.operator("/nimbus/v1/hosts")["hosts"]), timeout=30)
        log(f"{len(ids)} instances on {len(fakes)} fake hosts in {fill_s:.1f} s "
            f"({-(-count // 40)} RunInstances of up to 40, each after a heartbeat)")

        raw = RawClient(cp.endpoint)
        body, headers = raw.prepare({"Action": "DescribeInstances"})
        reply = raw.send(body, headers)
        listed = reply.count(b"<instanceId>")
        if listed != count:
            raise RuntimeError(f"DescribeInstances listed {listed} instances, expected {count}")
        log(f"DescribeInstances of everything: {len(reply) / 1e6:.2f} MB of XML")
        rng = random.Random(16)
        results = {}

        def run(label, fn, n):
            ms = timed(fn, n)
            results[label] = ms
            log(f"DescribeInstances {label}: p50 {pct(ms, 50):.1f} ms, p99 {pct(ms, 99):.1f} ms "
                f"(n={n}, min {min(ms):.1f}, max {max(ms):.1f})")

        signed_all = [raw.prepare({"Action": "DescribeInstances"}) for _ in range(describes)]
        signed_filter = [raw.prepare({"Action": "DescribeInstances", "Filter.1.Name": "instance-id",
                                      "Filter.1.Value.1": rng.choice(ids)}) for _ in range(describes)]
        signed_id = [raw.prepare({"Action": "DescribeInstances", "InstanceId.1": rng.choice(ids)})
                     for _ in range(describes)]
        for label, signed in (("all, raw", signed_all), ("filter instance-id, raw", signed_filter),
                              ("InstanceId.1, raw", signed_id)):
            it = iter(signed)  # signed beforehand: the timer holds the round trip and the server
            run(label, lambda: raw.send(*next(it)), describes)
        raw.close()
        ec2 = cp.ec2
        got = len(instances_of(ec2.describe_instances()))
        if got != count:
            raise RuntimeError(f"boto3 listed {got} instances, expected {count}")
        n_boto_all = max(1, describes // 10)  # ~0.7 s each (botocore parses 1,000 instances)
        run("all, boto3", lambda: ec2.describe_instances(), n_boto_all)
        run("filter instance-id, boto3",
            lambda: ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": [rng.choice(ids)]}]), describes)

        rss_full = rss_kib(cp.proc.pid)
        hwm = rss_kib(cp.proc.pid, "VmHWM:")
        store_full = cp.store_bytes()
        log(f"nimbus-cloud VmRSS: {rss_start / 1024:.1f} MiB after start, {rss_full / 1024:.1f} MiB with {count} "
            f"instances after the describes (peak {hwm / 1024:.1f} MiB); store on disk {store_start / 1e6:.2f} MB "
            f"at start, {store_full / 1e6:.2f} MB with {count} instances (cloud.db + WAL)")

        for label, unit_label in (("all, raw", f"all {count}, raw SigV4 POST"),
                                  ("filter instance-id, raw", "Filter instance-id, raw SigV4 POST"),
                                  ("InstanceId.1, raw", "InstanceId.1, raw SigV4 POST"),
                                  ("all, boto3", f"all {count}, boto3"),
                                  ("filter instance-id, boto3", "Filter instance-id, boto3")):
            ms = results[label]
            for p in (50, 99):
                record(f"cloud: DescribeInstances p{p}, {unit_label}, {count} in store", f"{pct(ms, p):.1f}", "-",
                       "ms", "-")
        record("cloud: nimbus-cloud RSS after start", f"{rss_start / 1024:.1f}", "-", "MiB", "-")
        record(f"cloud: nimbus-cloud RSS with {count} instances", f"{rss_full / 1024:.1f}", "-", "MiB", "-")
        record(f"cloud: store on disk with {count} instances", f"{store_full / 1e6:.2f}", "-", "MB", "-")
    finally:
        cp.close()


def remove_cgroups(pattern):
    """The hosts' empty parent cgroups (nimbusd leaves them, so later runs reuse the name)."""
    for ctl in glob.glob("/sys/fs/cgroup/*/") + ["/sys/fs/cgroup/"]:
        for top in glob.glob(os.path.join(ctl, pattern)):
            for d, _, _ in sorted(os.walk(top), key=lambda x: -len(x[0])):
                try:
                    os.rmdir(d)
                except OSError:
                    pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--describes", type=int, default=200)
    ap.add_argument("--skip-launch", action="store_true", help="only the describe and memory figures")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    if os.geteuid() != 0:
        raise SystemExit("cloud_bench.py: needs root (nimbusd's cgroups)")
    work = tempfile.mkdtemp(prefix="nimbus-bench-cloud-")
    os.chmod(work, 0o755)
    t0 = time.monotonic()
    log(f"this machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} "
        "(the control plane, its hosts, the direct nimbusd and every VM share it)")
    try:
        if not a.skip_launch:
            bench_launch(build, work, a.repeats)
        bench_describe(build, work, a.instances, a.describes)
    finally:
        # VMMs outlive their nimbusd by design: any left under this run's directory go.
        subprocess.run(["pkill", "-9", "-f", "--", f"--api-sock {work}/"], capture_output=True)
        remove_cgroups(f"nimbus-bench-cloud-{os.getpid()}-*")
        shutil.rmtree(work, ignore_errors=True)
    log(f"done in {time.monotonic() - t0:.0f} s; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    main()
