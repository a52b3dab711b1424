#!/usr/bin/python3
"""Control plane failover and host-death detection (issue 18), measured over several rounds.

    bench/failover_bench.py [--build build] [--rounds 5] [--host-timeout 6]

Needs root (nimbusd's cgroups), Debian's etcd-server and python3-boto3. No VM boots. A
three-member etcd on 127.0.0.1, two nimbus-cloud replicas on it (--host-timeout as given;
6 s is nimbus-cloud's default) and one nimbusd joined to both (--cloud R1,R2):
  failover   the leading replica killed with SIGKILL, until the other's GET
             /nimbus/v1/health says it leads (its lease on /leader, TTL 3 s, then its next
             campaign); the killed one is started again (as a follower) for the next round
  detection  the nimbusd killed with SIGKILL, until the leader's operator view
             (GET /nimbus/v1/hosts) says the host is not alive (its liveness lease of
             --host-timeout ended, seen through the watch); the nimbusd is started again
             and seen alive before the next round
Each kill is timed from just after SIGKILL (the process gone), polled every 50 ms. Prints
every round, the median, min and max. No peer on this machine (ratio "-"). Appends rows
for run-all.sh when $NIMBUS_BENCH_RESULTS is set.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "cloud"))
import cloud_bench as cb  # noqa: E402
import harness  # noqa: E402
import replicas_test as rt  # noqa: E402
from etcd_test import ETCD, ETCDCTL, Etcd  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--host-timeout", type=int, default=6)
    a = ap.parse_args()
    if not ETCD or not ETCDCTL:
        print("etcd is not installed (scripts/install-deps.sh)", file=sys.stderr)
        return 1
    harness.PREFIXES.setdefault("failover-bench", "127.134")
    harness.configure(os.path.join(a.build, "nimbus-cloud"), os.path.join(a.build, "nimbus"),
                      os.path.join(a.build, "nimbusd"), "failover-bench")
    rt.HOST_TIMEOUT_S = a.host_timeout
    root = tempfile.mkdtemp(prefix="nimbus-failover-bench-")
    os.chmod(root, 0o755)
    os.makedirs(os.path.join(root, "etcd"))
    etcd = Etcd(os.path.join(root, "etcd"))
    replicas, host = [], None
    failover, detection = [], []
    try:
        cb.wait_for("the etcd cluster", etcd.healthy, timeout=30)
        token_file = os.path.join(root, "join-token")
        with open(token_file, "w") as f:
            f.write(os.urandom(24).hex() + "\n")
        os.chmod(token_file, 0o600)
        with open(token_file) as f:
            token = f.read().strip()
        credentials = os.path.join(root, "credentials")
        with open(credentials, "w") as f:
            f.write("AKIDNIMBUSBENCH nimbus-bench-secret\n")
        serial = [0]

        def start_replica():
            serial[0] += 1
            r = rt.Replica(root, f"r{serial[0]}", etcd.store_url(), token_file, credentials)
            cb.wait_for(f"replica {r.name}", lambda: r.proc.poll() is None and r.health(), timeout=30)
            replicas.append(r)
            return r

        def leaders():
            return [r for r in replicas if r.proc.poll() is None and r.health().get("leader")]

        start_replica()
        start_replica()
        cb.wait_for("a leader", lambda: len(leaders()) == 1, timeout=15)
        urls = ",".join(r.endpoint for r in replicas)  # hosts know the first two endpoints

        def host_alive():
            leader = leaders()[0]
            return next((h["alive"] for h in leader.operator("/nimbus/v1/hosts", token)["hosts"]
                         if h["id"] == "h1"), None)

        host = rt.Host(root, "h1", urls, token_file)
        cb.wait_for("h1 alive", host_alive, timeout=30)

        # Host-death detection first: the hosts know only the first two replicas' URLs.
        for k in range(a.rounds):
            time.sleep(1.0)  # a heartbeat or two in: the lease freshly renewed or not
            host.kill9()
            t0 = time.monotonic()
            cb.wait_for("h1 down", lambda: host_alive() is False, timeout=a.host_timeout + 30, interval=0.05)
            detection.append(time.monotonic() - t0)
            cb.log(f"round {k + 1}: host-death detection {detection[-1]:.2f} s")
            host.start()
            cb.wait_for("h1 alive again", host_alive, timeout=30)

        for k in range(a.rounds):
            old = leaders()[0]
            others = [r for r in replicas if r is not old and r.proc.poll() is None]
            old.kill9()
            t0 = time.monotonic()
            cb.wait_for("a new leader", lambda: any(r.health().get("leader") for r in others), timeout=30,
                        interval=0.05)
            failover.append(time.monotonic() - t0)
            cb.log(f"round {k + 1}: failover {failover[-1]:.2f} s ({old.name} killed)")
            start_replica()  # a follower for the next round
    finally:
        if host:
            host.close()
        for r in replicas:
            r.close()
        etcd.close()
        shutil.rmtree(root, ignore_errors=True)

    for name, values, what in (
            ("control plane failover (leader killed -9 to another leading)", failover, "3 s leader lease"),
            (f"host-death detection (nimbusd killed -9 to down, --host-timeout {a.host_timeout})", detection,
             f"{a.host_timeout} s liveness lease")):
        med = statistics.median(values)
        print(f"{name}: median {med:.2f} s, min {min(values):.2f}, max {max(values):.2f} "
              f"({len(values)} rounds; {what})", flush=True)
        cb.record(f"failover: {name}", f"{med:.2f}", "-", "s", "-")
    return 0


if __name__ == "__main__":
    sys.exit(main())
