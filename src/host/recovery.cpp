#include "host/recovery.h"

#include <fmt/format.h>

namespace nimbus::host {

RecoveryPlan plan_recovery(const VmRecord& vm, const VmmFindings& found) {
  RecoveryPlan plan;
  plan.next = vm;
  VmRecord& next = plan.next;
  // A VM caught arriving by migration (vm_migration.h) is kept only if its VMM runs the
  // guest (the migration completed): else the source still has it, and this one goes.
  if (vm.state == "incoming" &&
      !(found.live.size() == 1 && found.answers && found.vmm_state == "Running")) {
    plan.kill = !found.live.empty();
    plan.remove = true;
    plan.save = false;
    return plan;
  }
  if (found.live.size() == 1 && found.answers) {
    plan.adopt = true;
    plan.save = true;
    plan.ready = found.ready;
    next.pid = found.live.front();
    next.pid_start = found.start_ticks;
    if (found.vmm_state == "Paused") {
      next.state = "paused";
    } else {
      next.state = found.ready ? "running" : "starting";
    }
    // A VM caught in "creating" had its process started: the request asked it to run.
    if (vm.state == "creating" || vm.state == "incoming") next.desired_state = "running";
    return plan;
  }
  const bool killed = !found.live.empty();
  if (killed) {
    plan.kill = true;
    plan.save = true;
    next.pid = 0;
    next.pid_start = 0;
    next.last_exit =
        found.live.size() > 1
            ? fmt::format(
                  "nimbusd found {} VMM processes for this VM when it started and stopped them",
                  found.live.size())
            : "nimbusd found its VMM not answering when it started and stopped it";
  }
  if (vm.state == "creating") {
    if (!found.disk_ok) {
      plan.remove = true;
      plan.save = false;
      return plan;
    }
    plan.save = true;
    next.pid = 0;
    next.pid_start = 0;
    next.state = "stopped";
    next.desired_state = "stopped";
    return plan;
  }
  if (!killed && vm.pid != 0) return plan;  // the monitor reports how it ended
  if (killed || next.desired_state != "stopped") {
    plan.save = true;
    next.state = killed && next.desired_state == "stopped" ? "stopped" : "crashed";
    if (!killed) next.last_exit = "the VM was not running when nimbusd started";
    if (next.restart_policy == "no" || next.desired_state == "stopped") {
      next.desired_state = "stopped";
    } else {
      plan.restart = true;
    }
    return plan;
  }
  if (next.state != "stopped" && next.state != "crashed") {
    plan.save = true;
    next.state = "stopped";
  }
  return plan;
}

}  // namespace nimbus::host
