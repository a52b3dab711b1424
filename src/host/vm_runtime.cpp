#include "host/vm_runtime.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "backends/block/qcow2.h"
#include "backends/net/switch_backend.h"
#include "host/host_checks.h"

namespace nimbus::host {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

uint64_t allocated_bytes(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

}  // namespace

bool log_failure(const std::string& vm, const std::string& step, const Status& s) {
  if (s.ok()) return true;
  spdlog::warn("vm {}: {} failed: {}", vm, step, s.message());
  return false;
}

VmRuntime::VmRuntime(const DaemonOptions& o, Registry& r, ImageStore& i, VmProcesses& p,
                     HostResources h, std::string switch_path_in, std::string sandbox_off_in)
    : options(o),
      registry(r),
      images(i),
      processes(p),
      host(h),
      switch_path(std::move(switch_path_in)),
      sandbox_off(std::move(sandbox_off_in)) {}

bool VmRuntime::sandboxed() const {
  return options.sandbox && ::geteuid() == 0 && sandbox_off.empty();
}

// ---- busy marking and saving ------------------------------------------------------------

Result<VmRecord> VmRuntime::acquire(const std::string& name, const std::string& op) {
  std::lock_guard<std::mutex> lock(mu);
  auto vm = registry.get_vm(name);
  if (!vm.ok()) return vm.status().with_code(Code::kInternal);
  if (!vm->has_value())
    return Status::not_found(fmt::format("no VM named '{}' (see 'nimbus list')", name));
  if (auto it = busy.find(name); it != busy.end()) {
    return Status::conflict(
        fmt::format("VM '{}' is busy ({} in progress); try again in a moment", name, it->second));
  }
  busy[name] = op;
  return **vm;
}

void VmRuntime::release(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu);
  busy.erase(name);
}

Status VmRuntime::save(const VmRecord& vm) {
  std::lock_guard<std::mutex> lock(mu);
  return save_locked(vm);
}

Status VmRuntime::save_locked(const VmRecord& vm) {
  auto old = registry.get_vm(vm.name);
  if (Status s = registry.update_vm(vm); !s.ok()) {
    spdlog::error("vm {}: saving its state ({}, desired {}) failed: {}", vm.name, vm.state,
                  vm.desired_state, s.message());
    return s;
  }
  if (old.ok() && old->has_value() &&
      ((**old).state != vm.state || (**old).desired_state != vm.desired_state ||
       (**old).pid != vm.pid)) {
    spdlog::info("vm {}: {} -> {} (desired {}, pid {})", vm.name, (**old).state, vm.state,
                 vm.desired_state, vm.pid);
  }
  return {};
}

// ---- capacity and ports -----------------------------------------------------------------

Capacity VmRuntime::capacity_locked(const std::string& exclude) {
  std::vector<VmAllocation> allocations;
  auto vms = registry.list_vms();
  if (!vms.ok()) spdlog::error("capacity: listing the VMs failed: {}", vms.message());
  if (vms.ok()) {
    for (const VmRecord& v : *vms) {
      if (v.name == exclude) continue;
      // A VM with a process holds its vCPUs and memory whatever it wants to become.
      allocations.push_back(
          VmAllocation{Allocation{v.cpus, v.memory_mib, v.disk_mib}, active(v) || v.pid != 0});
    }
  }
  return compute_capacity(host, options.policy, allocations);
}

Status VmRuntime::check_fit_locked(const VmRecord& vm, const std::string& exclude, bool compute,
                                   bool disk) {
  Allocation want{compute ? vm.cpus : 0u, compute ? vm.memory_mib : 0u, disk ? vm.disk_mib : 0u};
  return check_fit(capacity_locked(exclude), want, options.policy)
      .with_code(Code::kInsufficientCapacity);
}

Status VmRuntime::check_ports_locked(const VmRecord& vm,
                                     const std::vector<config::PortForward>& held) {
  auto vms = registry.list_vms();
  for (const config::PortForward& f : vm.forwards) {
    if (vms.ok()) {
      for (const VmRecord& other : *vms) {
        if (other.name == vm.name) continue;
        for (const config::PortForward& o : other.forwards) {
          if (forwards_collide(o, f)) {
            return Status::conflict(
                fmt::format("host port {}/{} on {} is already forwarded to VM '{}' ({})",
                            f.host_port, f.protocol, f.host_address, other.name, o.host_address));
          }
        }
      }
    }
    if (std::find(held.begin(), held.end(), f) != held.end()) continue;
    // Whatever keeps the port from being bound, the VM cannot have it now.
    if (Status s = check_host_port(f); !s.ok()) return s.with_code(Code::kConflict);
  }
  return {};
}

// ---- processes ---------------------------------------------------------------------------

bool VmRuntime::wait_gone(const VmRecord& vm, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (processes.alive(vm)) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

void VmRuntime::remove_cgroup(const std::string& vm) {
  log_failure(vm, "removing its cgroup", processes.remove_cgroup(vm));
}

bool VmRuntime::kill_vmms(const VmRecord& vm, int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const std::vector<pid_t> live = processes.live_vmms(vm);
    if (live.empty()) break;
    if (Clock::now() >= deadline) {
      spdlog::error("vm {}: {} VMM process(es) survived SIGKILL for {} ms (first: pid {})", vm.name,
                    live.size(), timeout_ms, live.front());
      return false;
    }
    for (pid_t pid : live) processes.kill(pid);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  remove_cgroup(vm.name);
  return true;
}

Status VmRuntime::start_process(VmRecord& vm, const std::string& snapshot_file,
                                const std::string& incoming) {
  const VmPaths p = paths(vm.name);
  // Never two VMMs on one disk: a VMM left over (e.g. from a nimbusd that died) must be
  // stopped first.
  if (const std::vector<pid_t> live = processes.live_vmms(vm); !live.empty()) {
    return Status::conflict(
        fmt::format("VM '{}' still has a live VMM process (pid {}); stop it first (nimbus stop {})",
                    vm.name, live.front(), vm.name));
  }
  auto image = images.get(vm.image);
  if (!image.ok()) return image.status();
  if (Status s = prepare_dir(vm); !s.ok()) return s;
  {
    std::ofstream out(p.config);
    out << config::to_json(make_vmm_config(vm, *image, p, switch_of(vm))).dump(2) << "\n";
    if (!out) return Status::internal(fmt::format("cannot write '{}'", p.config));
  }
  chown_vm(vm, p.config);
  auto spawned = incoming.empty() ? processes.spawn(vm, snapshot_file)
                                  : processes.spawn_incoming(vm, incoming);
  if (!spawned.ok()) return spawned.status();
  vm.pid = spawned->pid;
  vm.pid_start = spawned->start_ticks;
  vm.state = !incoming.empty() ? "incoming" : snapshot_file.empty() ? "starting" : "running";
  vm.desired_state = "running";
  vm.started_at = utc_now();
  spdlog::info("vm {}: VMM started (pid {}{})", vm.name, vm.pid,
               snapshot_file.empty() ? "" : ", restoring " + snapshot_file);
  {
    // Recorded at once (a nimbusd killed later finds the pid in the database; one killed
    // before this finds the process by its cgroup and pidfile).
    std::lock_guard<std::mutex> lock(mu);
    ready[vm.name] = false;
    if (Status s = save_locked(vm); !s.ok()) return s;
  }

  // The VMM is up when its API answers; a bad configuration makes it exit at once.
  const auto deadline = Clock::now() + std::chrono::seconds(options.vmm_answer_timeout_s);
  for (;;) {
    if (!processes.alive(vm)) {
      const VmmExit exit = processes.take_exit(vm);
      const std::string line = processes.last_log_line(vm);
      vm.pid = 0;
      vm.state = "crashed";
      vm.desired_state = "stopped";
      vm.last_exit = exit.description;
      log_failure(vm.name, "saving the crash", save(vm));
      remove_cgroup(vm.name);
      return Status::internal(fmt::format(
          "{}: {}", exit.description, line.empty() ? "(no message; see " + p.vmm_log + ")" : line));
    }
    if (processes.info(vm.name, 1000).ok()) break;
    if (Clock::now() >= deadline) {
      processes.kill(static_cast<pid_t>(vm.pid));
      if (!wait_gone(vm, 3000))
        spdlog::error("vm {}: the VMM (pid {}) survived SIGKILL", vm.name, vm.pid);
      vm.pid = 0;
      vm.state = "crashed";
      vm.desired_state = "stopped";
      vm.last_exit = fmt::format("the VMM did not answer on its API socket within {} s",
                                 options.vmm_answer_timeout_s);
      log_failure(vm.name, "saving the crash", save(vm));
      return Status::deadline_exceeded(vm.last_exit);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  if (!snapshot_file.empty()) {
    auto status = processes.info(vm.name, 1000);
    if (status.ok() && status->state == "Paused") vm.state = "paused";
    log_failure(vm.name, "saving its state", save(vm));
  }
  return {};
}

bool VmRuntime::stop_process(VmRecord& vm, bool force, unsigned timeout_s) {
  bool graceful = false;
  if (processes.alive(vm)) {
    if (!force) {
      auto r = processes.shutdown(vm.name, timeout_s);
      log_failure(vm.name, "graceful shutdown", r.status());
      graceful = r.ok() && *r;
    } else {
      log_failure(vm.name, "stopping the VMM", processes.stop(vm.name));
    }
    if (!wait_gone(vm, 5000)) {
      spdlog::warn("vm {}: the VMM (pid {}) did not end within 5 s: killing it", vm.name, vm.pid);
      processes.kill(static_cast<pid_t>(vm.pid));
      if (!wait_gone(vm, 5000))
        spdlog::error("vm {}: the VMM (pid {}) survived SIGKILL", vm.name, vm.pid);
    }
  }
  if (vm.pid != 0) vm.last_exit = processes.take_exit(vm).description;
  {
    std::lock_guard<std::mutex> lock(mu);
    ready[vm.name] = false;
  }
  // Any other VMM of this VM (left by a nimbusd that died before it recorded the pid) goes
  // too, and kill_vmms removes the cgroup once it is empty.
  VmRecord gone = vm;
  gone.pid = 0;
  kill_vmms(gone, 5000);
  vm.pid = 0;
  vm.pid_start = 0;
  vm.state = "stopped";
  return graceful;
}

// ---- files -------------------------------------------------------------------------------

Status VmRuntime::prepare_dir(const VmRecord& vm) {
  const VmPaths p = paths(vm.name);
  std::error_code ec;
  fs::create_directories(p.snapshots, ec);
  if (ec) return Status::internal(fmt::format("cannot create '{}': {}", p.snapshots, ec.message()));
  if (::chmod(p.dir.c_str(), 0700) != 0) {
    spdlog::warn("vm {}: cannot set the mode of '{}' to 0700: {}", vm.name, p.dir,
                 std::strerror(errno));
  }
  chown_vm(vm, p.dir);
  chown_vm(vm, p.snapshots);
  if (vm.network) {
    if (Status s = prepare_network(vm.network->vni); !s.ok()) return s;
  }
  // Its endpoint on the switch goes in a directory only its uid can write to, and its
  // frames there must carry its eth1 MAC.
  if (vm.uid != 0) {
    return backends::SwitchBackend::prepare_port_dir(switch_of(vm), vm.uid, options.uid_base,
                                                     vm_host_mac(vm));
  }
  return {};
}

std::string VmRuntime::switch_of(const VmRecord& vm) const {
  return vm.network ? network_switch_path(options.state_dir, vm.network->vni) : switch_path;
}

Status VmRuntime::prepare_switch(const std::string& path) const {
  const std::string dir = path + ".d";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return Status::internal(fmt::format("cannot create the switch '{}': {}", dir, ec.message()));
  if (sandboxed()
          ? ::chown(dir.c_str(), 0, options.uid_base) != 0 || ::chmod(dir.c_str(), 0750) != 0
          : ::chmod(dir.c_str(), 0700) != 0) {
    return Status::internal(
        fmt::format("cannot set up the switch '{}': {}", dir, std::strerror(errno)));
  }
  return {};
}

Status VmRuntime::prepare_network(uint32_t vni) {
  const std::string path = network_switch_path(options.state_dir, vni);
  if (Status s = prepare_switch(path); !s.ok()) return s;
  if (tunnel != nullptr) {
    if (Status s = tunnel->add_network(vni, path); !s.ok())
      return Status::internal(fmt::format("network {}: {}", vni, s.message()));
  }
  return {};
}

Status VmRuntime::create_disk(const VmRecord& vm, const ImageInfo& image, const std::string& path) {
  return backends::create_qcow2(path, vm.disk_mib << 20, 65536, image.disk, image.disk_format);
}

Status VmRuntime::rebuild_disk(const VmRecord& vm) {
  const VmPaths p = paths(vm.name);
  auto image = images.get(vm.image);
  if (!image.ok()) return image.status();
  if (Status s = prepare_dir(vm); !s.ok()) return s;
  const std::string tmp = p.disk + ".tmp";
  std::error_code ec;
  fs::remove(tmp, ec);
  if (Status s = create_disk(vm, *image, tmp); !s.ok()) {
    fs::remove(tmp, ec);
    return s;
  }
  chown_vm(vm, tmp);
  fs::rename(tmp, p.disk, ec);
  if (ec) return Status::internal(fmt::format("renaming '{}': {}", tmp, ec.message()));
  return {};
}

void VmRuntime::chown_vm(const VmRecord& vm, const std::string& path) {
  if (vm.uid != 0 && ::chown(path.c_str(), vm.uid, options.uid_base) != 0) {
    // The VMM (under the VM's uid) will fail on this file and say so; the cause is here.
    spdlog::warn("vm {}: cannot give '{}' to uid {}: {}", vm.name, path, vm.uid,
                 std::strerror(errno));
  }
}

// ---- description -------------------------------------------------------------------------

VmInfo VmRuntime::info(const VmRecord& vm, bool with_usage) {
  const VmPaths p = paths(vm.name);
  VmInfo i;
  i.record = vm;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = ready.find(vm.name);
    i.ready = it != ready.end() && it->second && (vm.state == "running" || vm.state == "paused");
    if (auto m = migrations.find(vm.name); m != migrations.end()) i.migration = m->second;
  }
  i.user_address = kUserNetAddress;
  if (vm.network) {
    i.private_address = network_host_address(*vm.network);
  } else {
    i.host_address = host_network_address(vm.slot);
  }
  i.cgroup = processes.cgroup_path(vm.name);
  i.console_socket = p.console_sock;
  i.console_log = p.console_log;
  if (!with_usage) return i;
  VmUsage u;
  u.disk_used_mib = static_cast<double>(allocated_bytes(p.disk)) / 1048576.0;
  if (auto pu = processes.usage(vm)) {
    u.cpu_seconds = pu->cpu_seconds;
    u.memory_mib = static_cast<double>(pu->rss_bytes) / 1048576.0;
    auto status = processes.info(vm.name, 1000);
    if (status.ok() && status->has_devices) {
      u.disk_read_bytes = status->disk_read_bytes;
      u.disk_write_bytes = status->disk_write_bytes;
      u.net_rx_bytes = status->net_rx_bytes;
      u.net_tx_bytes = status->net_tx_bytes;
    }
  }
  i.usage = u;
  return i;
}

}  // namespace nimbus::host
