// `nimbus cloud simulate`: the control plane's scheduler over a simulated data center
// (docs/simulation.md). Reads a scenario file (or a data center and a trace), runs every
// policy, prints the summary, writes the CSV files and plots with --out.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace nimbus::cli {

struct SimulateOptions {
  std::string scenario;           // a scenario file ("" = --datacenter and --trace)
  std::string datacenter, trace;  // override the scenario's
  std::string policies;           // comma-separated ("" = the scenario's, else the default)
  std::string out;                // the report's directory ("" = summary only)
  bool placements = false;        // record each launch's host (placements.csv)
  double sample_interval_s = -1, consolidate_interval_s = -1, consolidate_threshold = -1;
};

// Adds the flags of `simulate` to `cmd`.
void add_simulate_flags(CLI::App* cmd, SimulateOptions& o);

// Runs it; 0 done, 1 it failed (one line on stderr), 2 bad arguments.
int simulate_command(const SimulateOptions& o);

}  // namespace nimbus::cli
