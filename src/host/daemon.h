// nimbusd's core: the VMs of one host, each a `nimbus vmm` process in its own cgroup.
//
// Every operation is a method returning a Reply (an HTTP status and a JSON body; errors
// are {"error": {"code", "message"}}). A refused operation changes nothing.
//
// Concurrency. mu_ guards the registry and the in-memory tables and is only held for short
// sections. An operation on a VM marks it busy (a second operation on the same VM is
// refused with 409 until the first ends) and talks to the VMM or waits for its process
// without holding mu_. The monitor thread reaps VMM processes, notices crashes (applying
// the restart policy), and follows a starting VM until its guest agent says ready; it
// leaves busy VMs alone.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "host/capacity.h"
#include "host/cgroup.h"
#include "host/image_store.h"
#include "host/registry.h"
#include "host/vm_launcher.h"

namespace nimbus::host {

using nlohmann::json;

struct Reply {
  int status = 200;
  json body;
  static Reply ok(json body, int status = 200) { return {status, std::move(body)}; }
  static Reply error(int status, const std::string& code, const std::string& message) {
    return {status, json{{"error", {{"code", code}, {"message", message}}}}};
  }
  bool is_error() const { return status >= 300; }
};

struct DaemonOptions {
  std::string state_dir = "/var/lib/nimbus";
  std::string vmm_exe;       // the nimbus binary that runs `nimbus vmm`
  std::string bundled_images;  // imported as the image "default" on first start
  CapacityPolicy policy;
  bool sandbox = true;       // own uid + seccomp per VM (only when nimbusd runs as root)
  uint32_t uid_base = 200000;  // VM uid = uid_base + slot; gid = uid_base
  std::string cgroup_root = "/sys/fs/cgroup";
  std::string cgroup_parent = "nimbus";
  unsigned monitor_interval_ms = 200;
  unsigned ready_timeout_s = 120;  // starting -> running without the agent's word
};

struct CreateRequest {
  std::string name;  // empty: generated
  std::string image = "default";
  unsigned cpus = 1;
  uint64_t memory_mib = 256;
  uint64_t disk_mib = 0;  // 0: the image's size
  std::vector<Forward> forwards;
  std::string restart_policy = "no";
  bool start = true;
};

struct ResizeRequest {
  std::optional<unsigned> cpus;
  std::optional<uint64_t> memory_mib;
  std::optional<uint64_t> disk_mib;
};

// What the API layer calls (an interface so the router can be tested and fuzzed alone).
class HostOps {
 public:
  virtual ~HostOps() = default;
  virtual Reply host_info() = 0;
  virtual Reply list_images() = 0;
  virtual Reply list_vms() = 0;
  virtual Reply get_vm(const std::string& name) = 0;
  virtual Reply create_vm(const CreateRequest& req) = 0;
  virtual Reply delete_vm(const std::string& name) = 0;
  virtual Reply start_vm(const std::string& name) = 0;
  virtual Reply stop_vm(const std::string& name, bool force, unsigned timeout_s) = 0;
  virtual Reply restart_vm(const std::string& name, bool force, unsigned timeout_s) = 0;
  virtual Reply pause_vm(const std::string& name) = 0;
  virtual Reply resume_vm(const std::string& name) = 0;
  virtual Reply resize_vm(const std::string& name, const ResizeRequest& req) = 0;
  virtual Reply list_snapshots(const std::string& name) = 0;
  virtual Reply create_snapshot(const std::string& name, const std::string& snap) = 0;
  virtual Reply restore_snapshot(const std::string& name, const std::string& snap) = 0;
  virtual Reply delete_snapshot(const std::string& name, const std::string& snap) = 0;
  virtual std::string metrics() = 0;
};

class Daemon : public HostOps {
 public:
  explicit Daemon(DaemonOptions options);
  ~Daemon() override;

  // Opens the state, imports the default image, detects cgroups, re-adopts the VM
  // processes that are still running and starts the monitor.
  Status init();
  void shutdown();  // stops the monitor; VM processes keep running
  std::string describe() const;  // one line for the log

  Reply host_info() override;
  Reply list_images() override;
  Reply list_vms() override;
  Reply get_vm(const std::string& name) override;
  Reply create_vm(const CreateRequest& req) override;
  Reply delete_vm(const std::string& name) override;
  Reply start_vm(const std::string& name) override;
  Reply stop_vm(const std::string& name, bool force, unsigned timeout_s) override;
  Reply restart_vm(const std::string& name, bool force, unsigned timeout_s) override;
  Reply pause_vm(const std::string& name) override;
  Reply resume_vm(const std::string& name) override;
  Reply resize_vm(const std::string& name, const ResizeRequest& req) override;
  Reply list_snapshots(const std::string& name) override;
  Reply create_snapshot(const std::string& name, const std::string& snap) override;
  Reply restore_snapshot(const std::string& name, const std::string& snap) override;
  Reply delete_snapshot(const std::string& name, const std::string& snap) override;
  std::string metrics() override;

 private:
  class BusyGuard;
  // Loads a VM and marks it busy; an error Reply if missing or busy.
  Result<VmRecord> acquire(const std::string& name, const char* op, Reply& error);
  void release(const std::string& name);
  Status save(const VmRecord& vm);

  json vm_json(const VmRecord& vm, bool with_usage);
  Capacity capacity_locked(const std::string& exclude = "");
  Status check_fit_locked(const VmRecord& vm, const std::string& exclude, bool compute, bool disk);
  Status check_ports_locked(const VmRecord& vm);

  // Starts the VMM process of `vm` (from its config, or restoring `snapshot_file`).
  // Updates vm (pid, state) and saves it.
  Status start_process(VmRecord& vm, const std::string& snapshot_file = "");
  // Ends the VMM process: graceful (agent) unless force, then SIGKILL if needed.
  // Returns whether the guest shut down gracefully.
  bool stop_process(VmRecord& vm, bool force, unsigned timeout_s);
  bool process_alive(const VmRecord& vm);
  // Every live VMM process of the VM: those in its cgroup, the holder of its pidfile lock
  // (if it is a VMM of this VM) and the recorded pid. Not with mu_ held.
  std::vector<pid_t> live_vmms(const VmRecord& vm);
  bool is_vmm_of(pid_t pid, const VmRecord& vm);
  // SIGKILLs every live VMM of the VM until none is left (false if some survive
  // `timeout_ms`), then removes its cgroup.
  bool kill_vmms(const VmRecord& vm, int timeout_ms);
  bool wait_process_gone(const VmRecord& vm, int timeout_ms);
  std::string exit_description_locked(const VmRecord& vm, bool* clean);
  void reap_children_locked();
  Status prepare_dir(const VmRecord& vm);
  // A fresh overlay of the VM's image as its disk (the end of an interrupted creation).
  Status rebuild_disk(const VmRecord& vm);
  void chown_vm(const VmRecord& vm, const std::string& path);
  bool sandboxed() const;

  void monitor_loop();
  void monitor_once();
  void recover();
  void recover_orphan_cgroups(const std::vector<VmRecord>& vms);

  DaemonOptions options_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<ImageStore> images_;
  std::unique_ptr<CgroupManager> cgroups_;
  HostResources host_;
  std::string switch_path_;
  std::string sandbox_off_;  // why the VMMs cannot run under their own uid ("" when they can)

  std::mutex mu_;
  std::map<std::string, std::string> busy_;  // VM -> the operation in progress
  std::set<pid_t> children_;                // VMM processes we forked and have not reaped
  std::map<pid_t, int> exits_;              // reaped children: wait status
  std::map<std::string, bool> ready_;       // the guest agent said ready
  std::map<std::string, std::vector<time_t>> restart_times_;

  std::thread monitor_;
  std::mutex monitor_mu_;
  std::condition_variable monitor_cv_;
  bool quit_ = false;
};

// Names of VMs, images and snapshots: 1-63 of [a-z0-9-], starting with a letter.
bool valid_name(const std::string& name);

// Whether a forward's host address and port can be bound now (a socket of its protocol is
// bound and closed); the error tells a port in use from an address that is not this host's.
Status check_host_port(const Forward& f);

}  // namespace nimbus::host
