// `nimbus cloud simulate`: the control plane's scheduler over a simulated data center
// (docs/simulation.md). Reads a scenario file (or a data center and a trace), runs every
// policy, prints the summary, writes the CSV files and plots with --out.
#pragma once

#include <CLI/CLI.hpp>
#include <limits>
#include <string>

namespace nimbus::cli {

inline constexpr double kNotGiven = std::numeric_limits<double>::quiet_NaN();

struct SimulateOptions {
  std::string scenario;           // a scenario file ("" = --datacenter and --trace)
  std::string datacenter, trace;  // override the scenario's
  std::string policies;           // comma-separated ("" = the scenario's, else the default)
  std::string out;                // the report's directory ("" = summary only)
  bool placements = false;        // record each launch's host (placements.csv)
  // NaN: not given (the scenario's, else the engine's default); a given value is checked.
  double sample_interval_s = kNotGiven, consolidate_interval_s = kNotGiven,
         consolidate_threshold = kNotGiven;
};

// Adds the flags of `simulate` to `cmd`.
void add_simulate_flags(CLI::App* cmd, SimulateOptions& o);

// Runs it; 0 done, 1 it failed (one line on stderr), 2 bad arguments.
int simulate_command(const SimulateOptions& o);

}  // namespace nimbus::cli
