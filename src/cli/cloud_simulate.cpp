#include "cli/cloud_simulate.h"

#include <fmt/format.h>
#include <sys/resource.h>

#include <cmath>
#include <cstdio>
#include <sstream>

#include "cloud/instance_types.h"
#include "cloud/sim_datacenter.h"
#include "cloud/sim_engine.h"
#include "cloud/sim_report.h"
#include "cloud/sim_scenario.h"
#include "cloud/sim_workload.h"

namespace nimbus::cli {
namespace {

namespace sim = nimbus::cloud::sim;

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

int fail(const std::string& message, int status = kExitFailed) {
  std::fprintf(stderr, "nimbus cloud simulate: %s\n", message.c_str());
  return status;
}

// "spread,pack" -> the policies; kInvalidArgument naming the bad one.
Result<std::vector<sim::Policy>> parse_policies(const std::vector<std::string>& names) {
  std::vector<sim::Policy> out;
  for (const std::string& n : names) {
    auto p = sim::parse_policy(n);
    if (!p.ok()) return p.status();
    out.push_back(*p);
  }
  if (out.empty()) return Status::invalid_argument("no policy to run");
  return out;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string part; std::getline(in, part, ',');)
    if (!part.empty()) out.push_back(part);
  return out;
}

}  // namespace

void add_simulate_flags(CLI::App* cmd, SimulateOptions& o) {
  cmd->add_option("scenario", o.scenario,
                  "A scenario file: the data center, the workload and the policies "
                  "(docs/simulation.md; examples in docs/simulation/scenarios)");
  cmd->add_option("--datacenter", o.datacenter, "A data-center file (instead of the scenario's)");
  cmd->add_option("--trace", o.trace, "A trace CSV as the workload (instead of the scenario's)");
  cmd->add_option("--policies", o.policies,
                  "Comma-separated: spread, pack, pack+migrate, dedicated (default: the "
                  "scenario's, else spread,pack,pack+migrate)");
  cmd->add_option("--out", o.out, "Write the report here: CSV files, SVG plots and index.html");
  cmd->add_flag("--placements", o.placements,
                "Record where each launch went (placements.csv in --out)");
  cmd->add_option("--sample-interval", o.sample_interval_s, "Seconds between samples");
  cmd->add_option("--consolidate-interval", o.consolidate_interval_s,
                  "pack+migrate: seconds between consolidation rounds");
  cmd->add_option("--consolidate-threshold", o.consolidate_threshold,
                  "pack+migrate: empty hosts whose allocated vCPU and memory fractions are "
                  "both below this (0..1)");
}

int simulate_command(const SimulateOptions& o) {
  if (o.scenario.empty() && (o.datacenter.empty() || o.trace.empty()))
    return fail("give a scenario file, or both --datacenter and --trace", kExitUsage);
  sim::Scenario sc;
  if (!o.scenario.empty()) {
    auto loaded = sim::load_scenario(o.scenario);
    if (!loaded.ok()) return fail(loaded.status().message(), kExitUsage);
    sc = std::move(*loaded);
  }
  if (!o.datacenter.empty()) {
    auto dc = sim::load_datacenter(o.datacenter);
    if (!dc.ok()) return fail(dc.status().message(), kExitUsage);
    sc.dc = std::move(*dc);
  }
  if (!o.trace.empty()) {
    auto w = sim::load_trace(o.trace);
    if (!w.ok()) return fail(w.status().message(), kExitUsage);
    sc.workload = std::move(*w);
  }
  sim::SimOptions so;
  std::vector<std::string> names = split(o.policies);
  if (names.empty()) names = sc.policies;
  if (!names.empty()) {
    auto p = parse_policies(names);
    if (!p.ok()) return fail(p.status().message(), kExitUsage);
    so.policies = std::move(*p);
  }
  // A flag given beats the scenario, which beats the engine's default.
  const auto pick = [](double flag, double scenario, double fallback) {
    return !std::isnan(flag) ? flag : scenario >= 0 ? scenario : fallback;
  };
  if (!std::isnan(o.sample_interval_s) && !(o.sample_interval_s > 0))
    return fail("--sample-interval must be above 0", kExitUsage);
  if (!std::isnan(o.consolidate_interval_s) && !(o.consolidate_interval_s > 0))
    return fail("--consolidate-interval must be above 0", kExitUsage);
  if (!std::isnan(o.consolidate_threshold) &&
      !(o.consolidate_threshold >= 0 && o.consolidate_threshold <= 1))
    return fail("--consolidate-threshold is 0..1", kExitUsage);
  so.sample_interval_s = pick(o.sample_interval_s, sc.sample_interval_s, so.sample_interval_s);
  so.consolidate_interval_s =
      pick(o.consolidate_interval_s, sc.consolidate_interval_s, so.consolidate_interval_s);
  so.consolidate_threshold =
      pick(o.consolidate_threshold, sc.consolidate_threshold, so.consolidate_threshold);
  if (!(so.sample_interval_s > 0)) return fail("--sample-interval must be above 0", kExitUsage);
  if (!(so.consolidate_interval_s > 0))
    return fail("--consolidate-interval must be above 0", kExitUsage);
  if (!(so.consolidate_threshold >= 0 && so.consolidate_threshold <= 1))
    return fail("--consolidate-threshold is 0..1", kExitUsage);
  so.record_placements = o.placements;
  if (o.placements && o.out.empty()) return fail("--placements needs --out", kExitUsage);

  auto r = sim::simulate(sc.dc, sc.workload, cloud::default_instance_types(), so);
  if (!r.ok()) return fail(r.status().message(), kExitUsage);
  std::fputs(sim::summary_text(*r).c_str(), stdout);
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("peak memory (RSS): %.1f MiB\n", static_cast<double>(ru.ru_maxrss) / 1024.0);
  if (!o.out.empty()) {
    if (Status s = sim::write_report(*r, o.out); !s.ok()) return fail(s.message());
    std::printf("report: %s/index.html\n", o.out.c_str());
  }
  return 0;
}

}  // namespace nimbus::cli
