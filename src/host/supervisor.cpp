#include "host/supervisor.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <set>

#include "host/host_checks.h"
#include "host/recovery.h"

namespace nimbus::host {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

void Supervisor::restart(VmRecord& vm) {
  VmRuntime::Busy busy(rt_, vm.name);
  vm.restarts++;
  spdlog::info("vm {}: restarting ({} policy, restart {})", vm.name, vm.restart_policy,
               vm.restarts);
  log_failure(vm.name, "restart", rt_.start_process(vm));
}

// Before the monitor runs and before any VM is started: every live VMM process is either
// adopted by exactly one VM or killed (docs: recovery.h).
void Supervisor::recover() {
  std::vector<VmRecord> vms;
  {
    std::lock_guard<std::mutex> lock(rt_.mu);
    auto r = rt_.registry.list_vms();
    if (!r.ok()) spdlog::error("recovery: listing the VMs failed: {}", r.message());
    if (r.ok()) vms = *r;
  }
  recover_orphan_cgroups(vms);
  std::vector<VmRecord> to_restart;
  for (const VmRecord& vm : vms) {
    VmmFindings found;
    found.live = rt_.processes.live_vmms(vm);
    // Only a process that is a VMM of this VM may answer for it (anything else in its
    // cgroup is killed without waiting).
    if (found.live.size() == 1 && rt_.processes.is_vmm_of(found.live.front(), vm)) {
      // A VMM started just before nimbusd died may not listen yet: it gets the time that
      // start_process would have given it.
      const pid_t pid = found.live.front();
      const double wait_s = std::max(
          0.0, static_cast<double>(rt_.options.vmm_answer_timeout_s) - rt_.processes.age_s(pid));
      const auto deadline =
          Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(wait_s * 1000));
      for (;;) {
        auto status = rt_.processes.info(vm.name, 2000);
        if (status.ok()) {
          found.answers = true;
          found.vmm_state = status->state;
          found.ready = status->agent_ready;
          found.start_ticks = rt_.processes.start_ticks(pid);
          break;
        }
        if (Clock::now() >= deadline || rt_.processes.live_vmms(vm).empty()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (found.answers && rt_.processes.live_vmms(vm) != found.live) {
        // It changed under us (ended, or another appeared): decide again from nothing safe.
        found.answers = false;
        found.live = rt_.processes.live_vmms(vm);
      }
    }
    found.disk_ok = true;  // for "creating": decided below, once no VMM can hold the disk
    RecoveryPlan plan = plan_recovery(vm, found);
    if (plan.kill) {
      spdlog::warn("vm {}: recovery kills {} VMM process(es) ({})", vm.name, found.live.size(),
                   found.live.size() > 1 ? "several for one VM" : "it does not answer");
      if (!rt_.kill_vmms(vm, 10000)) {
        // Should not happen (SIGKILL); leave the row saying a process is there so nothing
        // starts a second one.
        continue;
      }
    }
    if (vm.state == "creating" && !plan.adopt) {
      // The creation never reached its client and no guest of it runs: whatever it left
      // (a disk half written, or not yet given to the VM's uid) is made again from the image.
      found.live.clear();
      const Status disk = rt_.rebuild_disk(vm);
      found.disk_ok = log_failure(vm.name, "rebuilding the disk of an interrupted creation", disk);
      plan = plan_recovery(vm, found);
    }
    if (plan.adopt) {
      spdlog::info("vm {}: re-adopted its VMM (pid {}, {})", vm.name, plan.next.pid,
                   plan.next.state);
      std::lock_guard<std::mutex> lock(rt_.mu);
      rt_.ready[vm.name] = plan.ready;
    }
    if (plan.remove) {
      spdlog::warn("vm {}: an interrupted {} is rolled back", vm.name,
                   vm.state == "incoming" ? "incoming migration" : "creation");
      std::error_code ec;
      fs::remove_all(rt_.paths(vm.name).dir, ec);
      if (ec) spdlog::warn("vm {}: removing its directory: {}", vm.name, ec.message());
      rt_.remove_cgroup(vm.name);
      std::lock_guard<std::mutex> lock(rt_.mu);
      log_failure(vm.name, "removing its row", rt_.registry.delete_vm(vm.name));
      continue;
    }
    if (!plan.adopt && plan.next.pid == 0)
      rt_.remove_cgroup(vm.name);  // an empty group left by a crash
    if (plan.save) log_failure(vm.name, "saving its recovered state", rt_.save(plan.next));
    if (plan.restart) to_restart.push_back(plan.next);
  }
  // Only now, with every stray gone, start what the restart policies ask for.
  for (VmRecord& vm : to_restart) {
    auto held = rt_.acquire(vm.name, "restart");
    if (!log_failure(vm.name, "restart after recovery", held.status())) continue;
    restart(vm);
  }
}

// Groups under our cgroup parent that belong to no VM (the VM was deleted by a nimbusd that
// died before removing the group): their processes have nothing to account them to.
void Supervisor::recover_orphan_cgroups(const std::vector<VmRecord>& vms) {
  if (!rt_.processes.has_cgroups()) return;
  std::set<std::string> known;
  for (const VmRecord& v : vms) known.insert(v.name);
  for (const std::string& group : rt_.processes.cgroup_groups()) {
    if (known.count(group) != 0 || !valid_name(group)) continue;
    spdlog::warn("cgroup {} belongs to no VM: emptying and removing it", group);
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    for (;;) {
      const std::vector<pid_t> pids = rt_.processes.cgroup_processes(group);
      if (pids.empty() || Clock::now() >= deadline) break;
      for (pid_t pid : pids) rt_.processes.kill(pid);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    rt_.remove_cgroup(group);
  }
}

void Supervisor::start() {
  if (rt_.options.monitor_interval_ms == 0 || thread_.joinable()) return;
  thread_ = std::thread([this] {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, std::chrono::milliseconds(rt_.options.monitor_interval_ms),
                     [this] { return quit_; });
        if (quit_) return;
      }
      monitor_once();
    }
  });
}

void Supervisor::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Supervisor::monitor_once() {
  std::vector<VmRecord> to_restart, to_probe;
  const time_t now = ::time(nullptr);
  {
    std::lock_guard<std::mutex> lock(rt_.mu);
    auto vms = rt_.registry.list_vms();
    if (!vms.ok()) {
      spdlog::error("monitor: listing the VMs failed: {}", vms.message());
      return;
    }
    for (VmRecord& vm : *vms) {
      if (rt_.busy.count(vm.name) != 0 || vm.pid == 0) continue;
      if (rt_.processes.alive(vm)) {
        if (vm.state == "starting") to_probe.push_back(vm);
        continue;
      }
      const VmmExit exit = rt_.processes.take_exit(vm);
      vm.last_exit = exit.description;
      vm.pid = 0;
      vm.pid_start = 0;
      rt_.ready[vm.name] = false;
      vm.state = exit.clean ? "stopped" : "crashed";
      // A VM that left by live migration runs elsewhere now: never started again here (its
      // record stays, stopped, when nimbusd was not there to delete it: vm_migration.h).
      bool restart = !exit.migrated && policy_wants_restart(vm, exit.clean);
      if (exit.clean) {
        spdlog::info("vm {}: {}", vm.name, exit.description);
      } else {
        spdlog::warn("vm {}: crashed: {}", vm.name, exit.description);
      }
      if (restart && !rt_.restart_budget.take(vm.name, now)) {
        restart = false;
        vm.last_exit += "; not restarted: 5 restarts in the last minute";
        spdlog::warn("vm {}: not restarted: {} restarts in the last minute", vm.name,
                     kMaxRestartsPerMinute);
      }
      if (!restart) vm.desired_state = "stopped";
      log_failure(vm.name, "saving how its VMM ended", rt_.save_locked(vm));
      rt_.remove_cgroup(vm.name);
      if (restart) {
        rt_.busy[vm.name] = "restart after a crash";
        to_restart.push_back(vm);
      }
    }
  }
  for (VmRecord& vm : to_restart) restart(vm);
  for (VmRecord& vm : to_probe) {
    auto status = rt_.processes.info(vm.name, 1000);
    const bool ready = status.ok() && status->agent_ready;
    const double uptime = status.ok() ? status->uptime_s : 0.0;
    if (!ready && uptime < rt_.options.ready_timeout_s) continue;
    std::lock_guard<std::mutex> lock(rt_.mu);
    if (rt_.busy.count(vm.name) != 0) continue;
    auto cur = rt_.registry.get_vm(vm.name);
    if (!cur.ok() || !cur->has_value() || (**cur).pid != vm.pid || (**cur).state != "starting")
      continue;
    VmRecord v = **cur;
    v.state = "running";
    rt_.ready[v.name] = ready;
    if (!ready)
      spdlog::warn("vm {}: running without its guest agent's word after {:.0f} s", v.name, uptime);
    log_failure(v.name, "saving its state", rt_.save_locked(v));
  }
}

}  // namespace nimbus::host
