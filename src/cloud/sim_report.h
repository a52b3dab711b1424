// What a simulation run shows a person: a text summary, CSV files and SVG plots
// (docs/simulation.md).
#pragma once

#include <string>

#include "cloud/sim_engine.h"
#include "common/status.h"

namespace nimbus::cloud::sim {

// A table, one row per policy: hosts on (mean, peak) against the lower bound, CPU used,
// refused, migrations and GiB moved, energy in kWh and the saving against the first policy
// named dedicated or spread; then the scale of the run (hosts, events, wall seconds).
std::string summary_text(const SimResult& r);

// Into `dir` (created if missing): timeseries.csv (policy,time_s,hosts_on,lower_bound,
// cpu_allocated,cpu_used,memory_allocated,power_w,instances,refused,migrations),
// summary.csv (one row per policy), placements.csv when recorded
// (policy,time_s,instance,host,reason), and the plots hosts.svg (hosts on per policy and
// the lower bound over time), utilisation.svg (CPU used per policy), memory.svg (memory allocated
// per policy), energy.svg (cumulative kWh per policy), plus index.html showing them with the
// summary.
Status write_report(const SimResult& r, const std::string& dir);

}  // namespace nimbus::cloud::sim
