#!/usr/bin/env python3
"""Nimbus Cloud driven by the real EC2 clients (docs/cloud.md): Debian's aws CLI and boto3
against nimbus-cloud, with real nimbusd hosts running real VMs on this machine.

usage: cloud_test.py NIMBUS_CLOUD NIMBUS NIMBUSD WORKDIR MODE
modes:
  story     the aws CLI: three hosts in two zones; five instances of two types (spread over
            the hosts), wait instance-running, authorize port 80 and curl each public
            address (nothing answers before), stop one, change its type, start it (the guest
            sees the new size), tag and filter, console output, terminate all, capacity back
  boto3     the same life cycle through boto3 (waiters, paginator, filters, errors), plus
            ClientToken idempotency and revoking a rule closes the port
  parallel  twenty RunInstances at once never over-commit a host; what does not fit is
            InsufficientInstanceCapacity; placement groups (spread, cluster)
  failures  a host killed: its instances impaired, nothing new placed there, the others
            serve; the control plane killed with SIGKILL and restarted: nothing lost, no
            host double-booked; bad requests: each an EC2 error, nothing changed
  keys      key pairs with boto3 and the aws CLI: created rsa/ed25519 keys load in ssh-keygen
            and their fingerprints are EC2's (recomputed), imports, filters, RunInstances
            with KeyName (one host, nothing booted: terminated at once), deletes
  metadata  each guest reads its own metadata (IMDSv1 and v2); MetadataOptions at launch and
            ModifyInstanceMetadataOptions reach the host's VM and the guest
  images    CreateImage of a running instance whose guest wrote a file (aws CLI, with the
            reboot), wait image-available (boto3), DescribeImages' view, an instance of the
            new AMI on a second host (which fetches it) finds the file; DeregisterImage
            (the bundled image refused; its instance runs on)
"""
import base64
import concurrent.futures
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

CLOUD, NIMBUS, NIMBUSD, WORK, MODE = sys.argv[1:6]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

harness.configure(CLOUD, NIMBUS, NIMBUSD, MODE)
from harness import *  # noqa: E402,F401,F403  (after configure: the values it set)


def mode_story():
    cloud = Cloud(zones="a,b")
    try:
        cloud.add_host("h1", "a")
        cloud.add_host("h2", "a")
        cloud.add_host("h3", "b")
        aws = Aws(cloud)
        zones = aws.json("describe-availability-zones")["AvailabilityZones"]
        assert [z["ZoneName"] for z in zones] == [f"{REGION}a", f"{REGION}b"], zones
        ami = default_image(aws)
        types = {t["InstanceType"]: t for t in aws.json("describe-instance-types")["InstanceTypes"]}
        assert types["t3.micro"]["VCpuInfo"]["DefaultVCpus"] == 2 and types["t3.micro"]["MemoryInfo"]["SizeInMiB"] == 1024
        sg = aws.json("create-security-group", "--group-name", "web", "--description", "web servers")["GroupId"]
        before = {h["id"]: h["host"]["memory_mib"]["allocated"] for h in cloud.operator("/nimbus/v1/hosts")["hosts"]}

        log("run-instances: 3 x n1.small and 2 x n1.medium")
        small = aws.json("run-instances", "--image-id", ami, "--instance-type", "n1.small", "--count", "3",
                         "--security-group-ids", sg,
                         "--tag-specifications", "ResourceType=instance,Tags=[{Key=role,Value=web}]")
        medium = aws.json("run-instances", "--image-id", ami, "--instance-type", "n1.medium", "--count", "2",
                          "--security-group-ids", sg,
                          "--tag-specifications", "ResourceType=instance,Tags=[{Key=role,Value=api}]")
        ids = [i["InstanceId"] for i in small["Instances"] + medium["Instances"]]
        assert all(i["State"]["Name"] == "pending" for i in small["Instances"]), small
        t0 = time.monotonic()
        aws.run("wait", "instance-running", "--instance-ids", *ids)
        log(f"all five running {time.monotonic() - t0:.1f} s after the second RunInstances")
        desc = instances_of(aws.json("describe-instances", "--instance-ids", *ids))
        hosts = {}
        for i in desc:
            assert i["State"]["Name"] == "running" and i["PublicIpAddress"].startswith(PREFIX + "."), i
            assert i["PrivateIpAddress"], i
            hosts.setdefault(i["Placement"]["HostId"], []).append(i["InstanceId"])
        counts = sorted(len(v) for v in hosts.values())
        assert len(hosts) == 3 and counts[-1] - counts[0] <= 1, f"spread over three hosts: {hosts}"
        zones_used = {i["Placement"]["AvailabilityZone"] for i in desc}
        assert zones_used == {f"{REGION}a", f"{REGION}b"}, zones_used

        log("nothing answers on the public addresses before port 80 is authorized")
        for i in desc:
            assert refused(i["PublicIpAddress"]), i["PublicIpAddress"]
        aws.run("authorize-security-group-ingress", "--group-id", sg, "--protocol", "tcp", "--port", "80",
                "--cidr", "0.0.0.0/0")
        for i in desc:
            page = wait_for(f"http://{i['PublicIpAddress']}/", lambda: http_get(i["PublicIpAddress"]), timeout=30)
            assert "Hello from a Nimbus VM" in page, page
        log("each public address serves the guest's page")
        assert refused(desc[0]["PublicIpAddress"], 22), "port 22 was never authorized"

        victim = next(i for i in desc if i["InstanceType"] == "n1.small")
        vid, vhost = victim["InstanceId"], victim["Placement"]["HostId"]
        log(f"stop {vid}, change its type to n1.large, start it")
        err = aws.error("modify-instance-attribute", "--instance-id", vid, "--instance-type", "{\"Value\": \"n1.large\"}")
        assert "IncorrectInstanceState" in err, err
        stop = aws.json("stop-instances", "--instance-ids", vid)
        assert stop["StoppingInstances"][0]["CurrentState"]["Name"] == "stopping", stop
        aws.run("wait", "instance-stopped", "--instance-ids", vid)
        aws.run("modify-instance-attribute", "--instance-id", vid, "--instance-type", "{\"Value\": \"n1.large\"}")
        aws.run("start-instances", "--instance-ids", vid)
        aws.run("wait", "instance-running", "--instance-ids", vid)
        after = instances_of(aws.json("describe-instances", "--instance-ids", vid))[0]
        assert after["InstanceType"] == "n1.large" and after["Placement"]["HostId"] == vhost, after
        out = cloud.shell(vhost, vid, "nproc; grep MemTotal /proc/meminfo")
        nproc = int(out.split()[0])
        mem_kib = int(out.split()[2])
        assert nproc == 4 and 900 * 1024 < mem_kib <= 1024 * 1024, out
        log(f"the guest sees {nproc} CPUs and {mem_kib // 1024} MiB")
        wait_for("the restarted instance's page", lambda: "Nimbus" in http_get(after["PublicIpAddress"]), timeout=120)

        log("tags and filters")
        aws.run("create-tags", "--resources", vid, "--tags", "Key=Name,Value=resized")
        named = instances_of(aws.json("describe-instances", "--filters", "Name=tag:Name,Values=resized"))
        assert [i["InstanceId"] for i in named] == [vid], named
        web = instances_of(aws.json("describe-instances", "--filters", "Name=tag:role,Values=web",
                                    "Name=instance-state-name,Values=running"))
        assert len(web) == 3, web
        by_type = instances_of(aws.json("describe-instances", "--filters", "Name=instance-type,Values=n1.medium"))
        assert len(by_type) == 2, by_type
        in_b = instances_of(aws.json("describe-instances", "--filters", f"Name=availability-zone,Values={REGION}b"))
        assert all(i["Placement"]["AvailabilityZone"] == f"{REGION}b" for i in in_b) and in_b, in_b
        tags = aws.json("describe-tags", "--filters", f"Name=resource-id,Values={vid}")["Tags"]
        assert {t["Key"] for t in tags} == {"Name", "role"}, tags

        console = aws.json("get-console-output", "--instance-id", vid)
        assert "Linux version" in console.get("Output", ""), console
        log("console output has the kernel's boot log")

        status = aws.json("describe-instance-status", "--instance-ids", *ids)["InstanceStatuses"]
        assert len(status) == 5 and all(s["InstanceStatus"]["Status"] == "ok" for s in status), status

        log("terminate all")
        aws.run("terminate-instances", "--instance-ids", *ids)
        aws.run("wait", "instance-terminated", "--instance-ids", *ids)
        gone = instances_of(aws.json("describe-instances", "--instance-ids", *ids))
        assert all(i["State"]["Name"] == "terminated" for i in gone), gone  # still listed
        def capacity_back():
            now = {h["id"]: h["host"]["memory_mib"]["allocated"] for h in cloud.operator("/nimbus/v1/hosts")["hosts"]}
            claims = sum(len(h["instances"]) for h in cloud.operator("/nimbus/v1/hosts")["hosts"])
            return now == before and claims == 0
        wait_for("capacity to come back", capacity_back, timeout=30)
        for i in desc:
            assert refused(i["PublicIpAddress"]), i["PublicIpAddress"]
        log("capacity is back on every host, the public addresses are closed")
    except BaseException:
        cloud.dump_logs()
        raise
    finally:
        cloud.close()


def mode_boto3():
    cloud = Cloud(zones="a,b", credentials=("AKIDNIMBUSTEST", "nimbus-secret"))
    try:
        cloud.add_host("h1", "a")
        cloud.add_host("h2", "b")
        ec2 = boto3_client(cloud)
        ident = boto3_client(cloud, service="sts").get_caller_identity()
        assert ident["Account"] == "000000000000", ident
        expect_error("SignatureDoesNotMatch", boto3_client(cloud, secret="wrong").describe_instances)
        expect_error("AuthFailure", boto3_client(cloud, key="AKIDUNKNOWN").describe_instances)
        ami = ec2.describe_images()["Images"][0]["ImageId"]

        log("ClientToken: the same request twice is one reservation")
        first = ec2.run_instances(ImageId=ami, InstanceType="n1.tiny", MinCount=2, MaxCount=2, ClientToken="story-token-1")
        again = ec2.run_instances(ImageId=ami, InstanceType="n1.tiny", MinCount=2, MaxCount=2, ClientToken="story-token-1")
        assert first["ReservationId"] == again["ReservationId"], (first, again)
        assert [i["InstanceId"] for i in first["Instances"]] == [i["InstanceId"] for i in again["Instances"]]
        expect_error("IdempotentParameterMismatch", ec2.run_instances, ImageId=ami, InstanceType="n1.small",
                     MinCount=2, MaxCount=2, ClientToken="story-token-1")
        singles = [ec2.run_instances(ImageId=ami, InstanceType="n1.tiny", MinCount=1, MaxCount=1,
                                     TagSpecifications=[{"ResourceType": "instance",
                                                         "Tags": [{"Key": "Name", "Value": f"single-{n}"}]}])
                   for n in range(5)]
        ids = [i["InstanceId"] for i in first["Instances"]] + [r["Instances"][0]["InstanceId"] for r in singles]
        assert len(set(ids)) == 7
        log("paginator: pages of at most five (whole reservations), every instance once")
        pages = list(ec2.get_paginator("describe_instances").paginate(PaginationConfig={"PageSize": 5}))
        seen = [i["InstanceId"] for p in pages for r in p["Reservations"] for i in r["Instances"]]
        assert len(pages) >= 2 and sorted(seen) == sorted(ids), (len(pages), seen)
        fast_wait(ec2, "instance_running", ids)
        named = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["single-*"]},
                                                {"Name": "instance-state-name", "Values": ["running"]}])
        assert len([i for r in named["Reservations"] for i in r["Instances"]]) == 5, named
        expect_error("InvalidParameterValue", ec2.describe_instances, Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
        expect_error("InvalidInstanceID.NotFound", ec2.describe_instances, InstanceIds=["i-0123456789abcdef0"])

        log("a rule authorized opens the port; revoked, it closes")
        sg = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
        perm = [{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
        ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=perm)
        expect_error("InvalidPermission.Duplicate", ec2.authorize_security_group_ingress, GroupId=sg, IpPermissions=perm)
        ip = ec2.describe_instances(InstanceIds=[ids[0]])["Reservations"][0]["Instances"][0]["PublicIpAddress"]
        assert "Nimbus" in wait_for("the page", lambda: http_get(ip), timeout=30)
        ec2.revoke_security_group_ingress(GroupId=sg, IpPermissions=perm)
        wait_for("the port to close", lambda: refused(ip), timeout=30)
        expect_error("InvalidPermission.NotFound", ec2.revoke_security_group_ingress, GroupId=sg, IpPermissions=perm)

        log("reboot, stop -> stopped, states refused where EC2 refuses them")
        ec2.reboot_instances(InstanceIds=[ids[1]])
        ec2.stop_instances(InstanceIds=[ids[1]])
        fast_wait(ec2, "instance_stopped", [ids[1]])
        expect_error("IncorrectInstanceState", ec2.reboot_instances, InstanceIds=[ids[1]])
        ec2.terminate_instances(InstanceIds=ids)
        fast_wait(ec2, "instance_terminated", ids)
        expect_error("IncorrectInstanceState", ec2.start_instances, InstanceIds=[ids[0]])
        claims = sum(len(h["instances"]) for h in cloud.operator("/nimbus/v1/hosts")["hosts"])
        assert claims == 0, cloud.operator("/nimbus/v1/hosts")
    except BaseException:
        cloud.dump_logs()
        raise
    finally:
        cloud.close()


def claims_fit(cloud):
    """Every host's claims fit its capacity, and match what its nimbusd holds."""
    for h in cloud.operator("/nimbus/v1/hosts")["hosts"]:
        cap = h["host"]
        vcpus = sum(c["vcpus"] for c in h["instances"].values() if c["compute"])
        mem = sum(c["memory_mib"] + cap["vm_overhead_mib"] for c in h["instances"].values() if c["compute"])
        assert vcpus <= cap["cpus"]["capacity"], (h["id"], vcpus, cap["cpus"])
        assert mem <= cap["memory_mib"]["capacity"], (h["id"], mem, cap["memory_mib"])
    return True


def mode_parallel():
    cloud = Cloud(zones="a,b")
    try:
        # Each host: 1 CPU x 4 = 4 vCPUs and 1024 MiB: three n1.small (1 vCPU, 256 + 64 MiB).
        for name, zone in (("h1", "a"), ("h2", "a"), ("h3", "b")):
            cloud.add_host(name, zone, memory="1G", cpus=1)
        ami = boto3_client(cloud).describe_images()["Images"][0]["ImageId"]

        def launch(n):
            import botocore.exceptions
            try:
                r = boto3_client(cloud).run_instances(ImageId=ami, InstanceType="n1.small", MinCount=1, MaxCount=1)
                return r["Instances"][0]["InstanceId"]
            except botocore.exceptions.ClientError as e:
                return e.response["Error"]["Code"]

        log("twenty RunInstances at once")
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            results = list(pool.map(launch, range(20)))
        ids = [r for r in results if r.startswith("i-")]
        refusals = [r for r in results if not r.startswith("i-")]
        assert len(ids) == 9 and set(refusals) == {"InsufficientInstanceCapacity"}, results
        claims_fit(cloud)
        per_host = {h["id"]: len(h["instances"]) for h in cloud.operator("/nimbus/v1/hosts")["hosts"]}
        assert per_host == {"h1": 3, "h2": 3, "h3": 3}, per_host
        log(f"9 placed (3 per host), 11 refused: {refusals[0]}")
        ec2 = boto3_client(cloud)
        msg = expect_error("InsufficientInstanceCapacity", ec2.run_instances, ImageId=ami, InstanceType="n1.small",
                           MinCount=1, MaxCount=1)
        assert "memory" in msg, msg
        fast_wait(ec2, "instance_running", ids)
        for h in cloud.hosts.values():  # each nimbusd agrees: nothing over-committed there
            with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{h['port']}/v1/host", headers={
                    "Authorization": "Bearer " + open(os.path.join(h["dir"], "token")).read().strip()})) as r:
                host = json.loads(r.read())
            assert host["memory_mib"]["allocated"] <= host["memory_mib"]["capacity"], host
        ec2.terminate_instances(InstanceIds=ids)
        fast_wait(ec2, "instance_terminated", ids)

        log("placement groups: spread on distinct hosts, cluster on one")
        ec2.create_placement_group(GroupName="spread1", Strategy="spread")
        ec2.create_placement_group(GroupName="cluster1", Strategy="cluster")
        r = ec2.run_instances(ImageId=ami, InstanceType="n1.tiny", MinCount=3, MaxCount=3, Placement={"GroupName": "spread1"})
        spread_hosts = {i["Placement"]["HostId"] for i in ec2.describe_instances(
            InstanceIds=[i["InstanceId"] for i in r["Instances"]])["Reservations"][0]["Instances"]}
        assert len(spread_hosts) == 3, spread_hosts
        c = ec2.run_instances(ImageId=ami, InstanceType="n1.tiny", MinCount=2, MaxCount=2, Placement={"GroupName": "cluster1"})
        cluster_hosts = {i["Placement"]["HostId"] for i in c["Instances"]}
        assert len(cluster_hosts) == 1, cluster_hosts
        expect_error("InvalidPlacementGroup.InUse", ec2.delete_placement_group, GroupName="spread1")
        all_ids = [i["InstanceId"] for i in r["Instances"] + c["Instances"]]
        ec2.terminate_instances(InstanceIds=all_ids)
        fast_wait(ec2, "instance_terminated", all_ids)
        ec2.delete_placement_group(GroupName="spread1")
        wait_for("capacity back", lambda: sum(len(h["instances"]) for h in cloud.operator("/nimbus/v1/hosts")["hosts"]) == 0)
    except BaseException:
        cloud.dump_logs()
        raise
    finally:
        cloud.close()


def raw_post(cloud, body):
    req = urllib.request.Request(cloud.endpoint + "/", data=body.encode(), method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def mode_failures():
    cloud = Cloud(zones="a")
    try:
        cloud.add_host("h1", "a")
        cloud.add_host("h2", "a")
        ec2 = boto3_client(cloud)
        ami = ec2.describe_images()["Images"][0]["ImageId"]
        sg = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        r = ec2.run_instances(ImageId=ami, InstanceType="n1.small", MinCount=2, MaxCount=2)
        ids = [i["InstanceId"] for i in r["Instances"]]
        fast_wait(ec2, "instance_running", ids)
        insts = ec2.describe_instances(InstanceIds=ids)["Reservations"][0]["Instances"]
        on = {i["Placement"]["HostId"]: i for i in insts}
        assert set(on) == {"h1", "h2"}, on

        log("bad requests: each an EC2 error, nothing changed")
        before = ec2.describe_instances()["Reservations"]
        bad = [("Action=RunInstances&Version=2016-11-15&ImageId=" + ami + "&MinCount=0&MaxCount=1", "InvalidParameterValue"),
               ("Action=RunInstances&Version=2016-11-15&ImageId=ami-00000000000000000&MinCount=1&MaxCount=1", "InvalidAMIID.NotFound"),
               ("Action=RunInstances&Version=2016-11-15&ImageId=" + ami + "&MinCount=1&MaxCount=1&InstanceType=x9.huge", "InvalidParameterValue"),
               ("Action=RunInstances&Version=2016-11-15&ImageId=" + ami + "&MinCount=1&MaxCount=1&Placement.AvailabilityZone=mars-1a", "InvalidParameterValue"),
               ("Action=RunInstances&Version=2016-11-15&ImageId=" + ami + "&MinCount=1&MaxCount=1&SecurityGroupId.1=sg-00000000000000000", "InvalidGroup.NotFound"),
               ("Action=StopInstances&Version=2016-11-15&InstanceId.1=i-00000000000000000", "InvalidInstanceID.NotFound"),
               ("Action=StopInstances&Version=2016-11-15&InstanceId.1=bogus", "InvalidInstanceID.Malformed"),
               ("Action=TerminateInstances&Version=2016-11-15&InstanceId.1=" + ids[0] + "&InstanceId.2=i-00000000000000000", "InvalidInstanceID.NotFound"),
               ("Action=ModifyInstanceAttribute&Version=2016-11-15&InstanceId=" + ids[0] + "&InstanceType.Value=n1.large", "IncorrectInstanceState"),
               ("Action=DescribeInstances&Version=2016-11-15&MaxResults=5&InstanceId.1=" + ids[0], "InvalidParameterCombination"),
               ("Action=FlyToTheMoon&Version=2016-11-15", "InvalidAction"),
               ("Version=2016-11-15", "MissingParameter"),
               ("Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=instance-state-name", "InvalidParameterValue"),
               ("Action=CreateSecurityGroup&Version=2016-11-15&GroupName=default&GroupDescription=x", "InvalidGroup.Duplicate"),
               ("Action=DeleteSecurityGroup&Version=2016-11-15&GroupName=default", "CannotDelete"),
               ("Action=RunInstances&%ZZ=1", "InvalidParameterValue"),
               ("Action=RunInstances&Version=2016-11-15&ImageId=" + ami + "&MinCount=1&MaxCount=1&ClientToken=" + "x" * 65, "InvalidParameterValue")]
        for body, code in bad:
            status, text = raw_post(cloud, body)
            assert status == 400 and f"<Code>{code}</Code>" in text and "<RequestID>" in text, (body, status, text)
        after = ec2.describe_instances()["Reservations"]
        assert json.dumps(before, default=str, sort_keys=True) == json.dumps(after, default=str, sort_keys=True)

        log("the control plane killed with SIGKILL during launches, restarted: nothing lost, nothing double-booked")
        launched = []
        def burst():
            c = boto3_client(cloud)
            for _ in range(8):
                try:
                    launched.append(c.run_instances(ImageId=ami, InstanceType="n1.tiny", MinCount=1, MaxCount=1)
                                    ["Instances"][0]["InstanceId"])
                except Exception:  # noqa: BLE001 - the control plane dies under it
                    return
        t = __import__("threading").Thread(target=burst)
        t.start()
        # In the middle of the launches: after 1 to 5 of the 8 were acknowledged.
        k = 1 + os.urandom(1)[0] % 5
        wait_for(f"{k} launches", lambda: len(launched) >= k or not t.is_alive(), timeout=60, interval=0.002)
        cloud.kill9()
        t.join()
        cloud.start()
        ec2 = boto3_client(cloud)
        listed = {i["InstanceId"]: i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
        for i in launched + ids:
            assert i in listed, f"{i} was acknowledged and is lost"
        claimed = {iid for h in cloud.operator("/nimbus/v1/hosts")["hosts"] for iid in h["instances"]}
        live = {i for i, v in listed.items() if v["State"]["Name"] != "terminated"}
        assert claimed == live, (claimed, live)
        claims_fit(cloud)
        fast_wait(ec2, "instance_running", sorted(live))
        assert len(launched) < 8, "the kill came after the last launch"
        log(f"{len(launched)} launches acknowledged before the kill; all {len(live)} instances running after")

        log("a host killed: impaired, nothing new placed there, the other keeps serving")
        survivor = on["h1"]
        cloud.kill_host("h2")
        def impaired():
            st = ec2.describe_instance_status(InstanceIds=[on["h2"]["InstanceId"]])["InstanceStatuses"]
            return st and st[0]["InstanceStatus"]["Status"] == "impaired"
        wait_for("impaired status", impaired, timeout=20)
        new = ec2.run_instances(ImageId=ami, InstanceType="n1.tiny", MinCount=2, MaxCount=2)["Instances"]
        assert {i["Placement"]["HostId"] for i in new} == {"h1"}, new
        assert "Nimbus" in http_get(survivor["PublicIpAddress"])
        cloud.start_host("h2")
        wait_for("h2's instances ok again", lambda: not impaired(), timeout=20)
        everything = sorted(set(live) | {i["InstanceId"] for i in new})
        ec2.terminate_instances(InstanceIds=everything)
        fast_wait(ec2, "instance_terminated", everything)
    except BaseException:
        cloud.dump_logs()
        raise
    finally:
        cloud.close()


def mode_keys():
    """Key pairs with boto3 and the aws CLI: created keys load in ssh-keygen and their
    fingerprints are EC2's, recomputed here; imports; filters; RunInstances with KeyName."""
    import hashlib
    ssh_keygen, openssl = "/usr/bin/ssh-keygen", "/usr/bin/openssl"
    assert os.path.exists(ssh_keygen), "ssh-keygen missing: scripts/install-deps.sh installs openssh-client"
    work = tempfile.mkdtemp(prefix="nimbus-keys-")

    def sh(*args, stdin=None):
        r = subprocess.run(list(args), input=stdin, capture_output=True, timeout=60)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r.stdout.decode()

    def save(name, text):
        path = os.path.join(work, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        return path

    def blob_of(line):
        return base64.b64decode(line.split()[1])

    def ed25519_fp(line):  # EC2's: base64 SHA-256 of the blob, padded
        return base64.b64encode(hashlib.sha256(blob_of(line)).digest()).decode()

    def rsa_imported_fp(pub_path):  # EC2's: MD5 of the DER SubjectPublicKeyInfo
        pem = sh(ssh_keygen, "-e", "-m", "PKCS8", "-f", pub_path)
        der = subprocess.run([openssl, "pkey", "-pubin", "-outform", "DER"], input=pem.encode(),
                             capture_output=True, check=True).stdout
        return ":".join(f"{b:02x}" for b in hashlib.md5(der).digest())

    cloud = Cloud(zones="a")
    try:
        cloud.add_host("h1", "a")
        ec2 = boto3_client(cloud)
        ami = ec2.describe_images()["Images"][0]["ImageId"]

        log("CreateKeyPair rsa: PKCS#1 PEM that ssh-keygen loads, SHA-1 of the PKCS#8 DER")
        rsa = ec2.create_key_pair(KeyName="nimbus-rsa")
        assert rsa["KeyMaterial"].startswith("-----BEGIN RSA PRIVATE KEY-----\n"), rsa["KeyMaterial"][:40]
        assert rsa["KeyPairId"].startswith("key-") and len(rsa["KeyPairId"]) == 21, rsa
        rsa_path = save("rsa.pem", rsa["KeyMaterial"])
        rsa_pub = sh(ssh_keygen, "-y", "-f", rsa_path).strip()
        der = subprocess.run([openssl, "pkcs8", "-topk8", "-nocrypt", "-in", rsa_path, "-outform", "DER"],
                             capture_output=True, check=True).stdout
        assert rsa["KeyFingerprint"] == ":".join(f"{b:02x}" for b in hashlib.sha1(der).digest()), rsa

        log("CreateKeyPair ed25519: OpenSSH private key, base64 SHA-256 fingerprint")
        ed = ec2.create_key_pair(KeyName="nimbus-ed", KeyType="ed25519", TagSpecifications=[
            {"ResourceType": "key-pair", "Tags": [{"Key": "team", "Value": "web"}]}])
        assert ed["KeyMaterial"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----\n"), ed["KeyMaterial"][:40]
        assert ed["Tags"] == [{"Key": "team", "Value": "web"}], ed
        ed_path = save("ed.pem", ed["KeyMaterial"])
        ed_pub = sh(ssh_keygen, "-y", "-f", ed_path).strip()
        assert ed["KeyFingerprint"] == ed25519_fp(ed_pub), (ed["KeyFingerprint"], ed_pub)
        assert f"SHA256:{ed['KeyFingerprint'].rstrip('=')} " in sh(ssh_keygen, "-l", "-f", ed_path)

        log("DescribeKeyPairs: the public keys are the private keys' halves; filters")
        pairs = {k["KeyName"]: k for k in ec2.describe_key_pairs(IncludePublicKey=True)["KeyPairs"]}
        assert sorted(pairs) == ["nimbus-ed", "nimbus-rsa"], pairs
        for name, pub, created in (("nimbus-rsa", rsa_pub, rsa), ("nimbus-ed", ed_pub, ed)):
            k = pairs[name]
            assert k["PublicKey"].split()[:2] == pub.split()[:2], (k, pub)
            assert k["KeyFingerprint"] == created["KeyFingerprint"] and k["KeyPairId"] == created["KeyPairId"], k
        assert pairs["nimbus-ed"]["KeyType"] == "ed25519" and pairs["nimbus-rsa"]["KeyType"] == "rsa", pairs
        assert "PublicKey" not in ec2.describe_key_pairs(KeyNames=["nimbus-ed"])["KeyPairs"][0]

        def names(**kw):
            return sorted(k["KeyName"] for k in ec2.describe_key_pairs(**kw)["KeyPairs"])
        assert names(Filters=[{"Name": "key-name", "Values": ["*-ed"]}]) == ["nimbus-ed"]
        assert names(Filters=[{"Name": "fingerprint", "Values": [rsa["KeyFingerprint"]]}]) == ["nimbus-rsa"]
        assert names(Filters=[{"Name": "tag:team", "Values": ["web"]}]) == ["nimbus-ed"]
        assert names(KeyPairIds=[rsa["KeyPairId"]]) == ["nimbus-rsa"]
        expect_error("InvalidKeyPair.NotFound", ec2.describe_key_pairs, KeyNames=["nope"])
        expect_error("InvalidKeyPair.Duplicate", ec2.create_key_pair, KeyName="nimbus-ed")
        assert "ppk" in expect_error("InvalidParameterValue", ec2.create_key_pair, KeyName="p", KeyFormat="ppk")

        log("ImportKeyPair: ed25519 with boto3, rsa with the aws CLI; small rsa refused")
        sh(ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", "me@laptop", "-f", os.path.join(work, "mine"))
        with open(os.path.join(work, "mine.pub"), "rb") as f:
            mine = f.read()
        imp = ec2.import_key_pair(KeyName="laptop", PublicKeyMaterial=mine)
        assert imp["KeyFingerprint"] == ed25519_fp(mine.decode()), (imp, mine)
        sh(ssh_keygen, "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", os.path.join(work, "big"))
        aws = Aws(cloud)
        cli = aws.json("import-key-pair", "--key-name", "cli-rsa", "--public-key-material",
                       "fileb://" + os.path.join(work, "big.pub"))
        assert cli["KeyFingerprint"] == rsa_imported_fp(os.path.join(work, "big.pub")), cli
        listed = aws.json("describe-key-pairs", "--key-names", "cli-rsa")["KeyPairs"]
        assert listed[0]["KeyPairId"] == cli["KeyPairId"], listed
        sh(ssh_keygen, "-q", "-t", "rsa", "-b", "1024", "-N", "", "-f", os.path.join(work, "small"))
        with open(os.path.join(work, "small.pub"), "rb") as f:
            small = f.read()
        assert "1024" in expect_error("InvalidKeyPair.Format", ec2.import_key_pair, KeyName="s", PublicKeyMaterial=small)
        expect_error("InvalidKeyPair.Format", ec2.import_key_pair, KeyName="s", PublicKeyMaterial=b"ssh-rsa nonsense")

        log("RunInstances with KeyName: unknown refused; known recorded; terminated at once")
        expect_error("InvalidKeyPair.NotFound", ec2.run_instances, ImageId=ami, InstanceType="n1.tiny",
                     MinCount=1, MaxCount=1, KeyName="no-such-key")
        run = ec2.run_instances(ImageId=ami, InstanceType="n1.tiny", MinCount=1, MaxCount=1, KeyName="nimbus-ed")
        iid = run["Instances"][0]["InstanceId"]
        assert run["Instances"][0]["KeyName"] == "nimbus-ed", run
        found = ec2.describe_instances(Filters=[{"Name": "key-name", "Values": ["nimbus-ed"]}])
        assert [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]] == [iid], found
        ec2.terminate_instances(InstanceIds=[iid])

        log("DeleteKeyPair by name and by id; a missing one is no error")
        ec2.delete_key_pair(KeyName="nimbus-ed")
        ec2.delete_key_pair(KeyPairId=rsa["KeyPairId"])
        ec2.delete_key_pair(KeyName="nimbus-ed")
        for name in ("laptop", "cli-rsa"):
            ec2.delete_key_pair(KeyName=name)
        assert ec2.describe_key_pairs()["KeyPairs"] == []
        fast_wait(ec2, "instance_terminated", [iid])
    except BaseException:
        cloud.dump_logs()
        raise
    finally:
        cloud.close()
        shutil.rmtree(work, ignore_errors=True)


def mode_metadata():
    """Instance metadata from inside the guests: each instance reads its own id, private
    address (the one DescribeInstances shows) and user data at 169.254.169.254 (IMDSv1 with
    wget, and IMDSv2 with a token PUT by nc). Then MetadataOptions: HttpTokens=required at
    launch (boto3) reaches the host's VM and the guest (IMDSv1 refused), shown applied by
    DescribeInstances; ModifyInstanceMetadataOptions (aws CLI) back to optional, then the
    endpoint disabled, each reaching the VM and the guest."""
    cloud = Cloud(zones="a")
    work = tempfile.mkdtemp(prefix="nimbus-cloud-md-")
    try:
        cloud.add_host("h1", "a", memory="2G")
        aws = Aws(cloud)
        ami = default_image(aws)
        sent = {}
        for n in (1, 2):
            path = os.path.join(work, f"user-data-{n}")
            text = f"#!/bin/sh\necho instance {n} of {os.getpid()}\n"
            with open(path, "w") as f:
                f.write(text)
            r = aws.json("run-instances", "--image-id", ami, "--instance-type", "n1.tiny",
                         "--user-data", f"file://{path}")
            sent[r["Instances"][0]["InstanceId"]] = text
        ids = list(sent)
        aws.run("wait", "instance-running", "--instance-ids", *ids)
        desc = {i["InstanceId"]: i for i in instances_of(aws.json("describe-instances", "--instance-ids", *ids))}
        md = "http://169.254.169.254/latest"
        put = ("printf \"PUT /latest/api/token HTTP/1.0\\r\\nHost: 169.254.169.254\\r\\n"
               "X-aws-ec2-metadata-token-ttl-seconds: 60\\r\\n\\r\\n\" | nc -w 5 169.254.169.254 80 | tail -n 1")
        for iid in ids:
            out = cloud.shell("h1", iid, f"wget -q -O - {md}/meta-data/instance-id; echo; "
                                         f"wget -q -O - {md}/meta-data/local-ipv4; echo", retries=1)
            got_id, got_ip = out.split()[:2]
            assert got_id == iid, (iid, out)
            assert got_ip == desc[iid]["PrivateIpAddress"], (desc[iid].get("PrivateIpAddress"), out)
            out = cloud.shell("h1", iid, f"T=$({put}); wget -q -O - --header \"X-aws-ec2-metadata-token: $T\" "
                                         f"{md}/user-data", retries=1)
            assert out == sent[iid], (iid, out, sent[iid])
            doc = json.loads(cloud.shell("h1", iid, f"wget -q -O - {md}/dynamic/instance-identity/document",
                                         retries=1))
            assert doc["instanceId"] == iid and doc["privateIp"] == got_ip and doc["imageId"] == ami, doc
            log(f"{iid}: its id, {got_ip} and its own user data from inside")

        # Metadata options: RunInstances' (boto3), shown by DescribeInstances, on the host's
        # VM and in the guest; ModifyInstanceMetadataOptions (aws CLI) back to optional.
        ec2 = boto3_client(cloud)
        r = ec2.run_instances(ImageId=ami, InstanceType="n1.tiny", MinCount=1, MaxCount=1,
                              MetadataOptions={"HttpTokens": "required", "HttpPutResponseHopLimit": 2})
        v2 = r["Instances"][0]["InstanceId"]
        ids.append(v2)
        mo = r["Instances"][0]["MetadataOptions"]
        assert (mo["State"], mo["HttpTokens"], mo["HttpPutResponseHopLimit"], mo["HttpEndpoint"]) == \
            ("pending", "required", 2, "enabled"), mo
        fast_wait(ec2, "instance_running", [v2])

        def options():
            return ec2.describe_instances(InstanceIds=[v2])["Reservations"][0]["Instances"][0]["MetadataOptions"]

        def host_options():
            return cloud.host_vm("h1", v2)["metadata_options"]

        mo = wait_for("the options applied", lambda: options()["State"] == "applied" and options(), timeout=30)
        assert mo == {"State": "applied", "HttpTokens": "required", "HttpPutResponseHopLimit": 2,
                      "HttpEndpoint": "enabled", "HttpProtocolIpv6": "disabled",
                      "InstanceMetadataTags": "disabled"}, mo
        assert host_options() == {"http_tokens": "required", "http_endpoint": "enabled", "hop_limit": 2}, \
            host_options()
        v1 = f"wget -q -O - {md}/meta-data/instance-id 2>/dev/null || echo REFUSED"
        v2get = (f"T=$({put}); wget -q -O - --header \"X-aws-ec2-metadata-token: $T\" "
                 f"{md}/meta-data/instance-id 2>/dev/null || echo REFUSED")
        out = cloud.shell("h1", v2, v1)
        assert out.strip() == "REFUSED", ("IMDSv1 with HttpTokens required", out)
        out = cloud.shell("h1", v2, v2get)
        assert out.strip() == v2, ("IMDSv2", out)
        expect_error("InvalidParameterValue", ec2.modify_instance_metadata_options, InstanceId=v2,
                     HttpTokens="maybe")
        expect_error("InvalidParameterValue", ec2.modify_instance_metadata_options, InstanceId=v2,
                     HttpPutResponseHopLimit=65)
        m = aws.json("modify-instance-metadata-options", "--instance-id", v2, "--http-tokens", "optional")
        assert m["InstanceId"] == v2 and m["InstanceMetadataOptions"]["HttpTokens"] == "optional" and \
            m["InstanceMetadataOptions"]["HttpPutResponseHopLimit"] == 2, m
        wait_for("optional applied", lambda: options()["State"] == "applied", timeout=30)
        assert options()["HttpTokens"] == "optional", options()
        assert host_options()["http_tokens"] == "optional", host_options()
        out = cloud.shell("h1", v2, v1)
        assert out.strip() == v2, ("IMDSv1 again", out)
        # The endpoint disabled: the VMM answers every request 403 (EC2's "no metadata").
        aws.run("modify-instance-metadata-options", "--instance-id", v2, "--http-endpoint", "disabled")
        wait_for("disabled applied", lambda: options()["State"] == "applied", timeout=30)
        assert host_options()["http_endpoint"] == "disabled", host_options()
        out = cloud.shell("h1", v2, v1)
        assert out.strip() == "REFUSED", ("endpoint disabled", out)
        out = cloud.shell("h1", v2, v2get)
        assert out.strip() == "REFUSED", ("endpoint disabled, with a token", out)
        log(f"{v2}: metadata options required -> optional -> endpoint disabled, on its VM and in the guest")
        aws.run("terminate-instances", "--instance-ids", *ids)
    except BaseException:
        cloud.dump_logs()
        raise
    finally:
        cloud.close()
        shutil.rmtree(work, ignore_errors=True)


def mode_images():
    """Custom images: a file written in a guest travels in its image to an instance of it on
    another host. Each step is a function of the state so far, so later checks (user data,
    a page the image serves) slot in between."""
    cloud = Cloud(zones="a,b")
    try:
        cloud.add_host("h1", "a", memory="2G")
        cloud.add_host("h2", "b", memory="2G")
        aws = Aws(cloud)
        ec2 = boto3_client(cloud)
        base = default_image(aws)
        marker = f"made by {os.getpid()} at {time.time()}"

        log("an instance on h1 writes a file into its root disk")
        r = aws.json("run-instances", "--image-id", base, "--instance-type", "n1.tiny",
                     "--placement", f"AvailabilityZone={REGION}a")
        src = r["Instances"][0]["InstanceId"]
        aws.run("wait", "instance-running", "--instance-ids", src)
        cloud.shell("h1", src, f"echo '{marker}' > /etc/nimbus-image-test; sync")

        log("create-image (with its reboot): pending at once, then available")
        ami = aws.json("create-image", "--instance-id", src, "--name", "golden-1",
                       "--description", "a file written in the guest",
                       "--tag-specifications", "ResourceType=image,Tags=[{Key=team,Value=web}]")["ImageId"]
        img = ec2.describe_images(ImageIds=[ami])["Images"][0]
        assert img["State"] in ("pending", "available"), img
        err = aws.error("create-image", "--instance-id", src, "--name", "golden-1")
        assert "InvalidAMIName.Duplicate" in err, err
        ec2.get_waiter("image_available").wait(ImageIds=[ami], WaiterConfig={"Delay": 1, "MaxAttempts": 180})
        img = ec2.describe_images(ImageIds=[ami])["Images"][0]
        assert img["State"] == "available" and img["Name"] == "golden-1", img
        assert img["OwnerId"] == "000000000000" and not img["Public"], img
        assert img["Architecture"] == "riscv64" and img["RootDeviceName"] == "/dev/vda", img
        assert img["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] >= 1, img
        assert {"Key": "team", "Value": "web"} in img.get("Tags", []), img
        mine = ec2.describe_images(Owners=["self"])["Images"]
        assert [i["ImageId"] for i in mine] == [ami], mine
        named = ec2.describe_images(Filters=[{"Name": "name", "Values": ["golden-*"]}])["Images"]
        assert [i["ImageId"] for i in named] == [ami], named
        state = instances_of(aws.json("describe-instances", "--instance-ids", src))[0]["State"]["Name"]
        assert state == "running", state  # rebooted for the image, running again
        wait_for("the source instance's agent after the reboot",
                 lambda: marker in cloud.shell("h1", src, "cat /etc/nimbus-image-test"), timeout=120)

        log("an instance of the new AMI on h2: the host fetches the image, the file is there")
        r = aws.json("run-instances", "--image-id", ami, "--instance-type", "n1.tiny",
                     "--placement", f"AvailabilityZone={REGION}b")
        child = r["Instances"][0]["InstanceId"]
        aws.run("wait", "instance-running", "--instance-ids", child)
        inst = instances_of(aws.json("describe-instances", "--instance-ids", child))[0]
        assert inst["ImageId"] == ami, inst
        assert inst["Placement"]["AvailabilityZone"] == f"{REGION}b", inst  # h2, the only host in b
        out = cloud.shell("h2", child, "cat /etc/nimbus-image-test")
        assert out.strip() == marker, (out, marker)

        log("deregister-image: the bundled image is refused; the new one goes, its instance runs on")
        err = aws.error("deregister-image", "--image-id", base)
        assert "AuthFailure" in err, err
        aws.run("deregister-image", "--image-id", ami)
        err = aws.error("describe-images", "--image-ids", ami)
        assert "InvalidAMIID.NotFound" in err, err
        assert [i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]] == []
        assert not os.path.exists(os.path.join(cloud.dir, "cloud", "images", ami))
        err = aws.error("run-instances", "--image-id", ami, "--instance-type", "n1.tiny")
        assert "InvalidAMIID.NotFound" in err, err
        assert marker in cloud.shell("h2", child, "cat /etc/nimbus-image-test")
        aws.run("terminate-instances", "--instance-ids", src, child)
        aws.run("wait", "instance-terminated", "--instance-ids", src, child)
    except BaseException:
        cloud.dump_logs()
        raise
    finally:
        cloud.close()


def main():
    {"story": mode_story, "boto3": mode_boto3, "parallel": mode_parallel,
     "failures": mode_failures, "keys": mode_keys, "metadata": mode_metadata,
     "images": mode_images}[MODE]()
    log(f"{MODE}: PASS")


if __name__ == "__main__":
    main()
