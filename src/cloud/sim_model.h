// The data-center simulation's inputs and outputs (`nimbus cloud simulate`, docs/simulation.md):
// a data center (zones of hosts), a workload (instance events in simulated time) and what a
// run measured per policy. Plain data; the parsers and generators are in sim_datacenter.h and
// sim_workload.h, the engine in sim_engine.h, the reports in sim_report.h.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace nimbus::cloud::sim {

// A kind of server, `count` of them in a zone. Capacity as nimbusd reports it: vCPUs =
// cpus x cpu_overcommit, memory = memory_mib x memory_overcommit; each VM costs
// vm_overhead_mib more memory (the VMM process), as on a real host.
struct HostShape {
  std::string name;  // e.g. "std-64"
  unsigned count = 1;
  unsigned cpus = 1;  // physical CPUs (utilisation and power are per physical CPU)
  uint64_t memory_mib = 1024;
  uint64_t disk_mib = 0;  // 0: disk is not a constraint
  double cpu_overcommit = 1.0, memory_overcommit = 1.0;
  uint64_t vm_overhead_mib = 0;
  // Linear power model (CloudSim's standard host): P(u) = peak * (idle + (1 - idle) * u)
  // for a host holding at least one instance, u its CPU utilisation; 0 W when it holds none
  // (switched off).
  double peak_watts = 250.0;
  double idle_fraction = 0.7;
  // Explicit host ids for this shape (size == count), e.g. to mirror a real cloud's hosts;
  // empty: "<zone>-<shape>-<n>" with n from 1, zero-padded to the count's width.
  std::vector<std::string> ids;
};

struct Zone {
  std::string name;
  std::vector<HostShape> hosts;
};

struct DataCenter {
  std::string name;  // for reports
  std::vector<Zone> zones;
};

enum class EventKind { kLaunch, kTerminate, kUtil };

// One line of a workload. Times in seconds from the start of the run, non-decreasing in a
// workload. A launch names an instance type (from the catalogue or the data center's own
// types) or gives vcpus/memory_mib itself; zone "" lets the scheduler choose; a placement
// group with its strategy ("cluster" | "spread" | "partition") and partition count.
// cpu: the instance's CPU utilisation from then on, 0..1 of its vCPUs (kLaunch, kUtil).
struct Event {
  double time_s = 0;
  EventKind kind = EventKind::kLaunch;
  std::string instance;  // unique per workload
  std::string instance_type;
  unsigned vcpus = 0;       // 0: from the type
  uint64_t memory_mib = 0;  // 0: from the type
  uint64_t disk_mib = 0;
  std::string zone;
  std::string group, group_strategy;
  unsigned partition_count = 0;
  double cpu = 0.0;
};

struct Workload {
  std::string name;
  std::vector<Event> events;  // sorted by time (stable: a file's order within one time)
  double duration_s = 0;      // the run's end; >= the last event's time
};

inline constexpr double kForever = std::numeric_limits<double>::infinity();

}  // namespace nimbus::cloud::sim
