#include "host/image_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "backends/block/disk_resize.h"
#include "backends/block/qcow2.h"
#include "host/registry.h"

namespace nimbus::host {
namespace fs = std::filesystem;
using nlohmann::json;

json to_json(const ImageInfo& i) {
  json j = {{"name", i.name},
            {"kernel", i.kernel},
            {"initrd", i.initrd},
            {"disk", i.disk},
            {"disk_format", i.disk_format},
            {"disk_mib", i.disk_mib},
            {"description", i.description},
            {"created_at", i.created_at}};
  if (!i.files.empty()) {
    json files = json::array();
    for (const ImageFile& f : i.files) {
      files.push_back({{"name", f.name}, {"role", f.role}, {"size", f.size}, {"sha256", f.sha256}});
    }
    j["files"] = files;
  }
  return j;
}

namespace {

Result<std::string> probe_format(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error(fmt::format("cannot read '{}'", path));
  char magic[4] = {};
  in.read(magic, 4);
  return std::string(magic, 4) == std::string("QFI\xfb", 4) ? std::string("qcow2")
                                                            : std::string("raw");
}

}  // namespace

Status ImageStore::import(const std::string& name, const std::string& kernel,
                          const std::string& disk, const std::string& description) {
  std::error_code ec;
  const fs::path final_dir = fs::path(dir_) / name;
  if (fs::exists(final_dir, ec))
    return Status::error(fmt::format("an image named '{}' already exists", name));
  for (const std::string* f : {&kernel, &disk}) {
    if (!fs::is_regular_file(*f, ec))
      return Status::error(fmt::format("image '{}': no file '{}'", name, *f));
  }
  auto format = probe_format(disk);
  if (!format.ok()) return format.status();
  const fs::path tmp = fs::path(dir_) / fmt::format(".{}.tmp{}", name, getpid());
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) return Status::error(fmt::format("cannot create '{}': {}", tmp.string(), ec.message()));
  const std::string disk_name = *format == "qcow2" ? "rootfs.qcow2" : "rootfs.ext4";
  fs::copy_file(kernel, tmp / "Image", ec);
  if (!ec) fs::copy_file(disk, tmp / disk_name, ec);
  if (ec) {
    fs::remove_all(tmp);
    return Status::error(fmt::format("image '{}': copying failed: {}", name, ec.message()));
  }
  // Images are shared read-only by every VM (and their sandboxed uids).
  for (const char* f : {"Image", disk_name.c_str()}) ::chmod((tmp / f).c_str(), 0444);
  json meta = {{"kernel", "Image"},
               {"disk", disk_name},
               {"disk_format", *format},
               {"description", description},
               {"created_at", utc_now()}};
  std::ofstream(tmp / "image.json") << meta.dump(2) << "\n";
  ::chmod(tmp.c_str(), 0755);
  fs::rename(tmp, final_dir, ec);
  if (ec) {
    fs::remove_all(tmp);
    return Status::error(fmt::format("image '{}': {}", name, ec.message()));
  }
  return {};
}

Status ImageStore::install(const std::string& name, const std::string& staged,
                           const std::vector<ImageFile>& files, const std::string& disk_format,
                           const std::string& description) {
  json meta = {{"disk_format", disk_format},
               {"description", description},
               {"created_at", utc_now()},
               {"files", json::array()}};
  for (const ImageFile& f : files) {
    meta[f.role] = f.name;
    meta["files"].push_back(
        {{"name", f.name}, {"role", f.role}, {"size", f.size}, {"sha256", f.sha256}});
    // Images are shared read-only by every VM (and their sandboxed uids).
    if (::chmod((fs::path(staged) / f.name).c_str(), 0444) != 0) {
      return Status::internal(fmt::format("image '{}': cannot make '{}' read-only: {}", name,
                                          f.name, std::strerror(errno)));
    }
  }
  {
    std::ofstream out(fs::path(staged) / "image.json");
    out << meta.dump(2) << "\n";
    out.flush();
    if (!out) return Status::internal(fmt::format("image '{}': cannot write image.json", name));
  }
  ::chmod(staged.c_str(), 0755);
  // RENAME_NOREPLACE: a plain rename would replace an empty directory of that name, and
  // two fetches of one name must not both succeed.
  const std::string final_dir = (fs::path(dir_) / name).string();
  if (::renameat2(AT_FDCWD, staged.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_NOREPLACE) != 0) {
    const int err = errno;
    if (err == EEXIST) return Status::conflict(fmt::format("an image named '{}' exists", name));
    return Status::internal(
        fmt::format("image '{}': cannot rename into place: {}", name, std::strerror(err)));
  }
  return {};
}

Status ImageStore::ensure_default(const std::string& bundled_dir) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec)
    return Status::error(fmt::format("cannot create the image store '{}': {}", dir_, ec.message()));
  if (fs::exists(fs::path(dir_) / "default" / "image.json", ec)) return {};
  return import("default", bundled_dir + "/Image", bundled_dir + "/rootfs.ext4",
                "Nimbus's bundled guest: Linux 6.1, busybox, httpd on port 80, guest agent");
}

Result<ImageInfo> ImageStore::get(const std::string& name) const {
  const fs::path d = fs::path(dir_) / name;
  std::ifstream in(d / "image.json");
  if (!in) return Status::error(fmt::format("no image named '{}' (see 'nimbus images')", name));
  json meta = json::parse(in, nullptr, false);
  if (!meta.is_object() || !meta.contains("kernel") || !meta.contains("disk") ||
      !meta["kernel"].is_string() || !meta["disk"].is_string()) {
    return Status::error(
        fmt::format("image '{}': {} is damaged", name, (d / "image.json").string()));
  }
  ImageInfo i;
  i.name = name;
  i.dir = d.string();
  i.kernel = (d / meta["kernel"].get<std::string>()).string();
  i.disk = (d / meta["disk"].get<std::string>()).string();
  if (meta.contains("initrd") && meta["initrd"].is_string() &&
      !meta["initrd"].get<std::string>().empty()) {
    i.initrd = (d / meta["initrd"].get<std::string>()).string();
  }
  i.disk_format = meta.value("disk_format", std::string("raw"));
  i.description = meta.value("description", std::string());
  i.created_at = meta.value("created_at", std::string());
  if (meta.contains("files") && meta["files"].is_array()) {
    for (const json& f : meta["files"]) {
      if (!f.is_object() || !f.contains("name") || !f["name"].is_string() ||
          !f.contains("sha256") || !f["sha256"].is_string())
        continue;
      ImageFile file{f["name"].get<std::string>(), "", 0, f["sha256"].get<std::string>()};
      if (f.contains("role") && f["role"].is_string()) file.role = f["role"].get<std::string>();
      if (f.contains("size") && f["size"].is_number_unsigned())
        file.size = f["size"].get<uint64_t>();
      i.files.push_back(std::move(file));
    }
  }
  auto size = backends::disk_size(i.disk);
  if (!size.ok()) return Status::error(fmt::format("image '{}': {}", name, size.message()));
  i.disk_mib = (*size + (1 << 20) - 1) >> 20;
  return i;
}

Result<std::vector<ImageInfo>> ImageStore::list() const {
  std::vector<ImageInfo> out;
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string n = e.path().filename().string();
    if (!n.empty() && n[0] != '.' && e.is_directory()) names.push_back(n);
  }
  if (ec)
    return Status::error(fmt::format("cannot list the image store '{}': {}", dir_, ec.message()));
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    auto i = get(n);
    if (i.ok()) out.push_back(*i);
  }
  return out;
}

}  // namespace nimbus::host
