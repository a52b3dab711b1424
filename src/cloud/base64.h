// Base64 (RFC 4648, with padding) for the EC2 API: GetConsoleOutput's output and
// RunInstances' UserData travel base64-encoded.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace nimbus::cloud {

std::string base64_encode(std::string_view bytes);
// nullopt for text that is not base64 (whitespace is not allowed).
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace nimbus::cloud
