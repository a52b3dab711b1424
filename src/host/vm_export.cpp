// VmService's image export: a VM's root disk (its qcow2 overlay over the image it was made
// from) flattened into a standalone qcow2 image in the store, with the parent image's
// kernel and initrd. The overlay is copied while the VM is quiesced (stopped, or paused:
// the paused VMM has flushed its disk, as for a snapshot), the VM is brought back at once,
// and the copy is flattened while the VM runs again.
#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "backends/block/disk_convert.h"
#include "host/sha256.h"
#include "host/vm_service.h"

namespace nimbus::host {
namespace fs = std::filesystem;

namespace {

std::atomic<unsigned> g_export_serial{0};

Result<std::string> sha256_of_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return Status::internal(fmt::format("cannot read '{}': {}", path, std::strerror(errno)));
  Sha256 h;
  std::vector<char> buf(1 << 20);
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return Status::internal(fmt::format("cannot read '{}': {}", path, std::strerror(err)));
    }
    if (n == 0) break;
    h.update(buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  return h.finish_hex();
}

// A file of the parent image, hard-linked into the staged image (images are read-only, so
// sharing the inode is safe), copied when a link is not possible.
Status link_or_copy(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::create_hard_link(from, to, ec);
  if (!ec) return {};
  fs::copy_file(from, to, ec);
  if (ec) return Status::internal(fmt::format("copying '{}': {}", from, ec.message()));
  return {};
}

Status copy_file_synced(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::copy_file(from, to, ec);
  if (ec) return Status::internal(fmt::format("copying '{}': {}", from, ec.message()));
  return {};
}

}  // namespace

Result<ImageInfo> VmService::export_image(const std::string& name, const ExportImageRequest& req) {
  std::error_code ec;
  const fs::path final_dir = fs::path(rt_.images.dir()) / req.image;
  if (fs::exists(final_dir, ec))
    return Status::conflict(fmt::format("an image named '{}' already exists", req.image));
  auto vm = rt_.acquire(name, "export an image");
  if (!vm.ok()) return vm.status();
  VmRuntime::Busy busy(rt_, name);
  auto parent = rt_.images.get(vm->image);
  if (!parent.ok()) {
    return Status::conflict(fmt::format("VM '{}': its image '{}' cannot be read: {}", name,
                                        vm->image, parent.message()));
  }
  const bool alive = vm->pid != 0 && rt_.processes.alive(*vm);
  if (!alive && !rt_.processes.live_vmms(*vm).empty()) {
    return Status::conflict(fmt::format(
        "VM '{}' is {} but a VMM process of it is still alive; stop it first", name, vm->state));
  }
  if (alive && vm->state != "running" && vm->state != "starting" && vm->state != "paused") {
    return Status::conflict(fmt::format(
        "VM '{}' is {}; an image is made of a running, paused or stopped VM", name, vm->state));
  }

  const VmPaths p = rt_.paths(name);
  // The copy of the overlay sits beside it, so that a relative backing file name resolves
  // the same way.
  const std::string copy = p.disk + ".export";
  fs::remove(copy, ec);
  std::string source = p.disk;
  if (alive) {
    source = copy;
    if (vm->state == "paused") {
      if (Status s = copy_file_synced(p.disk, copy); !s.ok()) return s;
    } else if (req.reboot) {
      spdlog::info("vm {}: stopping it to export image '{}'", name, req.image);
      rt_.stop_process(*vm, false, req.timeout_s);
      Status copied = copy_file_synced(p.disk, copy);
      Status started = rt_.start_process(*vm);
      if (!started.ok()) {
        log_failure(name, "saving its state", rt_.save(*vm));
        fs::remove(copy, ec);
        return Status::internal(
            fmt::format("VM '{}' did not start again after the copy of its "
                        "disk: {}",
                        name, started.message()));
      }
      if (!copied.ok()) return copied;
    } else {
      if (Status s = rt_.processes.pause(name); !s.ok())
        return Status::internal(fmt::format("pausing VM '{}': {}", name, s.message()));
      Status copied = copy_file_synced(p.disk, copy);
      if (Status s = rt_.processes.resume(name); !s.ok()) {
        fs::remove(copy, ec);
        return Status::internal(fmt::format("resuming VM '{}': {}", name, s.message()));
      }
      if (!copied.ok()) return copied;
    }
  }

  // Staged under a name ImageFetcher::clean_leftovers removes after a crash (".NAME.fetch-").
  const fs::path staged =
      fs::path(rt_.images.dir()) /
      fmt::format(".{}.fetch-export-{}-{}", req.image, ::getpid(), ++g_export_serial);
  auto cleanup = [&] {
    std::error_code e;
    fs::remove_all(staged, e);
    if (source == copy) fs::remove(copy, e);
  };
  auto fail = [&](const Status& s) {
    cleanup();
    spdlog::warn("vm {}: export of image '{}' failed: {}", name, req.image, s.message());
    return s.code() == Code::kConflict ? s : s.with_code(Code::kInternal);
  };
  fs::remove_all(staged, ec);
  fs::create_directories(staged, ec);
  if (ec) {
    return fail(
        Status::internal(fmt::format("cannot create '{}': {}", staged.string(), ec.message())));
  }
  auto stats = backends::flatten_to_qcow2(source, (staged / "rootfs.qcow2").string());
  if (!stats.ok()) return fail(stats.status());
  std::vector<ImageFile> files;
  std::vector<std::pair<std::string, std::string>> parts = {{parent->kernel, "kernel"}};
  if (!parent->initrd.empty()) parts.push_back({parent->initrd, "initrd"});
  for (const auto& [from, role] : parts) {
    const std::string file = fs::path(from).filename().string();
    if (Status s = link_or_copy(from, (staged / file).string()); !s.ok()) return fail(s);
    files.push_back({file, role, 0, ""});
  }
  files.push_back({"rootfs.qcow2", "disk", 0, ""});
  for (ImageFile& f : files) {
    const std::string path = (staged / f.name).string();
    f.size = fs::file_size(path, ec);
    if (ec) return fail(Status::internal(fmt::format("'{}': {}", path, ec.message())));
    auto sum = sha256_of_file(path);
    if (!sum.ok()) return fail(sum.status());
    f.sha256 = *sum;
  }
  if (Status s = rt_.images.install(req.image, staged.string(), files, "qcow2", req.description);
      !s.ok())
    return fail(s);
  if (source == copy) fs::remove(copy, ec);
  auto image = rt_.images.get(req.image);
  if (!image.ok()) return image.status().with_code(Code::kInternal);
  spdlog::info("vm {}: exported as image '{}' ({} MiB virtual, {} clusters, {} bytes)", name,
               req.image, stats->virtual_size >> 20, stats->clusters_written, stats->file_size);
  return *image;
}

}  // namespace nimbus::host
