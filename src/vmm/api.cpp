// The API edge's inbound half: routes a request, parses its body into a typed struct (one
// parser per request kind) and makes one call on the VmmControl.
#include "vmm/api.h"

#include <fmt/format.h>

#include "config/device_json.h"

namespace nimbus::vmm {

namespace {

ApiResponse bad(std::string message) { return ApiResponse::error(400, std::move(message)); }

ApiResponse reply(const Status& s) { return error_response(s); }

template <typename T>
ApiResponse reply(const Result<T>& r) {
  if (!r.ok()) return error_response(r.status());
  return ApiResponse::ok(to_json(*r));
}

// Parses a JSON object body; an empty body is an error where one is needed.
bool parse_body(const std::string& body, json& out, ApiResponse& error) {
  if (body.size() > kMaxRequestBody) {
    error = ApiResponse::error(
        413, fmt::format("the request body is larger than {} bytes", kMaxRequestBody));
    return false;
  }
  if (body.empty()) {
    error = bad("this request needs a JSON object body");
    return false;
  }
  out = json::parse(body, nullptr, false);
  if (out.is_discarded()) {
    error = bad("the request body is not valid JSON");
    return false;
  }
  if (!out.is_object()) {
    error = bad("the request body must be a JSON object");
    return false;
  }
  return true;
}

ApiResponse method_not_allowed(const std::string& method, const std::string& path,
                               const char* allowed) {
  return ApiResponse::error(
      405, fmt::format("{} is not allowed on {} (allowed: {})", method, path, allowed));
}

// --- Request bodies to typed requests: each kind has its one parser here (the
// configuration's sections have theirs in vm_config.h). Errors are InvalidArgument.

// PATCH /drives/ID: the new size in bytes.
Result<uint64_t> parse_drive_update(const json& body, const std::string& id) {
  for (const auto& [key, value] : body.items()) {
    if (key != "drive_id" && key != "size_mib") {
      return Status::invalid_argument(
          fmt::format("unknown field '{}' in a drive update (accepted: drive_id, size_mib)", key));
    }
  }
  if (body.contains("drive_id") &&
      (!body["drive_id"].is_string() || body["drive_id"].get<std::string>() != id)) {
    return Status::invalid_argument(
        fmt::format("drive '{}': drive_id in the body does not match the path", id));
  }
  if (!body.contains("size_mib"))
    return Status::invalid_argument(fmt::format("drive '{}': size_mib is required", id));
  const json& v = body["size_mib"];
  if (!v.is_number_unsigned() || v.get<uint64_t>() < 1 || v.get<uint64_t>() > (1ull << 24)) {
    return Status::invalid_argument(
        fmt::format("drive '{}': size_mib must be an integer from 1 to {}", id, 1ull << 24));
  }
  return v.get<uint64_t>() << 20;
}

Result<Action> parse_action(const json& body) {
  for (const auto& [key, value] : body.items()) {
    if (key != "action_type" && key != "timeout_s") {
      return Status::invalid_argument(
          fmt::format("unknown field '{}' in an action (accepted: action_type, timeout_s)", key));
    }
  }
  if (!body.contains("action_type") || !body["action_type"].is_string()) {
    return Status::invalid_argument(
        "action_type is required: InstanceStart, SendCtrlAltDel, Shutdown or Stop");
  }
  const std::string type = body["action_type"].get<std::string>();
  Action a{};
  if (type == "InstanceStart") {
    a.type = ActionType::kInstanceStart;
  } else if (type == "SendCtrlAltDel") {
    a.type = ActionType::kSendCtrlAltDel;
  } else if (type == "Shutdown") {
    a.type = ActionType::kShutdown;
  } else if (type == "Stop") {
    a.type = ActionType::kStop;
  } else {
    return Status::invalid_argument(fmt::format(
        "unknown action_type '{}' (accepted: InstanceStart, SendCtrlAltDel, Shutdown, Stop)",
        type.substr(0, 64)));
  }
  if (body.contains("timeout_s")) {
    if (a.type != ActionType::kShutdown)
      return Status::invalid_argument("timeout_s is only for the Shutdown action");
    const json& t = body["timeout_s"];
    if (!t.is_number() || t.get<double>() < 0 || t.get<double>() > 3600) {
      return Status::invalid_argument("timeout_s must be a number of seconds from 0 to 3600");
    }
    a.timeout_s = t.get<double>();
  }
  return a;
}

// PATCH /vm: true to pause, false to resume.
Result<bool> parse_vm_state(const json& body) {
  for (const auto& [key, value] : body.items()) {
    if (key != "state")
      return Status::invalid_argument(
          fmt::format("unknown field '{}' in /vm (accepted: state)", key));
  }
  if (!body.contains("state") || !body["state"].is_string()) {
    return Status::invalid_argument("state is required: Paused or Resumed");
  }
  const std::string state = body["state"].get<std::string>();
  if (state != "Paused" && state != "Resumed") {
    return Status::invalid_argument(
        fmt::format("state '{}' is not Paused or Resumed", state.substr(0, 64)));
  }
  return state == "Paused";
}

struct SnapshotRequest {
  std::string path;
  bool resume = false;  // load only
};

Result<SnapshotRequest> parse_snapshot_request(const json& body, bool create) {
  const char* what = create ? "snapshot/create" : "snapshot/load";
  for (const auto& [key, value] : body.items()) {
    if (key != "snapshot_path" && (create || key != "resume_vm")) {
      return Status::invalid_argument(
          fmt::format("unknown field '{}' in {} (accepted: snapshot_path{})", key, what,
                      create ? "" : ", resume_vm"));
    }
  }
  if (!body.contains("snapshot_path") || !body["snapshot_path"].is_string() ||
      body["snapshot_path"].get<std::string>().empty()) {
    return Status::invalid_argument(
        fmt::format("{}: snapshot_path (a file path) is required", what));
  }
  SnapshotRequest r;
  r.path = body["snapshot_path"].get<std::string>();
  if (r.path.find('\0') != std::string::npos || r.path.size() > 4096) {
    return Status::invalid_argument(fmt::format("{}: bad snapshot_path", what));
  }
  if (body.contains("resume_vm")) {
    if (!body["resume_vm"].is_boolean())
      return Status::invalid_argument("snapshot/load: resume_vm must be true or false");
    r.resume = body["resume_vm"].get<bool>();
  }
  return r;
}

// PUT /machine-config replaces both fields; PATCH changes those given over the current ones.
Result<MachineShape> parse_machine_shape(const json& body, const VmConfig& current, bool patch) {
  VmConfig parsed = current;
  if (Status s = parse_machine_config(body, parsed, patch); !s.ok())
    return s.with_code(Code::kInvalidArgument);
  return MachineShape{parsed.vcpus, parsed.mem_mib};
}

Result<BootSource> parse_boot(const json& body) {
  VmConfig parsed;
  if (Status s = parse_boot_source(body, parsed); !s.ok())
    return s.with_code(Code::kInvalidArgument);
  return BootSource{parsed.kernel, parsed.initrd, parsed.boot_args, parsed.firmware};
}

// PUT /network-interfaces/ID/forwards: {"forwards": [FORWARD, ...]}, each as in the NIC's
// host_forwards (the same parser).
Result<std::vector<HostForward>> parse_nic_forwards(const json& body, const std::string& id) {
  for (const auto& [key, value] : body.items()) {
    if (key != "forwards") {
      return Status::invalid_argument(
          fmt::format("unknown field '{}' in network interface '{}' forwards (accepted: forwards)",
                      key.substr(0, 64), id));
    }
  }
  if (!body.contains("forwards")) {
    return Status::invalid_argument(
        fmt::format("network interface '{}': forwards (an array, [] for none) is required", id));
  }
  auto forwards = config::forwards_from_json(body["forwards"],
                                             fmt::format("network interface '{}': forwards", id));
  if (!forwards.ok()) return forwards.status().with_code(Code::kInvalidArgument);
  return forwards;
}

// PUT /mmds/config replaces the options (absent fields: the defaults); PATCH changes those
// given over the current ones.
Result<config::MetadataOptions> parse_mmds_options(const json& body, const VmConfig& current,
                                                   bool patch) {
  config::MetadataOptions o;
  if (patch && current.metadata) o = current.metadata->options;
  if (Status s = config::parse_metadata_options(body, o); !s.ok())
    return s.with_code(Code::kInvalidArgument);
  return o;
}

// --- Routes.

// /mmds (the data tree) and /mmds/config (its options): the instance metadata service.
ApiResponse handle_mmds(VmmControl& vmm, const std::string& method, const std::string& path,
                        const std::string& body) {
  const bool options = path == "/mmds/config";
  if (method == "GET") {
    const VmConfig c = vmm.config();
    if (!c.metadata) {
      return ApiResponse::error(404, "this VM has no metadata service (PUT /mmds to give it one)");
    }
    return ApiResponse::ok(options ? config::to_json(c.metadata->options) : c.metadata->data);
  }
  if (options ? (method != "PUT" && method != "PATCH") : method != "PUT")
    return method_not_allowed(method, path, options ? "GET, PUT, PATCH" : "GET, PUT");
  json j;
  ApiResponse error;
  if (!parse_body(body, j, error)) return error;
  if (options) {
    auto o = parse_mmds_options(j, vmm.config(), method == "PATCH");
    if (!o.ok()) return reply(o.status());
    return reply(vmm.set_metadata_options(*o));
  }
  if (Status s = config::check_metadata_data(j); !s.ok()) return bad(s.message());
  return reply(vmm.set_metadata_data(j));
}

ApiResponse handle_drive(VmmControl& vmm, const std::string& method, const std::string& id,
                         const json& body) {
  if (method == "PUT") {
    auto drive = parse_drive(body, id);
    if (!drive.ok()) return bad(drive.message());
    return reply(vmm.put_drive(*drive));
  }
  if (method == "PATCH") {
    auto size = parse_drive_update(body, id);
    if (!size.ok()) return reply(size.status());
    return reply(vmm.resize_drive(id, *size));
  }
  if (method == "DELETE") return reply(vmm.delete_drive(id));
  return method_not_allowed(method, "/drives/" + id, "PUT, PATCH, DELETE");
}

ApiResponse handle_nic(VmmControl& vmm, const std::string& method, const std::string& id,
                       const json& body) {
  if (method == "PUT") {
    auto nic = parse_nic(body, id);
    if (!nic.ok()) return bad(nic.message());
    return reply(vmm.put_nic(*nic));
  }
  if (method == "DELETE") return reply(vmm.delete_nic(id));
  return method_not_allowed(method, "/network-interfaces/" + id, "PUT, DELETE");
}

ApiResponse handle_nic_forwards(VmmControl& vmm, const std::string& method, const std::string& id,
                                const std::string& body) {
  const std::string path = "/network-interfaces/" + id + "/forwards";
  if (method == "GET") {
    for (const NetConfig& nic : vmm.config().nics) {
      if (nic.id != id) continue;
      json forwards = json::array();
      for (const HostForward& f : nic.forwards) forwards.push_back(config::to_json(f));
      return ApiResponse::ok(json{{"forwards", forwards}});
    }
    return ApiResponse::error(404, fmt::format("there is no network interface '{}'", id));
  }
  if (method != "PUT") return method_not_allowed(method, path, "GET, PUT");
  json j;
  ApiResponse error;
  if (!parse_body(body, j, error)) return error;
  auto forwards = parse_nic_forwards(j, id);
  if (!forwards.ok()) return reply(forwards.status());
  return reply(vmm.set_nic_forwards(id, *forwards));
}

ApiResponse handle_action(VmmControl& vmm, const json& body) {
  auto a = parse_action(body);
  if (!a.ok()) return reply(a.status());
  switch (a->type) {
    case ActionType::kInstanceStart:
      return reply(vmm.start());
    case ActionType::kSendCtrlAltDel:
      return reply(vmm.send_ctrl_alt_del());
    case ActionType::kShutdown:
      return reply(vmm.shutdown(a->timeout_s));
    case ActionType::kStop:
      return reply(vmm.stop());
  }
  return bad("unknown action");
}

ApiResponse handle_snapshot(VmmControl& vmm, bool create, const json& body) {
  auto r = parse_snapshot_request(body, create);
  if (!r.ok()) return reply(r.status());
  return create ? reply(vmm.snapshot_create(r->path))
                : reply(vmm.snapshot_load(r->path, r->resume));
}

// PUT /migration {destination, max_downtime_ms, max_rounds, compress}.
Result<MigrateRequest> parse_migrate(const json& body) {
  MigrateRequest r;
  for (const auto& [key, value] : body.items()) {
    if (key == "destination" && value.is_string()) {
      r.destination = value.get<std::string>();
    } else if (key == "max_downtime_ms" && value.is_number_unsigned()) {
      if (value.get<uint64_t>() < 1 || value.get<uint64_t>() > 60000)
        return Status::invalid_argument("migration: max_downtime_ms must be 1-60000");
      r.max_downtime_ms = value.get<uint32_t>();
    } else if (key == "max_rounds" && value.is_number_unsigned()) {
      if (value.get<uint64_t>() > 1000)
        return Status::invalid_argument("migration: max_rounds must be 0-1000");
      r.max_rounds = value.get<uint32_t>();
    } else if (key == "compress" && value.is_boolean()) {
      r.compress = value.get<bool>();
    } else if (key == "max_bandwidth_mib_s" && value.is_number_unsigned()) {
      if (value.get<uint64_t>() > 1000000)
        return Status::invalid_argument("migration: max_bandwidth_mib_s must be 0-1000000");
      r.max_bandwidth_mib_s = value.get<uint32_t>();
    } else {
      return Status::invalid_argument(fmt::format(
          "migration: bad or unknown field '{}' (accepted: destination (a string), "
          "max_downtime_ms, max_rounds, max_bandwidth_mib_s (numbers), compress (true or "
          "false))",
          key.substr(0, 80)));
    }
  }
  if (r.destination.empty())
    return Status::invalid_argument(
        "migration: destination (tcp:HOST:PORT or unix:PATH) is required");
  return r;
}

// PUT /migration/incoming {listen, timeout_s}.
Result<IncomingRequest> parse_incoming(const json& body) {
  IncomingRequest r;
  for (const auto& [key, value] : body.items()) {
    if (key == "listen" && value.is_string()) {
      r.listen = value.get<std::string>();
    } else if (key == "timeout_s" && value.is_number()) {
      r.timeout_s = value.get<double>();
      if (!(r.timeout_s > 0 && r.timeout_s <= 86400))
        return Status::invalid_argument(
            "migration/incoming: timeout_s must be above 0 and at most 86400");
    } else {
      return Status::invalid_argument(
          fmt::format("migration/incoming: bad or unknown field '{}' (accepted: listen (a string), "
                      "timeout_s (a number))",
                      key.substr(0, 80)));
    }
  }
  if (r.listen.empty())
    return Status::invalid_argument(
        "migration/incoming: listen (tcp:ADDR:PORT or unix:PATH) is required");
  return r;
}

}  // namespace

ApiResponse handle_request(VmmControl& vmm, const std::string& method, const std::string& raw_path,
                           const std::string& body) {
  // Query strings are not used; a trailing slash is tolerated.
  std::string path = raw_path.substr(0, raw_path.find('?'));
  if (path.size() > 1 && path.back() == '/') path.pop_back();
  const bool read = method == "GET";
  json j;
  ApiResponse error;
  auto need_body = [&]() { return parse_body(body, j, error); };

  if (path == "/" || path.empty()) {
    return read ? ApiResponse::ok(to_json(vmm.info())) : method_not_allowed(method, "/", "GET");
  }
  if (path == "/vm/config") {
    return read ? ApiResponse::ok(to_json(vmm.config())) : method_not_allowed(method, path, "GET");
  }
  if (path == "/machine-config") {
    if (read) return ApiResponse::ok(to_json(vmm.config())["machine-config"]);
    if (method != "PUT" && method != "PATCH")
      return method_not_allowed(method, path, "GET, PUT, PATCH");
    if (!need_body()) return error;
    auto shape = parse_machine_shape(j, vmm.config(), method == "PATCH");
    if (!shape.ok()) return reply(shape.status());
    return reply(vmm.set_machine_shape(*shape));
  }
  if (path == "/boot-source") {
    if (read) return ApiResponse::ok(to_json(vmm.config())["boot-source"]);
    if (method != "PUT") return method_not_allowed(method, path, "GET, PUT");
    if (!need_body()) return error;
    auto boot = parse_boot(j);
    if (!boot.ok()) return reply(boot.status());
    return reply(vmm.set_boot_source(*boot));
  }
  // /network-interfaces/ID/forwards: a NIC's forwards, the one change a running VM takes.
  if (const std::string nics = "/network-interfaces/", suffix = "/forwards";
      path.size() > nics.size() + suffix.size() && path.rfind(nics, 0) == 0 &&
      path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0) {
    const std::string id = path.substr(nics.size(), path.size() - nics.size() - suffix.size());
    if (!valid_id(id))
      return ApiResponse::error(404, fmt::format("'{}' is not a valid id", id.substr(0, 80)));
    return handle_nic_forwards(vmm, method, id, body);
  }
  for (const char* prefix : {"/drives/", "/network-interfaces/"}) {
    const std::string p = prefix;
    if (path.rfind(p, 0) != 0) continue;
    const std::string id = path.substr(p.size());
    if (!valid_id(id))
      return ApiResponse::error(404, fmt::format("'{}' is not a valid id", id.substr(0, 80)));
    if (method != "DELETE" && !need_body()) return error;
    return p == "/drives/" ? handle_drive(vmm, method, id, j) : handle_nic(vmm, method, id, j);
  }
  if (path == "/drives" || path == "/network-interfaces") {
    if (!read) return method_not_allowed(method, path, "GET");
    return ApiResponse::ok(to_json(vmm.config())[path.substr(1)]);
  }
  if (path == "/mmds" || path == "/mmds/config") return handle_mmds(vmm, method, path, body);
  if (path == "/actions") {
    if (method != "PUT") return method_not_allowed(method, path, "PUT");
    if (!need_body()) return error;
    return handle_action(vmm, j);
  }
  if (path == "/vm") {
    if (method != "PATCH") return method_not_allowed(method, path, "PATCH");
    if (!need_body()) return error;
    auto paused = parse_vm_state(j);
    if (!paused.ok()) return reply(paused.status());
    return reply(*paused ? vmm.pause() : vmm.resume());
  }
  if (path == "/snapshot/create" || path == "/snapshot/load") {
    if (method != "PUT") return method_not_allowed(method, path, "PUT");
    if (!need_body()) return error;
    return handle_snapshot(vmm, path == "/snapshot/create", j);
  }
  if (path == "/migration") {
    if (read) return ApiResponse::ok(migration::to_json(vmm.migration_status()));
    if (method == "DELETE") return reply(vmm.migration_cancel());
    if (method != "PUT") return method_not_allowed(method, path, "GET, PUT, DELETE");
    if (!need_body()) return error;
    auto r = parse_migrate(j);
    if (!r.ok()) return reply(r.status());
    Status s = vmm.migrate(*r);
    if (!s.ok()) return reply(s);
    return {202, migration::to_json(vmm.migration_status())};
  }
  if (path == "/migration/incoming") {
    if (method != "PUT") return method_not_allowed(method, path, "PUT");
    if (!need_body()) return error;
    auto r = parse_incoming(j);
    if (!r.ok()) return reply(r.status());
    auto started = vmm.migrate_incoming(*r);
    if (!started.ok()) return reply(started.status());
    return ApiResponse::ok(json{{"listen", started->listen}});
  }
  return ApiResponse::error(404, fmt::format("there is no resource {}", path.substr(0, 200)));
}

}  // namespace nimbus::vmm
