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
// Threads: API calls come from the HTTP server's threads and are serialised by mu_; none
// of them runs on a vCPU. The machine reports its end through a callback from a hart
// thread; the owner's thread (run()) joins it and moves the state on.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "machine/virt/virt_machine.h"
#include "vmm/api.h"
#include "vmm/console_hub.h"
#include "vmm/vm_config.h"

namespace nimbus::vmm {

enum class VmState { kNotStarted, kRunning, kPaused, kStopped };
const char* state_name(VmState s);

struct VmmOptions {
  std::string id = "nimbus-vm";
  std::string images_dir;       // the bundled Image and initramfs
  bool exit_on_stop = false;    // run() returns when the guest stops (else it waits for more)
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
  json info() override;
  VmConfig config() override;
  ApiResponse edit_config(const std::function<ApiResponse(VmConfig&)>& edit) override;
  ApiResponse resize_drive(const std::string& id, uint64_t new_size) override;
  ApiResponse action(const Action& action) override;
  ApiResponse set_paused(bool paused) override;
  ApiResponse snapshot_create(const std::string& path) override;
  ApiResponse snapshot_load(const std::string& path, bool resume) override;

 private:
  Result<machine::virt::VirtConfig> machine_config_locked(bool restoring);
  ApiResponse start_locked();
  void watch_machine_locked();
  json device_info_locked();
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
  bool hard_stop_ = false;        // the stop was asked for by Stop/Shutdown's timeout
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
};

}  // namespace nimbus::vmm
