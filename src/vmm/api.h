// The VM process's REST API, independent of the transport: a request (method, path, JSON
// body) is parsed and validated here and becomes one typed call on a VmmControl. The HTTP
// server (api_server.h) only moves bytes; the fuzz target drives handle_request directly.
//
//   GET   /                        instance info: state, uptime, vCPUs, memory, devices
//   GET   /vm/config               the whole configuration (the --config file format)
//   GET   /machine-config          PUT and PATCH too: {vcpu_count, mem_size_mib}
//   GET   /boot-source             PUT too: {kernel_image_path, initrd_path, boot_args, firmware_path}
//   PUT   /drives/ID               {drive_id, path_on_host, is_root_device, is_read_only, format}
//   PATCH /drives/ID               {drive_id, size_mib}: grow the image (VM not running)
//   DELETE /drives/ID
//   PUT   /network-interfaces/ID   {iface_id, mode, host_forwards, switch_path, guest_mac}
//   DELETE /network-interfaces/ID
//   PUT   /actions                 {action_type: InstanceStart | SendCtrlAltDel | Shutdown
//                                   [timeout_s] | Stop}
//   PATCH /vm                      {state: Paused | Resumed}
//   PUT   /snapshot/create         {snapshot_path}            (VM paused)
//   PUT   /snapshot/load           {snapshot_path, resume_vm} (fresh VMM)
//
// Errors are 4xx with {"fault_message": "..."} saying what to fix: 400 bad request, 404 no
// such resource, 405 wrong method, 409 not in this state, 413 body too large.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "vmm/vm_config.h"

namespace nimbus::vmm {

constexpr size_t kMaxRequestBody = 64 * 1024;

struct ApiResponse {
  int status = 204;
  json body;  // null: no body

  static ApiResponse error(int status, std::string message) { return {status, json{{"fault_message", std::move(message)}}}; }
  static ApiResponse ok(json body) { return {200, std::move(body)}; }
  static ApiResponse no_content() { return {204, nullptr}; }
};

enum class ActionType { kInstanceStart, kSendCtrlAltDel, kShutdown, kStop };

struct Action {
  ActionType type;
  double timeout_s = 30;  // Shutdown: hard stop after this long
};

// What the API can ask of a VM. Implementations serialise calls and decide, from the VM's
// state, whether each is allowed (409 if not).
class VmmControl {
 public:
  virtual ~VmmControl() = default;
  virtual json info() = 0;
  virtual VmConfig config() = 0;
  // Applies `edit` to the configuration if the VM is not running (checks come from the
  // edit: it returns an error to refuse).
  virtual ApiResponse edit_config(const std::function<ApiResponse(VmConfig&)>& edit) = 0;
  virtual ApiResponse resize_drive(const std::string& id, uint64_t new_size) = 0;
  virtual ApiResponse action(const Action& action) = 0;
  virtual ApiResponse set_paused(bool paused) = 0;
  virtual ApiResponse snapshot_create(const std::string& path) = 0;
  virtual ApiResponse snapshot_load(const std::string& path, bool resume) = 0;
};

// JSON text for a reply or a file. Strings that are not valid UTF-8 (a path given on the
// command line, an id echoed in an error) are written with U+FFFD instead of throwing.
inline std::string dump_json(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

ApiResponse handle_request(VmmControl& vmm, const std::string& method, const std::string& path,
                           const std::string& body);

}  // namespace nimbus::vmm
