#include "host/restart_policy.h"

#include <algorithm>

namespace nimbus::host {

bool policy_wants_restart(const VmRecord& vm, bool clean_exit) {
  if (vm.desired_state == "stopped") return false;
  return clean_exit ? vm.restart_policy == "always" : vm.restart_policy != "no";
}

bool RestartBudget::take(const std::string& vm, time_t now) {
  auto& times = times_[vm];
  std::erase_if(times, [now](time_t t) { return now - t > 60; });
  if (times.size() >= kMaxRestartsPerMinute) return false;
  times.push_back(now);
  return true;
}

}  // namespace nimbus::host
