#include "vmm/api.h"

#include <fmt/format.h>

namespace nimbus::vmm {

namespace {

ApiResponse bad(std::string message) { return ApiResponse::error(400, std::move(message)); }

// Parses a JSON object body; an empty body is an error where one is needed.
bool parse_body(const std::string& body, json& out, ApiResponse& error) {
  if (body.size() > kMaxRequestBody) {
    error = ApiResponse::error(413, fmt::format("the request body is larger than {} bytes", kMaxRequestBody));
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

ApiResponse method_not_allowed(const std::string& method, const std::string& path, const char* allowed) {
  ApiResponse r = ApiResponse::error(405, fmt::format("{} is not allowed on {} (allowed: {})", method, path, allowed));
  return r;
}

ApiResponse handle_drive(VmmControl& vmm, const std::string& method, const std::string& id, const json& body) {
  if (method == "PUT") {
    auto drive = parse_drive(body, id);
    if (!drive.ok()) return bad(drive.message());
    return vmm.edit_config([&drive](VmConfig& c) {
      for (DriveConfig& d : c.drives) {
        if (d.id == drive->id) {
          d = *drive;
          return ApiResponse::no_content();
        }
      }
      c.drives.push_back(*drive);
      return ApiResponse::no_content();
    });
  }
  if (method == "PATCH") {
    for (const auto& [key, value] : body.items()) {
      if (key != "drive_id" && key != "size_mib") {
        return bad(fmt::format("unknown field '{}' in a drive update (accepted: drive_id, size_mib)", key));
      }
    }
    if (body.contains("drive_id") && (!body["drive_id"].is_string() || body["drive_id"].get<std::string>() != id)) {
      return bad(fmt::format("drive '{}': drive_id in the body does not match the path", id));
    }
    if (!body.contains("size_mib")) return bad(fmt::format("drive '{}': size_mib is required", id));
    const json& v = body["size_mib"];
    if (!v.is_number_unsigned() || v.get<uint64_t>() < 1 || v.get<uint64_t>() > (1ull << 24)) {
      return bad(fmt::format("drive '{}': size_mib must be an integer from 1 to {}", id, 1ull << 24));
    }
    return vmm.resize_drive(id, v.get<uint64_t>() << 20);
  }
  if (method == "DELETE") {
    return vmm.edit_config([&id](VmConfig& c) {
      for (auto it = c.drives.begin(); it != c.drives.end(); ++it) {
        if (it->id == id) {
          c.drives.erase(it);
          return ApiResponse::no_content();
        }
      }
      return ApiResponse::error(404, fmt::format("there is no drive '{}'", id));
    });
  }
  return method_not_allowed(method, "/drives/" + id, "PUT, PATCH, DELETE");
}

ApiResponse handle_nic(VmmControl& vmm, const std::string& method, const std::string& id, const json& body) {
  if (method == "PUT") {
    auto nic = parse_nic(body, id);
    if (!nic.ok()) return bad(nic.message());
    return vmm.edit_config([&nic](VmConfig& c) {
      for (NetConfig& n : c.nics) {
        if (n.id == nic->id) {
          n = *nic;
          return ApiResponse::no_content();
        }
      }
      c.nics.push_back(*nic);
      return ApiResponse::no_content();
    });
  }
  if (method == "DELETE") {
    return vmm.edit_config([&id](VmConfig& c) {
      for (auto it = c.nics.begin(); it != c.nics.end(); ++it) {
        if (it->id == id) {
          c.nics.erase(it);
          return ApiResponse::no_content();
        }
      }
      return ApiResponse::error(404, fmt::format("there is no network interface '{}'", id));
    });
  }
  return method_not_allowed(method, "/network-interfaces/" + id, "PUT, DELETE");
}

ApiResponse handle_action(VmmControl& vmm, const json& body) {
  for (const auto& [key, value] : body.items()) {
    if (key != "action_type" && key != "timeout_s") {
      return bad(fmt::format("unknown field '{}' in an action (accepted: action_type, timeout_s)", key));
    }
  }
  if (!body.contains("action_type") || !body["action_type"].is_string()) {
    return bad("action_type is required: InstanceStart, SendCtrlAltDel, Shutdown or Stop");
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
    return bad(fmt::format("unknown action_type '{}' (accepted: InstanceStart, SendCtrlAltDel, Shutdown, Stop)",
                           type.substr(0, 64)));
  }
  if (body.contains("timeout_s")) {
    if (a.type != ActionType::kShutdown) return bad("timeout_s is only for the Shutdown action");
    const json& t = body["timeout_s"];
    if (!t.is_number() || t.get<double>() < 0 || t.get<double>() > 3600) {
      return bad("timeout_s must be a number of seconds from 0 to 3600");
    }
    a.timeout_s = t.get<double>();
  }
  return vmm.action(a);
}

ApiResponse handle_snapshot(VmmControl& vmm, bool create, const json& body) {
  const char* what = create ? "snapshot/create" : "snapshot/load";
  for (const auto& [key, value] : body.items()) {
    if (key != "snapshot_path" && (create || key != "resume_vm")) {
      return bad(fmt::format("unknown field '{}' in {} (accepted: snapshot_path{})", key, what,
                             create ? "" : ", resume_vm"));
    }
  }
  if (!body.contains("snapshot_path") || !body["snapshot_path"].is_string() ||
      body["snapshot_path"].get<std::string>().empty()) {
    return bad(fmt::format("{}: snapshot_path (a file path) is required", what));
  }
  const std::string path = body["snapshot_path"].get<std::string>();
  if (path.find('\0') != std::string::npos || path.size() > 4096) return bad(fmt::format("{}: bad snapshot_path", what));
  bool resume = false;
  if (body.contains("resume_vm")) {
    if (!body["resume_vm"].is_boolean()) return bad("snapshot/load: resume_vm must be true or false");
    resume = body["resume_vm"].get<bool>();
  }
  return create ? vmm.snapshot_create(path) : vmm.snapshot_load(path, resume);
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
    return read ? ApiResponse::ok(vmm.info()) : method_not_allowed(method, "/", "GET");
  }
  if (path == "/vm/config") {
    return read ? ApiResponse::ok(to_json(vmm.config())) : method_not_allowed(method, path, "GET");
  }
  if (path == "/machine-config") {
    if (read) return ApiResponse::ok(to_json(vmm.config())["machine-config"]);
    if (method != "PUT" && method != "PATCH") return method_not_allowed(method, path, "GET, PUT, PATCH");
    if (!need_body()) return error;
    VmConfig parsed = vmm.config();
    if (Status s = parse_machine_config(j, parsed, method == "PATCH"); !s.ok()) return bad(s.message());
    return vmm.edit_config([&parsed](VmConfig& c) {
      c.vcpus = parsed.vcpus;
      c.mem_mib = parsed.mem_mib;
      return ApiResponse::no_content();
    });
  }
  if (path == "/boot-source") {
    if (read) return ApiResponse::ok(to_json(vmm.config())["boot-source"]);
    if (method != "PUT") return method_not_allowed(method, path, "GET, PUT");
    if (!need_body()) return error;
    VmConfig parsed;
    if (Status s = parse_boot_source(j, parsed); !s.ok()) return bad(s.message());
    return vmm.edit_config([&parsed](VmConfig& c) {
      c.kernel = parsed.kernel;
      c.initrd = parsed.initrd;
      c.boot_args = parsed.boot_args;
      c.firmware = parsed.firmware;
      // Checked now (a 400 leaves the configuration as it was) rather than at start.
      if (Status s = check_boot_source(c); !s.ok()) return bad(s.message());
      return ApiResponse::no_content();
    });
  }
  for (const char* prefix : {"/drives/", "/network-interfaces/"}) {
    const std::string p = prefix;
    if (path.rfind(p, 0) != 0) continue;
    const std::string id = path.substr(p.size());
    if (!valid_id(id)) return ApiResponse::error(404, fmt::format("'{}' is not a valid id", id.substr(0, 80)));
    if (method != "DELETE" && !need_body()) return error;
    return p == "/drives/" ? handle_drive(vmm, method, id, j) : handle_nic(vmm, method, id, j);
  }
  if (path == "/drives" || path == "/network-interfaces") {
    if (!read) return method_not_allowed(method, path, "GET");
    return ApiResponse::ok(to_json(vmm.config())[path.substr(1)]);
  }
  if (path == "/actions") {
    if (method != "PUT") return method_not_allowed(method, path, "PUT");
    if (!need_body()) return error;
    return handle_action(vmm, j);
  }
  if (path == "/vm") {
    if (method != "PATCH") return method_not_allowed(method, path, "PATCH");
    if (!need_body()) return error;
    for (const auto& [key, value] : j.items()) {
      if (key != "state") return bad(fmt::format("unknown field '{}' in /vm (accepted: state)", key));
    }
    if (!j.contains("state") || !j["state"].is_string()) return bad("state is required: Paused or Resumed");
    const std::string state = j["state"].get<std::string>();
    if (state != "Paused" && state != "Resumed") {
      return bad(fmt::format("state '{}' is not Paused or Resumed", state.substr(0, 64)));
    }
    return vmm.set_paused(state == "Paused");
  }
  if (path == "/snapshot/create" || path == "/snapshot/load") {
    if (method != "PUT") return method_not_allowed(method, path, "PUT");
    if (!need_body()) return error;
    return handle_snapshot(vmm, path == "/snapshot/create", j);
  }
  return ApiResponse::error(404, fmt::format("there is no resource {}", path.substr(0, 200)));
}

}  // namespace nimbus::vmm
