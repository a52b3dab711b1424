#!/usr/bin/env python3
"""`nimbus cloud simulate` from the command line (issue 22): no cloud, no root, no boot.

usage: simulate_cli_test.py NIMBUS

1. The shipped trace scenario (docs/simulation/scenarios/trace-example.json) with --out and
   --placements: exit 0, the summary names the scenario's policies, the report directory has
   every file (CSV, SVG plots that parse as XML, index.html), placements.csv has one row per
   launch per policy, and pack never keeps more hosts on (mean) than spread.
2. The --datacenter X --trace Y form, with files the test writes.
3. Hostile or mistaken inputs: each exits 2 with one line on stderr naming the problem (and
   no traceback, no sanitizer or abort garbage).
"""
import csv
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCENARIO = os.path.join(ROOT, "docs", "simulation", "scenarios", "trace-example.json")
HEADER = ("time_s,event,instance,type,vcpus,memory_mib,disk_mib,zone,group,group_strategy,"
          "partitions,cpu")
REPORT_FILES = ["summary.csv", "timeseries.csv", "placements.csv", "hosts.svg",
                "utilisation.svg", "memory.svg", "energy.svg", "index.html"]

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}", flush=True)


def simulate(nimbus, *args):
    return subprocess.run([nimbus, "cloud", "simulate", *args], capture_output=True, text=True,
                          timeout=120)


def scenario_policies():
    with open(SCENARIO) as f:
        return json.load(f)["simulation"]["policies"]


def trace_launches(path):
    n = 0
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or line == HEADER:
                continue
            n += line.split(",")[1] == "launch"
    return n


def summary_policies(stdout):
    """The policy names that start the summary table's rows (under its "policy" header)."""
    lines = stdout.splitlines()
    if not lines or not lines[0].startswith("policy"):
        return []
    known = {"spread", "pack", "pack+migrate", "dedicated"}
    names = []
    for line in lines[1:]:
        word = line.split()[0] if line.split() else ""
        if word not in known:
            break
        names.append(word)
    return names


def check_report(out, policies, launches, label):
    for name in REPORT_FILES:
        check(os.path.isfile(os.path.join(out, name)), f"{label}: {name} written")
    for name in REPORT_FILES:
        if name.endswith(".svg") and os.path.isfile(os.path.join(out, name)):
            try:
                root = ET.parse(os.path.join(out, name)).getroot()
                check(root.tag.endswith("svg"), f"{label}: {name}'s root is <svg>, not {root.tag}")
            except ET.ParseError as e:
                check(False, f"{label}: {name} parses as XML ({e})")
    with open(os.path.join(out, "placements.csv")) as f:
        rows = list(csv.DictReader(f))
    for p in policies:
        mine = [r for r in rows if r["policy"] == p]
        check(len(mine) == launches,
              f"{label}: placements.csv has {len(mine)} rows for {p}, want {launches} (one per launch)")
        check(len({r["instance"] for r in mine}) == launches,
              f"{label}: placements.csv names each instance once for {p}")
    check({r["policy"] for r in rows} == set(policies),
          f"{label}: placements.csv's policies {sorted({r['policy'] for r in rows})} are {policies}")
    with open(os.path.join(out, "summary.csv")) as f:
        summary = {r["policy"]: r for r in csv.DictReader(f)}
    check(sorted(summary) == sorted(policies), f"{label}: summary.csv has a row per policy")
    for p in policies:
        if p in summary:
            check(int(summary[p]["launches"]) == launches,
                  f"{label}: summary.csv's {p} launches {summary[p]['launches']} == {launches}")
    if "pack" in summary and "spread" in summary:
        pack, spread = float(summary["pack"]["mean_hosts_on"]), float(summary["spread"]["mean_hosts_on"])
        check(pack <= spread, f"{label}: pack's mean hosts {pack} <= spread's {spread}")
    with open(os.path.join(out, "index.html")) as f:
        html = f.read()
    for name in ("hosts.svg", "utilisation.svg", "memory.svg", "energy.svg"):
        check(name in html, f"{label}: index.html shows {name}")


def test_scenario(nimbus, work):
    out = os.path.join(work, "report")
    r = simulate(nimbus, SCENARIO, "--out", out, "--placements")
    check(r.returncode == 0, f"scenario: exit {r.returncode}, stderr {r.stderr.strip()[:300]}")
    policies = scenario_policies()
    check(summary_policies(r.stdout) == policies,
          f"scenario: the summary lists {summary_policies(r.stdout)}, want {policies}")
    trace = os.path.join(ROOT, "docs", "simulation", "trace-example.csv")
    check_report(out, policies, trace_launches(trace), "scenario")


DATACENTER = {
    "name": "cli-dc",
    "zones": [
        {"name": "za", "hosts": [{"shape": "s8", "count": 4, "cpus": 8, "memory_mib": 32768}]},
        {"name": "zb", "hosts": [{"shape": "s16", "count": 2, "cpus": 16, "memory_mib": 65536,
                                  "peak_watts": 350}]},
    ],
}


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def good_trace():
    lines = [HEADER]
    for i in range(12):
        zone = "za" if i % 3 == 0 else ("zb" if i % 3 == 1 else "")
        lines.append(f"{i * 60},launch,vm-{i},t3.large,,,,{zone},,,,0.{i % 9 + 1}")
    lines.append("900,util,vm-0,,,,,,,,,0.8")
    lines.append("1200,terminate,vm-1")
    lines.append("1800,launch,big,,6,8192,,,,,,0.5")
    lines.append("3600,terminate,vm-2")
    return "\n".join(lines) + "\n"


def test_datacenter_trace(nimbus, work):
    dc = write(os.path.join(work, "dc.json"), json.dumps(DATACENTER))
    trace = write(os.path.join(work, "mine.csv"), good_trace())
    out = os.path.join(work, "report2")
    policies = ["spread", "pack", "dedicated"]
    r = simulate(nimbus, "--datacenter", dc, "--trace", trace, "--policies", ",".join(policies),
                 "--sample-interval", "30", "--out", out, "--placements")
    check(r.returncode == 0, f"--datacenter/--trace: exit {r.returncode}, stderr {r.stderr.strip()[:300]}")
    check(summary_policies(r.stdout) == policies,
          f"--datacenter/--trace: the summary lists {summary_policies(r.stdout)}, want {policies}")
    check("cli-dc" in r.stdout and "mine" in r.stdout,
          "--datacenter/--trace: the summary names the data center and the trace")
    check_report(out, policies, trace_launches(trace), "--datacenter/--trace")


def expect_usage_error(nimbus, label, args, *needles):
    r = simulate(nimbus, *args)
    err = r.stderr.strip()
    check(r.returncode == 2, f"{label}: exit {r.returncode}, want 2 (stderr {err[:300]!r})")
    lines = err.splitlines()
    check(len(lines) == 1, f"{label}: one line on stderr, got {len(lines)}: {err[:500]!r}")
    for bad in ("Traceback", "AddressSanitizer", "runtime error", "terminate called", "Aborted"):
        check(bad not in err, f"{label}: no '{bad}' on stderr")
    for n in needles:
        check(n.lower() in err.lower(), f"{label}: stderr names {n!r}: {err[:300]!r}")
    check("report:" not in r.stdout, f"{label}: no report written")


def test_bad_inputs(nimbus, work):
    dc = write(os.path.join(work, "dc.json"), json.dumps(DATACENTER))
    trace = write(os.path.join(work, "ok.csv"), good_trace())
    missing = os.path.join(work, "no-such-file.json")
    expect_usage_error(nimbus, "missing scenario", [missing], "no-such-file.json")
    expect_usage_error(nimbus, "missing trace", ["--datacenter", dc, "--trace", missing + ".csv"],
                       "no-such-file.json.csv")
    garbage = write(os.path.join(work, "garbage.json"), '{"name": "x", "zones": [ \x01 nope')
    expect_usage_error(nimbus, "garbage scenario JSON", [garbage], "JSON")
    expect_usage_error(nimbus, "garbage data center JSON", ["--datacenter", garbage, "--trace", trace],
                       "JSON")
    bad_line = good_trace().splitlines()
    bad_line.insert(5, "240,launch,oops,t3.large,,,,za,,,,not-a-number")  # line 6 of the file
    bad = write(os.path.join(work, "bad-line.csv"), "\n".join(bad_line) + "\n")
    expect_usage_error(nimbus, "trace with a bad line", ["--datacenter", dc, "--trace", bad],
                       "line 6", "cpu")
    expect_usage_error(nimbus, "unknown policy",
                       ["--datacenter", dc, "--trace", trace, "--policies", "spread,squeeze"],
                       "squeeze")
    expect_usage_error(nimbus, "--placements without --out",
                       ["--datacenter", dc, "--trace", trace, "--placements"], "--out")
    expect_usage_error(nimbus, "negative --sample-interval",
                       ["--datacenter", dc, "--trace", trace, "--sample-interval=-5"],
                       "sample")
    unknown_type = write(os.path.join(work, "unknown-type.csv"),
                         HEADER + "\n0,launch,a,t3.medium\n5,launch,b,m9.gigantic,,,,,,,,0.1\n")
    expect_usage_error(nimbus, "unknown instance type",
                       ["--datacenter", dc, "--trace", unknown_type], "m9.gigantic")
    bad_zone = write(os.path.join(work, "bad-zone.csv"),
                     HEADER + "\n0,launch,a,t3.medium,,,,za\n5,launch,b,t3.medium,,,,zq\n")
    expect_usage_error(nimbus, "zone not in the data center",
                       ["--datacenter", dc, "--trace", bad_zone], "zq")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    nimbus = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="simulate-cli-") as work:
        test_scenario(nimbus, work)
        test_datacenter_trace(nimbus, work)
        test_bad_inputs(nimbus, work)
    if failures:
        print(f"{len(failures)} check(s) failed", flush=True)
        sys.exit(1)
    print("simulate_cli: all checks passed")


if __name__ == "__main__":
    main()
