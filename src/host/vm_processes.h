// The seam between nimbusd's logic and the VMM processes it runs: spawning a VMM, telling
// whether it lives, finding every VMM of a VM (also ones nimbusd never recorded), killing
// them, its cgroup, and the calls nimbusd makes to its API socket.
//
// LinuxVmProcesses (linux_vm_processes.h) is the real one (fork/exec, cgroups, /proc,
// vmm_link); FakeVmProcesses (fake_vm_processes.h) stands in for it in unit tests, so the
// daemon's state machine, capacity, recovery and restart policy run without processes.
// Implementations are thread-safe: the service and the supervisor call them concurrently.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "host/registry.h"

namespace nimbus::host {

// What a VMM says on GET / (docs/vmm.md).
struct VmmStatus {
  std::string state;         // "Running", "Paused", ...
  bool agent_ready = false;  // its guest agent said ready
  double uptime_s = 0;
  bool has_devices = false;  // the counters below are known
  uint64_t disk_read_bytes = 0, disk_write_bytes = 0, net_rx_bytes = 0, net_tx_bytes = 0;
};

// How a VMM process ended.
struct VmmExit {
  std::string description;  // "the VMM exited with status 0 (poweroff)", ...
  bool clean = false;       // exited 0 by itself and the machine did not fail
  bool migrated = false;    // the VM left by live migration (exit file reason "migrated")
};

struct SpawnedVmm {
  pid_t pid = 0;
  uint64_t start_ticks = 0;  // identifies the process with its pid (pid reuse)
};

// What a live VMM process uses.
struct ProcessUsage {
  double cpu_seconds = 0;
  uint64_t rss_bytes = 0;
};

class VmProcesses {
 public:
  virtual ~VmProcesses() = default;

  // Starts the VMM of `vm` in its cgroup (created with the VM's limits), under its uid:
  // from its config.json, or restoring `snapshot_file` when not empty. Returns once the
  // process exists (it may still fail to start: see alive() and info()).
  virtual Result<SpawnedVmm> spawn(const VmRecord& vm, const std::string& snapshot_file) = 0;
  // Starts the VMM of `vm` like spawn() from its config.json, but waiting for an incoming
  // migration on `listen` ("tcp:ADDR:PORT", PORT 0: any) instead of starting the guest.
  virtual Result<SpawnedVmm> spawn_incoming(const VmRecord& vm, const std::string& listen) {
    (void)vm;
    (void)listen;
    return Status::unimplemented("this VMM seam cannot receive migrations");
  }
  // Whether the process recorded in vm.pid (and vm.pid_start) is still alive.
  virtual bool alive(const VmRecord& vm) = 0;
  // Every live VMM process of the VM (its cgroup, its pidfile's holder, the recorded pid),
  // sorted.
  virtual std::vector<pid_t> live_vmms(const VmRecord& vm) = 0;
  // Whether `pid` is a live VMM of this very VM (its command line and uid say so).
  virtual bool is_vmm_of(pid_t pid, const VmRecord& vm) = 0;
  virtual void kill(pid_t pid) = 0;  // SIGKILL
  // Seconds since the process started (0 if unknown).
  virtual double age_s(pid_t pid) = 0;
  virtual uint64_t start_ticks(pid_t pid) = 0;
  // How the VMM recorded in vm.pid ended (its wait status if nimbusd forked it, and the
  // exit file it leaves); consumes what it read.
  virtual VmmExit take_exit(const VmRecord& vm) = 0;
  // The last line of the VM's vmm.log, for error messages ("" if none).
  virtual std::string last_log_line(const VmRecord& vm) = 0;
  // What the process recorded in vm.pid uses; nullopt if it is not that process.
  virtual std::optional<ProcessUsage> usage(const VmRecord& vm) = 0;

  // Cgroups.
  virtual bool has_cgroups() const = 0;
  virtual std::string describe_cgroups() const = 0;  // "v2", "none: WHY", ...
  virtual std::string cgroup_path(const std::string& vm) const = 0;
  // Removes the VM's group (succeeds if there is none; fails while processes remain).
  virtual Status remove_cgroup(const std::string& vm) = 0;
  virtual std::vector<std::string> cgroup_groups() = 0;  // every VM group under the parent
  virtual std::vector<pid_t> cgroup_processes(const std::string& group) = 0;

  // The VMM's API socket.
  virtual Result<VmmStatus> info(const std::string& vm, int timeout_ms) = 0;
  virtual Status pause(const std::string& vm) = 0;
  virtual Status resume(const std::string& vm) = 0;
  // Graceful shutdown through the guest agent, hard after `timeout_s`; true if graceful.
  virtual Result<bool> shutdown(const std::string& vm, unsigned timeout_s) = 0;
  virtual Status stop(const std::string& vm) = 0;
  virtual Status snapshot_create(const std::string& vm, const std::string& path) = 0;
  // Replaces the forwards of the VM's user-mode NIC (eth0) in the running VMM, all or
  // nothing (PUT /network-interfaces/eth0/forwards).
  virtual Status set_forwards(const std::string& vm,
                              const std::vector<config::PortForward>& forwards) = 0;
  // Replaces the running VMM's metadata (data and options): PUT /mmds, PUT /mmds/config.
  virtual Status set_metadata(const std::string& vm, const config::MetadataConfig& metadata) = 0;
  // The VMM's migration API (docs/vmm.md): GET /migration, PUT /migration {destination,
  // max_downtime_ms}, DELETE /migration. The reply body, or the VMM's error.
  virtual Result<nlohmann::json> migration(const std::string& vm, const std::string& method,
                                           const nlohmann::json& body) {
    (void)vm;
    (void)method;
    (void)body;
    return Status::unimplemented("this VMM seam has no migration API");
  }
};

}  // namespace nimbus::host
