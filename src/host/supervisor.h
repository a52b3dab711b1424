// nimbusd's supervision of the VMM processes:
//   recover()       once, when nimbusd starts and before anything else runs: every live
//                   VMM is adopted by exactly one VM or killed, interrupted creations are
//                   finished or rolled back (recovery.h), orphan cgroups emptied, then the
//                   restart policies applied;
//   monitor_once()  every monitor interval (a thread): notices VMMs that ended (stopped
//                   or crashed, with how), applies the restart policy (restart_policy.h),
//                   and follows a starting VM until its guest agent says ready.
// Busy VMs (an operation in progress) are left alone.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "host/vm_runtime.h"

namespace nimbus::host {

class Supervisor {
 public:
  explicit Supervisor(VmRuntime& rt) : rt_(rt) {}
  ~Supervisor() { stop(); }

  void recover();
  void monitor_once();
  // The monitor thread (every options.monitor_interval_ms; none when it is 0).
  void start();
  void stop();

 private:
  void recover_orphan_cgroups(const std::vector<VmRecord>& vms);
  // Starts `vm` again after its VMM ended (it is marked busy by the caller).
  void restart(VmRecord& vm);

  VmRuntime& rt_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool quit_ = false;
};

}  // namespace nimbus::host
