// SHA-256 (FIPS 180-4), for checking the images nimbusd fetches from a control plane. A
// small implementation of its own so that the host layer does not link a crypto library
// for one digest; checked against the standard's test vectors (sha256_test.cpp).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace nimbus::host {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t len);
  void update(std::string_view data) { update(data.data(), data.size()); }
  // The digest; the object is spent afterwards (make a new one for another digest).
  std::array<uint8_t, 32> finish();
  std::string finish_hex();  // 64 lowercase hex digits

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t used_ = 0;
  uint64_t total_ = 0;  // bytes
};

std::string sha256_hex(std::string_view data);

}  // namespace nimbus::host
