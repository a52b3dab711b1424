// The host's local image store: STATE_DIR/images/NAME/ holds a kernel, a root disk (raw or
// qcow2) and image.json describing them. A VM's disk is a qcow2 overlay whose backing file
// is the image's root disk, so creating a VM copies nothing and the image stays read-only.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"

namespace nimbus::host {

// One file of an image fetched from a control plane, as its image.json records it.
struct ImageFile {
  std::string name;  // in the image's directory
  std::string role;  // "kernel", "disk" or "initrd"
  uint64_t size = 0;
  std::string sha256;  // 64 lowercase hex digits
};

struct ImageInfo {
  std::string name;
  std::string dir;
  std::string kernel;  // absolute paths
  std::string initrd;  // may be empty
  std::string disk;
  std::string disk_format;  // raw or qcow2
  uint64_t disk_mib = 0;    // the root disk's virtual size
  std::string description;
  std::string created_at;
  // The files with their checksums, for fetched images (install); empty for local imports.
  std::vector<ImageFile> files;
};

// The image object of the API; "files" (name, role, size, sha256) only when recorded.
nlohmann::json to_json(const ImageInfo& image);

class ImageStore {
 public:
  explicit ImageStore(std::string dir) : dir_(std::move(dir)) {}

  // Imports the bundled images (Image + rootfs.ext4 from `bundled_dir`) as the image
  // "default" when the store has no image of that name.
  Status ensure_default(const std::string& bundled_dir);
  // Copies a kernel and a root disk into the store as NAME (files written to a temporary
  // directory first, then renamed into place).
  Status import(const std::string& name, const std::string& kernel, const std::string& disk,
                const std::string& description);

  // Puts a directory of an image's files that the caller wrote under dir() (`staged`, its
  // name starting with '.', so list() skips it) into the store as NAME: writes image.json
  // as import() does, plus each file's size and sha256, makes the files read-only and
  // renames the directory into place, atomically and never over an existing image
  // (kConflict; the staged directory is then left to the caller to remove).
  Status install(const std::string& name, const std::string& staged,
                 const std::vector<ImageFile>& files, const std::string& disk_format,
                 const std::string& description);

  Result<std::vector<ImageInfo>> list() const;
  Result<ImageInfo> get(const std::string& name) const;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

}  // namespace nimbus::host
