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
};

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

  Result<std::vector<ImageInfo>> list() const;
  Result<ImageInfo> get(const std::string& name) const;

 private:
  std::string dir_;
};

}  // namespace nimbus::host
