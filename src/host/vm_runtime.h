// What nimbusd's VM service (the operations) and its supervisor (monitor, recovery,
// restart policy) share: the daemon's options, the registry and the in-memory tables
// under one lock, and the steps both take — start a VMM and wait until its API answers,
// stop it, kill every VMM of a VM, check capacity and ports, build a VM's directory and
// disk, describe a VM.
//
// Concurrency. `mu` guards the registry and the tables and is only held for short
// sections. An operation on a VM marks it busy (a second operation on the same VM is
// refused with Conflict until the first ends) and talks to the VMM or waits for its
// process without holding `mu`. Every change of a VM's state is saved through save(),
// which logs it.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "backends/net/tunnel.h"
#include "common/status.h"
#include "host/capacity.h"
#include "host/host_types.h"
#include "host/image_store.h"
#include "host/registry.h"
#include "host/restart_policy.h"
#include "host/vm_launcher.h"
#include "host/vm_processes.h"

namespace nimbus::host {

struct DaemonOptions {
  std::string state_dir = "/var/lib/nimbus";
  std::string vmm_exe;         // the nimbus binary that runs `nimbus vmm`
  std::string bundled_images;  // imported as the image "default" on first start
  CapacityPolicy policy;
  bool sandbox = true;         // own uid + seccomp per VM (only when nimbusd runs as root)
  uint32_t uid_base = 200000;  // VM uid = uid_base + slot; gid = uid_base
  std::string cgroup_root = "/sys/fs/cgroup";
  std::string cgroup_parent = "nimbus";
  unsigned monitor_interval_ms = 200;  // 0: no monitor thread (tests call monitor_once)
  unsigned ready_timeout_s = 120;      // starting -> running without the agent's word
  unsigned vmm_answer_timeout_s = 20;  // a new VMM's API must answer within this
  // Joined to a control plane (--cloud): its URL, the only origin images are fetched from,
  // and the join token sent with each fetch. Empty: not joined (POST /v1/images is refused).
  std::string cloud_url;
  std::string cloud_token;
  // The tunnel of the private networks (--tunnel-listen IP:PORT, UDP): empty, none; and
  // the endpoint other hosts send to, when not that one (--tunnel-advertise).
  std::string tunnel_listen;
  std::string tunnel_advertise;
  // The address an incoming migration's VMM listens on (the host of --listen, or of
  // --advertise when --listen is a wildcard): the source host must reach it.
  std::string migration_host = "127.0.0.1";
};

class VmRuntime {
 public:
  VmRuntime(const DaemonOptions& options, Registry& registry, ImageStore& images,
            VmProcesses& processes, HostResources host, std::string switch_path,
            std::string sandbox_off);

  const DaemonOptions& options;
  Registry& registry;  // under mu
  ImageStore& images;
  VmProcesses& processes;
  const HostResources host;
  const std::string switch_path;
  const std::string sandbox_off;  // why VMMs cannot run under their own uid ("" if they can)
  // Links the private networks' switches with other hosts (--tunnel-listen); null: none.
  backends::Tunnel* tunnel = nullptr;

  std::mutex mu;
  std::map<std::string, std::string> busy;         // VM -> the operation in progress
  std::map<std::string, bool> ready;               // the guest agent said ready
  std::map<std::string, config::json> migrations;  // the VM's current or last migration
  RestartBudget restart_budget;

  bool sandboxed() const;
  VmPaths paths(const std::string& vm) const { return VmPaths::of(options.state_dir, vm); }

  // Loads a VM and marks it busy with `op`: NotFound, Conflict (busy) or Internal.
  Result<VmRecord> acquire(const std::string& name, const std::string& op);
  void release(const std::string& name);
  // Releases a VM marked busy when it goes out of scope.
  class Busy {
   public:
    Busy(VmRuntime& rt, std::string name) : rt_(rt), name_(std::move(name)) {}
    ~Busy() { rt_.release(name_); }
    Busy(const Busy&) = delete;
    Busy& operator=(const Busy&) = delete;

   private:
    VmRuntime& rt_;
    std::string name_;
  };

  // Stores the VM's row; a change of state or desired state is logged.
  Status save(const VmRecord& vm);
  Status save_locked(const VmRecord& vm);

  Capacity capacity_locked(const std::string& exclude = "");
  // InsufficientCapacity, saying what is short.
  Status check_fit_locked(const VmRecord& vm, const std::string& exclude, bool compute, bool disk);
  // Conflict: a host port forwarded to another VM (forwards_collide), or not bindable now.
  // The forwards in `held` are listened on by the VM's own VMM: not checked for binding.
  Status check_ports_locked(const VmRecord& vm, const std::vector<config::PortForward>& held = {});

  // Starts the VMM of `vm` (from its config, or restoring `snapshot_file`) and waits until
  // its API answers. Updates vm (pid, state) and saves it; on failure the VM is crashed.
  // With `incoming` ("tcp:ADDR:PORT"), the VMM waits for a migration there instead of
  // starting (state "incoming").
  Status start_process(VmRecord& vm, const std::string& snapshot_file = "",
                       const std::string& incoming = "");
  // Ends the VMM: graceful (agent) unless force, then SIGKILL if needed; then every other
  // VMM of the VM, and its cgroup. Returns whether the guest shut down gracefully; vm is
  // "stopped" (not saved).
  bool stop_process(VmRecord& vm, bool force, unsigned timeout_s);
  // SIGKILLs every live VMM of the VM until none is left (false if some survive
  // `timeout_ms`), then removes its cgroup.
  bool kill_vmms(const VmRecord& vm, int timeout_ms);
  bool wait_gone(const VmRecord& vm, int timeout_ms);
  // Removes the VM's cgroup, logging a failure.
  void remove_cgroup(const std::string& vm);

  // The VM's directory (and its port on the host switch, or on its private network's switch,
  // which is created if needed and joined by the tunnel).
  Status prepare_dir(const VmRecord& vm);
  // The switch eth1 of `vm` is on: the host switch or its private network's.
  std::string switch_of(const VmRecord& vm) const;
  // Makes PATH.d a switch directory VMs cannot write to: root's, group the VM group, mode
  // 0750 when sandboxed (0700 otherwise).
  Status prepare_switch(const std::string& path) const;
  // The private network's switch on this host, joined by the tunnel if there is one.
  Status prepare_network(uint32_t vni);
  // A fresh overlay of the VM's image as its disk.
  Status create_disk(const VmRecord& vm, const ImageInfo& image, const std::string& path);
  // Makes the VM's disk again from its image (the end of an interrupted creation).
  Status rebuild_disk(const VmRecord& vm);
  void chown_vm(const VmRecord& vm, const std::string& path);

  VmInfo info(const VmRecord& vm, bool with_usage);
};

// A VM that should run (desired running or paused).
inline bool active(const VmRecord& vm) {
  return vm.desired_state == "running" || vm.desired_state == "paused";
}

// Logs a failed step about `vm` (a warning); nothing when `s` is OK. Returns s.ok().
bool log_failure(const std::string& vm, const std::string& step, const Status& s);

}  // namespace nimbus::host
