#!/usr/bin/python3
"""The instance from inside (issue 17): how long until an instance is of use, and what a
metadata request costs the guest.

    bench/inside_bench.py [--build build] [--repeats 3] [--requests 200] [--qemu qemu-system-riscv64]

Needs root (nimbusd's cgroups), Debian's python3 with python3-boto3, Debian's OpenSSH client.
A control plane with one nimbusd host on this machine (tests/cloud/harness.py).

Figures (median of --repeats; each instance terminated before the next):
  launch    RunInstances (n1.tiny, the bundled AMI, a key pair, user data that writes the web
            page) until: DescribeInstances says running (polled every 100 ms); `ssh -i key
            root@PUBLIC_IP true` succeeds (tried every 100 ms); the public address serves the
            page the user data wrote (polled every 100 ms).
            Peer: qemu-system-riscv64 booting the same kernel and rootfs.ext4 (virtio-blk,
            snapshot=on, no network, no first-boot agent) from process start to the
            "nimbus-guest: ready" line: a bare VM boot with nothing of the cloud around it.
  metadata  from inside the guest (over ssh), --requests requests in a shell loop, time from
            /proc/uptime, per request: `nimbus-metadata -1 meta-data/instance-id` (IMDSv1, one
            HTTP request), `nimbus-metadata meta-data/instance-id` (IMDSv2: a token PUT, then the
            GET) and, as the peer, the same client against the guest's own busybox httpd on
            127.0.0.1 (`-1 -a 127.0.0.1:80`, a 404: the same process and HTTP work without the
            VMM's network path).
Appends rows for run-all.sh when $NIMBUS_BENCH_RESULTS is set.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "cloud"))
import harness as h  # noqa: E402

SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"]


def record(*row):
    out = os.environ.get("NIMBUS_BENCH_RESULTS")
    if out:
        with open(out, "a") as f:
            f.write("\t".join(str(x) for x in row) + "\n")


def ssh(key, ip, command, timeout=120):
    return subprocess.run(["ssh", "-i", key, *SSH_OPTS, f"root@{ip}", command], capture_output=True,
                          text=True, timeout=timeout)


def launch_once(aws, ec2, ami, key, work, n):
    stamp = f"bench page {n} {time.time_ns()}"
    user_data = f"#!/bin/sh\necho '{stamp}' > /www/index.html\n"
    t0 = time.monotonic()
    iid = ec2.run_instances(ImageId=ami, InstanceType="n1.tiny", MinCount=1, MaxCount=1, KeyName="bench",
                            UserData=user_data)["Instances"][0]["InstanceId"]
    marks = {}
    ip = None
    while len(marks) < 3:
        now = time.monotonic() - t0
        if now > 300:
            raise RuntimeError(f"{iid}: not ready after 300 s: {marks}")
        if "running" not in marks:
            inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
            if inst["State"]["Name"] == "running":
                marks["running"] = now
                ip = inst["PublicIpAddress"]
        if ip and "ssh" not in marks:
            if ssh(key, ip, "true", timeout=30).returncode == 0:
                marks["ssh"] = time.monotonic() - t0
        if ip and "user data" not in marks:
            try:
                if stamp in h.http_get(ip, timeout=2):
                    marks["user data"] = time.monotonic() - t0
            except Exception:  # noqa: BLE001 - not yet
                pass
        time.sleep(0.1)
    return iid, ip, marks


def metadata_latency(key, ip, requests):
    loop = ("n={n}; s=$(cut -d' ' -f1 /proc/uptime); i=0; while [ $i -lt $n ]; do {cmd} >/dev/null 2>&1; "
            "i=$((i+1)); done; e=$(cut -d' ' -f1 /proc/uptime); echo $s $e")
    out = {}
    for name, cmd in (("IMDSv1 request", "nimbus-metadata -1 meta-data/instance-id"),
                      ("IMDSv2 token + request", "nimbus-metadata meta-data/instance-id"),
                      ("guest's own httpd (loopback)", "nimbus-metadata -1 -a 127.0.0.1:80 meta-data/instance-id")):
        r = ssh(key, ip, loop.format(n=requests, cmd=cmd), timeout=600)
        s, e = (float(x) for x in r.stdout.split())
        out[name] = (e - s) * 1000 / requests
    return out


def qemu_boot(qemu, images):
    cmd = [qemu, "-M", "virt", "-bios", "default", "-m", "128M", "-smp", "1", "-nographic", "-no-reboot",
           "-kernel", os.path.join(images, "Image"),
           "-drive", f"file={os.path.join(images, 'rootfs.ext4')},format=raw,if=none,id=hd0,snapshot=on",
           "-device", "virtio-blk-device,drive=hd0",
           "-append", "console=ttyS0 earlycon root=/dev/vda rw nimbus.net=0 nimbus.agent=0 nimbus.poweroff=1"]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    took = None
    for line in p.stdout:
        if b"nimbus-guest: ready" in line:
            took = time.monotonic() - t0
            break
    p.kill()
    p.wait()
    if took is None:
        raise RuntimeError("qemu: no ready line")
    return took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--qemu", default="qemu-system-riscv64")
    a = ap.parse_args()
    images = os.environ.get("NIMBUS_IMAGES", os.path.join(ROOT, "images"))
    os.environ["NIMBUS_IMAGES"] = images
    h.configure(os.path.join(a.build, "nimbus-cloud"), os.path.join(a.build, "nimbus"),
                os.path.join(a.build, "nimbusd"), "bench-inside")
    cloud = h.Cloud(zones="a")
    work = tempfile.mkdtemp(prefix="nimbus-bench-inside-")
    rounds, lat = [], []
    try:
        cloud.add_host("h1", "a", memory="2G")
        aws = h.Aws(cloud)
        ec2 = h.boto3_client(cloud)
        ami = h.default_image(aws)
        key = os.path.join(work, "key.pem")
        with open(key, "w") as f:
            f.write(ec2.create_key_pair(KeyName="bench", KeyType="ed25519")["KeyMaterial"])
        os.chmod(key, 0o600)
        for port in (22, 80):
            ec2.authorize_security_group_ingress(GroupName="default", IpProtocol="tcp", FromPort=port,
                                                 ToPort=port, CidrIp="0.0.0.0/0")
        # One launch first: the host fetches the image (not counted).
        iid, _, _ = launch_once(aws, ec2, ami, key, work, 0)
        ec2.terminate_instances(InstanceIds=[iid])
        ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1})
        for n in range(1, a.repeats + 1):
            iid, ip, marks = launch_once(aws, ec2, ami, key, work, n)
            h.log(f"round {n}: " + ", ".join(f"{k} {v:.2f} s" for k, v in marks.items()))
            rounds.append(marks)
            lat.append(metadata_latency(key, ip, a.requests))
            h.log(f"round {n}: " + ", ".join(f"{k} {v:.2f} ms" for k, v in lat[-1].items()))
            ec2.terminate_instances(InstanceIds=[iid])
            ec2.get_waiter("instance_terminated").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1})
    finally:
        cloud.close()
    qemu = [qemu_boot(a.qemu, images) for _ in range(a.repeats)]
    q = statistics.median(qemu)
    print(f"\nqemu bare boot to ready: {q:.2f} s ({', '.join(f'{x:.2f}' for x in qemu)})")
    print("\n| launch, to | Nimbus Cloud | QEMU bare boot to ready | ratio |\n| --- | --- | --- | --- |")
    for k in ("running", "ssh", "user data"):
        vals = [r[k] for r in rounds]
        m = statistics.median(vals)
        print(f"| {k} | {m:.2f} s ({', '.join(f'{x:.2f}' for x in vals)}) | {q:.2f} s | {m / q:.2f} |")
        record(f"inside: run-instances to {k}", f"{m:.2f}", f"{q:.2f}", "s", f"{m / q:.2f}")
    print(f"\n| metadata, per request ({a.requests} in a loop) | ms | ratio to loopback httpd |\n| --- | --- | --- |")
    base = statistics.median(x["guest's own httpd (loopback)"] for x in lat)
    for k in lat[0]:
        m = statistics.median(x[k] for x in lat)
        print(f"| {k} | {m:.2f} ({', '.join(f'{x[k]:.2f}' for x in lat)}) | {m / base:.2f} |")
        if k != "guest's own httpd (loopback)":
            record(f"inside: {k}", f"{m:.2f}", f"{base:.2f}", "ms", f"{m / base:.2f}")


if __name__ == "__main__":
    main()
