// The simulation's data center file (docs/simulation-formats.md): zones of host shapes, as JSON.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "cloud/sim_model.h"
#include "common/status.h"

namespace nimbus::cloud::sim {

// Limits of a data center file.
inline constexpr uint64_t kMaxSimHosts = 1'000'000;
inline constexpr unsigned kMaxSimHostCpus = 4096;
inline constexpr double kMaxSimOvercommit = 64.0;
inline constexpr uint64_t kMaxSimHostMemoryMib = uint64_t{1} << 40;  // 1 EiB
inline constexpr size_t kMaxSimNameLength = 128;

// Parses and checks a data center:
//   {"name": "dc", "zones": [{"name": "z", "hosts": [{"shape": "s", "count": N, "cpus": C,
//    "memory_mib": M, "disk_mib", "cpu_overcommit", "memory_overcommit", "vm_overhead_mib",
//    "peak_watts", "idle_fraction", "ids": [...]}]}]}
// Defaults as in sim_model.h ("name" of the data center: "datacenter"). Names are non-empty
// [A-Za-z0-9._-]; counts >= 1 and at most kMaxSimHosts hosts in all; cpus 1..4096; memory
// >= 1 MiB; overcommits in (0, 64]; idle_fraction in [0, 1]; peak_watts >= 0; zone names and
// host ids unique; unknown keys are errors. Every HostShape comes back with its `ids` filled
// in (generated as sim_model.h says when absent). kInvalidArgument naming zone, shape and field.
Result<DataCenter> parse_datacenter(const std::string& json_text);
// The same from a file; kNotFound if it cannot be read.
Result<DataCenter> load_datacenter(const std::string& path);

// Hosts in all zones.
uint64_t host_count(const DataCenter& dc);

// The generated id of host n (from 1) of `count` hosts of `shape` in `zone`:
// "<zone>-<shape>-<n>", n zero-padded to the width of count.
std::string generated_host_id(const std::string& zone, const std::string& shape, uint64_t n,
                              uint64_t count);

// Reads a whole file of at most max_bytes: kNotFound if it cannot be opened,
// kInvalidArgument if it is larger (`what` names the file's role in messages).
Result<std::string> read_sim_file(const std::string& path, size_t max_bytes,
                                  const std::string& what);

}  // namespace nimbus::cloud::sim
