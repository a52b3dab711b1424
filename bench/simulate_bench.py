#!/usr/bin/env python3
"""The data-center simulation (`nimbus cloud simulate`, docs/simulation.md) on the shipped
scenarios of docs/simulation/scenarios, pinned to one core (taskset -c 0):

  consolidation   the seed's scenario: 1000 small applications, one per server (dedicated),
                  spread, pack and pack+migrate over one day
  datacenter-10k  10,000 hosts in 4 zones, about 1,000,000 instance events over a week
                  (day/night arrivals, lognormal lifetimes), spread vs pack vs pack+migrate
  trace-example   the small example trace

Prints each summary, the wall time and peak memory of the whole command (parsing and
generating included) and the savings. The peer column is the policy compared against
(dedicated or spread; pack for pack+migrate); there is no other simulator on this machine.
With --figures DIR the reports (SVG plots, CSV, index.html) are kept there. Appends rows for
run-all.sh when $NIMBUS_BENCH_RESULTS is set.
"""
import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SCENARIOS = ["consolidation", "datacenter-10k", "trace-example"]


def record(*row):
    out = os.environ.get("NIMBUS_BENCH_RESULTS")
    if out:
        with open(out, "a") as f:
            f.write("\t".join(row) + "\n")


def run(nimbus, scenario, out):
    """The summary rows by policy, wall seconds and peak RSS (MiB) of one run."""
    path = os.path.join(ROOT, "docs", "simulation", "scenarios", scenario + ".json")
    timing = os.path.join(out, "time.txt")
    cmd = ["/usr/bin/time", "-f", "%e %M", "-o", timing]
    if shutil.which("taskset"):
        cmd += ["taskset", "-c", "0"]
    cmd += [nimbus, "cloud", "simulate", path, "--out", out]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{scenario}: {p.stderr.strip()}")
    print(p.stdout, end="")
    with open(timing) as f:
        wall, rss_kib = f.read().split()[-2:]
    with open(os.path.join(out, "summary.csv")) as f:
        rows = {r["policy"]: r for r in csv.DictReader(f)}
    return rows, float(wall), int(rss_kib) / 1024


def saving(name, rows, policy, baseline, unit_field, unit):
    if policy not in rows or baseline not in rows:
        return
    ours, theirs = float(rows[policy][unit_field]), float(rows[baseline][unit_field])
    ratio = ours / theirs if theirs else float("nan")
    print(f"  {name}: {policy} {ours:.1f} vs {baseline} {theirs:.1f} {unit}, ratio {ratio:.3f} "
          f"(saving {100 * (1 - ratio):.1f}%)")
    record(name, f"{ours:.1f}", f"{theirs:.1f}", unit, f"{ratio:.3f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nimbus", default=os.path.join(ROOT, "build", "nimbus"))
    ap.add_argument("--figures", help="keep each scenario's report under this directory")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="nimbus-sim-bench-")
    try:
        for scenario in SCENARIOS:
            out = os.path.join(a.figures or work, scenario)
            os.makedirs(out, exist_ok=True)
            print(f"== {scenario}")
            rows, wall, rss = run(a.nimbus, scenario, out)
            os.unlink(os.path.join(out, "time.txt"))
            print(f"  whole command: {wall:.2f} s on one core, peak RSS {rss:.0f} MiB")
            record(f"simulate {scenario}: wall (all policies)", f"{wall:.2f}", "-", "s", "-")
            record(f"simulate {scenario}: peak RSS", f"{rss:.0f}", "-", "MiB", "-")
            base = "dedicated" if "dedicated" in rows else "spread"
            for policy in ("pack", "pack+migrate"):
                saving(f"{scenario}: hosts on (mean), {policy}", rows, policy, base,
                       "mean_hosts_on", "hosts")
                saving(f"{scenario}: energy, {policy}", rows, policy, base, "energy_kwh", "kWh")
            saving(f"{scenario}: hosts on (mean), migration", rows, "pack+migrate", "pack",
                   "mean_hosts_on", "hosts")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
