// The data-center simulation's engine: the control plane's own scheduler (scheduler.h: the
// same filters, weighers, placement groups and capacity rules, one HostTable for the run)
// over simulated hosts in simulated time, under several policies in one run.
// docs/simulation.md says what each policy does and what each figure means.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cloud/instance_types.h"
#include "cloud/sim_model.h"
#include "common/status.h"

namespace nimbus::cloud::sim {

enum class Policy {
  kSpread,       // the scheduler's spread weigher (the cloud's default)
  kPack,         // the scheduler's pack weigher
  kConsolidate,  // pack, plus periodic consolidation by live migration
  kDedicated,    // one instance per physical server: the world before virtualisation
};
std::string policy_name(Policy p);  // "spread", "pack", "pack+migrate", "dedicated"
Result<Policy> parse_policy(const std::string& name);  // the names above

struct SimOptions {
  std::vector<Policy> policies = {Policy::kSpread, Policy::kPack, Policy::kConsolidate};
  // One Sample at 0, interval, 2 x interval, ... before the end, and one at the end; a
  // sample at t sees the events at t applied.
  double sample_interval_s = 300;
  // Consolidation (kConsolidate): every interval, hosts whose allocated vCPU and memory
  // fractions are both below `threshold` are emptied, least used first, when every one of
  // their instances fits on another host that is not itself being emptied (the scheduler
  // places them, pack, with the emptied host draining); otherwise nothing on it moves.
  // Precisely: at t = k x interval (k >= 1, after the events at t), the hosts holding
  // instances with both fractions (allocated incl. per-VM overhead / capacity) below the
  // threshold are taken in order of max(vCPU, memory fraction), then slot order. A host
  // that received instances in this round is skipped. Otherwise it is set draining and its
  // instances are placed one by one (released here, place(..., kPack), in its own zone and
  // group); a move onto a host that holds nothing (off) counts as not fitting. If one
  // instance does not fit, that host's moves are undone and it stays as it was. Emptied
  // hosts stay draining until the round ends. migrated_mib adds each moved instance's memory.
  double consolidate_interval_s = 3600;
  double consolidate_threshold = 0.5;
  bool record_placements = false;  // PolicyResult::placements (the real-cloud check)
};

struct Sample {
  double time_s = 0;
  uint32_t hosts_on = 0;  // hosts holding at least one instance
  // The fewest hosts that could hold the running instances, ignoring zones, groups and
  // fragmentation: max over vCPU and memory of the smallest k such that the k largest host
  // capacities (vcpus_capacity, resp. memory_mib_capacity, after overcommit) sum to at
  // least the demand (the instances' vCPUs, resp. memory_mib without per-VM overhead).
  double lower_bound = 0;
  double cpu_allocated = 0;     // allocated vCPUs / vCPU capacity of the hosts on (0..1)
  double cpu_used = 0;          // used physical CPU / physical CPUs of the hosts on (0..1)
  double memory_allocated = 0;  // allocated memory (incl. per-VM overhead) / memory of the hosts on
  // The linear power model over all hosts; a host's u = min(1, sum over its instances of
  // cpu x vCPUs / its physical CPUs). cpu_used above clamps each host at its CPUs likewise.
  double power_w = 0;
  uint64_t instances = 0;                // running
  uint64_t refused = 0, migrations = 0;  // cumulative
};

struct Placed {
  double time_s;
  std::string instance, host;  // host "" when refused
  std::string reason;          // the scheduler's shortage message when refused
};

struct PolicyResult {
  Policy policy = Policy::kPack;
  std::vector<Sample> samples;
  uint64_t launches = 0, refused = 0, terminations = 0;
  uint64_t migrations = 0, migrated_mib = 0;  // moves and the guest memory they copy
  // Exact over the run, not from the samples: power and the counts are piecewise constant
  // between events, and are integrated so.
  double energy_kwh = 0;
  uint32_t peak_hosts_on = 0;
  double mean_hosts_on = 0, mean_lower_bound = 0;  // time-weighted over [0, duration]
  // Sample::cpu_used time-weighted over the time with at least one host on.
  double mean_cpu_used = 0;
  double wall_s = 0;               // this policy's run on this machine
  std::vector<Placed> placements;  // with record_placements
};

struct SimResult {
  std::string datacenter, workload;
  uint64_t hosts = 0, events = 0;
  double duration_s = 0;
  std::vector<PolicyResult> policies;
  double wall_s = 0;
};

// Runs every policy of `o` over the same data center and workload, one after the other.
// kInvalidArgument for an event naming an unknown type, a zone the data center does not
// have, or an instance launched twice / terminated before its launch; the message names the
// event's index in Workload::events (from 0) and its instance. The workload is checked once
// before any policy runs. A launch takes vcpus and memory_mib from the event, and from its
// type (find_type) only for those that are 0. Refused instances' later events are ignored;
// a util event after the instance's end is ignored.
// More than 10,000,000 samples or consolidation rounds over the run: kInvalidArgument.
Result<SimResult> simulate(const DataCenter& dc, const Workload& w,
                           const std::vector<InstanceType>& types, const SimOptions& o);

}  // namespace nimbus::cloud::sim
