// The restart policy of a VM whose VMM ended without being asked to: "no" never restarts
// it, "on-failure" restarts a crash (killed, failed, the machine failed), "always" also a
// clean exit (the guest powered off). Only while the VM should run, and at most
// kMaxRestartsPerMinute times in any minute: a VM that keeps crashing is left crashed.
#pragma once

#include <ctime>
#include <map>
#include <string>
#include <vector>

#include "host/registry.h"

namespace nimbus::host {

constexpr size_t kMaxRestartsPerMinute = 5;

// Whether the policy asks to start the VM again (before the budget is asked).
bool policy_wants_restart(const VmRecord& vm, bool clean_exit);

// The restarts of each VM in the last minute. Not thread-safe (the daemon's lock).
class RestartBudget {
 public:
  // Takes one restart of `vm` at `now` if fewer than kMaxRestartsPerMinute were taken in
  // the minute before; false (and nothing taken) otherwise.
  bool take(const std::string& vm, time_t now);
  void forget(const std::string& vm) { times_.erase(vm); }

 private:
  std::map<std::string, std::vector<time_t>> times_;
};

}  // namespace nimbus::host
