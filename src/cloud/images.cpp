// Images (AMIs): the control plane keeps each image's files and serves them to hosts,
// which fetch an image the first time they run an instance of it, checked by sha256.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <filesystem>

#include "cloud/cloud.h"
#include "cloud/sigv4.h"

namespace nimbus::cloud {

Ec2Result<ImageRecord> Cloud::register_image_dir(const std::string& dir, const std::string& name,
                                                 const std::string& description) {
  namespace fs = std::filesystem;
  ImageRecord img;
  std::string all_sums;
  for (auto [file, role] : {std::pair{"Image", "kernel"}, std::pair{"rootfs.ext4", "disk"}}) {
    const fs::path path = fs::path(dir) / file;
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec)
      return ec2_error("InvalidParameterValue",
                       fmt::format("image directory {}: no {} ({})", dir, file, ec.message()));
    auto sum = sha256_file(path.string());
    if (!sum.ok()) return from_status(sum.status());
    ImageFile f;
    f.name = file;
    f.role = role;
    f.sha256 = *sum;
    f.size = size;
    f.path = fs::absolute(path, ec).string();
    if (std::string(role) == "disk") img.disk_mib = (size + (1 << 20) - 1) >> 20;
    all_sums += *sum;
    img.files.push_back(f);
  }
  // The id is the image's content: the same files give the same AMI on every control
  // plane, so hosts that already fetched it never fetch it again.
  img.id = "ami-" + sha256_hex(all_sums).substr(0, 17);
  img.name = name;
  img.description = description;
  img.owner_id = options_.account_id;
  img.creation_date = iso_time_now();
  const std::string key = kImagesPrefix + img.id;
  auto existing = store_.get(key);
  if (!existing.ok()) return from_status(existing.status());
  if (*existing) {
    auto cur = image_from_json((*existing)->value);
    if (!cur.ok()) return from_status(cur.status());
    if (cur->files.size() == img.files.size() && cur->files[0].path == img.files[0].path &&
        cur->files[1].path == img.files[1].path)
      return *cur;
    img.creation_date = cur->creation_date;  // the same content, moved: new paths
    img.tags = cur->tags;
  }
  auto r = store_.txn({{key, *existing ? (*existing)->mod_revision : 0}},
                      {{Op::Kind::kPut, key, to_json(img).dump()}});
  if (!r.ok()) return from_status(r.status());
  spdlog::info("image {} ({}) registered from {}", img.id, name, dir);
  return img;
}

Ec2Result<std::vector<ImageRecord>> Cloud::images() {
  auto all = store_.list(kImagesPrefix);
  if (!all.ok()) return from_status(all.status());
  std::vector<ImageRecord> out;
  for (const KeyValue& kv : *all) {
    auto i = image_from_json(kv.value);
    if (!i.ok()) return from_status(i.status());
    out.push_back(std::move(*i));
  }
  return out;
}

Ec2Result<ImageRecord> Cloud::image(const std::string& id) {
  if (!is_id(id, "ami"))
    return ec2_error("InvalidAMIID.Malformed", fmt::format("Invalid id: \"{}\"", id));
  auto kv = store_.get(kImagesPrefix + id);
  if (!kv.ok()) return from_status(kv.status());
  if (!*kv)
    return ec2_error("InvalidAMIID.NotFound",
                     fmt::format("The image id '[{}]' does not exist", id));
  auto i = image_from_json((*kv)->value);
  if (!i.ok()) return from_status(i.status());
  // An image being made (or that failed) cannot be launched or served yet, as on EC2.
  if (i->state != "available")
    return ec2_error("InvalidAMIID.Unavailable",
                     fmt::format("The image id '[{}]' is not available (it is {})", id, i->state));
  return *i;
}

}  // namespace nimbus::cloud
