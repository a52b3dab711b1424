#include "host/capacity.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sched.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

namespace nimbus::host {

namespace {

constexpr double kMinOvercommit = 1.0, kMaxOvercommit = 64.0;
constexpr uint64_t kMaxMib = uint64_t{1} << 40;  // 1 EiB: anything above is a typo
constexpr unsigned kMaxCpus = 65536;

unsigned detect_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<unsigned>(n);
  }
  const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<unsigned>(n) : 1;
}

Result<uint64_t> detect_memory_mib() {
  std::ifstream in("/proc/meminfo");
  if (!in) return Status::error(std::string("cannot read /proc/meminfo: ") + std::strerror(errno));
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string key, unit;
    uint64_t value = 0;
    if (fields >> key >> value >> unit && key == "MemTotal:" && unit == "kB") return value / 1024;
  }
  return Status::error("/proc/meminfo has no MemTotal line");
}

uint64_t sub_or_zero(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

void finish(ResourceLine& line) { line.available = sub_or_zero(line.capacity, line.allocated); }

// 4.0 as "4.0", 1.5 as "1.5", 2.25 as "2.25".
std::string format_ratio(double r) {
  return r == std::floor(r) ? fmt::format("{:.1f}", r) : fmt::format("{}", r);
}

}  // namespace

Result<HostResources> detect_host_resources(const std::string& state_dir) {
  HostResources h;
  h.cpus = detect_cpus();
  auto mem = detect_memory_mib();
  if (!mem.ok()) return mem.status();
  h.memory_mib = *mem;
  struct statvfs fs {};
  if (::statvfs(state_dir.c_str(), &fs) != 0) {
    return Status::error(fmt::format("cannot examine the file system of the state dir '{}': {}",
                                     state_dir, std::strerror(errno)));
  }
  h.disk_mib = static_cast<uint64_t>(fs.f_blocks) * fs.f_frsize / (1024 * 1024);
  return h;
}

Status validate(const CapacityPolicy& p) {
  if (!std::isfinite(p.cpu_overcommit) || p.cpu_overcommit < kMinOvercommit ||
      p.cpu_overcommit > kMaxOvercommit) {
    return Status::error(
        fmt::format("CPU overcommit {} is out of range (a ratio from {:.1f} to {:.0f})",
                    p.cpu_overcommit, kMinOvercommit, kMaxOvercommit));
  }
  for (const auto& [what, value] : {std::pair{"reserved memory", p.reserved_memory_mib},
                                    std::pair{"per-VM memory overhead", p.vm_overhead_mib},
                                    std::pair{"reserved disk", p.reserved_disk_mib}}) {
    if (value > kMaxMib)
      return Status::error(fmt::format("{} of {} MiB is out of range", what, value));
  }
  if (p.cpus_override && (*p.cpus_override == 0 || *p.cpus_override > kMaxCpus)) {
    return Status::error(
        fmt::format("host CPUs override {} is out of range (1 to {})", *p.cpus_override, kMaxCpus));
  }
  for (const auto& [what, value] : {std::pair{"host memory override", p.memory_mib_override},
                                    std::pair{"host disk override", p.disk_mib_override}}) {
    if (value && (*value == 0 || *value > kMaxMib)) {
      return Status::error(
          fmt::format("{} of {} MiB is out of range (1 MiB to {} MiB)", what, *value, kMaxMib));
    }
  }
  return {};
}

Capacity compute_capacity(const HostResources& host, const CapacityPolicy& policy,
                          const std::vector<VmAllocation>& vms) {
  Capacity c;
  c.cpu_overcommit = policy.cpu_overcommit;
  c.cpus.host = policy.cpus_override.value_or(host.cpus);
  // The epsilon keeps e.g. 5 x 1.4 = 6.9999999 from flooring to 6.
  c.cpus.capacity = static_cast<uint64_t>(
      std::floor(static_cast<double>(c.cpus.host) * policy.cpu_overcommit + 1e-9));
  c.memory_mib.host = policy.memory_mib_override.value_or(host.memory_mib);
  c.memory_mib.reserved = policy.reserved_memory_mib;
  c.memory_mib.capacity = sub_or_zero(c.memory_mib.host, c.memory_mib.reserved);
  c.disk_mib.host = policy.disk_mib_override.value_or(host.disk_mib);
  c.disk_mib.reserved = policy.reserved_disk_mib;
  c.disk_mib.capacity = sub_or_zero(c.disk_mib.host, c.disk_mib.reserved);
  for (const VmAllocation& vm : vms) {
    if (vm.holds_compute) {
      c.cpus.allocated += vm.resources.vcpus;
      c.memory_mib.allocated += vm.resources.memory_mib + policy.vm_overhead_mib;
    }
    c.disk_mib.allocated += vm.resources.disk_mib;
  }
  finish(c.cpus);
  finish(c.memory_mib);
  finish(c.disk_mib);
  return c;
}

Status check_fit(const Capacity& c, const Allocation& request, const CapacityPolicy& policy) {
  std::vector<std::string> short_of;
  if (request.vcpus > c.cpus.available) {
    short_of.push_back(fmt::format(
        "not enough vCPUs: the VM needs {}, {} of {} are free ({} host CPUs x overcommit {})",
        request.vcpus, c.cpus.available, c.cpus.capacity, c.cpus.host,
        format_ratio(c.cpu_overcommit)));
  }
  if (request.memory_mib > 0) {
    const uint64_t need = request.memory_mib + policy.vm_overhead_mib;
    if (need > c.memory_mib.available) {
      const std::string detail = policy.vm_overhead_mib == 0
                                     ? std::string()
                                     : fmt::format(" ({} MiB + {} MiB overhead)",
                                                   request.memory_mib, policy.vm_overhead_mib);
      short_of.push_back(
          fmt::format("not enough memory: the VM needs {} MiB{}, {} MiB of {} MiB is free", need,
                      detail, c.memory_mib.available, c.memory_mib.capacity));
    }
  }
  if (request.disk_mib > c.disk_mib.available) {
    short_of.push_back(fmt::format("not enough disk: the VM needs {} MiB, {} MiB of {} MiB is free",
                                   request.disk_mib, c.disk_mib.available, c.disk_mib.capacity));
  }
  if (short_of.empty()) return {};
  return Status::error(fmt::format("{}", fmt::join(short_of, "; ")));
}

nlohmann::json to_json(const Capacity& c) {
  auto line = [](const ResourceLine& r, bool with_reserved) {
    nlohmann::json j = nlohmann::json::object();
    j["host"] = r.host;
    if (with_reserved) j["reserved"] = r.reserved;
    j["capacity"] = r.capacity;
    j["allocated"] = r.allocated;
    j["available"] = r.available;
    return j;
  };
  nlohmann::json cpus = line(c.cpus, false);
  cpus["overcommit"] = c.cpu_overcommit;
  return {{"cpus", cpus},
          {"memory_mib", line(c.memory_mib, true)},
          {"disk_mib", line(c.disk_mib, true)}};
}

}  // namespace nimbus::host
