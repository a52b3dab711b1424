// A VmProcesses without processes, for the daemon's unit tests: "VMMs" are rows in a
// table that a test can end, make unresponsive, duplicate or leave behind, and every call
// nimbusd makes is recorded ("spawn web1", "pause web1", "kill 1003", ...). Spawned VMMs
// answer at once; the knobs below make them fail.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "host/vm_processes.h"

namespace nimbus::host {

class FakeVmProcesses : public VmProcesses {
 public:
  struct Proc {
    std::string vm;
    uint64_t start_ticks = 0;
    bool alive = true;
    bool is_vmm = true;   // false: some other process in the VM's cgroup
    bool answers = true;  // its API socket answers
    std::string state = "Running";
    bool agent_ready = false;
    double uptime_s = 1;
    double age_s = 100;  // old enough that recovery does not wait for it
    VmmExit exit;        // how it ended, once !alive
    bool exit_taken = false;
    // Its migration as GET /migration shows it (role, state, listen, error, ...).
    nlohmann::json migration = {{"role", "none"}, {"state", "none"}};
  };

  // Knobs for the next spawns.
  Status spawn_error;                     // spawn fails with this
  bool spawn_dies = false;                // the VMM exits at once (a bad configuration)
  bool spawn_answers = true;              // its API answers
  bool spawn_ready = false;               // its guest agent says ready at once
  Status pause_error;                     // pause fails with this
  Status forwards_error;                  // set_forwards fails with this (the VMM refused)
  std::string restore_state = "Running";  // what a VMM restored from a snapshot says it is

  std::mutex mu;  // the daemon calls from its threads; tests read under it too
  std::map<pid_t, Proc> procs;
  std::set<std::string> cgroups;
  std::vector<std::string> calls;
  std::map<std::string, std::vector<config::PortForward>> forwards;  // applied live, per VM
  Status metadata_error;                                             // set_metadata fails with this
  std::map<std::string, config::MetadataConfig> metadata;            // applied live, per VM
  pid_t next_pid = 1000;
  // Migrations: what a source VMM's PUT /migration leads to at the next GET (completed:
  // the VMM then ends, exit "migrated", and on_migrated(vm, destination) is called; failed:
  // it keeps running, with migrate_failure as the error); migrate_error refuses the PUT.
  std::string migrate_outcome = "completed";
  std::string migrate_failure = "fake: the connection to the target was reset";
  Status migrate_error;
  std::string incoming_listen = "tcp:127.0.0.1:4444";  // what an incoming VMM says it bound
  std::function<void(const std::string&, const std::string&)> on_migrated;
  // The incoming VMM of `vm` receives the VM: it says Running, migration completed.
  void complete_incoming(const std::string& vm) {
    std::lock_guard<std::mutex> lock(mu);
    Proc* p = answering_locked(vm);
    if (!p) return;
    p->state = "Running";
    p->migration["state"] = "completed";
  }
  // The incoming VMM of `vm` gives up (the source went away): failed, still NotStarted.
  void fail_incoming(const std::string& vm) {
    std::lock_guard<std::mutex> lock(mu);
    Proc* p = answering_locked(vm);
    if (!p) return;
    p->migration["state"] = "failed";
    p->migration["error"] = "fake: the source closed the connection";
  }

  // A process that exists without nimbusd having spawned it (left from before a restart).
  pid_t add(const std::string& vm) { return add(vm, Proc()); }
  pid_t add(const std::string& vm, Proc p) {
    std::lock_guard<std::mutex> lock(mu);
    const pid_t pid = next_pid++;
    p.vm = vm;
    p.start_ticks = static_cast<uint64_t>(pid) * 10;
    procs[pid] = p;
    cgroups.insert(vm);
    return pid;
  }
  // The VMM ends by itself: cleanly (the guest powered off) or not (killed, failed).
  void end(pid_t pid, bool clean) {
    std::lock_guard<std::mutex> lock(mu);
    finish(procs.at(pid),
           clean ? "the VMM exited with status 0 (poweroff)"
                 : "the VMM was killed by signal 11 (SIGSEGV)",
           clean);
  }
  Proc& proc(pid_t pid) {
    std::lock_guard<std::mutex> lock(mu);
    return procs.at(pid);
  }
  std::vector<pid_t> live_of(const std::string& vm) {
    std::lock_guard<std::mutex> lock(mu);
    return live_locked(vm);
  }
  size_t count(const std::string& call) {
    std::lock_guard<std::mutex> lock(mu);
    return static_cast<size_t>(std::count(calls.begin(), calls.end(), call));
  }

  Result<SpawnedVmm> spawn(const VmRecord& vm, const std::string& snapshot_file) override {
    std::lock_guard<std::mutex> lock(mu);
    calls.push_back((snapshot_file.empty() ? "spawn " : "restore ") + vm.name);
    if (!spawn_error.ok()) return spawn_error;
    const pid_t pid = next_pid++;
    Proc p;
    p.vm = vm.name;
    p.start_ticks = static_cast<uint64_t>(pid) * 10;
    p.answers = spawn_answers;
    p.agent_ready = spawn_ready;
    p.age_s = 0;
    if (!snapshot_file.empty()) p.state = restore_state;
    if (spawn_dies) finish(p, "the VMM exited with status 1", false);
    procs[pid] = p;
    cgroups.insert(vm.name);
    return SpawnedVmm{pid, p.start_ticks};
  }
  Result<SpawnedVmm> spawn_incoming(const VmRecord& vm, const std::string& listen) override {
    std::lock_guard<std::mutex> lock(mu);
    calls.push_back(fmt::format("incoming {} {}", vm.name, listen));
    if (!spawn_error.ok()) return spawn_error;
    const pid_t pid = next_pid++;
    Proc p;
    p.vm = vm.name;
    p.start_ticks = static_cast<uint64_t>(pid) * 10;
    p.answers = spawn_answers;
    p.age_s = 0;
    p.state = "NotStarted";
    p.migration = {{"role", "target"}, {"state", "listening"}, {"listen", incoming_listen}};
    if (spawn_dies) finish(p, "the VMM exited with status 1", false);
    procs[pid] = p;
    cgroups.insert(vm.name);
    return SpawnedVmm{pid, p.start_ticks};
  }
  Result<nlohmann::json> migration(const std::string& vm, const std::string& method,
                                   const nlohmann::json& body) override {
    std::function<void(const std::string&, const std::string&)> hook;
    std::string destination;
    nlohmann::json reply;
    {
      std::lock_guard<std::mutex> lock(mu);
      Proc* p = answering_locked(vm);
      if (method == "PUT") {
        destination = body.value("destination", std::string());
        calls.push_back(fmt::format("migrate {} {}", vm, destination));
        if (!migrate_error.ok()) return migrate_error;
        if (!p) return Status::unavailable("fake: no VMM");
        p->migration = {{"role", "source"}, {"state", "active"}, {"phase", "ram"}};
        return nlohmann::json{{"state", "active"}};
      }
      if (method == "DELETE") {
        calls.push_back("cancel " + vm);
        if (!p) return Status::unavailable("fake: no VMM");
        if (p->migration.value("state", "") == "active") p->migration["state"] = "cancelled";
        return p->migration;
      }
      if (!p) return Status::unavailable("fake: no VMM");
      if (p->migration.value("role", "") == "source" &&
          p->migration.value("state", "") == "active") {
        p->migration["state"] = migrate_outcome;
        p->migration["phase"] = "done";
        if (migrate_outcome == "completed") {
          p->migration["downtime_ms"] = 12.5;
          p->migration["total_ms"] = 900.0;
          p->migration["ram_bytes_sent"] = 1000000;
          p->migration["disk_bytes_sent"] = 65536;
          p->migration["round"] = 3;
          reply = p->migration;
          p->state = "Stopped";
          finish(*p, "the VMM exited with status 0 (migrated)", true);
          p->exit.migrated = true;
          hook = on_migrated;
          destination = "";
        } else {
          p->migration["error"] = migrate_failure;
          reply = p->migration;
        }
      } else {
        reply = p->migration;
      }
    }
    if (hook) hook(vm, destination);
    return reply;
  }
  bool alive(const VmRecord& vm) override {
    std::lock_guard<std::mutex> lock(mu);
    auto it = procs.find(static_cast<pid_t>(vm.pid));
    return it != procs.end() && it->second.alive && it->second.start_ticks == vm.pid_start;
  }
  std::vector<pid_t> live_vmms(const VmRecord& vm) override { return live_of(vm.name); }
  bool is_vmm_of(pid_t pid, const VmRecord& vm) override {
    std::lock_guard<std::mutex> lock(mu);
    auto it = procs.find(pid);
    return it != procs.end() && it->second.alive && it->second.is_vmm && it->second.vm == vm.name;
  }
  void kill(pid_t pid) override {
    std::lock_guard<std::mutex> lock(mu);
    calls.push_back(fmt::format("kill {}", pid));
    if (auto it = procs.find(pid); it != procs.end() && it->second.alive) {
      finish(it->second, "the VMM was killed by signal 9 (SIGKILL)", false);
    }
  }
  double age_s(pid_t pid) override {
    std::lock_guard<std::mutex> lock(mu);
    auto it = procs.find(pid);
    return it == procs.end() ? 0 : it->second.age_s;
  }
  uint64_t start_ticks(pid_t pid) override {
    std::lock_guard<std::mutex> lock(mu);
    auto it = procs.find(pid);
    return it == procs.end() ? 0 : it->second.start_ticks;
  }
  VmmExit take_exit(const VmRecord& vm) override {
    std::lock_guard<std::mutex> lock(mu);
    auto it = procs.find(static_cast<pid_t>(vm.pid));
    if (it == procs.end() || it->second.alive || it->second.exit_taken)
      return {"the VMM process disappeared", false};
    it->second.exit_taken = true;
    return it->second.exit;
  }
  std::string last_log_line(const VmRecord&) override { return "fake: the VMM's last words"; }
  std::optional<ProcessUsage> usage(const VmRecord& vm) override {
    if (!alive(vm)) return std::nullopt;
    return ProcessUsage{1.5, 64u << 20};
  }

  bool has_cgroups() const override { return true; }
  std::string describe_cgroups() const override { return "fake"; }
  std::string cgroup_path(const std::string& vm) const override { return "/fake/" + vm; }
  Status remove_cgroup(const std::string& vm) override {
    std::lock_guard<std::mutex> lock(mu);
    if (!live_locked(vm).empty()) return Status::conflict("cgroup " + vm + " still has processes");
    cgroups.erase(vm);
    return {};
  }
  std::vector<std::string> cgroup_groups() override {
    std::lock_guard<std::mutex> lock(mu);
    return {cgroups.begin(), cgroups.end()};
  }
  std::vector<pid_t> cgroup_processes(const std::string& group) override { return live_of(group); }

  Result<VmmStatus> info(const std::string& vm, int) override {
    std::lock_guard<std::mutex> lock(mu);
    Proc* p = answering_locked(vm);
    if (!p) return Status::unavailable("fake: the VMM of " + vm + " does not answer");
    VmmStatus s;
    s.state = p->state;
    s.agent_ready = p->agent_ready;
    s.uptime_s = p->uptime_s;
    s.has_devices = true;
    s.disk_read_bytes = 4096;
    return s;
  }
  Status pause(const std::string& vm) override { return set_state(vm, "pause", "Paused"); }
  Status resume(const std::string& vm) override { return set_state(vm, "resume", "Running"); }
  Result<bool> shutdown(const std::string& vm, unsigned) override {
    std::lock_guard<std::mutex> lock(mu);
    calls.push_back("shutdown " + vm);
    Proc* p = answering_locked(vm);
    if (!p) return Status::unavailable("fake: no VMM");
    finish(*p, "the VMM exited with status 0 (shutdown)", true);
    return true;
  }
  Status stop(const std::string& vm) override {
    std::lock_guard<std::mutex> lock(mu);
    calls.push_back("stop " + vm);
    Proc* p = answering_locked(vm);
    if (!p) return Status::unavailable("fake: no VMM");
    finish(*p, "the VMM exited with status 0 (stopped)", true);
    return {};
  }
  Status snapshot_create(const std::string& vm, const std::string& path) override {
    std::lock_guard<std::mutex> lock(mu);
    calls.push_back("snapshot " + vm);
    Proc* p = answering_locked(vm);
    if (!p) return Status::unavailable("fake: no VMM");
    std::ofstream(path) << p->state << "\n";
    return {};
  }
  Status set_forwards(const std::string& vm,
                      const std::vector<config::PortForward>& list) override {
    std::lock_guard<std::mutex> lock(mu);
    calls.push_back(fmt::format("forwards {} {}", vm, list.size()));
    if (!forwards_error.ok()) return forwards_error;
    if (!answering_locked(vm)) return Status::unavailable("fake: no VMM");
    forwards[vm] = list;
    return {};
  }
  Status set_metadata(const std::string& vm, const config::MetadataConfig& m) override {
    std::lock_guard<std::mutex> lock(mu);
    calls.push_back("metadata " + vm);
    if (!metadata_error.ok()) return metadata_error;
    if (!answering_locked(vm)) return Status::unavailable("fake: no VMM");
    metadata[vm] = m;
    return {};
  }

 private:
  static void finish(Proc& p, const std::string& description, bool clean) {
    p.alive = false;
    p.exit = VmmExit{description, clean};
  }
  std::vector<pid_t> live_locked(const std::string& vm) {
    std::vector<pid_t> out;
    for (const auto& [pid, p] : procs) {
      if (p.alive && p.vm == vm) out.push_back(pid);
    }
    return out;
  }
  Proc* answering_locked(const std::string& vm) {
    for (auto& [pid, p] : procs) {
      if (p.alive && p.vm == vm && p.is_vmm && p.answers) return &p;
    }
    return nullptr;
  }
  Status set_state(const std::string& vm, const char* call, const char* state) {
    std::lock_guard<std::mutex> lock(mu);
    calls.push_back(std::string(call) + " " + vm);
    if (std::string(call) == "pause" && !pause_error.ok()) return pause_error;
    Proc* p = answering_locked(vm);
    if (!p) return Status::unavailable("fake: no VMM");
    p->state = state;
    return {};
  }
};

}  // namespace nimbus::host
