#!/usr/bin/python3
"""The control plane's store: etcd (a three-member cluster) vs SQLite, in the same run.

    bench/store_bench.py [--build build] [--launches 200] [--clients 4] [--per-client 50]

Needs Debian's etcd-server (scripts/install-deps.sh) and python3-boto3 (botocore signs the
requests). No VM boots: the hosts are fake (registered by heartbeat with a large capacity
and an API URL on a closed port, kept alive by a heartbeat every second), so every figure
is the control plane and its store alone. The same nimbus-cloud binary, once with its
embedded SQLite (cloud.db in a temporary directory) and once with --store etcd://A,B,C
on three etcd members on 127.0.0.1 (each with its own data dir, fsync on: etcd's
defaults), each started fresh.

Figures (per store; the ratio is etcd / SQLite):
  launch latency     RunInstances of one n1.tiny, --launches calls one after another,
                     each a raw SigV4-signed POST over a kept-alive connection, from the
                     request to the reply (the instance is `pending`: its placement claim,
                     private address and record are committed in one transaction); p50/p99
  launch throughput  --clients clients at once, each --per-client RunInstances of one:
                     instances accepted per second of wall time (every call must succeed)
  describe latency   DescribeInstances of one instance (InstanceId.1) with everything
                     above in the store; p50 over --launches calls
Appends rows for run-all.sh when $NIMBUS_BENCH_RESULTS is set (the peer column is SQLite).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "cloud"))
import cloud_bench as cb  # noqa: E402
import etcd_test  # noqa: E402


class Plane:
    """One nimbus-cloud with fake hosts kept alive by a heartbeat thread."""

    def __init__(self, build, workdir, name, store=None, hosts=4):
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        port = cb.free_port()
        self.endpoint = f"http://127.0.0.1:{port}"
        cred = os.path.join(self.dir, "credentials")
        with open(cred, "w") as f:
            f.write(f"{cb.KEY} {cb.SECRET}\n")
        args = [os.path.join(build, "nimbus-cloud"), "--state-dir", os.path.join(self.dir, "state"),
                "--listen", f"127.0.0.1:{port}", "--zones", "a", "--host-timeout", "5",
                "--public-prefix", "127.109", "--images", os.path.join(ROOT, "images"),
                "--credentials", cred, "--log-level", "warn"]
        if store:
            args += ["--store", store]
        self.log = open(os.path.join(self.dir, "cloud.log"), "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        cb.wait_for(f"the control plane ({name})", lambda: self.proc.poll() is None and json.loads(
            urllib.request.urlopen(self.endpoint + "/nimbus/v1/health", timeout=2).read()), timeout=60)
        with open(os.path.join(self.dir, "state", "join-token")) as f:
            self.token = f.read().strip()
        self.hosts = [f"fake{k}" for k in range(hosts)]
        self.closed = cb.free_port()
        self.stop = threading.Event()
        self.heartbeat()
        self.beater = threading.Thread(target=self.beat, daemon=True)
        self.beater.start()

    def operator(self, path, body):
        req = urllib.request.Request(self.endpoint + path, data=json.dumps(body).encode(), headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(req, timeout=10).read())

    def heartbeat(self):
        huge = 1 << 40
        for h in self.hosts:
            self.operator("/nimbus/v1/hosts/heartbeat", {
                "host_id": h, "zone": f"{cb.REGION}a", "api_url": f"http://127.0.0.1:{self.closed}",
                "api_token": "x", "vms": [], "images": [],
                "host": {"cpus": {"capacity": huge}, "memory_mib": {"capacity": huge},
                         "disk_mib": {"capacity": huge}, "vm_overhead_mib": 64}})

    def beat(self):
        while not self.stop.wait(1.0):
            try:
                self.heartbeat()
            except Exception as e:  # noqa: BLE001 - the next beat tries again
                cb.log(f"heartbeat: {e}")

    def close(self):
        self.stop.set()
        self.beater.join()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_one(raw, ami):
    reply = raw.send(*raw.prepare({"Action": "RunInstances", "ImageId": ami, "InstanceType": "n1.tiny",
                                   "MinCount": "1", "MaxCount": "1"}))
    start = reply.find(b"<instanceId>")
    if start < 0:
        raise RuntimeError(f"RunInstances replied without an instance: {reply[:300]!r}")
    return reply[start + 12:reply.find(b"</instanceId>", start)].decode()


def measure(plane, launches, clients, per_client):
    raw = cb.RawClient(plane.endpoint)
    images = raw.send(*raw.prepare({"Action": "DescribeImages"}))
    start = images.find(b"<imageId>")
    ami = images[start + 9:images.find(b"</imageId>", start)].decode()
    run_one(raw, ami)  # warm: the first launch also writes the default security group's use
    ids = []
    lat = []
    for _ in range(launches):
        t0 = time.perf_counter()
        ids.append(run_one(raw, ami))
        lat.append((time.perf_counter() - t0) * 1000)
    errors = []

    def client():
        c = cb.RawClient(plane.endpoint)
        try:
            for _ in range(per_client):
                run_one(c, ami)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} clients failed: {errors[0]}")
    rate = clients * per_client / wall
    desc = []
    for k in range(launches):
        body, headers = raw.prepare({"Action": "DescribeInstances", "InstanceId.1": ids[k % len(ids)]})
        t0 = time.perf_counter()
        reply = raw.send(body, headers)
        desc.append((time.perf_counter() - t0) * 1000)
        if ids[k % len(ids)].encode() not in reply:
            raise RuntimeError("DescribeInstances did not list the instance")
    raw.close()
    return {"p50": cb.pct(lat, 50), "p99": cb.pct(lat, 99), "rate": rate, "describe": cb.pct(desc, 50),
            "total": 1 + launches + clients * per_client}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--launches", type=int, default=200)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--per-client", type=int, default=50)
    a = ap.parse_args()
    if not etcd_test.ETCD or not etcd_test.ETCDCTL:
        print("etcd is not installed (scripts/install-deps.sh)", file=sys.stderr)
        return 1
    work = tempfile.mkdtemp(prefix="nimbus-store-bench-")
    results = {}
    try:
        plane = Plane(a.build, work, "sqlite")
        try:
            results["sqlite"] = measure(plane, a.launches, a.clients, a.per_client)
        finally:
            plane.close()
        etcd_dir = os.path.join(work, "etcd-cluster")
        os.makedirs(etcd_dir)
        etcd = etcd_test.Etcd(etcd_dir)
        try:
            cb.wait_for("the etcd cluster", etcd.healthy, timeout=30)
            plane = Plane(a.build, work, "etcd", store=etcd.store_url())
            try:
                results["etcd"] = measure(plane, a.launches, a.clients, a.per_client)
            finally:
                plane.close()
        finally:
            etcd.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    s, e = results["sqlite"], results["etcd"]
    for name, r in results.items():
        cb.log(f"{name}: RunInstances p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms; "
               f"{a.clients} clients: {r['rate']:.1f} launches/s; DescribeInstances (one id) p50 "
               f"{r['describe']:.1f} ms; {r['total']} instances in the store")
    rows = [("store: RunInstances p50 (etcd x3 vs SQLite)", e["p50"], s["p50"], "ms"),
            ("store: RunInstances p99 (etcd x3 vs SQLite)", e["p99"], s["p99"], "ms"),
            (f"store: RunInstances throughput, {a.clients} clients (etcd x3 vs SQLite)", e["rate"], s["rate"],
             "launches/s"),
            ("store: DescribeInstances one id p50 (etcd x3 vs SQLite)", e["describe"], s["describe"], "ms")]
    for name, ev, sv, unit in rows:
        print(f"{name}: {ev:.1f} vs {sv:.1f} {unit}, ratio {ev / sv:.2f}", flush=True)
        cb.record(name, f"{ev:.1f}", f"{sv:.1f}", unit, f"{ev / sv:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
