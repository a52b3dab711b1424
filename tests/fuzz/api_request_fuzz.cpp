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
#include "vmm/recording_vmm.h"

using FakeVmm = nimbus::vmm::RecordingVmm;

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
  nimbus::vmm::ApiResponse r = nimbus::vmm::handle_request(vmm, method, path, body);
  if (r.status < 200 || r.status > 599) __builtin_trap();
  if (r.status >= 400 && !r.body.contains("fault_message")) __builtin_trap();
  (void)nimbus::vmm::dump_json(r.body);
  // Every accepted edit must serialise again.
  (void)nimbus::vmm::dump_json(nimbus::vmm::to_json(vmm.config_));
  return 0;
}
