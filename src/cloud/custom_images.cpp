#include "cloud/custom_images.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "cloud/ec2_query.h"
#include "cloud/sigv4.h"
#include "common/http_client.h"

namespace nimbus::cloud {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr uint64_t kMaxImageFileBytes = 1ull << 30;  // as nimbusd's fetch (image_fetch.h)
constexpr int kExportTimeoutMs = 15 * 60 * 1000;

// EC2's rule for AMI names.
bool valid_ami_name(const std::string& n) {
  if (n.size() < 3 || n.size() > 128) return false;
  for (char c : n) {
    if (!std::isalnum(static_cast<unsigned char>(c)) &&
        std::string_view("()[] ./-'@_").find(c) == std::string_view::npos)
      return false;
  }
  return true;
}

// As nimbusd accepts them: one path component of [A-Za-z0-9._-] starting with a letter or
// digit (never "..", never a path: the name becomes a file of the image's directory here).
bool valid_file_name(const std::string& n) {
  if (n.empty() || n.size() > 128 || !std::isalnum(static_cast<unsigned char>(n[0])) ||
      n == "image.json")
    return false;
  for (char c : n) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
      return false;
  }
  return true;
}

bool valid_sha256(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return std::isdigit(static_cast<unsigned char>(c)) || (c >= 'a' && c <= 'f');
         });
}

std::string name_key(const std::string& owner, const std::string& name) {
  return kImageNamesPrefix + owner + "/" + name;
}

Status write_file(const std::string& path, const std::string& data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return Status::internal(fmt::format("cannot create '{}': {}", path, std::strerror(errno)));
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      return Status::internal(fmt::format("cannot write '{}': {}", path, std::strerror(err)));
    }
    done += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced) return Status::internal(fmt::format("cannot sync '{}'", path));
  return {};
}

// The files an export reported, checked: what the control plane will write and serve.
Result<std::vector<ImageFile>> parse_files(const json& image) {
  std::vector<ImageFile> out;
  const auto it = image.is_object() ? image.find("files") : image.end();
  if (!image.is_object() || it == image.end() || !it->is_array() || it->size() < 2 ||
      it->size() > 3)
    return Status::invalid_argument("the host's image has no list of 2 or 3 files");
  int kernels = 0, disks = 0;
  for (const json& f : *it) {
    if (!f.is_object() || !f.contains("name") || !f["name"].is_string() || !f.contains("role") ||
        !f["role"].is_string() || !f.contains("size") || !f["size"].is_number_unsigned() ||
        !f.contains("sha256") || !f["sha256"].is_string())
      return Status::invalid_argument(
          "the host's image lists a file without name, role, size "
          "and sha256");
    ImageFile file;
    file.name = f["name"].get<std::string>();
    file.role = f["role"].get<std::string>();
    file.size = f["size"].get<uint64_t>();
    file.sha256 = f["sha256"].get<std::string>();
    if (!valid_file_name(file.name) || !valid_sha256(file.sha256) || file.size == 0 ||
        file.size > kMaxImageFileBytes ||
        (file.role != "kernel" && file.role != "disk" && file.role != "initrd"))
      return Status::invalid_argument(fmt::format(
          "the host's image lists a file that is not acceptable ({})",
          json(file.name.substr(0, 64)).dump(-1, ' ', false, json::error_handler_t::replace)));
    for (const ImageFile& o : out) {
      if (o.name == file.name) return Status::invalid_argument("a file is listed twice");
    }
    kernels += file.role == "kernel";
    disks += file.role == "disk";
    out.push_back(file);
  }
  if (kernels != 1 || disks != 1)
    return Status::invalid_argument("the host's image must have one kernel and one disk");
  return out;
}

}  // namespace

// ---- the API's operations ------------------------------------------------------------------

Ec2Result<ImageRecord> create_image(Cloud& cloud, const CreateImageRequest& req) {
  if (req.instance_id.empty()) return missing_parameter("InstanceId");
  if (req.name.empty()) return missing_parameter("Name");
  if (!valid_ami_name(req.name))
    return ec2_error("InvalidAMIName.Malformed",
                     fmt::format("AMI names must be between 3 and 128 characters long, and may "
                                 "contain letters, numbers, '(', ')', '.', '-', '/' and '_' ({})",
                                 quote_value_for_message(req.name)));
  if (req.description.size() > 255)
    return invalid_parameter_value("The description is over 255 characters");
  auto inst = cloud.instance(req.instance_id);
  if (!inst.ok()) return inst.error();
  if (inst->state != InstanceState::kRunning && inst->state != InstanceState::kStopped)
    return ec2_error("IncorrectInstanceState",
                     fmt::format("The instance '{}' is not in a state from which it can be "
                                 "imaged (it is {}; it must be running or stopped)",
                                 inst->id, state_name(inst->state)));
  ImageRecord img;
  img.id = new_id("ami");
  img.name = req.name;
  img.description = req.description;
  img.owner_id = cloud.options().account_id;
  img.state = "pending";
  img.creation_date = iso_time_now();
  img.disk_mib = inst->disk_mib;
  img.is_public = false;
  img.tags = req.tags;
  img.source_instance = inst->id;
  img.source_host = inst->host;
  img.no_reboot = req.no_reboot;
  const std::string nkey = name_key(img.owner_id, img.name);
  auto r = cloud.store().txn({{nkey, 0}, {kImagesPrefix + img.id, 0}},
                             {{Op::Kind::kPut, nkey, img.id},
                              {Op::Kind::kPut, kImagesPrefix + img.id, to_json(img).dump()}});
  if (!r.ok()) return from_status(r.status());
  if (!r->succeeded) {
    auto held = cloud.store().get(nkey);
    const std::string by = held.ok() && *held ? (*held)->value : std::string("another image");
    return ec2_error("InvalidAMIName.Duplicate",
                     fmt::format("AMI name {} is already in use by AMI {}", req.name, by));
  }
  spdlog::info("image {} ({}): pending, from instance {} on host {}{}", img.id, img.name, inst->id,
               inst->host, img.no_reboot ? " (no reboot)" : "");
  return img;
}

Ec2Result<bool> deregister_image(Cloud& cloud, const std::string& id) {
  if (id.empty()) return missing_parameter("ImageId");
  if (!is_id(id, "ami"))
    return ec2_error("InvalidAMIID.Malformed",
                     fmt::format("Invalid id: \"{}\"", quote_value_for_message(id)));
  const std::string key = kImagesPrefix + id;
  auto kv = cloud.store().get(key);
  if (!kv.ok()) return from_status(kv.status());
  if (!*kv)
    return ec2_error("InvalidAMIID.NotFound",
                     fmt::format("The image id '[{}]' does not exist", id));
  auto img = image_from_json((*kv)->value);
  if (!img.ok()) return from_status(img.status());
  if (img->is_public || img->owner_id != cloud.options().account_id)
    return ec2_error("AuthFailure", fmt::format("Not authorized for image:{} (the cloud's own "
                                                "image cannot be deregistered)",
                                                id));
  std::vector<Compare> compares = {{key, (*kv)->mod_revision}};
  std::vector<Op> ops = {{Op::Kind::kDelete, key, ""}};
  const std::string nkey = name_key(img->owner_id, img->name);
  auto name = cloud.store().get(nkey);
  if (!name.ok()) return from_status(name.status());
  if (*name && (*name)->value == id) {
    compares.push_back({nkey, (*name)->mod_revision});
    ops.push_back({Op::Kind::kDelete, nkey, ""});
  }
  auto r = cloud.store().txn(compares, ops);
  if (!r.ok()) return from_status(r.status());
  if (!r->succeeded)
    return ec2_error("IncorrectState", fmt::format("The image {} changed meanwhile; try again", id),
                     409);
  // Its files here go; hosts keep theirs (their instances of it run on).
  std::error_code ec;
  for (const ImageFile& f : img->files) fs::remove(f.path, ec);
  if (!img->files.empty()) fs::remove(fs::path(img->files[0].path).parent_path(), ec);
  spdlog::info("image {} ({}) deregistered", id, img->name);
  return true;
}

Status update_image(Cloud& cloud, const std::string& id,
                    const std::function<bool(ImageRecord&)>& change) {
  bool unchanged = false;
  auto r = update(cloud.store(), kImagesPrefix + id,
                  [&](const std::optional<KeyValue>& kv) -> Result<std::optional<std::string>> {
                    unchanged = false;
                    if (!kv) return Status::not_found("no image " + id);
                    auto i = image_from_json(kv->value);
                    if (!i.ok()) return i.status();
                    if (!change(*i)) {
                      unchanged = true;
                      return Status::conflict("unchanged");
                    }
                    return std::optional<std::string>(to_json(*i).dump());
                  });
  return r.ok() || unchanged ? Status() : r.status();
}

// ---- the host's files ----------------------------------------------------------------------

Result<std::string> NimbusdDriver::fetch_file(const HostRecord& host, const std::string& path,
                                              uint64_t max_bytes, int timeout_ms) {
  auto target = http::parse_target(host.api_url);
  if (!target.ok()) return target.status();
  http::ClientOptions o;
  o.token = host.api_token;
  o.connect_timeout_ms = 2000;
  o.read_timeout_ms = timeout_ms;
  // The slack lets an error reply through; a longer body is refused unread.
  o.max_reply_body = max_bytes + 64 * 1024;
  o.peer = "host " + host.id;
  http::Client client(*target, o);
  auto reply = client.request("GET", path);
  if (!reply.ok()) return reply.status();
  if (!http::is_success(*reply)) return http::reply_error(*reply);
  if (reply->body.size() > max_bytes)
    return Status::unavailable(fmt::format("the body is over the {} bytes expected", max_bytes));
  return std::move(reply->body);
}

// ---- the image step ------------------------------------------------------------------------

ImageBuilder::ImageBuilder(Cloud& cloud, HostDriver& driver, std::string files_dir)
    : cloud_(cloud), driver_(driver), files_dir_(std::move(files_dir)) {}

ImageBuilder::~ImageBuilder() { stop(); }

void ImageBuilder::start() {
  if (thread_.joinable()) return;  // running
  stop_ = false;
  thread_ = std::thread([this] {
    while (!stop_) {
      pass_now();
      for (int i = 0; i < 10 && !stop_; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
}

void ImageBuilder::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void ImageBuilder::pass_now() {
  auto all = cloud_.images();
  if (!all.ok()) return;
  std::set<std::string> pending;
  for (const ImageRecord& img : *all) {
    if (img.state != "pending" || img.source_instance.empty()) continue;
    pending.insert(img.id);
    build(img);
  }
  for (auto it = first_try_.begin(); it != first_try_.end();) {
    if (pending.count(it->first) == 0) {
      last_error_.erase(it->first);
      it = first_try_.erase(it);
    } else {
      ++it;
    }
  }
}

void ImageBuilder::fail_image(const std::string& id, const std::string& code,
                              const std::string& message) {
  spdlog::warn("image {}: failed: {}", id, message);
  Status s = update_image(cloud_, id, [&](ImageRecord& r) {
    if (r.state != "pending") return false;
    r.state = "failed";
    r.state_reason_code = code;
    r.state_reason_message = message;
    return true;
  });
  if (!s.ok() && s.code() != Code::kNotFound)
    spdlog::warn("image {}: recording the failure: {}", id, s.message());
  std::error_code ec;
  fs::remove_all(fs::path(files_dir_) / id, ec);
}

void ImageBuilder::build(const ImageRecord& img) {
  bool retry = false;
  const auto now = std::chrono::steady_clock::now();
  const auto first = first_try_.emplace(img.id, now).first->second;
  Status s = try_build(img, &retry);
  if (s.ok()) return;
  if (retry && now - first < deadline_) {
    if (last_error_[img.id] != s.message()) {
      spdlog::info("image {}: will try again: {}", img.id, s.message());
      last_error_[img.id] = s.message();
    }
    return;
  }
  fail_image(img.id, "Server.InternalError", s.message());
}

Status ImageBuilder::try_build(const ImageRecord& img, bool* retry) {
  *retry = true;
  auto inst = cloud_.instance(img.source_instance);
  if (!inst.ok()) {
    *retry = inst.error().code != "InvalidInstanceID.NotFound";
    return Status::unavailable(
        fmt::format("instance {}: {}", img.source_instance, inst.error().message));
  }
  if (inst->state == InstanceState::kTerminated || inst->state == InstanceState::kShuttingDown) {
    *retry = false;
    return Status::conflict(
        fmt::format("instance {} was terminated before its image was made", inst->id));
  }
  auto kv = cloud_.store().get(kHostsPrefix + inst->host);
  if (!kv.ok()) return kv.status();
  if (!*kv) {
    *retry = false;
    return Status::not_found(
        fmt::format("the host {} of instance {} is gone", inst->host, inst->id));
  }
  auto host = host_from_json((*kv)->value);
  if (!host.ok()) return host.status();
  if (!cloud_.host_alive(host->id))
    return Status::unavailable(fmt::format("host {} is not answering", host->id));

  // Exported already (a reply lost, a restart between the export and the downloads)?
  std::optional<json> exported;
  auto have = driver_.call(*host, "GET", "/v1/images", std::nullopt, 10000);
  if (!have.ok()) return have.status().with_context("listing the images of host " + host->id);
  if (have->is_object() && have->contains("images") && (*have)["images"].is_array()) {
    for (const json& i : (*have)["images"]) {
      if (i.is_object() && i.value("name", "") == img.id) exported = i;
    }
  }
  if (!exported) {
    json body = {{"image", img.id},
                 {"description", img.description.empty() ? img.name : img.description},
                 {"reboot", !img.no_reboot}};
    spdlog::info("image {}: exporting instance {} on host {}", img.id, inst->id, host->id);
    auto r = driver_.call(*host, "POST", "/v1/vms/" + inst->id + "/image", body, kExportTimeoutMs);
    if (!r.ok()) {
      // Busy (another operation on the VM) or unreachable: later. Anything else is final.
      *retry = r.code() == Code::kConflict || r.code() == Code::kUnavailable ||
               r.code() == Code::kDeadlineExceeded;
      return r.status().with_context(
          fmt::format("exporting instance {} on host {}", inst->id, host->id));
    }
    exported = *r;
  }
  auto files = parse_files(*exported);
  if (!files.ok()) {
    *retry = false;
    return files.status();
  }
  const fs::path dir = fs::path(files_dir_) / img.id;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return Status::internal(fmt::format("cannot create '{}': {}", dir.string(), ec.message()));
  for (ImageFile& f : *files) {
    const int timeout_ms = 10000 + static_cast<int>(std::min<uint64_t>(f.size >> 20, 3600) * 1000);
    auto bytes =
        driver_.fetch_file(*host, "/v1/images/" + img.id + "/files/" + f.name, f.size, timeout_ms);
    if (!bytes.ok())
      return bytes.status().with_context(
          fmt::format("downloading {} of image {} from host {}", f.name, img.id, host->id));
    if (bytes->size() != f.size || sha256_hex(*bytes) != f.sha256) {
      *retry = false;
      return Status::internal(fmt::format(
          "{} of image {} from host {}: {} bytes with sha256 {}, "
          "not the {} bytes with sha256 {} the host listed",
          f.name, img.id, host->id, bytes->size(), sha256_hex(*bytes), f.size, f.sha256));
    }
    f.path = (dir / f.name).string();
    const std::string tmp = f.path + ".tmp";
    if (Status s = write_file(tmp, *bytes); !s.ok()) return s;
    fs::rename(tmp, f.path, ec);
    if (ec) return Status::internal(fmt::format("renaming '{}': {}", tmp, ec.message()));
  }
  uint64_t disk_mib = img.disk_mib;
  if (exported->contains("disk_mib") && (*exported)["disk_mib"].is_number_unsigned() &&
      (*exported)["disk_mib"].get<uint64_t>() > 0)
    disk_mib = (*exported)["disk_mib"].get<uint64_t>();
  Status s = update_image(cloud_, img.id, [&](ImageRecord& r) {
    if (r.state != "pending") return false;
    r.state = "available";
    r.files = *files;
    r.disk_mib = disk_mib;
    return true;
  });
  if (s.code() == Code::kNotFound) {  // deregistered meanwhile
    fs::remove_all(dir, ec);
    return {};
  }
  if (!s.ok()) return s;
  spdlog::info("image {} ({}): available ({} files, {} MiB disk)", img.id, img.name, files->size(),
               disk_mib);
  return {};
}

}  // namespace nimbus::cloud
