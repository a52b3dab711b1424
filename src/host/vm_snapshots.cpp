// VmService's snapshot operations: a snapshot is the VMM's state file plus a copy of the
// VM's overlay taken while the VM is paused, so the two match exactly.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <filesystem>
#include <set>

#include "host/vm_service.h"

namespace nimbus::host {
namespace fs = std::filesystem;

namespace {

Status copy_file_atomic(const std::string& from, const std::string& to) {
  std::error_code ec;
  const std::string tmp = to + ".tmp";
  fs::remove(tmp, ec);
  fs::copy_file(from, tmp, ec);
  if (ec) return Status::internal(fmt::format("copying '{}' to '{}': {}", from, tmp, ec.message()));
  fs::rename(tmp, to, ec);
  if (ec) return Status::internal(fmt::format("renaming '{}': {}", tmp, ec.message()));
  return {};
}

uint64_t allocated_bytes(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

void remove_dir(const std::string& vm, const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) spdlog::warn("vm {}: removing '{}': {}", vm, dir, ec.message());
}

}  // namespace

Result<std::vector<SnapshotInfo>> VmService::list_snapshots(const std::string& name) {
  std::lock_guard<std::mutex> lock(rt_.mu);
  auto vm = rt_.registry.get_vm(name);
  if (!vm.ok()) return vm.status().with_code(Code::kInternal);
  if (!vm->has_value())
    return Status::not_found(fmt::format("no VM named '{}' (see 'nimbus list')", name));
  auto list = rt_.registry.list_snapshots(name);
  if (!list.ok()) return list.status().with_code(Code::kInternal);
  return *list;
}

Result<SnapshotInfo> VmService::create_snapshot(const std::string& name,
                                                const std::string& snap_in) {
  auto vm = rt_.acquire(name, "snapshot");
  if (!vm.ok()) return vm.status();
  VmRuntime::Busy busy(rt_, name);
  if (vm->pid == 0 ||
      (vm->state != "running" && vm->state != "paused" && vm->state != "starting")) {
    return Status::conflict(
        fmt::format("VM '{}' is {}; a snapshot needs a running or paused VM", name, vm->state));
  }
  std::string snap = snap_in;
  {
    std::lock_guard<std::mutex> lock(rt_.mu);
    auto list = rt_.registry.list_snapshots(name);
    if (!list.ok()) return list.status().with_code(Code::kInternal);
    std::set<std::string> names;
    for (const SnapshotRecord& s : *list) names.insert(s.name);
    for (unsigned n = 1; snap.empty(); n++) {
      if (names.count(fmt::format("snap-{}", n)) == 0) snap = fmt::format("snap-{}", n);
    }
    if (names.count(snap) != 0) {
      return Status::conflict(fmt::format("VM '{}' already has a snapshot named '{}'", name, snap));
    }
  }
  const VmPaths p = rt_.paths(name);
  const std::string dir = p.snapshot_dir(snap);
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  if (ec) return Status::internal(fmt::format("cannot create '{}': {}", dir, ec.message()));
  rt_.chown_vm(*vm, dir);
  const bool was_running = vm->state != "paused";
  auto fail = [&](const std::string& why) {
    if (was_running)
      log_failure(name, "resuming after a failed snapshot", rt_.processes.resume(name));
    remove_dir(name, dir);
    return Status::internal(fmt::format("snapshot of VM '{}': {}", name, why));
  };
  if (was_running) {
    if (Status s = rt_.processes.pause(name); !s.ok()) return fail(s.message());
  }
  // The disk is part of the snapshot: the paused VMM has flushed it, so a copy of the
  // overlay now matches the RAM and device state exactly.
  if (Status s = rt_.processes.snapshot_create(name, dir + "/state.snap"); !s.ok())
    return fail(s.message());
  if (Status s = copy_file_atomic(p.disk, dir + "/disk.qcow2"); !s.ok()) return fail(s.message());
  if (was_running) {
    if (Status s = rt_.processes.resume(name); !s.ok()) {
      return Status::internal(fmt::format("resuming VM '{}': {}", name, s.message()));
    }
  }
  SnapshotRecord rec{
      name,      snap,
      utc_now(), allocated_bytes(dir + "/state.snap") + allocated_bytes(dir + "/disk.qcow2"),
      vm->cpus,  vm->memory_mib};
  {
    std::lock_guard<std::mutex> lock(rt_.mu);
    if (Status s = rt_.registry.insert_snapshot(rec); !s.ok()) {
      remove_dir(name, dir);
      return s.with_code(Code::kInternal);
    }
  }
  spdlog::info("vm {}: snapshot '{}' taken ({} bytes)", name, snap, rec.size_bytes);
  return rec;
}

Result<VmInfo> VmService::restore_snapshot(const std::string& name, const std::string& snap) {
  auto vm = rt_.acquire(name, "restore");
  if (!vm.ok()) return vm.status();
  VmRuntime::Busy busy(rt_, name);
  std::optional<SnapshotRecord> rec;
  {
    std::lock_guard<std::mutex> lock(rt_.mu);
    auto list = rt_.registry.list_snapshots(name);
    if (!list.ok()) return list.status().with_code(Code::kInternal);
    for (const SnapshotRecord& s : *list) {
      if (s.name == snap) rec = s;
    }
  }
  if (!rec) return Status::not_found(fmt::format("VM '{}' has no snapshot named '{}'", name, snap));
  const VmPaths p = rt_.paths(name);
  const std::string dir = p.snapshot_dir(snap);
  std::error_code ec;
  if (!fs::exists(dir + "/state.snap", ec) || !fs::exists(dir + "/disk.qcow2", ec)) {
    return Status::internal(
        fmt::format("snapshot '{}' of VM '{}' is missing its files in {}", snap, name, dir));
  }
  VmRecord next = *vm;
  next.cpus = rec->cpus;
  next.memory_mib = rec->memory_mib;
  {
    std::lock_guard<std::mutex> lock(rt_.mu);
    if (Status s = rt_.check_fit_locked(next, name, true, false); !s.ok()) {
      return s.with_context(fmt::format("cannot restore VM '{}'", name));
    }
  }
  if (vm->pid != 0 || !rt_.processes.live_vmms(*vm).empty()) {
    vm->state = "stopping";
    log_failure(name, "saving its state", rt_.save(*vm));
    rt_.stop_process(*vm, true, 0);
    next.pid = 0;
    next.last_exit = vm->last_exit;
  }
  next.state = "stopped";
  if (Status s = copy_file_atomic(dir + "/disk.qcow2", p.disk); !s.ok()) {
    log_failure(name, "saving its state", rt_.save(next));
    return s;
  }
  rt_.chown_vm(next, p.disk);
  if (Status s = rt_.start_process(next, dir + "/state.snap"); !s.ok()) {
    return Status::internal(
        fmt::format("restoring VM '{}' from '{}': {}", name, snap, s.message()));
  }
  // The snapshot's configuration has the forwards of its time; the VM keeps today's.
  log_failure(name, "applying its forwards after the restore",
              rt_.processes.set_forwards(name, next.forwards));
  // So has its metadata (user data, instance identity).
  if (next.metadata) {
    log_failure(name, "applying its metadata after the restore",
                rt_.processes.set_metadata(name, *next.metadata));
  }
  spdlog::info("vm {}: restored from snapshot '{}'", name, snap);
  return rt_.info(next, false);
}

Status VmService::delete_snapshot(const std::string& name, const std::string& snap) {
  auto vm = rt_.acquire(name, "delete snapshot");
  if (!vm.ok()) return vm.status();
  VmRuntime::Busy busy(rt_, name);
  {
    std::lock_guard<std::mutex> lock(rt_.mu);
    if (Status s = rt_.registry.delete_snapshot(name, snap); !s.ok())
      return s.with_code(Code::kNotFound);
  }
  remove_dir(name, rt_.paths(name).snapshot_dir(snap));
  spdlog::info("vm {}: snapshot '{}' deleted", name, snap);
  return {};
}

}  // namespace nimbus::host
