#include "host/vm_service.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <set>

#include "backends/block/disk_resize.h"

namespace nimbus::host {
namespace fs = std::filesystem;

namespace {

Status not_found(const std::string& name) {
  return Status::not_found(fmt::format("no VM named '{}' (see 'nimbus list')", name));
}

}  // namespace

Result<std::vector<VmInfo>> VmService::list_vms() {
  std::vector<VmRecord> vms;
  {
    std::lock_guard<std::mutex> lock(rt_.mu);
    auto r = rt_.registry.list_vms();
    if (!r.ok()) return r.status().with_code(Code::kInternal);
    vms = *r;
  }
  std::vector<VmInfo> out;
  for (const VmRecord& v : vms) out.push_back(rt_.info(v, true));
  return out;
}

Result<VmInfo> VmService::get_vm(const std::string& name) {
  std::optional<VmRecord> vm;
  {
    std::lock_guard<std::mutex> lock(rt_.mu);
    auto r = rt_.registry.get_vm(name);
    if (!r.ok()) return r.status().with_code(Code::kInternal);
    vm = *r;
  }
  if (!vm) return not_found(name);
  return rt_.info(*vm, true);
}

Result<VmInfo> VmService::create_vm(const CreateRequest& req) {
  auto image = rt_.images.get(req.image);
  if (!image.ok()) return image.status().with_code(Code::kNotFound);
  VmRecord vm;
  vm.image = req.image;
  vm.cpus = req.cpus;
  vm.memory_mib = req.memory_mib;
  vm.disk_mib = req.disk_mib != 0 ? req.disk_mib : image->disk_mib;
  if (vm.disk_mib < image->disk_mib) {
    return Status::invalid_argument(fmt::format(
        "disk_mib {} is smaller than image '{}' ({} MiB); a disk can only be as large or larger",
        vm.disk_mib, req.image, image->disk_mib));
  }
  vm.forwards = req.forwards;
  vm.metadata = req.metadata;
  vm.network = req.network;
  vm.restart_policy = req.restart_policy;
  vm.desired_state = req.start ? "running" : "stopped";
  vm.state = "creating";
  vm.created_at = utc_now();
  {
    std::lock_guard<std::mutex> lock(rt_.mu);
    auto all = rt_.registry.list_vms();
    if (!all.ok()) return all.status().with_code(Code::kInternal);
    std::set<std::string> names;
    std::set<unsigned> slots;
    for (const VmRecord& v : *all) {
      names.insert(v.name);
      slots.insert(v.slot);
    }
    vm.name = req.name;
    for (unsigned n = 1; vm.name.empty(); n++) {
      if (names.count(fmt::format("vm-{}", n)) == 0) vm.name = fmt::format("vm-{}", n);
    }
    if (names.count(vm.name) != 0)
      return Status::conflict(fmt::format("a VM named '{}' already exists", vm.name));
    // An address (and so a MAC) is one VM's in its network.
    for (const VmRecord& v : *all) {
      if (vm.network && v.network && v.network->vni == vm.network->vni &&
          network_host_address(*v.network) == network_host_address(*vm.network)) {
        return Status::conflict(fmt::format("VM '{}' already has {} in network {}", v.name,
                                            network_host_address(*vm.network), vm.network->vni));
      }
    }
    for (unsigned s = kMinSlot; s <= kMaxSlot && vm.slot == 0; s++) {
      if (slots.count(s) == 0) vm.slot = s;
    }
    if (vm.slot == 0) return Status::insufficient_capacity("this host has no free VM slot");
    vm.uid = rt_.sandboxed() ? rt_.options.uid_base + vm.slot : 0;
    if (Status s = rt_.check_fit_locked(vm, vm.name, req.start, true); !s.ok()) {
      return s.with_context(fmt::format("cannot create VM '{}'", vm.name));
    }
    if (Status s = rt_.check_ports_locked(vm); !s.ok()) return s;
    if (Status s = rt_.registry.insert_vm(vm); !s.ok()) return s.with_code(Code::kConflict);
    rt_.busy[vm.name] = "create";
  }
  spdlog::info("vm {}: created ({} vCPUs, {} MiB, {} MiB disk, image {}, slot {}, uid {})", vm.name,
               vm.cpus, vm.memory_mib, vm.disk_mib, vm.image, vm.slot, vm.uid);
  VmRuntime::Busy busy(rt_, vm.name);
  const VmPaths p = rt_.paths(vm.name);
  auto rollback = [&](const std::string& why) {
    spdlog::warn("vm {}: creation failed, rolled back: {}", vm.name, why);
    std::error_code ec;
    fs::remove_all(p.dir, ec);
    if (ec) spdlog::warn("vm {}: removing '{}': {}", vm.name, p.dir, ec.message());
    rt_.remove_cgroup(vm.name);
    std::lock_guard<std::mutex> lock(rt_.mu);
    log_failure(vm.name, "removing its row", rt_.registry.delete_vm(vm.name));
    rt_.ready.erase(vm.name);
    return Status::internal(fmt::format("cannot create VM '{}': {}", vm.name, why));
  };
  if (Status s = rt_.prepare_dir(vm); !s.ok()) return rollback(s.message());
  if (Status s = rt_.create_disk(vm, *image, p.disk); !s.ok()) return rollback(s.message());
  rt_.chown_vm(vm, p.disk);
  if (req.start) {
    if (Status s = rt_.start_process(vm); !s.ok())
      return rollback("the VM did not start: " + s.message());
  } else {
    vm.state = "stopped";
    if (Status s = rt_.save(vm); !s.ok()) return rollback(s.message());
  }
  return rt_.info(vm, false);
}

Status VmService::delete_vm(const std::string& name) {
  auto vm = rt_.acquire(name, "delete");
  if (!vm.ok()) return vm.status();
  VmRuntime::Busy busy(rt_, name);
  rt_.stop_process(*vm, true, 0);
  const VmPaths p = rt_.paths(name);
  std::error_code ec;
  fs::remove_all(p.dir, ec);
  if (ec) return Status::internal(fmt::format("deleting '{}': {}", p.dir, ec.message()));
  std::lock_guard<std::mutex> lock(rt_.mu);
  if (Status s = rt_.registry.delete_vm(name); !s.ok()) return s.with_code(Code::kInternal);
  rt_.ready.erase(name);
  rt_.restart_budget.forget(name);
  spdlog::info("vm {}: deleted", name);
  return {};
}

Result<VmInfo> VmService::start_vm(const std::string& name) {
  auto vm = rt_.acquire(name, "start");
  if (!vm.ok()) return vm.status();
  VmRuntime::Busy busy(rt_, name);
  if (rt_.processes.alive(*vm))
    return Status::conflict(fmt::format("VM '{}' is already {}", name, vm->state));
  if (const std::vector<pid_t> live = rt_.processes.live_vmms(*vm); !live.empty()) {
    return Status::conflict(
        fmt::format("VM '{}' is {} but a VMM process of it is still alive (pid {}); stop it first "
                    "(nimbus stop {})",
                    name, vm->state, live.front(), name));
  }
  {
    std::lock_guard<std::mutex> lock(rt_.mu);
    if (Status s = rt_.check_fit_locked(*vm, name, true, false); !s.ok()) {
      return s.with_context(fmt::format("cannot start VM '{}'", name));
    }
    if (Status s = rt_.check_ports_locked(*vm); !s.ok()) return s;
  }
  if (Status s = rt_.start_process(*vm); !s.ok()) {
    return Status::internal(fmt::format("VM '{}' did not start: {}", name, s.message()));
  }
  return rt_.info(*vm, false);
}

Result<StopResult> VmService::stop_vm(const std::string& name, bool force, unsigned timeout_s) {
  auto vm = rt_.acquire(name, "stop");
  if (!vm.ok()) return vm.status();
  VmRuntime::Busy busy(rt_, name);
  if (vm->pid == 0 && rt_.processes.live_vmms(*vm).empty()) {
    if (vm->desired_state != "stopped") {
      vm->desired_state = "stopped";
      log_failure(name, "saving its desired state", rt_.save(*vm));
    }
    return StopResult{rt_.info(*vm, false), false};
  }
  vm->state = "stopping";
  vm->desired_state = "stopped";
  log_failure(name, "saving its state", rt_.save(*vm));
  const bool graceful = rt_.stop_process(*vm, force, timeout_s);
  if (Status s = rt_.save(*vm); !s.ok()) return s.with_code(Code::kInternal);
  return StopResult{rt_.info(*vm, false), graceful};
}

Result<VmInfo> VmService::restart_vm(const std::string& name, bool force, unsigned timeout_s) {
  auto vm = rt_.acquire(name, "restart");
  if (!vm.ok()) return vm.status();
  VmRuntime::Busy busy(rt_, name);
  if (vm->pid != 0 || !rt_.processes.live_vmms(*vm).empty()) {
    vm->state = "stopping";
    log_failure(name, "saving its state", rt_.save(*vm));
    rt_.stop_process(*vm, force, timeout_s);
    log_failure(name, "saving its state", rt_.save(*vm));
  }
  {
    std::lock_guard<std::mutex> lock(rt_.mu);
    if (Status s = rt_.check_fit_locked(*vm, name, true, false); !s.ok()) {
      return s.with_context(fmt::format("cannot start VM '{}'", name));
    }
  }
  if (Status s = rt_.start_process(*vm); !s.ok()) {
    return Status::internal(fmt::format("VM '{}' did not start: {}", name, s.message()));
  }
  return rt_.info(*vm, false);
}

Result<VmInfo> VmService::pause_vm(const std::string& name) {
  auto vm = rt_.acquire(name, "pause");
  if (!vm.ok()) return vm.status();
  VmRuntime::Busy busy(rt_, name);
  if (vm->state == "paused") return rt_.info(*vm, false);
  if (vm->pid == 0 || (vm->state != "running" && vm->state != "starting")) {
    return Status::conflict(
        fmt::format("VM '{}' is {}; only a running VM can be paused", name, vm->state));
  }
  if (Status s = rt_.processes.pause(name); !s.ok()) {
    return Status::internal(fmt::format("pausing VM '{}': {}", name, s.message()));
  }
  vm->state = "paused";
  vm->desired_state = "paused";
  if (Status s = rt_.save(*vm); !s.ok()) return s.with_code(Code::kInternal);
  return rt_.info(*vm, false);
}

Result<VmInfo> VmService::resume_vm(const std::string& name) {
  auto vm = rt_.acquire(name, "resume");
  if (!vm.ok()) return vm.status();
  VmRuntime::Busy busy(rt_, name);
  if (vm->state == "running") return rt_.info(*vm, false);
  if (vm->pid == 0 || vm->state != "paused") {
    return Status::conflict(
        fmt::format("VM '{}' is {}; only a paused VM can be resumed", name, vm->state));
  }
  if (Status s = rt_.processes.resume(name); !s.ok()) {
    return Status::internal(fmt::format("resuming VM '{}': {}", name, s.message()));
  }
  bool ready = false;
  {
    std::lock_guard<std::mutex> lock(rt_.mu);
    ready = rt_.ready[name];
  }
  vm->state = ready ? "running" : "starting";
  vm->desired_state = "running";
  if (Status s = rt_.save(*vm); !s.ok()) return s.with_code(Code::kInternal);
  return rt_.info(*vm, false);
}

Result<VmInfo> VmService::resize_vm(const std::string& name, const ResizeRequest& req) {
  auto vm = rt_.acquire(name, "resize");
  if (!vm.ok()) return vm.status();
  VmRuntime::Busy busy(rt_, name);
  if (rt_.processes.alive(*vm) || !rt_.processes.live_vmms(*vm).empty()) {
    return Status::conflict(fmt::format(
        "VM '{}' is {}; stop it first (nimbus stop {}), then resize", name, vm->state, name));
  }
  VmRecord next = *vm;
  if (req.cpus) next.cpus = *req.cpus;
  if (req.memory_mib) next.memory_mib = *req.memory_mib;
  if (req.disk_mib) {
    if (*req.disk_mib < vm->disk_mib) {
      return Status::invalid_argument(
          fmt::format("disk_mib {} is smaller than the disk ({} MiB): disks can only grow",
                      *req.disk_mib, vm->disk_mib));
    }
    next.disk_mib = *req.disk_mib;
  }
  {
    std::lock_guard<std::mutex> lock(rt_.mu);
    if (Status s = rt_.check_fit_locked(next, name, active(next), true); !s.ok()) {
      return s.with_context(fmt::format("cannot resize VM '{}'", name));
    }
  }
  if (next.disk_mib != vm->disk_mib) {
    if (Status s = backends::resize_disk(rt_.paths(name).disk, next.disk_mib << 20); !s.ok()) {
      return Status::internal(fmt::format("resizing the disk of VM '{}': {}", name, s.message()));
    }
  }
  if (Status s = rt_.save(next); !s.ok()) return s.with_code(Code::kInternal);
  spdlog::info("vm {}: resized to {} vCPUs, {} MiB, {} MiB disk", name, next.cpus, next.memory_mib,
               next.disk_mib);
  return rt_.info(next, false);
}

Result<VmInfo> VmService::set_forwards(const std::string& name,
                                       const std::vector<config::PortForward>& forwards) {
  auto vm = rt_.acquire(name, "set forwards");
  if (!vm.ok()) return vm.status();
  VmRuntime::Busy busy(rt_, name);
  VmRecord next = *vm;
  next.forwards = forwards;
  const bool live = vm->pid != 0 && rt_.processes.alive(*vm);
  {
    std::lock_guard<std::mutex> lock(rt_.mu);
    // A live VMM listens on the VM's current forwards itself: only new ones must be free.
    if (Status s =
            rt_.check_ports_locked(next, live ? vm->forwards : std::vector<config::PortForward>{});
        !s.ok()) {
      return s;
    }
  }
  if (live) {
    if (Status s = rt_.processes.set_forwards(name, forwards); !s.ok()) {
      return s.with_context(fmt::format("VM '{}' cannot take these forwards", name));
    }
  }
  if (Status s = rt_.save(next); !s.ok()) {
    if (live) {
      log_failure(name, "putting its previous forwards back",
                  rt_.processes.set_forwards(name, vm->forwards));
    }
    return s.with_code(Code::kInternal);
  }
  std::string shown;
  for (const config::PortForward& f : forwards) {
    shown += fmt::format("{}{}:{}->{}/{}", shown.empty() ? "" : ", ", f.host_address, f.host_port,
                         f.guest_port, f.protocol);
  }
  spdlog::info("vm {}: forwards now [{}]{}", name, shown, live ? " (applied to its VMM)" : "");
  return rt_.info(next, false);
}

Result<VmInfo> VmService::set_metadata(const std::string& name, const MetadataUpdate& update) {
  auto vm = rt_.acquire(name, "set metadata");
  if (!vm.ok()) return vm.status();
  VmRuntime::Busy busy(rt_, name);
  VmRecord next = *vm;
  config::MetadataConfig m = vm->metadata.value_or(config::MetadataConfig{});
  if (update.data) m.data = *update.data;
  if (Status s = config::parse_metadata_options(update.options, m.options); !s.ok())
    return s.with_code(Code::kInvalidArgument);
  next.metadata = m;
  const bool live = vm->pid != 0 && rt_.processes.alive(*vm);
  if (live) {
    if (Status s = rt_.processes.set_metadata(name, m); !s.ok()) {
      return s.with_context(fmt::format("VM '{}' cannot take this metadata", name));
    }
  }
  if (Status s = rt_.save(next); !s.ok()) {
    if (live && vm->metadata) {
      log_failure(name, "putting its previous metadata back",
                  rt_.processes.set_metadata(name, *vm->metadata));
    }
    return s.with_code(Code::kInternal);
  }
  spdlog::info("vm {}: metadata now {} ({} top-level entries){}", name,
               config::to_json(m.options).dump(), m.data.size(),
               live ? " (applied to its VMM)" : "");
  return rt_.info(next, false);
}

}  // namespace nimbus::host
