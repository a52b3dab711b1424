#include "host/host_api.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cctype>
#include <fstream>
#include <set>
#include <vector>

#include "config/vm_config.h"
#include "host/console_relay.h"
#include "host/console_tail.h"
#include "host/host_checks.h"
#include "host/host_json.h"
#include "host/vm_migration.h"

namespace nimbus::host {
namespace {

using nlohmann::json;

std::string dump(const json& j) {
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

HostResponse respond(int status, const json& body) {
  return {status, "application/json", dump(body)};
}

std::string shown(const std::string& s) {
  return json(s.substr(0, 64)).dump(-1, ' ', false, json::error_handler_t::replace);
}

// The request, for the log.
struct Req {
  const std::string& method;
  const std::string& path;
};

// An error the router itself answers (the request never reached the daemon, which logs
// its own refusals with the VM they concern). Logged with the request's method and path,
// escaped and cut short: they are the client's bytes.
HostResponse refuse(const Req& req, int status, std::string_view name, const std::string& message) {
  spdlog::warn("api: {} {} refused ({} {}): {}", shown(req.method), shown(req.path), status, name,
               message);
  return respond(status, error_json(name, message));
}

HostResponse bad(const Req& req, const std::string& message) {
  return refuse(req, 400, "BadRequest", message);
}

HostResponse failed(const Status& s) {
  const HttpError e = http_error(s.code());
  return respond(e.status, error_json(e.name, s.message()));
}

// A daemon result: its JSON with `status`, or its error.
template <typename T>
HostResponse respond(const Result<T>& r, int status = 200) {
  if (!r.ok()) return failed(r.status());
  return respond(status, to_json(*r));
}

// A list result as {"KEY": [item, ...]}.
template <typename T>
HostResponse respond_list(const Result<std::vector<T>>& r, const char* key) {
  if (!r.ok()) return failed(r.status());
  json a = json::array();
  for (const T& item : *r) a.push_back(to_json(item));
  return respond(200, json{{key, a}});
}

HostResponse respond_deleted(const Status& s, const std::string& what) {
  if (!s.ok()) return failed(s);
  return respond(200, json{{"deleted", what}});
}

HostResponse respond_stop(const Result<StopResult>& r) {
  if (!r.ok()) return failed(r.status());
  json j = to_json(r->vm);
  j["graceful"] = r->graceful;
  return respond(200, j);
}

// An image's file name: one path component of [A-Za-z0-9._-] starting with a letter or
// digit (what image fetches accept), so never "..", never a path.
bool valid_image_file_name(const std::string& n) {
  if (n.empty() || n.size() > 128 || !std::isalnum(static_cast<unsigned char>(n[0]))) return false;
  for (char c : n) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
      return false;
  }
  return true;
}

// The file's bytes as the body (bounded as image fetches are: 1 GiB).
HostResponse read_image_file(const ImageFileRef& f) {
  if (f.size > kMaxFetchFileBytes)
    return respond(
        500, error_json("Internal", fmt::format("the file is over {} bytes", kMaxFetchFileBytes)));
  std::ifstream in(f.path, std::ios::binary);
  std::string body(f.size, '\0');
  if (!in || !in.read(body.data(), static_cast<std::streamsize>(body.size())))
    return respond(500, error_json("Internal", "cannot read the image file"));
  return {200, "application/octet-stream", std::move(body)};
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') i++;
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) parts.push_back(path.substr(i, j - i));
    i = j;
  }
  return parts;
}

Status check_fields(const json& j, const char* what, const std::set<std::string>& allowed) {
  if (!j.is_object()) return Status::error(fmt::format("the {} body must be a JSON object", what));
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (allowed.count(it.key()) == 0) {
      std::string list;
      for (const std::string& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return Status::error(
          fmt::format("unknown field {} in {} (accepted: {})", shown(it.key()), what, list));
    }
  }
  return {};
}

Result<uint64_t> get_uint(const json& j, const char* key, uint64_t lo, uint64_t hi,
                          const char* unit) {
  const json& v = j.at(key);
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0)) {
    return Status::error(
        fmt::format("{} must be a whole number of {} from {} to {}", key, unit, lo, hi));
  }
  const uint64_t n = v.get<uint64_t>();
  if (n < lo || n > hi)
    return Status::error(fmt::format("{} {} is out of range ({} to {} {})", key, n, lo, hi, unit));
  return n;
}

Result<config::PortForward> parse_forward(const json& j, size_t index) {
  const std::string what = fmt::format("forwards[{}]", index);
  if (Status s =
          check_fields(j, what.c_str(), {"host_port", "guest_port", "protocol", "host_address"});
      !s.ok())
    return s;
  config::PortForward f;
  f.host_address = "0.0.0.0";  // nimbusd's default: every address of the host
  for (const char* k : {"host_port", "guest_port"}) {
    if (!j.contains(k)) return Status::error(fmt::format("{}: {} is required", what, k));
    auto n = get_uint(j, k, 1, 65535, "(a port)");
    if (!n.ok()) return Status::error(fmt::format("{}: {}", what, n.message()));
    (std::string(k) == "host_port" ? f.host_port : f.guest_port) = static_cast<uint16_t>(*n);
  }
  if (j.contains("protocol")) {
    if (!j["protocol"].is_string() || (j["protocol"] != "tcp" && j["protocol"] != "udp")) {
      return Status::error(fmt::format("{}: protocol must be \"tcp\" or \"udp\"", what));
    }
    f.protocol = j["protocol"].get<std::string>();
  }
  if (j.contains("host_address")) {
    in_addr a{};
    if (!j["host_address"].is_string() ||
        inet_pton(AF_INET, j["host_address"].get<std::string>().c_str(), &a) != 1) {
      return Status::error(
          fmt::format("{}: host_address must be an IPv4 address such as \"127.0.0.1\"", what));
    }
    f.host_address = j["host_address"].get<std::string>();
  }
  return f;
}

// A forwards array (create's "forwards", PUT .../forwards): no host socket twice.
Result<std::vector<config::PortForward>> parse_forwards(const json& list) {
  if (!list.is_array())
    return Status::error("forwards must be an array of {host_port, guest_port}");
  if (list.size() > 32) return Status::error("at most 32 forwards");
  std::vector<config::PortForward> out;
  for (size_t i = 0; i < list.size(); i++) {
    auto f = parse_forward(list[i], i);
    if (!f.ok()) return f.status();
    for (const config::PortForward& other : out) {
      if (forwards_collide(other, *f)) {
        return Status::error(fmt::format("forwards: host port {}/{} on {} is given twice",
                                         f->host_port, f->protocol, f->host_address));
      }
    }
    out.push_back(*f);
  }
  return out;
}

Result<bool> get_bool(const json& j, const char* key) {
  if (!j.at(key).is_boolean()) return Status::error(fmt::format("{} must be true or false", key));
  return j.at(key).get<bool>();
}

// A VM's metadata ("metadata" of create, PUT .../metadata): the VM configuration's own
// section and rules (config/metadata_config.h), within the request body's limit.
Result<config::MetadataConfig> parse_vm_metadata(const json& j) {
  if (!j.is_object())
    return Status::error(
        "metadata must be an object {data, http_tokens, http_endpoint, hop_limit}");
  return config::parse_metadata(j);
}

constexpr unsigned kMaxCpus = config::kMaxVcpus;
constexpr uint64_t kMinMemory = 64, kMaxMemory = 64 * 1024;
constexpr uint64_t kMaxDisk = 16ull * 1024 * 1024;  // 16 TiB in MiB

}  // namespace

Result<CreateRequest> parse_create_request(const json& j) {
  if (Status s = check_fields(j, "create",
                              {"name", "image", "cpus", "memory_mib", "disk_mib", "forwards",
                               "restart_policy", "start", "metadata", "network"});
      !s.ok()) {
    return s;
  }
  CreateRequest r;
  if (j.contains("name")) {
    if (!j["name"].is_string() || !valid_name(j["name"].get<std::string>())) {
      return Status::error(fmt::format(
          "name {} is not valid: use 1-63 of a-z 0-9 -, starting with a letter",
          j["name"].is_string() ? shown(j["name"].get<std::string>()) : j["name"].dump()));
    }
    r.name = j["name"].get<std::string>();
  }
  if (j.contains("image")) {
    if (!j["image"].is_string() || !valid_name(j["image"].get<std::string>())) {
      return Status::error("image must be an image name (see GET /v1/images)");
    }
    r.image = j["image"].get<std::string>();
  }
  if (j.contains("cpus")) {
    auto n = get_uint(j, "cpus", 1, kMaxCpus, "vCPUs");
    if (!n.ok()) return n.status();
    r.cpus = static_cast<unsigned>(*n);
  }
  if (j.contains("memory_mib")) {
    auto n = get_uint(j, "memory_mib", kMinMemory, kMaxMemory, "MiB");
    if (!n.ok()) return n.status();
    r.memory_mib = *n;
  }
  if (j.contains("disk_mib")) {
    auto n = get_uint(j, "disk_mib", 1, kMaxDisk, "MiB");
    if (!n.ok()) return n.status();
    r.disk_mib = *n;
  }
  if (j.contains("forwards")) {
    auto forwards = parse_forwards(j["forwards"]);
    if (!forwards.ok()) return forwards.status();
    r.forwards = std::move(*forwards);
  }
  if (j.contains("restart_policy")) {
    const json& p = j["restart_policy"];
    if (!p.is_string() || (p != "no" && p != "on-failure" && p != "always")) {
      return Status::error("restart_policy must be \"no\", \"on-failure\" or \"always\"");
    }
    r.restart_policy = p.get<std::string>();
  }
  if (j.contains("start")) {
    auto b = get_bool(j, "start");
    if (!b.ok()) return b.status();
    r.start = *b;
  }
  if (j.contains("metadata")) {
    auto m = parse_vm_metadata(j["metadata"]);
    if (!m.ok()) return m.status();
    r.metadata = std::move(*m);
  }
  if (j.contains("network")) {
    auto n = parse_vm_network(j["network"]);
    if (!n.ok()) return n.status();
    r.network = std::move(*n);
  }
  return r;
}

Result<ExportImageRequest> parse_export_request(const json& j) {
  if (Status s = check_fields(j, "image export", {"image", "description", "reboot", "timeout_s"});
      !s.ok())
    return s;
  ExportImageRequest r;
  if (!j.contains("image") || !j["image"].is_string() ||
      !valid_name(j["image"].get<std::string>())) {
    return Status::error(
        "image is required: the new image's name, 1-63 of a-z 0-9 -, starting with a letter");
  }
  r.image = j["image"].get<std::string>();
  if (j.contains("description")) {
    if (!j["description"].is_string() || j["description"].get<std::string>().size() > 1024)
      return Status::error("description must be a string of at most 1024 bytes");
    r.description = j["description"].get<std::string>();
  }
  if (j.contains("reboot")) {
    auto b = get_bool(j, "reboot");
    if (!b.ok()) return b.status();
    r.reboot = *b;
  }
  if (j.contains("timeout_s")) {
    auto n = get_uint(j, "timeout_s", 0, 3600, "seconds");
    if (!n.ok()) return n.status();
    r.timeout_s = static_cast<unsigned>(*n);
  }
  return r;
}

HostResponse handle_host_request(HostOps& ops, const std::string& method, const std::string& path,
                                 const std::string& body) {
  const Req request{method, path};
  if (body.size() > kMaxHostRequestBody) {
    return refuse(request, 413, "PayloadTooLarge",
                  fmt::format("the request body is over {} bytes", kMaxHostRequestBody));
  }
  const std::vector<std::string> p = split_path(path);
  auto method_not_allowed = [&](const char* allowed) {
    return refuse(request, 405, "MethodNotAllowed",
                  fmt::format("{} {} is not supported (use {})", method.substr(0, 16),
                              path.substr(0, 128), allowed));
  };
  // A body, when one is given, must be a JSON object.
  json j = json::object();
  if (!body.empty() && body.find_first_not_of(" \t\r\n") != std::string::npos) {
    j = json::parse(body, nullptr, false);
    if (j.is_discarded()) return bad(request, "the request body is not valid JSON");
    if (!j.is_object()) return bad(request, "the request body must be a JSON object");
  }

  if (p.size() == 1 && p[0] == "metrics") {
    if (method != "GET") return method_not_allowed("GET");
    return {200, "text/plain; version=0.0.4", ops.metrics()};
  }
  if (p.empty() || p[0] != "v1" || p.size() < 2) {
    return refuse(request, 404, "NotFound",
                  fmt::format("no resource {} (see docs/nimbusd.md)", shown(path)));
  }
  const std::string& collection = p[1];
  if (collection == "host" && p.size() == 2) {
    if (method != "GET") return method_not_allowed("GET");
    return respond(ops.host_info());
  }
  if (collection == "images" && p.size() == 5 && p[3] == "files") {
    if (method != "GET") return method_not_allowed("GET");
    if (!valid_name(p[2]))
      return refuse(request, 404, "NotFound", fmt::format("no image named {}", shown(p[2])));
    if (!valid_image_file_name(p[4]))
      return refuse(request, 404, "NotFound", fmt::format("no image file named {}", shown(p[4])));
    auto f = ops.image_file(p[2], p[4]);
    if (!f.ok()) return failed(f.status());
    return read_image_file(*f);
  }
  if (collection == "images" && p.size() == 2) {
    if (method == "GET") return respond_list(ops.list_images(), "images");
    if (method != "POST") return method_not_allowed("GET or POST");
    auto req = parse_image_fetch_request(j);
    if (!req.ok()) return bad(request, req.message());
    auto r = ops.fetch_image(*req);
    // A download that failed is the cloud's doing, not nimbusd's: 502.
    if (!r.ok() && (r.code() == Code::kUnavailable || r.code() == Code::kDeadlineExceeded))
      return respond(502, error_json("BadGateway", r.message()));
    if (!r.ok()) return failed(r.status());
    return respond(r->created ? 201 : 200, to_json(r->image));
  }
  if (collection == "network" && (p.size() == 2 || (p.size() == 3 && p[2] == "peers"))) {
    if (p.size() == 2 && method != "GET") return method_not_allowed("GET");
    if (p.size() == 3 && method == "PUT") {
      if (Status s = check_fields(j, "peers", {"peers"}); !s.ok()) return bad(request, s.message());
      if (!j.contains("peers")) return bad(request, "peers: \"peers\" is required ([] for none)");
      auto peers = parse_tunnel_peers(j["peers"]);
      if (!peers.ok()) return bad(request, peers.message());
      return respond(ops.set_tunnel_peers(*peers));
    }
    if (method != "GET") return method_not_allowed("GET or PUT");
    return respond(ops.network_info());
  }
  if (collection != "vms") {
    return refuse(request, 404, "NotFound",
                  fmt::format("no resource {} (see docs/nimbusd.md)", shown(path)));
  }
  if (p.size() == 2) {
    if (method == "GET") return respond_list(ops.list_vms(), "vms");
    if (method != "POST") return method_not_allowed("GET or POST");
    auto req = parse_create_request(j);
    if (!req.ok()) return bad(request, req.message());
    return respond(ops.create_vm(*req), 201);
  }
  if (p.size() == 3 && p[2] == "incoming" && method == "POST") {
    auto req = parse_incoming_request(j);
    if (!req.ok()) return bad(request, req.message());
    auto r = ops.prepare_incoming(*req);
    if (!r.ok()) return failed(r.status());
    return respond(201, json{{"listen", r->listen}, {"vm", to_json(r->vm)}});
  }
  const std::string& name = p[2];
  if (!valid_name(name)) {
    return refuse(request, 404, "NotFound",
                  fmt::format("no VM named {} (names are a-z 0-9 -)", shown(name)));
  }
  if (p.size() == 3) {
    if (method == "GET") return respond(ops.get_vm(name));
    if (method == "DELETE") return respond_deleted(ops.delete_vm(name), name);
    return method_not_allowed("GET or DELETE");
  }
  const std::string& verb = p[3];
  if (verb == "snapshots") {
    if (p.size() == 4) {
      if (method == "GET") return respond_list(ops.list_snapshots(name), "snapshots");
      if (method != "POST") return method_not_allowed("GET or POST");
      if (Status s = check_fields(j, "snapshot", {"name"}); !s.ok())
        return bad(request, s.message());
      std::string snap;
      if (j.contains("name")) {
        if (!j["name"].is_string() || !valid_name(j["name"].get<std::string>())) {
          return bad(request, "snapshot name must be 1-63 of a-z 0-9 -, starting with a letter");
        }
        snap = j["name"].get<std::string>();
      }
      return respond(ops.create_snapshot(name, snap), 201);
    }
    if (p.size() == 5) {
      if (method != "DELETE") return method_not_allowed("DELETE");
      if (!valid_name(p[4]))
        return refuse(request, 404, "NotFound", fmt::format("no snapshot named {}", shown(p[4])));
      return respond_deleted(ops.delete_snapshot(name, p[4]), p[4]);
    }
  }
  if (verb == "forwards" && p.size() == 4) {
    if (method != "PUT") return method_not_allowed("PUT");
    if (Status s = check_fields(j, "forwards", {"forwards"}); !s.ok())
      return bad(request, s.message());
    if (!j.contains("forwards"))
      return bad(request, "forwards: \"forwards\" is required (an array, [] for none)");
    auto forwards = parse_forwards(j["forwards"]);
    if (!forwards.ok()) return bad(request, forwards.message());
    return respond(ops.set_forwards(name, *forwards));
  }
  if (verb == "metadata" && p.size() == 4) {
    if (method != "PUT") return method_not_allowed("PUT");
    // Checked whole here (data and options) so that the service applies only valid ones.
    auto m = parse_vm_metadata(j);
    if (!m.ok()) return bad(request, m.message());
    MetadataUpdate u;
    if (j.contains("data")) u.data = j["data"];
    for (const char* k : {"http_tokens", "http_endpoint", "hop_limit"}) {
      if (j.contains(k)) u.options[k] = j[k];
    }
    if (!u.data && u.options.empty())
      return bad(request, "metadata: give \"data\" and/or http_tokens, http_endpoint, hop_limit");
    return respond(ops.set_metadata(name, u));
  }
  if (verb == "migrate" && p.size() == 4) {
    if (method != "POST") return method_not_allowed("POST");
    auto req = parse_migrate_request(j);
    if (!req.ok()) return bad(request, req.message());
    if (j.contains("forwards")) {
      auto forwards = parse_forwards(j["forwards"]);
      if (!forwards.ok()) return bad(request, forwards.message());
      req->forwards = *forwards;
    }
    auto r = ops.migrate_vm(name, *req);
    // The target's or the migration's failure, not this nimbusd's: 502.
    if (!r.ok() && (r.code() == Code::kUnavailable || r.code() == Code::kDeadlineExceeded))
      return respond(502, error_json("BadGateway", r.message()));
    if (!r.ok()) return failed(r.status());
    return respond(200, to_json(*r));
  }
  if (verb == "incoming" && (p.size() == 4 || (p.size() == 5 && p[4] == "commit"))) {
    if (p.size() == 5) {
      if (method != "POST") return method_not_allowed("POST");
      return respond(ops.commit_incoming(name));
    }
    if (method != "DELETE") return method_not_allowed("DELETE");
    return respond_deleted(ops.abort_incoming(name), name);
  }
  if (verb == "image" && p.size() == 4) {
    if (method != "POST") return method_not_allowed("POST");
    auto r = parse_export_request(j);
    if (!r.ok()) return bad(request, r.message());
    return respond(ops.export_image(name, *r), 201);
  }
  if (verb == "console-output" && p.size() == 4) {
    if (method != "GET") return method_not_allowed("GET");
    auto vm = ops.get_vm(name);
    if (!vm.ok()) return failed(vm.status());
    auto tail = read_console_tail(vm->console_log, kConsoleOutputBytes);
    if (!tail.ok()) return failed(tail.status());
    return respond(200,
                   json{{"name", name}, {"output", tail->output}, {"truncated", tail->truncated}});
  }
  if (p.size() != 4)
    return refuse(request, 404, "NotFound", fmt::format("no resource {}", shown(path)));
  static const std::set<std::string> kVerbs = {"start",  "stop",   "restart", "pause",
                                               "resume", "resize", "restore"};
  if (kVerbs.count(verb) == 0) {
    return refuse(
        request, 404, "NotFound",
        fmt::format(
            "no action {} (start, stop, restart, pause, resume, resize, restore, snapshots, "
            "forwards, metadata, image, console-output, console, migrate, incoming)",
            shown(verb)));
  }
  if (method != "POST") return method_not_allowed("POST");
  if (verb == "start" || verb == "pause" || verb == "resume") {
    if (Status s = check_fields(j, verb.c_str(), {}); !s.ok()) return bad(request, s.message());
    if (verb == "start") return respond(ops.start_vm(name));
    if (verb == "pause") return respond(ops.pause_vm(name));
    return respond(ops.resume_vm(name));
  }
  if (verb == "stop" || verb == "restart") {
    if (Status s = check_fields(j, verb.c_str(), {"force", "timeout_s"}); !s.ok())
      return bad(request, s.message());
    bool force = false;
    unsigned timeout = 30;
    if (j.contains("force")) {
      auto b = get_bool(j, "force");
      if (!b.ok()) return bad(request, b.message());
      force = *b;
    }
    if (j.contains("timeout_s")) {
      auto n = get_uint(j, "timeout_s", 0, 3600, "seconds");
      if (!n.ok()) return bad(request, n.message());
      timeout = static_cast<unsigned>(*n);
    }
    if (verb == "stop") return respond_stop(ops.stop_vm(name, force, timeout));
    return respond(ops.restart_vm(name, force, timeout));
  }
  if (verb == "resize") {
    if (Status s = check_fields(j, "resize", {"cpus", "memory_mib", "disk_mib"}); !s.ok())
      return bad(request, s.message());
    ResizeRequest r;
    if (j.contains("cpus")) {
      auto n = get_uint(j, "cpus", 1, kMaxCpus, "vCPUs");
      if (!n.ok()) return bad(request, n.message());
      r.cpus = static_cast<unsigned>(*n);
    }
    if (j.contains("memory_mib")) {
      auto n = get_uint(j, "memory_mib", kMinMemory, kMaxMemory, "MiB");
      if (!n.ok()) return bad(request, n.message());
      r.memory_mib = *n;
    }
    if (j.contains("disk_mib")) {
      auto n = get_uint(j, "disk_mib", 1, kMaxDisk, "MiB");
      if (!n.ok()) return bad(request, n.message());
      r.disk_mib = *n;
    }
    if (!r.cpus && !r.memory_mib && !r.disk_mib)
      return bad(request, "resize needs at least one of cpus, memory_mib, disk_mib");
    return respond(ops.resize_vm(name, r));
  }
  // restore
  if (Status s = check_fields(j, "restore", {"snapshot"}); !s.ok())
    return bad(request, s.message());
  if (!j.contains("snapshot") || !j["snapshot"].is_string() ||
      !valid_name(j["snapshot"].get<std::string>())) {
    return bad(request, "restore needs \"snapshot\": the name of one of the VM's snapshots");
  }
  return respond(ops.restore_snapshot(name, j["snapshot"].get<std::string>()));
}

http::Reply handle_host_http(HostOps& ops, const http::Request& req) {
  if (std::string vm = console_path_vm(req.path); !vm.empty()) return console_route(ops, req, vm);
  HostResponse r = handle_host_request(ops, req.method, req.path, req.body);
  return http::Reply{r.status, r.body, r.content_type};
}

}  // namespace nimbus::host
