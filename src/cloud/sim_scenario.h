// A simulation scenario file (docs/simulation-formats.md): one JSON file naming the data
// center, the workload and the simulation's settings for one run.
#pragma once

#include <string>
#include <vector>

#include "cloud/sim_model.h"
#include "common/status.h"

namespace nimbus::cloud::sim {

struct Scenario {
  std::string name;
  DataCenter dc;
  Workload workload;
  std::vector<std::string> policies;  // as written ("spread", "pack", ...); empty: the default
  // Negative: not given (the engine's default).
  double sample_interval_s = -1, consolidate_interval_s = -1, consolidate_threshold = -1;
};

// The policy names a scenario may list.
inline const std::vector<std::string>& scenario_policy_names() {
  static const std::vector<std::string> names = {"spread", "pack", "pack+migrate", "dedicated"};
  return names;
}

// Parses a scenario:
//   {"name": "...",
//    "datacenter": {data center JSON} | "datacenter_file": "dc.json",
//    "workload": {"generator": {...}} | {"trace": "t.csv"} | {"consolidation": {...}},
//    "duration_s": optional (the generator's duration, or the end of a trace's run),
//    "simulation": {"policies": [...], "sample_interval_s", "consolidate_interval_s",
//                   "consolidate_threshold"}}
// File names are relative to `base_dir` (load_scenario: the scenario file's directory).
// Unknown keys anywhere are errors. kInvalidArgument naming the key; kNotFound for a missing
// referenced file.
Result<Scenario> parse_scenario(const std::string& json_text, const std::string& base_dir);
Result<Scenario> load_scenario(const std::string& path);

}  // namespace nimbus::cloud::sim
