#!/usr/bin/python3
"""The private network across hosts (issue 18): latency and throughput between two
instances on two hosts (their switches linked by the hosts' UDP tunnel) vs two instances on
one host (its switch alone), same image, same run.

    bench/network_bench.py [--build build] [--repeats 3] [--pings 20] [--mib 8]

Needs root (nimbusd's cgroups, the namespaces). A control plane and two nimbusd hosts on
this machine (tests/cloud/harness.py, Cloud(netns=True, tunnel=True)): each host in a
network namespace of its own behind a bridge, its tunnel on its own address (10.125.0.11 and
.12, UDP 4789), so the tunnel's datagrams cross veth pairs and the bridge as they would
cross a wire. Three n1.tiny instances of the bundled AMI in the default VPC: A and B on
host 1 (zone a), C on host 2 (zone b).

Figures, from A, each --repeats times, alternating between the peers:
  latency     `ping -c PINGS -i 0.2 PEER` in A, the avg of busybox's round-trip line (ms):
              to C (tunnel) and to B (switch)
  throughput  `wget -O /dev/null http://PEER/blob` in A of a --mib MiB file of random bytes
              that PEER's busybox httpd serves; timed inside A from /proc/uptime (10 ms
              ticks), MB/s = MiB * 1.048576 / s; the file's sha256 checked after each run
              (not timed)
Prints the medians and the ratio tunnel/switch. Appends rows for run-all.sh when
$NIMBUS_BENCH_RESULTS is set (the "QEMU" column is the one-host switch figure).
Everything runs in emulated RISC-V guests: the guests' CPU, not the wire, bounds these.
"""
import argparse
import os
import re
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "cloud"))
import harness as h  # noqa: E402


def record(*row):
    out = os.environ.get("NIMBUS_BENCH_RESULTS")
    if out:
        with open(out, "a") as f:
            f.write("\t".join(str(x) for x in row) + "\n")


def ping_avg(cloud, host, vm, ip, count):
    out = cloud.shell(host, vm, f"ping -c {count} -i 0.2 -W 5 {ip}", timeout=60 + count)
    assert " 0% packet loss" in out, out
    m = re.search(r"round-trip min/avg/max = ([\d.]+)/([\d.]+)/([\d.]+) ms", out)
    assert m, out
    return float(m.group(2))


def fetch_seconds(cloud, host, vm, ip):
    out = cloud.shell(host, vm, f"a=$(cut -d' ' -f1 /proc/uptime); wget -q -O /dev/null http://{ip}/blob "
                      "&& b=$(cut -d' ' -f1 /proc/uptime) && echo $a $b", timeout=300)
    a, b = (float(x) for x in out.split())
    return b - a


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pings", type=int, default=20)
    ap.add_argument("--mib", type=int, default=8)
    a = ap.parse_args()
    os.environ.setdefault("NIMBUS_IMAGES", os.path.join(ROOT, "images"))
    h.configure(os.path.join(a.build, "nimbus-cloud"), os.path.join(a.build, "nimbus"),
                os.path.join(a.build, "nimbusd"), "bench-network")
    cloud = h.Cloud(zones="a,b", netns=True, tunnel=True)
    lat = {"tunnel": [], "switch": []}
    mbs = {"tunnel": [], "switch": []}
    try:
        cloud.add_host("h1", "a", memory="1G")
        cloud.add_host("h2", "b", memory="1G")
        aws = h.Aws(cloud)
        ec2 = h.boto3_client(cloud)
        ami = h.default_image(aws)
        ids = []
        for zone in ("a", "a", "b"):
            r = ec2.run_instances(ImageId=ami, InstanceType="n1.tiny", MinCount=1, MaxCount=1,
                                  Placement={"AvailabilityZone": f"{h.REGION}{zone}"})
            ids.append(r["Instances"][0]["InstanceId"])
        h.fast_wait(ec2, "instance_running", ids)
        desc = {i["InstanceId"]: i for i in h.instances_of(ec2.describe_instances(InstanceIds=ids))}
        hosts = {x["id"]: x for x in cloud.operator("/nimbus/v1/hosts")["hosts"]}
        A, B, C = ids
        assert A in hosts["h1"]["instances"] and B in hosts["h1"]["instances"] and C in hosts["h2"]["instances"], hosts
        peers = {"switch": ("h1", B, desc[B]["PrivateIpAddress"]), "tunnel": ("h2", C, desc[C]["PrivateIpAddress"])}
        sums = {}
        for kind, (host, vm, ip) in peers.items():
            h.wait_for(f"{vm} ready", lambda host=host, vm=vm: cloud.host_vm(host, vm)["ready"], timeout=120)
            sums[kind] = cloud.shell(host, vm, f"dd if=/dev/urandom of=/www/blob bs=64k count={a.mib * 16} "
                                     "2>/dev/null; sha256sum /www/blob", timeout=300).split()[0]
        h.log(f"A {A} (h1, {desc[A]['PrivateIpAddress']}); switch peer B {B} (h1, {peers['switch'][2]}); "
              f"tunnel peer C {C} (h2, {peers['tunnel'][2]}); {a.mib} MiB blobs on B and C")
        for kind, (_, _, ip) in peers.items():  # warm-up: ARP, page cache, httpd
            ping_avg(cloud, "h1", A, ip, 2)
            fetch_seconds(cloud, "h1", A, ip)
        for n in range(a.repeats):
            for kind, (_, _, ip) in peers.items():
                lat[kind].append(ping_avg(cloud, "h1", A, ip, a.pings))
                s = fetch_seconds(cloud, "h1", A, ip)
                mbs[kind].append(a.mib * 1.048576 / s)
                got = cloud.shell("h1", A, f"wget -q -O - http://{ip}/blob | sha256sum", timeout=300).split()[0]
                assert got == sums[kind], (kind, got, sums[kind])
                h.log(f"round {n + 1} {kind}: ping avg {lat[kind][-1]:.3f} ms, {a.mib} MiB in {s:.2f} s "
                      f"({mbs[kind][-1]:.2f} MB/s), sha256 ok")
        counters = cloud.host_api("h1", "/v1/network")["tunnel"]["counters"]
        ec2.terminate_instances(InstanceIds=ids)
        h.fast_wait(ec2, "instance_terminated", ids)
    except BaseException:
        cloud.dump_logs()
        raise
    finally:
        cloud.close()
    print("\nhost 1's tunnel counters: " + ", ".join(f"{k} {v}" for k, v in counters.items()))
    print(f"\nhosts in network namespaces behind a bridge (tunnel over veth + bridge); "
          f"{a.repeats} rounds, medians\n")
    print("| from instance A (host 1) to | two hosts (tunnel) | one host (switch) | unit | tunnel/switch |")
    print("| --- | --- | --- | --- | --- |")
    lt, ls = statistics.median(lat["tunnel"]), statistics.median(lat["switch"])
    print(f"| ping avg ({a.pings} pings) | {lt:.3f} ({', '.join(f'{x:.3f}' for x in lat['tunnel'])}) | "
          f"{ls:.3f} ({', '.join(f'{x:.3f}' for x in lat['switch'])}) | ms | {lt / ls:.2f} |")
    mt, ms = statistics.median(mbs["tunnel"]), statistics.median(mbs["switch"])
    print(f"| wget {a.mib} MiB | {mt:.2f} ({', '.join(f'{x:.2f}' for x in mbs['tunnel'])}) | "
          f"{ms:.2f} ({', '.join(f'{x:.2f}' for x in mbs['switch'])}) | MB/s | {mt / ms:.2f} |")
    record("network: ping avg, two hosts (tunnel) vs one host (switch)", f"{lt:.3f}", f"{ls:.3f}", "ms",
           f"{lt / ls:.2f}")
    record(f"network: wget {a.mib} MiB, two hosts (tunnel) vs one host (switch)", f"{mt:.2f}", f"{ms:.2f}",
           "MB/s", f"{mt / ms:.2f}")


if __name__ == "__main__":
    main()
