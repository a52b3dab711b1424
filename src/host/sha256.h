// SHA-256, for checking the images nimbusd fetches from a control plane: OpenSSL's (the
// same library the control plane signs and checks with), behind a small incremental API.
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace nimbus::host {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t len);
  void update(std::string_view data) { update(data.data(), data.size()); }
  // The digest; the object is spent afterwards (make a new one for another digest).
  std::array<uint8_t, 32> finish();
  std::string finish_hex();  // 64 lowercase hex digits

 private:
  EVP_MD_CTX* ctx_;
};

std::string sha256_hex(std::string_view data);

}  // namespace nimbus::host
