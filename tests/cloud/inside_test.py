#!/usr/bin/env python3
"""The instance from inside (issue 17), with the real aws CLI, boto3 and OpenSSH client.

usage: inside_test.py NIMBUS_CLOUD NIMBUS NIMBUSD WORKDIR inside

Two hosts in two zones. A key pair from CreateKeyPair; an instance launched with that key,
user data that writes a web page, a 1 GiB root volume and HttpTokens=required; ports 22
and 80 opened. Then, through the instance's public address only:
  - curl gets the page the user data wrote (the first-boot agent ran it once);
  - `ssh -i key.pem root@PUBLIC_IP` answers with the hostname the metadata gave;
  - inside, IMDSv2 gives the instance id, a v1 request gets 401; malformed requests (bad
    token, a wrong method, an oversized header, garbage) get errors and the VM serves on;
  - the root file system was grown to the volume's size; the console output shows each
    first-boot step (GetConsoleOutput);
  - ModifyInstanceMetadataOptions HttpTokens=optional: v1 works from inside;
CreateImage of the running instance (with its reboot), wait image-available, an instance of
the new AMI in the other zone (its host fetches the image) serves the same page and cannot
see the first instance's user data (it has none: 404); its host keys are its own.
"""
import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as ct  # noqa: E402  (Cloud, Aws, wait_for, ...)

SSH = "/usr/bin/ssh"


def ssh(key, ip, command, ok=True, timeout=60):
    r = subprocess.run([SSH, "-i", key, "-o", "StrictHostKeyChecking=no", "-o",
                        "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                        "-o", "LogLevel=ERROR", f"root@{ip}", command],
                       capture_output=True, text=True, timeout=timeout)
    if ok:
        assert r.returncode == 0, (command, r.returncode, r.stdout, r.stderr)
    return r


def ssh_ready(key, ip):
    try:
        return ssh(key, ip, "true", ok=False, timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def raw_imds(request):
    """A guest shell command sending REQUEST (printf escapes) to the metadata service with nc;
    prints the reply's status line."""
    return f"printf '{request}' | nc -w 5 169.254.169.254 80 | head -n 1"


def main():
    ct.configure(*sys.argv[1:4], sys.argv[5])
    cloud = ct.Cloud(zones="a,b")
    work = tempfile.mkdtemp(prefix="nimbus-cloud-inside-")
    try:
        cloud.add_host("h1", "a", memory="2G")
        cloud.add_host("h2", "b", memory="2G")
        aws = ct.Aws(cloud)
        ec2 = ct.boto3_client(cloud)
        ami = ct.default_image(aws)

        key = os.path.join(work, "key.pem")
        material = aws.run("create-key-pair", "--key-name", "inside", "--key-type", "ed25519",
                           "--query", "KeyMaterial", "--output", "text").stdout
        with open(key, "w") as f:
            f.write(material)
        os.chmod(key, 0o600)
        for port in ("22", "80"):
            aws.run("authorize-security-group-ingress", "--group-name", "default", "--protocol", "tcp",
                    "--port", port, "--cidr", "0.0.0.0/0")

        stamp = f"made by user data {os.getpid()}-{time.time_ns()}"
        user_data = f"#!/bin/sh\necho '<h1>{stamp}</h1>' > /www/index.html\necho user data ran\n"
        t0 = time.monotonic()
        r = ec2.run_instances(ImageId=ami, InstanceType="n1.tiny", MinCount=1, MaxCount=1, KeyName="inside",
                              UserData=user_data,
                              Placement={"AvailabilityZone": f"{ct.REGION}a"},
                              BlockDeviceMappings=[{"DeviceName": "/dev/vda", "Ebs": {"VolumeSize": 1}}],
                              MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled"})
        iid = r["Instances"][0]["InstanceId"]
        ec2.get_waiter("instance_running").wait(InstanceIds=[iid], WaiterConfig={"Delay": 1, "MaxAttempts": 300})
        inst = ct.instances_of(aws.json("describe-instances", "--instance-ids", iid))[0]
        ip = inst["PublicIpAddress"]
        assert inst["MetadataOptions"]["HttpTokens"] == "required", inst.get("MetadataOptions")
        ct.log(f"{iid} running at {ip} after {time.monotonic() - t0:.1f} s")

        ct.wait_for("the page written by the user data",
                    lambda: stamp in (ct.http_get(ip) or ""), timeout=180, interval=1)
        ct.log(f"user data done (page served) after {time.monotonic() - t0:.1f} s")
        ct.wait_for("ssh", lambda: ssh_ready(key, ip), timeout=120, interval=1)
        ct.log(f"ssh answers after {time.monotonic() - t0:.1f} s")

        out = ssh(key, ip, "cat /etc/hostname; hostname").stdout.split()
        dns = inst.get("PrivateDnsName", "")
        assert len(out) == 2 and out[0] == out[1] and dns and out[0] in (dns, dns.split(".")[0]), (out, dns)
        ct.log(f"ssh -i key.pem root@{ip}: hostname {out[0]}")

        # IMDSv2 from inside; v1 refused while HttpTokens=required.
        got = ssh(key, ip, "nimbus-metadata meta-data/instance-id").stdout.strip()
        assert got == iid, (got, iid)
        r = ssh(key, ip, "nimbus-metadata -1 meta-data/instance-id", ok=False)
        assert r.returncode == 2 and "401" in r.stderr, (r.returncode, r.stdout, r.stderr)
        assert ssh(key, ip, "nimbus-metadata user-data").stdout == user_data
        ct.log("inside: IMDSv2 gives the instance id and its user data; v1 gets 401")

        # Malformed requests: each an error, and the service and the VM go on.
        bad = {
            "a bad token": ("GET /latest/meta-data/ HTTP/1.0\\r\\nX-aws-ec2-metadata-token: "
                            "not-a-token\\r\\n\\r\\n", "401"),
            "a wrong method": ("DELETE /latest/meta-data/ HTTP/1.0\\r\\n\\r\\n", "405"),
            "a token without its TTL": ("PUT /latest/api/token HTTP/1.0\\r\\n\\r\\n", "400"),
            "a TTL out of range": ("PUT /latest/api/token HTTP/1.0\\r\\n"
                                   "X-aws-ec2-metadata-token-ttl-seconds: 999999\\r\\n\\r\\n", "400"),
            "garbage": ("\\x01\\x02 nonsense\\r\\n\\r\\n", "400"),
        }
        for what, (req, code) in bad.items():
            line = ssh(key, ip, raw_imds(req)).stdout.strip()
            assert f" {code}" in line, (what, line)
        # An oversized header (64 KiB): refused or cut off, never answered with data.
        line = ssh(key, ip, "{ printf 'GET /latest/meta-data/ HTTP/1.0\\r\\nX-Big: '; "
                            "head -c 65536 /dev/zero | tr '\\0' a; printf '\\r\\n\\r\\n'; } "
                            "| nc -w 5 169.254.169.254 80 | head -n 1").stdout.strip()
        assert line == "" or re.search(r" 4\d\d ", line), line
        assert ssh(key, ip, "nimbus-metadata meta-data/instance-id").stdout.strip() == iid
        ct.log(f"malformed metadata requests ({len(bad) + 1}) refused; the service answers on")

        # The root file system has the volume's size (1 GiB), grown at first boot.
        kib = int(ssh(key, ip, "df -k / | tail -n 1").stdout.split()[1])
        assert kib > 900 * 1024, kib
        console = aws.json("get-console-output", "--instance-id", iid).get("Output", "")
        for step in ("nimbus-firstboot: instance id " + iid, "authorized key for root", "grew /",
                     "dropbear listening on port 22", "user data exited 0"):
            assert step in console, (step, console[-3000:])
        ct.log(f"root file system {kib // 1024} MiB; the console shows the first-boot steps")

        # The options change while it runs.
        aws.run("modify-instance-metadata-options", "--instance-id", iid, "--http-tokens", "optional")
        ct.wait_for("IMDSv1 allowed again", lambda: ssh(key, ip, "nimbus-metadata -1 meta-data/instance-id",
                                                        ok=False).stdout.strip() == iid, timeout=60, interval=1)
        ct.log("ModifyInstanceMetadataOptions HttpTokens=optional reached the VM")

        # An image of it, and an instance of that image on the other host.
        host_keys = ssh(key, ip, "cat /etc/dropbear/*.pub 2>/dev/null || dropbearkey -y -f "
                                 "/etc/dropbear/dropbear_ed25519_host_key").stdout
        new_ami = aws.json("create-image", "--instance-id", iid, "--name", f"inside-{os.getpid()}")["ImageId"]
        ec2.get_waiter("image_available").wait(ImageIds=[new_ami], WaiterConfig={"Delay": 2, "MaxAttempts": 150})
        ct.log(f"{new_ami} available")
        r = aws.json("run-instances", "--image-id", new_ami, "--instance-type", "n1.tiny", "--key-name", "inside",
                     "--placement", f"AvailabilityZone={ct.REGION}b")
        iid2 = r["Instances"][0]["InstanceId"]
        aws.run("wait", "instance-running", "--instance-ids", iid2)
        inst2 = ct.instances_of(aws.json("describe-instances", "--instance-ids", iid2))[0]
        ip2 = inst2["PublicIpAddress"]
        assert inst2["Placement"]["AvailabilityZone"] == f"{ct.REGION}b", inst2["Placement"]
        ct.wait_for("the image's page on the new instance", lambda: stamp in (ct.http_get(ip2) or ""),
                    timeout=120, interval=1)
        ct.wait_for("ssh to the new instance", lambda: ssh_ready(key, ip2), timeout=120, interval=1)
        assert ssh(key, ip2, "nimbus-metadata meta-data/instance-id").stdout.strip() == iid2
        r = ssh(key, ip2, "nimbus-metadata user-data", ok=False)
        assert r.returncode == 1 and stamp not in r.stdout, (r.returncode, r.stdout, r.stderr)
        keys2 = ssh(key, ip2, "cat /etc/dropbear/*.pub 2>/dev/null || dropbearkey -y -f "
                              "/etc/dropbear/dropbear_ed25519_host_key").stdout
        assert keys2.strip() and keys2 != host_keys, "the new instance kept the old host keys"
        # The first instance came back from its reboot and still serves its page.
        ct.wait_for("the first instance's page after the image's reboot", lambda: stamp in (ct.http_get(ip) or ""),
                    timeout=120, interval=1)
        ct.log(f"{iid2} of {new_ami} on h2 serves the page; user data 404 there; new host keys")

        aws.run("terminate-instances", "--instance-ids", iid, iid2)
        aws.run("wait", "instance-terminated", "--instance-ids", iid, iid2)
        aws.run("deregister-image", "--image-id", new_ami)
    except BaseException:
        cloud.dump_logs()
        raise
    finally:
        cloud.close()
        shutil.rmtree(work, ignore_errors=True)
    ct.log("inside: PASS")


if __name__ == "__main__":
    main()
