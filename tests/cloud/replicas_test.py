#!/usr/bin/env python3
"""Two nimbus-cloud replicas on one real three-member etcd cluster, two nimbusd hosts that
know both (--cloud R1,R2), driven by boto3.

usage: replicas_test.py NIMBUS_CLOUD NIMBUS NIMBUSD WORK_DIR

  - exactly one replica leads (GET /nimbus/v1/health); both serve the whole API: an
    instance run through replica 1 is seen running through replica 2;
  - the leader killed (-9) with an instance just accepted: the other leads within a few
    seconds (the failover time is measured and printed), the accepted instance and every
    earlier one are still there and reach running (the reconciler moved), a new instance
    runs through the survivor, and the hosts stay alive (their heartbeats moved);
  - a host's nimbusd killed (-9): the survivor reports it down within 10 s (the detection
    time is measured and printed; its liveness lease in etcd ended) and its instances
    impaired; restarted, it is alive again.
Exit 77 (skipped) when etcd is not installed."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from etcd_test import ETCD, ETCDCTL, Etcd  # noqa: E402
from harness import REGION, boto3_client, free_port, log, wait_for  # noqa: E402

HOST_TIMEOUT_S = 5  # the hosts' liveness lease


class Replica:
    """One nimbus-cloud process on the shared store."""

    def __init__(self, root, name, store, token_file, credentials):
        self.name = name
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.args = [harness.CLOUD, "--store", store, "--state-dir", self.dir, "--listen",
                     f"127.0.0.1:{self.port}", "--zones", "a", "--host-timeout",
                     str(HOST_TIMEOUT_S), "--public-prefix", harness.PREFIX, "--join-token-file",
                     token_file, "--credentials", credentials, "--replica-id", name]
        self.log = open(os.path.join(self.dir, "cloud.log"), "ab")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT)

    def health(self):
        return json.loads(urllib.request.urlopen(self.endpoint + "/nimbus/v1/health",
                                                 timeout=2).read())

    def operator(self, path, token):
        req = urllib.request.Request(self.endpoint + path,
                                     headers={"Authorization": f"Bearer {token}"})
        return json.loads(urllib.request.urlopen(req, timeout=5).read())

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Host:
    """One nimbusd joined to every replica."""

    def __init__(self, root, name, cloud_urls, join_token_file):
        self.name = name
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)  # the VMMs run under uids of their own
        self.sock = os.path.join(self.dir, "nimbusd.sock")
        self.token = os.path.join(self.dir, "token")
        with open(self.token, "w") as f:
            f.write(os.urandom(16).hex() + "\n")
        os.chmod(self.token, 0o600)
        self.args = [harness.NIMBUSD, "--state-dir", os.path.join(self.dir, "state"), "--socket",
                     self.sock, "--listen", f"127.0.0.1:{free_port()}", "--token-file", self.token,
                     "--cgroup-parent", f"nimbus-replicas-test-{os.getpid()}-{name}", "--memory",
                     "1G", "--cpus", "2", "--reserved-memory", "0", "--cloud", cloud_urls,
                     "--zone", f"{REGION}a", "--join-token-file", join_token_file, "--host-id",
                     name]
        self.proc = None
        self.start()

    def start(self):
        self.log = open(os.path.join(self.dir, "nimbusd.log"), "ab")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def close(self):
        if self.proc and self.proc.poll() is None:
            # The VMs first (they outlive nimbusd by design), then the daemon.
            subprocess.run([harness.NIMBUS, "stop", "--all", "-f", "--host", self.sock],
                           capture_output=True, timeout=120)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def dump(path, n=40):
    try:
        with open(path, errors="replace") as f:
            lines = f.readlines()
        print(f"--- {path} (last {n} lines)\n" + "".join(lines[-n:]), flush=True)
    except OSError:
        pass


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    if not ETCD or not ETCDCTL:
        print("SKIPPED: etcd or etcdctl is not installed (scripts/install-deps.sh)")
        sys.exit(77)
    cloud_bin, nimbus, nimbusd, work = sys.argv[1:]
    harness.PREFIXES.setdefault("replicas", "127.133")
    harness.configure(cloud_bin, nimbus, nimbusd, "replicas")
    os.makedirs(work, exist_ok=True)
    # In /tmp, not under WORK_DIR: the hosts' VM sockets (HOST/state/vms/ID/console.sock)
    # must fit a unix socket path's 107 bytes wherever the checkout is (a fresh clone's
    # build/tests/cloud/replicas_work/... did not).
    root = tempfile.mkdtemp(prefix="nimbus-replicas-")
    os.chmod(root, 0o755)
    t_start = time.monotonic()
    os.makedirs(os.path.join(root, "etcd"))
    etcd = Etcd(os.path.join(root, "etcd"))
    replicas, hosts = [], {}
    ok = False
    try:
        wait_for("the etcd cluster", etcd.healthy, timeout=30)
        log(f"replicas: etcd up in {time.monotonic() - t_start:.1f}s")
        token_file = os.path.join(root, "join-token")
        with open(token_file, "w") as f:
            f.write(os.urandom(24).hex() + "\n")
        os.chmod(token_file, 0o600)
        with open(token_file) as f:
            token = f.read().strip()
        credentials = os.path.join(root, "credentials")
        with open(credentials, "w") as f:
            f.write("AKIDNIMBUSTEST nimbus-secret\n")
        # One after the other: the first creates the default VPC and group.
        for name in ("r1", "r2"):
            r = Replica(root, name, etcd.store_url(), token_file, credentials)
            replicas.append(r)
            wait_for(f"replica {name}", lambda: r.proc.poll() is None and r.health(), timeout=30)
        r1, r2 = replicas

        def leaders():
            return [r for r in replicas if r.proc.poll() is None and r.health().get("leader")]

        wait_for("a leader", lambda: len(leaders()) == 1, timeout=15)
        for r in replicas:
            h = r.health()
            assert h["replica"] == r.name and h["store"] == etcd.store_url(), h
        leader = leaders()[0]
        log(f"replicas: {leader.name} leads")
        time.sleep(1)
        assert leaders() == [leader], "two leaders"

        urls = f"{r1.endpoint},{r2.endpoint}"
        for name in ("h1", "h2"):
            hosts[name] = Host(root, name, urls, token_file)

        def host_alive(replica, name):
            for h in replica.operator("/nimbus/v1/hosts", token)["hosts"]:
                if h["id"] == name:
                    return h["alive"]
            return None

        for name in hosts:
            for r in replicas:
                wait_for(f"{name} alive on {r.name}", lambda: host_alive(r, name), timeout=30)
        log("replicas: both hosts alive as both replicas see them")

        ec2 = {r.name: boto3_client(r) for r in replicas}
        ami = ec2["r1"].describe_images()["Images"][0]["ImageId"]
        assert [i["ImageId"] for i in ec2["r2"].describe_images()["Images"]] == [ami]

        def run(replica):
            res = ec2[replica.name].run_instances(ImageId=ami, InstanceType="n1.tiny",
                                                  MinCount=1, MaxCount=1)
            return res["Instances"][0]["InstanceId"]

        def state(replica, iid):
            d = ec2[replica.name].describe_instances(InstanceIds=[iid])
            return d["Reservations"][0]["Instances"][0]["State"]["Name"]

        # Through replica 1, seen running through replica 2.
        t0 = time.monotonic()
        first = run(r1)
        wait_for(f"{first} running via r2", lambda: state(r2, first) == "running", timeout=90,
                 interval=0.5)
        log(f"replicas: {first} run via r1, running via r2 after {time.monotonic() - t0:.1f}s")

        # The leader killed right after it accepted an instance.
        survivor = r2 if leader is r1 else r1
        accepted = run(leader)
        leader.kill9()
        t_kill = time.monotonic()
        log(f"replicas: killed {leader.name} (the leader) right after it accepted {accepted}")
        wait_for(f"{survivor.name} to lead", lambda: survivor.health().get("leader"), timeout=20,
                 interval=0.05)
        failover = time.monotonic() - t_kill
        log(f"replicas: FAILOVER {failover:.2f}s ({survivor.name} leads)")
        assert failover < 10, failover
        second = run(survivor)
        for iid in (first, accepted, second):
            wait_for(f"{iid} running via {survivor.name}",
                     lambda: state(survivor, iid) == "running", timeout=90, interval=0.5)
        log(f"replicas: {accepted} (accepted before the kill) and {second} (after) running, "
            f"{time.monotonic() - t_kill:.1f}s after the kill")
        # The hosts' heartbeats moved: a whole liveness lease later they are still alive.
        time.sleep(max(0.0, HOST_TIMEOUT_S + 1 - (time.monotonic() - t_kill)))
        for name in hosts:
            assert host_alive(survivor, name), f"{name} is not alive after the failover"
            with open(os.path.join(hosts[name].dir, "nimbusd.log"), errors="replace") as f:
                assert f"go to {survivor.endpoint}" in f.read() or leader is r2, name
        log("replicas: both hosts alive through the survivor")

        # A host killed: down within 10 s, its instances impaired.
        on = {}
        for r in ec2[survivor.name].describe_instances()["Reservations"]:
            for i in r["Instances"]:
                on.setdefault(i["Placement"].get("HostId", ""), []).append(i["InstanceId"])
        victim = max(hosts, key=lambda h: len(on.get(h, [])))
        hosts[victim].kill9()
        t_host = time.monotonic()
        wait_for(f"{victim} down", lambda: host_alive(survivor, victim) is False, timeout=15,
                 interval=0.05)
        detect = time.monotonic() - t_host
        log(f"replicas: HOST-DOWN DETECTION {detect:.2f}s ({victim}, lease TTL {HOST_TIMEOUT_S}s)")
        assert detect < 10, detect
        if on.get(victim):
            st = ec2[survivor.name].describe_instance_status(InstanceIds=on[victim],
                                                            IncludeAllInstances=True)
            got = {s["InstanceId"]: s["InstanceStatus"]["Status"] for s in st["InstanceStatuses"]}
            assert set(got.values()) == {"impaired"}, got
            log(f"replicas: {len(got)} instance(s) on {victim} impaired")
        # Back: alive again (its VMs re-adopted), so that it can stop them at the end.
        hosts[victim].start()
        wait_for(f"{victim} alive again", lambda: host_alive(survivor, victim), timeout=30)
        log(f"replicas: PASS in {time.monotonic() - t_start:.1f}s")
        ok = True
    finally:
        if not ok:
            etcd.dump_logs()
            for r in replicas:
                dump(os.path.join(r.dir, "cloud.log"))
            for h in hosts.values():
                dump(os.path.join(h.dir, "nimbusd.log"))
        for h in hosts.values():
            h.close()
        for r in replicas:
            r.close()
        etcd.close()
        if ok:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
