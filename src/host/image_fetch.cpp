#include "host/image_fetch.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "backends/block/qcow2.h"
#include "common/http_client.h"
#include "host/host_checks.h"
#include "host/sha256.h"

namespace nimbus::host {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr size_t kMaxFileName = 128;
constexpr size_t kMaxSource = 1024;
constexpr size_t kMaxDescription = 1024;
constexpr char kStagedMark[] = ".fetch-";

std::string shown(const std::string& s) {
  return json(s.substr(0, 64)).dump(-1, ' ', false, json::error_handler_t::replace);
}

bool valid_file_name(const std::string& n) {
  if (n.empty() || n.size() > kMaxFileName || !std::isalnum(static_cast<unsigned char>(n[0])))
    return false;
  if (n == "image.json") return false;  // the store's own file
  return std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "http://AUTHORITY/PATH/" split into a target and PATH (with both slashes). The path may
// hold only [A-Za-z0-9._~/-] and no "." or ".." segment: no query, escapes or tricks.
struct Source {
  http::Target target;
  std::string path;
};

Result<Source> parse_source(const std::string& s) {
  auto bad = [&](const std::string& why) {
    return Status::invalid_argument(fmt::format("source {} {}", shown(s), why));
  };
  if (s.size() > kMaxSource) return bad(fmt::format("is over {} characters", kMaxSource));
  if (s.rfind("http://", 0) != 0) return bad("must start with http://");
  const size_t slash = s.find('/', 7);
  if (slash == std::string::npos || s.back() != '/')
    return bad("must be a directory URL ending with '/' (the file names are appended)");
  const std::string path = s.substr(slash);
  for (char c : path) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '~' &&
        c != '-' && c != '/')
      return bad("has a character other than A-Z a-z 0-9 . _ ~ - / in its path");
  }
  if (path.find("/./") != std::string::npos || path.find("/../") != std::string::npos)
    return bad("has a '.' or '..' segment");
  auto target = http::parse_target(s.substr(0, slash));
  if (!target.ok() || target->unix_socket) return bad("is not http://HOST[:PORT]/PATH/");
  return Source{*target, path};
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Status check_fields(const json& j, const std::string& what, const std::set<std::string>& allowed) {
  if (!j.is_object()) return Status::invalid_argument(what + " must be a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (allowed.count(it.key()) == 0) {
      std::string list;
      for (const std::string& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return Status::invalid_argument(
          fmt::format("unknown field {} in {} (accepted: {})", shown(it.key()), what, list));
    }
  }
  return {};
}

Result<ImageFile> parse_file(const json& j, size_t index) {
  const std::string what = fmt::format("files[{}]", index);
  if (Status s = check_fields(j, what, {"name", "sha256", "size", "role"}); !s.ok()) return s;
  for (const char* k : {"name", "sha256", "size", "role"}) {
    if (!j.contains(k)) return Status::invalid_argument(fmt::format("{}: {} is required", what, k));
  }
  ImageFile f;
  if (!j["name"].is_string() || !valid_file_name(j["name"].get<std::string>())) {
    return Status::invalid_argument(fmt::format(
        "{}: name must be one path component of 1-{} of A-Z a-z 0-9 . _ -, starting with a "
        "letter or digit (and not image.json)",
        what, kMaxFileName));
  }
  f.name = j["name"].get<std::string>();
  const json& sha = j["sha256"];
  if (!sha.is_string() || sha.get<std::string>().size() != 64 ||
      !std::all_of(sha.get_ref<const std::string&>().begin(),
                   sha.get_ref<const std::string&>().end(),
                   [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); })) {
    return Status::invalid_argument(fmt::format("{}: sha256 must be 64 hex digits", what));
  }
  f.sha256 = lower(sha.get<std::string>());
  const json& size = j["size"];
  if (!size.is_number_unsigned() && !(size.is_number_integer() && size.get<int64_t>() >= 0)) {
    return Status::invalid_argument(fmt::format("{}: size must be a whole number of bytes", what));
  }
  f.size = size.get<uint64_t>();
  if (f.size == 0 || f.size > kMaxFetchFileBytes) {
    return Status::invalid_argument(
        fmt::format("{}: size {} is out of range (1 byte to {} bytes: 1 GiB, for now)", what,
                    f.size, kMaxFetchFileBytes));
  }
  const json& role = j["role"];
  if (!role.is_string() || (role != "kernel" && role != "disk" && role != "initrd"))
    return Status::invalid_argument(
        fmt::format("{}: role must be \"kernel\", \"disk\" or \"initrd\"", what));
  f.role = role.get<std::string>();
  return f;
}

// The staged directory's content of one file, fsync'd: what is renamed into place must be
// whole after a crash.
Status write_file(const std::string& path, const std::string& data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
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
  const int err = errno;
  ::close(fd);
  if (!synced)
    return Status::internal(fmt::format("cannot sync '{}': {}", path, std::strerror(err)));
  return {};
}

uint64_t big_endian(const std::string& data, size_t at, size_t bytes) {
  uint64_t v = 0;
  for (size_t i = 0; i < bytes; i++) v = v << 8 | static_cast<unsigned char>(data[at + i]);
  return v;
}

// A disk must be what its name says. A qcow2 disk must have no backing file: nimbusd would
// open whatever path it named (the image's disk is the backing file of every VM's overlay,
// and sizing it opens it). A raw disk must not look like qcow2 (sizing probes the magic).
Status check_disk(const ImageFetchRequest& req, const std::string& data, const std::string& path) {
  const bool qcow2_magic = data.size() >= 4 && data.compare(0, 4, std::string("QFI\xfb", 4)) == 0;
  if (req.disk_format == "raw") {
    if (qcow2_magic)
      return Status::unavailable("the disk is named as a raw image but holds a qcow2 image");
    return {};
  }
  if (!qcow2_magic || data.size() < 72)
    return Status::unavailable("the disk is named .qcow2 but is not a qcow2 image");
  if (big_endian(data, 8, 8) != 0)
    return Status::unavailable("the qcow2 disk has a backing file: an image must stand alone");
  auto image = backends::Qcow2Image::open(path, true);
  if (!image.ok())
    return Status::unavailable(fmt::format("the qcow2 disk is damaged: {}", image.message()));
  return {};
}

}  // namespace

Result<ImageFetchRequest> parse_image_fetch_request(const json& j) {
  if (Status s =
          check_fields(j, "the image fetch body", {"name", "source", "files", "description"});
      !s.ok())
    return s;
  ImageFetchRequest r;
  if (!j.contains("name") || !j["name"].is_string() || !valid_name(j["name"].get<std::string>())) {
    return Status::invalid_argument(
        "name is required: 1-63 of a-z 0-9 -, starting with a letter (\"ami-0123456789abcdef0\")");
  }
  r.name = j["name"].get<std::string>();
  if (!j.contains("source") || !j["source"].is_string())
    return Status::invalid_argument("source is required: the URL the files are fetched from");
  r.source = j["source"].get<std::string>();
  if (auto s = parse_source(r.source); !s.ok()) return s.status();
  if (!j.contains("files") || !j["files"].is_array() || j["files"].empty() ||
      j["files"].size() > 3) {
    return Status::invalid_argument(
        "files is required: an array of 2 or 3 {name, sha256, size, role} (a kernel, a disk and "
        "maybe an initrd)");
  }
  std::map<std::string, int> roles;
  std::set<std::string> names;
  for (size_t i = 0; i < j["files"].size(); i++) {
    auto f = parse_file(j["files"][i], i);
    if (!f.ok()) return f.status();
    if (!names.insert(f->name).second)
      return Status::invalid_argument(fmt::format("files: {} is given twice", shown(f->name)));
    roles[f->role]++;
    r.files.push_back(*f);
  }
  if (roles["kernel"] != 1 || roles["disk"] != 1 || roles["initrd"] > 1) {
    return Status::invalid_argument(
        "files must hold exactly one kernel, exactly one disk and at most one initrd");
  }
  for (const ImageFile& f : r.files) {
    if (f.role != "disk") continue;
    if (ends_with(f.name, ".ext4") || ends_with(f.name, ".img") || ends_with(f.name, ".raw")) {
      r.disk_format = "raw";
    } else if (ends_with(f.name, ".qcow2")) {
      r.disk_format = "qcow2";
    } else {
      return Status::invalid_argument(fmt::format(
          "the disk {} must be named .ext4, .img or .raw (raw) or .qcow2", shown(f.name)));
    }
  }
  if (j.contains("description")) {
    if (!j["description"].is_string() ||
        j["description"].get<std::string>().size() > kMaxDescription)
      return Status::invalid_argument(
          fmt::format("description must be a string of at most {} bytes", kMaxDescription));
    r.description = j["description"].get<std::string>();
  }
  return r;
}

ImageFetcher::ImageFetcher(ImageStore& store, std::string cloud_url, std::string token)
    : store_(store), cloud_url_(std::move(cloud_url)), token_(std::move(token)) {}

int ImageFetcher::timeout_ms(uint64_t size) {
  return static_cast<int>(10000 + std::min<uint64_t>(size >> 20, 1u << 20) * 1000);
}

void ImageFetcher::clean_leftovers() {
  std::error_code ec;
  std::vector<fs::path> stale;
  for (const auto& e : fs::directory_iterator(store_.dir(), ec)) {
    const std::string n = e.path().filename().string();
    if (!n.empty() && n[0] == '.' && n.find(kStagedMark) != std::string::npos)
      stale.push_back(e.path());
  }
  for (const fs::path& p : stale) {
    spdlog::info("images: removing '{}', left by an interrupted fetch", p.string());
    fs::remove_all(p, ec);
  }
}

Result<FetchedImage> ImageFetcher::existing(const ImageFetchRequest& req) {
  std::error_code ec;
  if (!fs::exists(fs::path(store_.dir()) / req.name, ec)) return Status::not_found("");
  auto have = store_.get(req.name);
  if (!have.ok()) {
    return Status::conflict(
        fmt::format("an image named '{}' exists but cannot be read: {}", req.name, have.message()));
  }
  std::map<std::string, std::string> want, got;
  for (const ImageFile& f : req.files) want[f.role] = f.sha256;
  for (const ImageFile& f : have->files) got[f.role] = f.sha256;
  if (want != got) {
    return Status::conflict(fmt::format(
        "an image named '{}' exists with other files{}", req.name,
        have->files.empty() ? " (imported locally, without checksums)" : " (their sha256 differ)"));
  }
  return FetchedImage{*have, false};
}

Status ImageFetcher::download(const ImageFetchRequest& req, const ImageFile& file,
                              const std::string& path) {
  auto source = parse_source(req.source);
  if (!source.ok()) return source.status();
  http::ClientOptions o;
  o.token = token_;
  o.connect_timeout_ms = 5000;
  o.read_timeout_ms = timeout_ms(file.size);
  // The slack lets an error reply through; a body longer than that is refused unread.
  o.max_reply_body = file.size + 64 * 1024;
  o.peer = "the cloud";
  http::Client client(source->target, o);
  const std::string url = req.source + file.name;
  auto fail = [&](const std::string& why) {
    return Status::unavailable(fmt::format("fetching {}: {}", url, why));
  };
  auto reply = client.request("GET", source->path + file.name);
  if (!reply.ok()) {
    if (reply.code() == Code::kInternal && reply.message().find(" is over ") != std::string::npos)
      return fail(fmt::format("the body is longer than the declared {} bytes", file.size));
    return fail(reply.message());
  }
  if (reply->status != 200) {
    return fail(fmt::format("HTTP {}: {}", reply->status, http::reply_error(*reply).message()));
  }
  if (reply->body.size() > file.size)
    return fail(fmt::format("the body is longer than the declared {} bytes", file.size));
  if (reply->body.size() < file.size) {
    return fail(
        fmt::format("got {} bytes, the declared size is {}", reply->body.size(), file.size));
  }
  const std::string sum = sha256_hex(reply->body);
  if (sum != file.sha256)
    return fail(fmt::format("sha256 {} is not the declared {}", sum, file.sha256));
  if (Status s = write_file(path, reply->body); !s.ok()) return s;
  if (file.role == "disk") {
    if (Status s = check_disk(req, reply->body, path); !s.ok()) return fail(s.message());
  }
  return {};
}

Result<FetchedImage> ImageFetcher::fetch(const ImageFetchRequest& req) {
  if (cloud_url_.empty()) return Status::conflict("not joined to a cloud (nimbusd --cloud)");
  auto source = parse_source(req.source);
  if (!source.ok()) return source.status();
  // Any of the control plane's replicas (--cloud URL1,URL2,...): the leader's reconciler
  // names its own.
  bool on_origin = false;
  std::string origins;
  size_t start = 0;
  for (;;) {
    const size_t comma = cloud_url_.find(',', start);
    auto cloud = http::parse_target(
        cloud_url_.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (!cloud.ok()) return Status::internal(fmt::format("the cloud URL: {}", cloud.message()));
    if (lower(source->target.host) == lower(cloud->host) && source->target.port == cloud->port)
      on_origin = true;
    origins += (origins.empty() ? "" : ", ") + cloud->shown();
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (!on_origin) {
    return Status::invalid_argument(
        fmt::format("source {} is not on the cloud's origin {}: images are fetched from the "
                    "cloud nimbusd joined only",
                    shown(req.source), origins));
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (auto have = existing(req); have.ok() || have.code() != Code::kNotFound) return have;
  const std::string staged =
      (fs::path(store_.dir()) /
       fmt::format(".{}{}{}-{}", req.name, kStagedMark, ::getpid(), ++serial_))
          .string();
  std::error_code ec;
  fs::remove_all(staged, ec);
  fs::create_directories(staged, ec);
  if (ec) return Status::internal(fmt::format("cannot create '{}': {}", staged, ec.message()));
  uint64_t total = 0;
  for (const ImageFile& f : req.files) total += f.size;
  spdlog::info("image {}: fetching {} files ({} bytes) from {}", req.name, req.files.size(), total,
               req.source);
  Status s;
  for (const ImageFile& f : req.files) {
    s = download(req, f, (fs::path(staged) / f.name).string());
    if (!s.ok()) break;
  }
  if (s.ok()) s = store_.install(req.name, staged, req.files, req.disk_format, req.description);
  if (!s.ok()) {
    fs::remove_all(staged, ec);
    // Another process installed that name meanwhile: answer as if it had been there.
    if (s.code() == Code::kConflict) return existing(req);
    return s;
  }
  auto image = store_.get(req.name);
  if (!image.ok()) return image.status().with_code(Code::kInternal);
  return FetchedImage{*image, true};
}

}  // namespace nimbus::host
