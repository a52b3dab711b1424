#!/usr/bin/env python3
"""The simulator against the real cloud (issue 22): the same small workload, the same
placement decisions.

usage: simulate_test.py NIMBUS_CLOUD NIMBUS NIMBUSD WORKDIR

For each strategy (pack, then spread), a real Nimbus Cloud on this machine's loopback with
three nimbusd hosts (zone a: ha1 2 CPUs/2 GiB and ha2 4 CPUs/3 GiB; zone b: hb1 2 CPUs/1.5 GiB),
driven by Debian's aws CLI one request at a time: fourteen launches of mixed catalogue types,
some pinned to a zone, two terminations in between (each waited for until the instance is
terminated and its claim gone from the host's allocation), and launches that no host can take
(InsufficientInstanceCapacity); and a spread and a cluster placement group with three launches
each (`--placement GroupName=G`), one of each refused by the group's rule and one cluster
launch steered by it. Each launch's host (RunInstances' Placement.HostId, checked
against DescribeInstances and the operator view) or its refusal is recorded.

Then the same workload as a trace CSV (group and group_strategy on each grouped launch), and
the three hosts as a data-center JSON whose numbers are the capacities the control plane's
operator view (/nimbus/v1/hosts) reports (vCPUs, memory, disk, per-VM overhead; explicit ids),
go to `nimbus cloud simulate --placements` with the same policy; its placements.csv must name
the same host for every launch and refuse the same ones, with the same shortage in its reason
as the control plane's error message (what was short on how many hosts, the most free; or what
the group's rule excluded: the same state). Pack and spread must place the workload
differently somewhere, so that the check tells the two apart. VMs boot but are not waited
for: placement is decided at RunInstances.
"""
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as ct  # noqa: E402
from harness import boto3_client, instances_of, log, wait_for  # noqa: E402

ZONE_A, ZONE_B = f"{ct.REGION}a", f"{ct.REGION}b"
HOSTS = [("ha1", "a", "2G", 2), ("ha2", "a", "3G", 4), ("hb1", "b", "1536M", 2)]

# (label, "launch", type, zone or "", placement group or "") | (label, "terminate") |
# (group, "group", strategy): CreatePlacementGroup. Memory per instance is the type's plus the
# host's per-VM overhead (64 MiB): n1.tiny 192, n1.small 320, n1.medium and t3.nano 576, n1.large
# and t3.micro 1088; hosts 2048 + 3072 + 1536 MiB. L3 and L7 pin zone b (1536 MiB), so L7 (1088)
# cannot fit beside L3 (576): refused under any strategy. The end asks for more than is left.
# The placement groups: S1..S3 pin zone a (two hosts), so the spread group has no host left for
# S3 (refused for the group's rule, with room on both hosts); C1 pins zone b, so C2 goes beside
# it on hb1 where pack and spread alone would take ha1 (the simulator with the group columns
# blanked does), and C3, pinned to zone a, is refused: the cluster group has its instances in
# zone b. Blanking either group's columns in the trace makes the simulator differ under both
# strategies.
WORKLOAD = [
    ("L1", "launch", "n1.small", "", ""),
    ("L2", "launch", "t3.micro", "", ""),
    ("L3", "launch", "n1.medium", ZONE_B, ""),
    ("pg-spread", "group", "spread"),
    ("pg-cluster", "group", "cluster"),
    ("S1", "launch", "n1.tiny", ZONE_A, "pg-spread"),
    ("C1", "launch", "n1.tiny", ZONE_B, "pg-cluster"),
    ("S2", "launch", "n1.tiny", ZONE_A, "pg-spread"),
    ("C2", "launch", "n1.small", "", "pg-cluster"),
    ("S3", "launch", "n1.tiny", ZONE_A, "pg-spread"),
    ("C3", "launch", "n1.tiny", ZONE_A, "pg-cluster"),
    ("L4", "launch", "n1.large", "", ""),
    ("L5", "launch", "n1.tiny", ZONE_A, ""),
    ("L2", "terminate"),
    ("L6", "launch", "t3.micro", "", ""),
    ("L7", "launch", "n1.large", ZONE_B, ""),
    ("L8", "launch", "n1.medium", "", ""),
    ("L4", "terminate"),
    ("L9", "launch", "t3.nano", "", ""),
    ("L10", "launch", "n1.large", "", ""),
    ("L11", "launch", "t3.micro", ZONE_A, ""),
    ("L12", "launch", "n1.small", ZONE_B, ""),
    ("L13", "launch", "n1.large", "", ""),
    ("L14", "launch", "t3.micro", "", ""),
]
GROUPS = {s[0]: s[2] for s in WORKLOAD if s[1] == "group"}


def claims(cloud):
    """Instance id -> host id, from the operator view's allocations."""
    out = {}
    for h in cloud.operator("/nimbus/v1/hosts")["hosts"]:
        for iid in h["instances"]:
            out[iid] = h["id"]
    return out


def run_real(strategy):
    """The workload on a real cloud; returns (outcomes, host views, disk_mib): outcomes maps
    each launch label to ("host", HOST, iid) or ("refused", message)."""
    cloud = ct.Cloud(zones="a,b", strategy=strategy)
    try:
        t0 = time.monotonic()
        for name, zone, memory, cpus in HOSTS:
            cloud.add_host(name, zone, memory=memory, cpus=cpus)
        views = {h["id"]: h for h in cloud.operator("/nimbus/v1/hosts")["hosts"]}
        assert sorted(views) == sorted(h[0] for h in HOSTS), views.keys()
        log(f"{strategy}: control plane and 3 hosts up in {time.monotonic() - t0:.1f}s")
        aws = ct.Aws(cloud)
        ec2 = boto3_client(cloud)
        image = ct.default_image(aws)
        ids = {}        # label -> instance id (live or terminated)
        live = set()    # labels of instances that hold a claim
        outcomes = {}
        disk_mib = None
        for step in WORKLOAD:
            label, what = step[0], step[1]
            # The cloud holds exactly what the workload says it holds (a VM that failed to
            # start would have been terminated by the reconciler, freeing its claim, and the
            # simulator would not know).
            held = claims(cloud)
            assert set(held) == {ids[lb] for lb in live}, (label, held, live)
            # Every host alive (a heartbeat missed on a loaded machine would change where the
            # scheduler can place, which the simulator's hosts know nothing of).
            down = [h["id"] for h in cloud.operator("/nimbus/v1/hosts")["hosts"] if not h["alive"]]
            assert not down, (label, "hosts not alive", down)
            if what == "terminate":
                iid = ids[label]
                aws.json("terminate-instances", "--instance-ids", iid)
                wait_for(f"{label} ({iid}) terminated", lambda: instances_of(ec2.describe_instances(
                    InstanceIds=[iid]))[0]["State"]["Name"] == "terminated", timeout=120)
                wait_for(f"{label}'s claim released", lambda: iid not in claims(cloud), timeout=30)
                live.discard(label)
                continue
            if what == "group":
                # boto3 rather than another aws process: the same API call, a second less.
                ec2.create_placement_group(GroupName=label, Strategy=step[2])
                continue
            itype, zone, group = step[2], step[3], step[4]
            args = ["run-instances", "--image-id", image, "--instance-type", itype, "--count", "1"]
            placement = ",".join(([f"AvailabilityZone={zone}"] if zone else []) +
                                 ([f"GroupName={group}"] if group else []))
            if placement:
                args += ["--placement", placement]
            shown = f"{label} {itype} {zone or '(any zone)'}" + (f" {group}" if group else "")
            r = aws.run(*args, ok=False)
            if r.returncode != 0:
                assert "InsufficientInstanceCapacity" in r.stderr, (label, r.stderr)
                outcomes[label] = ("refused", r.stderr.strip())
                log(f"{strategy}: {shown}: refused")
                continue
            inst = json.loads(r.stdout)["Instances"][0]
            iid, host = inst["InstanceId"], inst["Placement"]["HostId"]
            assert not zone or inst["Placement"]["AvailabilityZone"] == zone, (label, inst["Placement"])
            assert inst["Placement"].get("GroupName", "") == group, (label, inst["Placement"])
            ids[label] = iid
            live.add(label)
            outcomes[label] = ("host", host, iid)
            held = claims(cloud)
            assert held.get(iid) == host, (label, iid, host, held)
            view = {h["id"]: h for h in cloud.operator("/nimbus/v1/hosts")["hosts"]}
            claim = view[host]["instances"][iid]
            assert claim["vcpus"] >= 1 and claim["memory_mib"] >= 1, claim
            if disk_mib is None:
                disk_mib = claim["disk_mib"]
            assert claim["disk_mib"] == disk_mib, (claim, disk_mib)
            log(f"{strategy}: {shown}: {iid} on {host}")
        # DescribeInstances agrees with what RunInstances said.
        placed = {o[2]: o[1] for o in outcomes.values() if o[0] == "host"}
        desc = instances_of(ec2.describe_instances(InstanceIds=list(placed)))
        for i in desc:
            assert i["Placement"]["HostId"] == placed[i["InstanceId"]], (i["InstanceId"], i["Placement"])
        # The groups as the cloud holds them, with the strategies the trace gives the simulator.
        pgs = ec2.describe_placement_groups()["PlacementGroups"]
        assert {g["GroupName"]: g["Strategy"] for g in pgs} == GROUPS, pgs
        log(f"{strategy}: workload done in {time.monotonic() - t0:.1f}s")
    except BaseException:
        cloud.dump_logs()
        cloud.close()
        raise  # its directory kept (the logs)
    cloud.close()
    shutil.rmtree(cloud.dir, ignore_errors=True)  # the instances' disks: ~230 MB
    return outcomes, views, disk_mib


def datacenter(views):
    """The hosts as the control plane reports them, in the simulator's data-center format."""
    zones = {}
    for hid in sorted(views):
        h = views[hid]["host"]
        shape = {"shape": hid, "count": 1, "ids": [hid],
                 "cpus": h["cpus"]["capacity"], "cpu_overcommit": 1.0,
                 "memory_mib": h["memory_mib"]["capacity"], "memory_overcommit": 1.0,
                 "disk_mib": h["disk_mib"]["capacity"], "vm_overhead_mib": h["vm_overhead_mib"]}
        zones.setdefault(views[hid]["zone"], []).append(shape)
    return {"name": "real-cloud-check",
            "zones": [{"name": z, "hosts": shapes} for z, shapes in sorted(zones.items())]}


def trace_csv(disk_mib):
    lines = ["time_s,event,instance,type,vcpus,memory_mib,disk_mib,zone,group,group_strategy,partitions,cpu"]
    for t, step in enumerate(WORKLOAD):
        if step[1] == "terminate":
            lines.append(f"{t},terminate,{step[0]},,,,,,,,,")
        elif step[1] == "launch":
            group = step[4]
            lines.append(f"{t},launch,{step[0]},{step[2]},,,{disk_mib},{step[3]},{group},"
                         f"{GROUPS[group] if group else ''},,")
    return "\n".join(lines) + "\n"


def run_sim(nimbus, work, strategy, views, disk_mib):
    d = tempfile.mkdtemp(prefix=f"sim-{strategy}-", dir=work)
    dc, trace, out = os.path.join(d, "dc.json"), os.path.join(d, "trace.csv"), os.path.join(d, "out")
    with open(dc, "w") as f:
        json.dump(datacenter(views), f, indent=1)
    with open(trace, "w") as f:
        f.write(trace_csv(disk_mib))
    r = subprocess.run([nimbus, "cloud", "simulate", "--datacenter", dc, "--trace", trace, "--policies",
                        strategy, "--out", out, "--placements"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    with open(os.path.join(out, "placements.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    got = {}
    for row in rows:
        assert row["policy"] == strategy, row
        assert row["instance"] not in got, ("placed twice", row)
        got[row["instance"]] = ("host", row["host"]) if row["host"] else ("refused", row["reason"])
    return d, got


def compare(strategy, real, sim):
    """A side-by-side table; returns the labels that differ."""
    launches = [s for s in WORKLOAD if s[1] == "launch"]
    print(f"\n{strategy}: {'launch':<5} {'type':<10} {'zone':<15} {'group':<11} {'real cloud':<12} "
          f"{'simulator':<12}")
    differ = []
    for label, _, itype, zone, group in launches:
        r = real[label][1] if real[label][0] == "host" else "REFUSED"
        s = sim.get(label, ("missing",))
        s = s[1] if s[0] == "host" else "REFUSED" if s[0] == "refused" else "(missing)"
        # A refusal on both sides: the simulator's shortage (what was short on how many
        # hosts, the most free) is the very text the control plane's error carries.
        same_reason = True
        if r == s == "REFUSED":
            same_reason = " ".join(sim[label][1].split()) in " ".join(real[label][1].split())
        mark = "" if r == s and same_reason else "   <-- differs" if r != s else "   <-- another reason"
        if mark:
            differ.append(label)
        print(f"{strategy}: {label:<5} {itype:<10} {zone or '-':<15} {group or '-':<11} {r:<12} {s:<12}{mark}",
              flush=True)
        if r == s == "REFUSED":
            print(f"{strategy}:       simulator: {sim[label][1]}\n{strategy}:       real cloud: "
                  f"{real[label][1]}", flush=True)
    extra = set(sim) - {s[0] for s in launches}
    assert not extra, f"the simulator placed instances the workload does not launch: {extra}"
    return differ


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    cloud_bin, nimbus, nimbusd, work = sys.argv[1:]
    ct.PREFIXES.setdefault("simulate", "127.129")
    ct.configure(cloud_bin, nimbus, nimbusd, "simulate")
    os.makedirs(work, exist_ok=True)
    t0 = time.monotonic()
    real, failures = {}, []
    for strategy in ("pack", "spread"):
        outcomes, views, disk_mib = run_real(strategy)
        real[strategy] = outcomes
        sim_dir, sim = run_sim(nimbus, work, strategy, views, disk_mib)
        differ = compare(strategy, outcomes, sim)
        if differ:
            failures.append(f"{strategy}: the simulator differs from the real cloud on {differ} "
                            f"(its inputs and report: {sim_dir})")
        else:
            shutil.rmtree(sim_dir, ignore_errors=True)
        refused = [lb for lb, o in outcomes.items() if o[0] == "refused"]
        if len(refused) < 2:
            failures.append(f"{strategy}: the workload should meet refusals (got {refused})")
    # The check tells the strategies apart: the workload places differently under each.
    hosts = {s: {lb: o[1] if o[0] == "host" else None for lb, o in real[s].items()} for s in real}
    if hosts["pack"] == hosts["spread"]:
        failures.append("pack and spread placed the workload identically: the check proves little")
    log(f"total {time.monotonic() - t0:.1f}s")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("PASSED: the simulator's placements equal the real cloud's (pack and spread)")


if __name__ == "__main__":
    main()
