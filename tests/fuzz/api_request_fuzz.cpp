// Fuzzes the VM API's request handling: arbitrary method, path and body reach
// handle_request (JSON parsing, field validation, routing) over a VMM stand-in that
// applies configuration edits to a plain VmConfig, so every accepted edit is exercised and
// its result serialised again.
//
// Input: byte 0 picks the method, then the path up to the first '\n', then the body.
#include <cstddef>
#include <cstdint>
#include <string>

#include "vmm/api.h"

namespace {

using nimbus::vmm::Action;
using nimbus::vmm::ApiResponse;
using nimbus::vmm::json;
using nimbus::vmm::VmConfig;

class FakeVmm : public nimbus::vmm::VmmControl {
 public:
  json info() override { return {{"state", running ? "Running" : "NotStarted"}}; }
  VmConfig config() override { return config_; }
  ApiResponse edit_config(const std::function<ApiResponse(VmConfig&)>& edit) override {
    if (running) return ApiResponse::error(409, "running");
    VmConfig c = config_;
    ApiResponse r = edit(c);
    if (r.status < 300) config_ = c;
    (void)nimbus::vmm::dump_json(nimbus::vmm::to_json(config_));
    return r;
  }
  ApiResponse resize_drive(const std::string&, uint64_t) override { return ApiResponse::no_content(); }
  ApiResponse action(const Action& a) override {
    running = a.type == nimbus::vmm::ActionType::kInstanceStart;
    return ApiResponse::no_content();
  }
  ApiResponse set_paused(bool) override { return ApiResponse::no_content(); }
  ApiResponse snapshot_create(const std::string&) override { return ApiResponse::no_content(); }
  ApiResponse snapshot_load(const std::string&, bool) override { return ApiResponse::no_content(); }

  bool running = false;

 private:
  VmConfig config_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const char* kMethods[] = {"GET", "PUT", "PATCH", "DELETE", "POST", "HEAD"};
  const std::string method = kMethods[data[0] % 6];
  const std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t nl = rest.find('\n');
  const std::string path = rest.substr(0, nl);
  const std::string body = nl == std::string::npos ? "" : rest.substr(nl + 1);
  static FakeVmm vmm;
  vmm.running = data[0] & 0x80;
  ApiResponse r = nimbus::vmm::handle_request(vmm, method, path, body);
  if (r.status < 200 || r.status > 599) __builtin_trap();
  if (r.status >= 400 && !r.body.contains("fault_message")) __builtin_trap();
  (void)nimbus::vmm::dump_json(r.body);
  return 0;
}
