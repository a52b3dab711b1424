// How much of the host nimbusd may hand out to VMs, how much is handed out, and whether
// one more VM fits (docs/nimbusd.md, the host object).
//
//   capacity cpus   = floor(host CPUs x cpu_overcommit)
//   capacity memory = host memory - reserved_memory_mib
//   capacity disk   = host disk (the state dir's file system) - reserved_disk_mib
//
// A VM holds its vCPUs and its memory plus vm_overhead_mib (the same figure its cgroup
// memory limit adds) while its desired state is running or paused, and its disk always.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace nimbus::host {

// What the host has.
struct HostResources {
  unsigned cpus = 0;        // CPUs this process may run on (sched_getaffinity)
  uint64_t memory_mib = 0;  // MemTotal of /proc/meminfo
  uint64_t disk_mib = 0;    // total size of the file system holding the state dir
};

// Detects the host's resources; fails if the state dir's file system cannot be examined.
Result<HostResources> detect_host_resources(const std::string& state_dir);

struct CapacityPolicy {
  double cpu_overcommit = 4.0;          // vCPUs per host CPU, 1.0 to 64
  uint64_t reserved_memory_mib = 1024;  // kept for the host
  uint64_t vm_overhead_mib = 64;        // per VM, on top of its guest RAM (VMM, device buffers)
  uint64_t reserved_disk_mib = 10240;   // kept free on the state dir's file system
  // These replace the detected host figures.
  std::optional<unsigned> cpus_override;
  std::optional<uint64_t> memory_mib_override, disk_mib_override;
};

// Checks the policy's figures are sane; the message names the field and its range.
Status validate(const CapacityPolicy& policy);

// An amount of vCPUs, memory and disk. For a VM, memory_mib is its guest RAM: the
// capacity code adds the policy's per-VM overhead.
struct Allocation {
  uint64_t vcpus = 0, memory_mib = 0, disk_mib = 0;
};

// One VM's resources, and whether it holds its vCPUs and memory (desired state running
// or paused); its disk counts in any state.
struct VmAllocation {
  Allocation resources;
  bool holds_compute = false;
};

// One resource. `allocated` may exceed `capacity` (e.g. after a policy change); then
// `available` is 0.
struct ResourceLine {
  uint64_t host = 0;      // the host figure (after overrides): CPUs, or MiB
  uint64_t reserved = 0;  // MiB kept for the host (memory and disk; 0 for cpus)
  uint64_t capacity = 0;
  uint64_t allocated = 0;
  uint64_t available = 0;
};

struct Capacity {
  ResourceLine cpus, memory_mib, disk_mib;
  double cpu_overcommit = 1.0;
};

Capacity compute_capacity(const HostResources& host, const CapacityPolicy& policy,
                          const std::vector<VmAllocation>& vms);

// Whether `request` fits in what `capacity` has available. The request's memory_mib is
// guest RAM (the policy's overhead is added when it is non-zero); pass 0 for what the VM
// already holds (e.g. the disk of a stopped VM being started), and compute the capacity
// without the VM itself to resize it. The error names every resource that is short and
// by how much, e.g. "not enough vCPUs: the VM needs 4, 3 of 8 are free (2 host CPUs x
// overcommit 4.0); not enough memory: the VM needs 320 MiB (256 MiB + 64 MiB overhead),
// 200 MiB of 22976 MiB is free".
Status check_fit(const Capacity& capacity, const Allocation& request, const CapacityPolicy& policy);

// The "cpus", "memory_mib" and "disk_mib" members of the host object:
//   {"cpus": {"host", "overcommit", "capacity", "allocated", "available"},
//    "memory_mib": {"host", "reserved", "capacity", "allocated", "available"},
//    "disk_mib": {"host", "reserved", "capacity", "allocated", "available"}}
nlohmann::json to_json(const Capacity& capacity);

}  // namespace nimbus::host
