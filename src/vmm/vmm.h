// One VM and its lifecycle inside the VMM process (the Firecracker model: one process per
// VM, driven over an API socket).
//
//   NotStarted --InstanceStart--> Running <--Paused/Resumed--> Paused
//   Running/Paused --guest poweroff, Stop, Shutdown--> Stopped --InstanceStart--> Running
//   NotStarted --snapshot/load--> Paused or Running
//
// The configuration can be edited while NotStarted or Stopped (a resize takes effect at
// the next boot). A guest reboot rebuilds the machine from the configuration and keeps
// Running.
//
// Each operation returns a Status or a result struct (vmm_control.h); api.cpp makes HTTP of
// them. Every state change, refusal of a step and failed step is logged (spdlog, "vm ID:
// ...").
//
// Threads: API calls come from the HTTP server's threads and are serialised by mu_; none
// of them runs on a vCPU. The machine reports its end through a callback from a hart
// thread; the owner's thread (run()) joins it and moves the state on.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "backends/block/tracked_disk.h"
#include "machine/virt/virt_machine.h"
#include "vmm/console_hub.h"
#include "vmm/imds_server.h"
#include "vmm/vm_config.h"
#include "vmm/vmm_control.h"

namespace nimbus::vmm {

struct VmmOptions {
  std::string id = "nimbus-vm";
  std::string images_dir;     // the bundled Image and initramfs
  bool exit_on_stop = false;  // run() returns when the guest stops (else it waits for more)
  bool no_reboot =
      false;  // a guest reboot stops the VM (last_stop "reboot") instead of booting it again
  // The virtio console: the guest agent's channel (nimbus vmm), or appended to this file
  // (nimbus run --virtio-console), or none.
  bool agent_channel = true;
  std::string virtio_console_file;
  // The instance metadata server the VM's user-mode networks route 169.254.169.254 to
  // (it outlives the Vmm); null: none, and a configuration with metadata does not start.
  ImdsServer* imds = nullptr;
};

class Vmm : public VmmControl {
 public:
  Vmm(VmmOptions options, VmConfig config);
  ~Vmm() override;

  ConsoleHub& console() { return console_; }

  // The owner's loop: reaps machines that stopped, restarts them on guest reboot, and
  // returns (with an exit status) after quit() or, with exit_on_stop, when the VM stops.
  int run();
  void quit(int status);

  VmState state();
  // The reason of the last stop: "poweroff", "reboot", "failure", "stopped" or "".
  std::string last_stop();

  // VmmControl
  std::string id() override { return options_.id; }
  InstanceInfo info() override;
  VmConfig config() override;
  Status set_machine_shape(const MachineShape& shape) override;
  Status set_boot_source(const BootSource& boot) override;
  Status put_drive(const DriveConfig& drive) override;
  Status delete_drive(const std::string& id) override;
  Result<DriveResized> resize_drive(const std::string& id, uint64_t new_size) override;
  Status put_nic(const NetConfig& nic) override;
  Status delete_nic(const std::string& id) override;
  Status set_nic_forwards(const std::string& id, const std::vector<HostForward>& forwards) override;
  Status set_metadata_data(const config::json& data) override;
  Status set_metadata_options(const config::MetadataOptions& options) override;
  Status start() override;
  Status send_ctrl_alt_del() override;
  Result<ShutdownResult> shutdown(double timeout_s) override;
  Status stop() override;
  Status pause() override;
  Status resume() override;
  Result<SnapshotCreated> snapshot_create(const std::string& path) override;
  Result<SnapshotLoaded> snapshot_load(const std::string& path, bool resume) override;
  Status migrate(const MigrateRequest& request) override;
  Result<IncomingStarted> migrate_incoming(const IncomingRequest& request) override;
  migration::Progress migration_status() override;
  Status migration_cancel() override;

 private:
  class SourceAdapter;
  class TargetAdapter;
  void source_thread(MigrateRequest request, migration::Address address);
  void target_thread(int listener, double timeout_s);
  // The migration's end in its progress (completed, cancelled or failed, and the time
  // since t0); true if it was cancelled.
  bool record_end(const Status& s, std::chrono::steady_clock::time_point t0);
  // Cuts an active migration short and waits for its thread (mu_ not held).
  void end_migration();
  bool migration_active_locked() const { return migration_active_; }
  // Applies `edit` to a copy of the configuration and keeps it if the edit succeeds; a
  // Conflict while the VM is Running or Paused. `what` names the change in the log.
  Status edit_config(const std::string& what, const std::function<Status(VmConfig&)>& edit);
  // A refusal (logged) when the VM is not in one of the states the step needs.
  Status refuse_locked(const std::string& step, std::string why);
  Result<machine::virt::VirtConfig> machine_config_locked(bool restoring);
  // The devices' host side, opened for a new machine (the machine opens no file itself).
  Result<machine::virt::VirtBackends> backends_locked();
  Status start_locked();
  Result<SnapshotLoaded> snapshot_load_locked(const std::string& path, bool resume);
  void watch_machine_locked();
  void device_info_locked(InstanceInfo& info);
  void on_agent_output(const uint8_t* data, size_t len);
  void send_agent_command(const std::string& command);
  // Waits (mu_ held through `lock`) until the VM is no longer Running/Paused or timeout.
  bool wait_stopped(std::unique_lock<std::mutex>& lock, std::chrono::milliseconds timeout);
  void reap();

  VmmOptions options_;
  ConsoleHub console_;

  std::mutex mu_;
  std::condition_variable cv_;  // state changed, a machine stopped, or quit
  VmConfig config_;
  VmState state_ = VmState::kNotStarted;
  std::unique_ptr<machine::virt::VirtMachine> machine_;
  bool hard_stop_ = false;  // the stop was asked for by Stop/Shutdown's timeout
  std::string last_stop_;
  std::chrono::steady_clock::time_point started_at_;
  uint64_t boots_ = 0;

  // Events for run(): a machine stopped (set from a hart thread) or quit().
  std::mutex events_mu_;
  std::condition_variable events_cv_;
  bool machine_stopped_ = false;
  bool quit_ = false;
  int exit_status_ = 0;

  std::mutex agent_mu_;
  std::string agent_line_;
  bool agent_ready_ = false;

  // The machine's disks, wrapped for migration's write tracking (valid while machine_).
  std::vector<backends::TrackedDisk*> disks_;
  // Live migration: one at a time, on its own thread. migration_active_ and migrated_
  // under mu_; the channel and listener under migration_io_mu_ (to cut them short).
  migration::ProgressBoard migration_;
  std::thread migration_thread_;
  std::atomic<bool> migration_cancel_{false};
  bool migration_active_ = false;
  bool migrated_ = false;  // the machine stopped because the VM moved away
  std::mutex migration_io_mu_;
  migration::Channel* migration_channel_ = nullptr;
  int migration_listener_ = -1;
};

}  // namespace nimbus::vmm
