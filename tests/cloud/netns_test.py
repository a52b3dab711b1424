#!/usr/bin/env python3
"""Hosts on networks of their own (issue 18): every nimbusd in a network namespace.

usage: netns_test.py NIMBUS_CLOUD NIMBUS NIMBUSD WORKDIR netns

The control plane listens on a bridge (10.123.0.1); three hosts, each a nimbusd in its own
namespace with its own address (10.123.0.11-13) in two zones, join it over that network
with their own copy of the join token; their public pools (10.123.K.0/24) are routed to
them. Then, with the aws CLI and boto3:
  - three instances spread over the three hosts serve their pages at their public
    addresses, reached from outside the namespaces;
  - the hosts' tunnels (UDP, on their own addresses, peers from the control plane) carry
    the default VPC: the instance on h1 (subnet of zone a) pings the one on h3 (zone b's)
    and fetches 2 MiB from its httpd on its private address (sha256 compared; h1's tunnel
    counts the bytes), across the bridge;
  - a host's nimbusd killed: detected (not alive, its instance's status impaired) within
    10 s, nothing new placed there, its instance still serves (the VMM outlives nimbusd);
  - the host back: alive again, its instance re-adopted and ok.
"""
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as ct  # noqa: E402
from harness import host_of, status_of  # noqa: E402


def tunnel_ok(cloud, name):
    """Host NAME's tunnel is on its own address and its peers are the other hosts' tunnels."""
    t = cloud.host_api(name, "/v1/network")["tunnel"]
    others = sorted(h["tunnel"] for n, h in cloud.hosts.items() if n != name)
    return t["endpoint"] == cloud.hosts[name]["tunnel"] and sorted(p["endpoint"] for p in t["peers"]) == others


def main():
    ct.configure(*sys.argv[1:4], sys.argv[5])
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("nsenter"):
        print("netns: skipped (needs root, ip and nsenter)")
        sys.exit(77)
    cloud = ct.Cloud(zones="a,b", netns=True, tunnel=True)
    try:
        for name, zone in (("h1", "a"), ("h2", "a"), ("h3", "b")):
            cloud.add_host(name, zone, memory="1G")
        hosts = {h["id"]: h for h in cloud.operator("/nimbus/v1/hosts")["hosts"]}
        for name, h in cloud.hosts.items():
            assert hosts[name]["api_url"].startswith(f"http://{h['addr']}:"), hosts[name]
        # Each host's tunnel on its own address, its peers (the others) from the control plane.
        for name in cloud.hosts:
            ct.wait_for(f"{name}'s tunnel and peers", lambda name=name: tunnel_ok(cloud, name), timeout=15)
        ct.log("three hosts joined from their namespaces: " +
               ", ".join(f"{n} {h['addr']} (pool {hosts[n]['public_pool']})" for n, h in cloud.hosts.items()))

        aws = ct.Aws(cloud)
        ec2 = ct.boto3_client(cloud)
        ami = ct.default_image(aws)
        aws.run("authorize-security-group-ingress", "--group-name", "default", "--protocol", "tcp",
                "--port", "80", "--cidr", "0.0.0.0/0")
        ids = []
        for zone in ("a", "a", "b"):
            r = ec2.run_instances(ImageId=ami, InstanceType="n1.tiny", MinCount=1, MaxCount=1,
                                  Placement={"AvailabilityZone": f"{ct.REGION}{zone}"})
            ids.append(r["Instances"][0]["InstanceId"])
        ec2.get_waiter("instance_running").wait(InstanceIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
        desc = {i["InstanceId"]: i for i in ct.instances_of(ec2.describe_instances(InstanceIds=ids))}
        on = {}
        for iid, i in desc.items():
            on[iid] = host_of(cloud, iid)
            ip = i["PublicIpAddress"]
            assert ip.startswith(cloud.public_prefix + "."), ip
            page = ct.wait_for(f"http://{ip}/", lambda: ct.http_get(ip), timeout=60)
            assert "Nimbus" in page, page
        assert sorted(on.values()) == ["h1", "h2", "h3"], on
        ct.log("three instances, one per host, each serving at its public address: " +
               ", ".join(f"{iid} on {h}" for iid, h in on.items()))

        # The private network across hosts: h1's instance and h3's, over the tunnel.
        src = next(iid for iid, h in on.items() if h == "h3")
        dst = next(iid for iid, h in on.items() if h == "h1")
        src_ip, dst_ip = desc[src]["PrivateIpAddress"], desc[dst]["PrivateIpAddress"]
        assert src_ip.startswith("172.31.") and dst_ip.startswith("172.31."), (src_ip, dst_ip)
        assert src_ip in cloud.shell("h3", src, "ip -4 addr"), "its private address is on the guest"
        out = cloud.shell("h1", dst, f"ping -c 3 -W 5 {src_ip}")
        assert " 0% packet loss" in out, out
        want = cloud.shell("h3", src, "dd if=/dev/urandom of=/www/blob bs=64k count=32 2>/dev/null; "
                           "sha256sum /www/blob").split()[0]
        before = cloud.host_api("h1", "/v1/network")["tunnel"]["counters"]
        got = cloud.shell("h1", dst, f"wget -q -O - http://{src_ip}/blob | sha256sum", timeout=120).split()[0]
        assert got == want, (got, want)
        after = cloud.host_api("h1", "/v1/network")["tunnel"]["counters"]
        assert after["rx_bytes"] - before["rx_bytes"] >= 2 << 20, (before, after)  # it came through h1's tunnel
        ct.log(f"{dst} (h1, {dst_ip}) pinged {src} (h3, {src_ip}) and fetched 2 MiB from it over the "
               f"tunnel, sha256 {got[:16]}... matches")

        victim = next(iid for iid, h in on.items() if h == "h2")
        t0 = time.monotonic()
        cloud.kill_host("h2")
        ct.wait_for("h2 seen down", lambda: not cloud.host_view("h2").get("alive"), timeout=15, interval=0.2)
        ct.wait_for("its instance impaired", lambda: status_of(ec2, victim) == "impaired", timeout=15,
                    interval=0.2)
        took = time.monotonic() - t0
        assert took <= 10, took
        ct.log(f"h2's nimbusd killed: down and its instance impaired after {took:.1f} s")
        ip = desc[victim]["PublicIpAddress"]
        assert "Nimbus" in ct.http_get(ip), "the VMM outlives nimbusd"
        r = ec2.run_instances(ImageId=ami, InstanceType="n1.tiny", MinCount=1, MaxCount=1,
                              Placement={"AvailabilityZone": f"{ct.REGION}a"})
        extra = r["Instances"][0]["InstanceId"]
        hosts = {h["id"]: h for h in cloud.operator("/nimbus/v1/hosts")["hosts"]}
        assert extra in hosts["h1"]["instances"] and extra not in hosts["h2"]["instances"], hosts
        ct.log("a new instance in zone a went to h1, not to the dead h2")

        cloud.start_host("h2")
        ct.wait_for("its instance ok again", lambda: status_of(ec2, victim) == "ok", timeout=60, interval=0.5)
        state = ec2.describe_instances(InstanceIds=[victim])["Reservations"][0]["Instances"][0]["State"]["Name"]
        assert state == "running", state
        assert "Nimbus" in ct.http_get(ip)
        ct.log("h2 back: alive, its instance re-adopted (running, status ok, serving)")
        ec2.terminate_instances(InstanceIds=ids + [extra])
        ec2.get_waiter("instance_terminated").wait(InstanceIds=ids + [extra], WaiterConfig={"Delay": 1})
    except BaseException:
        cloud.dump_logs()
        raise
    finally:
        cloud.close()
    ct.log("netns: PASS")


if __name__ == "__main__":
    main()
