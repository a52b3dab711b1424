// `nimbus cloud`: a whole EC2-compatible cloud on this machine in one command
// (docs/cloud-cli.md). `up` starts the control plane (nimbus-cloud) and N hosts (nimbusd)
// that join it; `down` stops them; `hosts`, `zones` and `instances` are the operator's
// view through the control plane's /nimbus/v1 paths (its join token is the credential);
// `move`, `drain` and `undrain` move instances between hosts (live migration); `simulate`
// runs the scheduler over a simulated data center (docs/simulation.md).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "cli/cloud_plan.h"
#include "cli/cloud_simulate.h"

namespace nimbus::cli {

struct CloudCommandOptions {
  std::string verb;    // up, down, hosts, zones, instances, regions ("" = none), set by the parser
  CloudUpSettings up;  // up's flags; up.state_dir is every verb's --state-dir
  int timeout_s = 30;  // up: seconds for the control plane and every host to be up
  bool purge = false;  // down: also delete the state directory
  std::string endpoint;      // the views: the control plane's URL (default: the record's)
  bool json = false;         // the views: print the control plane's JSON
  std::string region;        // the views and regions: NAME or auto ("" = the endpoint's own)
  bool latency = false;      // regions: measure every region's round-trip time
  int samples = 5;           // regions and --region auto: samples per region
  std::string target;        // move: the instance id; drain, undrain: the host id
  std::string move_host;     // move --host: the target ("" the scheduler's pick)
  bool wait = false;         // move, drain: until the moves are done, printing each
  int wait_timeout_s = 900;  // move, drain --wait
  SimulateOptions simulate;  // simulate
};

void add_cloud_command(CLI::App& app, CloudCommandOptions& options);

// Runs the verb; returns the exit status: 0 done, 1 it failed (one line on stderr), 2 bad
// arguments.
int cloud_command(const CloudCommandOptions& options);

}  // namespace nimbus::cli
