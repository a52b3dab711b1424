// The VM process's REST API, independent of the transport: the edge between HTTP and the
// typed VmmControl (vmm_control.h). A request (method, path, JSON body) is parsed and
// validated here into a typed struct, becomes one call on a VmmControl, and its Status or
// result struct becomes an HTTP status and a JSON body (api_replies.cpp). The HTTP server
// (api_server.h) only moves bytes; the fuzz target drives handle_request directly.
//
//   GET   /                        instance info: state, uptime, vCPUs, memory, devices
//   GET   /vm/config               the whole configuration (the --config file format)
//   GET   /machine-config          PUT and PATCH too: {vcpu_count, mem_size_mib}
//   GET   /boot-source             PUT too: {kernel_image_path, initrd_path, boot_args,
//   firmware_path} PUT   /drives/ID               {drive_id, path_on_host, is_root_device,
//   is_read_only, format} PATCH /drives/ID               {drive_id, size_mib}: grow the image (VM
//   not running) DELETE /drives/ID PUT   /network-interfaces/ID   {iface_id, mode, host_forwards,
//   switch_path, guest_mac} DELETE /network-interfaces/ID PUT   /actions {action_type:
//   InstanceStart | SendCtrlAltDel | Shutdown
//                                   [timeout_s] | Stop}
//   PATCH /vm                      {state: Paused | Resumed}
//   GET   /mmds                    PUT too: the metadata service's data tree (any state)
//   GET   /mmds/config             PUT and PATCH too: {http_tokens, http_endpoint, hop_limit}
//   PUT   /snapshot/create         {snapshot_path}            (VM paused)
//   PUT   /snapshot/load           {snapshot_path, resume_vm} (fresh VMM)
//   PUT   /migration               {destination, max_downtime_ms, max_rounds, compress}:
//                                  202, the move runs (VM Running); GET: its progress;
//                                  DELETE: cancel it (migration.h)
//   PUT   /migration/incoming      {listen, timeout_s}: wait for a VM (VM not running)
//
// Errors are 4xx with {"fault_message": "..."} saying what to fix: 400 bad request, 404 no
// such resource, 405 wrong method, 409 not in this state, 413 body too large; 500 if the VMM
// itself failed (see http_status()).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"
#include "vmm/vm_config.h"
#include "vmm/vmm_control.h"

namespace nimbus::vmm {

constexpr size_t kMaxRequestBody = 64 * 1024;

struct ApiResponse {
  int status = 204;
  json body;  // null: no body

  static ApiResponse error(int status, std::string message) {
    return {status, json{{"fault_message", std::move(message)}}};
  }
  static ApiResponse ok(json body) { return {200, std::move(body)}; }
  static ApiResponse no_content() { return {204, nullptr}; }
};

// PUT /actions, parsed.
enum class ActionType { kInstanceStart, kSendCtrlAltDel, kShutdown, kStop };

struct Action {
  ActionType type = ActionType::kInstanceStart;
  double timeout_s = 30;  // Shutdown: hard stop after this long
};

// The HTTP status for an error code: InvalidArgument 400, NotFound 404, Conflict 409 (not
// in this state), PermissionDenied 403, Unimplemented 501, Unavailable 503,
// DeadlineExceeded 504, InsufficientCapacity 507, Internal 500. Unknown (an error from a
// lower layer that did not say its kind) is 400, as every such failure was before codes.
int http_status(Code code);
// {"fault_message": MESSAGE} with the code's status.
ApiResponse error_response(const Status& status);

// Reply bodies of the typed results.
json to_json(const InstanceInfo& info);
json to_json(const DriveResized& r);
json to_json(const ShutdownResult& r);
json to_json(const SnapshotCreated& r);
json to_json(const SnapshotLoaded& r);

// JSON text for a reply or a file. Strings that are not valid UTF-8 (a path given on the
// command line, an id echoed in an error) are written with U+FFFD instead of throwing.
inline std::string dump_json(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

ApiResponse handle_request(VmmControl& vmm, const std::string& method, const std::string& path,
                           const std::string& body);

}  // namespace nimbus::vmm
