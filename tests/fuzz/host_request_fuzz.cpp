// Fuzzes nimbusd's API request handling: arbitrary method, path and body reach
// handle_host_request (JSON parsing, validation, routing) over a recording stand-in for
// the daemon, and every reply must be well-formed JSON (or the metrics text).
//
// Input: byte 0 picks the method, then the path up to the first '\n', then the body.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "host/host_api.h"
#include "host/recording_host_ops.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const char* kMethods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"};
  const std::string method = kMethods[data[0] % 6];
  std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t nl = rest.find('\n');
  const std::string path = nl == std::string::npos ? rest : rest.substr(0, nl);
  const std::string body = nl == std::string::npos ? std::string() : rest.substr(nl + 1);
  nimbus::host::RecordingHostOps ops;
  nimbus::host::HostResponse r = nimbus::host::handle_host_request(ops, method, path, body);
  if (r.status < 200 || r.status > 599) std::abort();
  if (r.content_type == "application/json" &&
      nlohmann::json::parse(r.body, nullptr, false).is_discarded())
    std::abort();
  return 0;
}
