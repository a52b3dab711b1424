// Fuzzes what a guest controls of the instance metadata service: its frames through the
// user-mode network's rewrite (metadata_route.h), both ways, and its HTTP requests through
// handle_imds (imds.h) over a fixed data tree, with tokens minted and used along the way.
//
// Input: byte 0 picks the mode. Even: the rest is one Ethernet frame, routed from the guest
// and then (its source set to the stand-in address when long enough) to the guest; a
// rewritten frame must keep its length. Odd: byte 1 picks the method, bits of byte 0 the
// options, then the path up to the first '\n', then header lines "name: value" up to an
// empty line.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "backends/net/metadata_route.h"
#include "vmm/imds.h"

namespace {

constexpr uint32_t kInternal = 0x0a0002fe;  // 10.0.2.254

nimbus::vmm::ImdsState& state() {
  static nimbus::vmm::ImdsState s = [] {
    nimbus::vmm::ImdsState st;
    st.metadata.data = nimbus::config::json::parse(R"({
      "meta-data": {"instance-id": "i-1", "placement": {"availability-zone": "z1a"},
                    "public-keys": {"0=k": {"openssh-key": "ssh-ed25519 A"}}},
      "user-data": "aGk=",
      "dynamic": {"instance-identity": {"document": "{}"}}})");
    st.new_token = [] {
      static unsigned n = 0;
      return "t" + std::to_string(++n % 4);  // few tokens, so inputs can name them
    };
    return st;
  }();
  return s;
}

void fuzz_frame(const uint8_t* data, size_t size) {
  std::vector<uint8_t> frame(data, data + size);
  const size_t len = frame.size();
  (void)nimbus::backends::route_from_guest(frame.data(), len, kInternal, true);
  if (frame.size() != len) __builtin_trap();
  if (frame.size() >= 30) {
    frame[26] = 10, frame[27] = 0, frame[28] = 2, frame[29] = 254;
  }
  (void)nimbus::backends::is_from_internal(frame.data(), len, kInternal);
  (void)nimbus::backends::route_to_guest(frame.data(), len, kInternal, 1);
  if (frame.size() != len) __builtin_trap();
}

void fuzz_request(uint8_t flags, const uint8_t* data, size_t size) {
  if (size < 1) return;
  static const char* kMethods[] = {"GET", "PUT", "POST", "DELETE", "PATCH", "HEAD"};
  nimbus::vmm::ImdsRequest req;
  req.method = kMethods[data[0] % 6];
  std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  size_t nl = rest.find('\n');
  req.path = rest.substr(0, nl);
  rest = nl == std::string::npos ? "" : rest.substr(nl + 1);
  while (!rest.empty()) {
    nl = rest.find('\n');
    const std::string line = rest.substr(0, nl);
    rest = nl == std::string::npos ? "" : rest.substr(nl + 1);
    const size_t colon = line.find(':');
    if (colon == std::string::npos) break;
    req.headers.emplace(line.substr(0, colon), line.substr(colon + 1));
  }
  nimbus::vmm::ImdsState& s = state();
  s.metadata.options.tokens_required = flags & 2;
  s.metadata.options.endpoint_enabled = !(flags & 4);
  static auto now = nimbus::vmm::ImdsClock::time_point();
  now += std::chrono::seconds(flags >> 4);
  const nimbus::vmm::ImdsReply r = nimbus::vmm::handle_imds(req, s, now);
  if (r.status < 200 || r.status > 599) __builtin_trap();
  if (s.tokens.size() > nimbus::vmm::kMaxImdsTokens) __builtin_trap();
  if (!s.metadata.options.endpoint_enabled && r.status != 403) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  if (data[0] % 2 == 0) {
    fuzz_frame(data + 1, size - 1);
  } else {
    fuzz_request(data[0], data + 1, size - 1);
  }
  return 0;
}
