// The real VmProcesses: `nimbus vmm` forked into its cgroup under the VM's uid
// (vm_launcher.h), found again by cgroup, pidfile lock and /proc, and reached through its
// API socket (vmm_link.h). It reaps the VMMs it forked: their wait status says how they
// ended.
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>

#include "host/cgroup.h"
#include "host/vm_processes.h"

namespace nimbus::host {

struct LinuxVmProcessesOptions {
  std::string state_dir;
  std::string vmm_exe;            // the nimbus binary
  bool sandbox = true;            // --sandbox (seccomp) for the VMMs
  uint32_t vm_gid = 200000;       // the VMs' shared group
  uint64_t vm_overhead_mib = 64;  // the cgroup's memory margin over the guest RAM
};

class LinuxVmProcesses : public VmProcesses {
 public:
  LinuxVmProcesses(LinuxVmProcessesOptions options, CgroupManager cgroups);

  Result<SpawnedVmm> spawn(const VmRecord& vm, const std::string& snapshot_file) override;
  Result<SpawnedVmm> spawn_incoming(const VmRecord& vm, const std::string& listen) override;
  Result<nlohmann::json> migration(const std::string& vm, const std::string& method,
                                   const nlohmann::json& body) override;
  bool alive(const VmRecord& vm) override;
  std::vector<pid_t> live_vmms(const VmRecord& vm) override;
  bool is_vmm_of(pid_t pid, const VmRecord& vm) override;
  void kill(pid_t pid) override;
  double age_s(pid_t pid) override;
  uint64_t start_ticks(pid_t pid) override;
  VmmExit take_exit(const VmRecord& vm) override;
  std::string last_log_line(const VmRecord& vm) override;
  std::optional<ProcessUsage> usage(const VmRecord& vm) override;

  bool has_cgroups() const override { return cgroups_.version() != CgroupVersion::kNone; }
  std::string describe_cgroups() const override { return cgroups_.describe(); }
  std::string cgroup_path(const std::string& vm) const override;
  Status remove_cgroup(const std::string& vm) override;
  std::vector<std::string> cgroup_groups() override;
  std::vector<pid_t> cgroup_processes(const std::string& group) override;

  Result<VmmStatus> info(const std::string& vm, int timeout_ms) override;
  Status pause(const std::string& vm) override;
  Status resume(const std::string& vm) override;
  Result<bool> shutdown(const std::string& vm, unsigned timeout_s) override;
  Status stop(const std::string& vm) override;
  Status snapshot_create(const std::string& vm, const std::string& path) override;
  Status set_forwards(const std::string& vm,
                      const std::vector<config::PortForward>& forwards) override;
  Status set_metadata(const std::string& vm, const config::MetadataConfig& metadata) override;

 private:
  Result<SpawnedVmm> spawn_with(const VmRecord& vm, const std::string& snapshot_file,
                                const std::string& incoming);
  void reap_locked();
  std::string api_sock(const std::string& vm) const;

  LinuxVmProcessesOptions options_;
  CgroupManager cgroups_;
  std::mutex mu_;
  std::set<pid_t> children_;    // VMMs we forked and have not reaped
  std::map<pid_t, int> exits_;  // reaped children: wait status
};

}  // namespace nimbus::host
