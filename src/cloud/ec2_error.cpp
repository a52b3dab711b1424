#include "cloud/ec2_error.h"

#include <fmt/format.h>
#include <openssl/rand.h>

#include <array>
#include <cstdint>
#include <random>

#include "cloud/ec2_query.h"
#include "cloud/xml_writer.h"

namespace nimbus::cloud {

std::string ec2_error_body(const Ec2Error& error, std::string_view request_id) {
  XmlWriter w("Response", "");
  w.open("Errors").open("Error").text("Code", error.code).text("Message", error.message);
  w.close().close().text("RequestID", request_id);
  return w.finish();
}

std::string new_request_id() {
  std::array<uint8_t, 16> b{};
  if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) {
    // Only if OpenSSL's generator cannot be seeded; a request id is not a secret.
    std::random_device rd;
    for (auto& x : b) x = static_cast<uint8_t>(rd());
  }
  b[6] = static_cast<uint8_t>((b[6] & 0x0F) | 0x40);  // version 4
  b[8] = static_cast<uint8_t>((b[8] & 0x3F) | 0x80);  // variant 10 (RFC 4122)
  return fmt::format(
      "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-"
      "{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
      b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
      b[15]);
}

Ec2Error invalid_parameter_value(std::string message) {
  return Ec2Error{400, "InvalidParameterValue", std::move(message)};
}

Ec2Error missing_parameter(std::string_view name) {
  return Ec2Error{400, "MissingParameter",
                  fmt::format("The request must contain the parameter {}", name)};
}

Ec2Error invalid_action(std::string_view action) {
  return Ec2Error{400, "InvalidAction",
                  fmt::format("The action {} is not valid for this web service.",
                              quote_value_for_message(action))};
}

Ec2Error unknown_parameter(std::string_view name) {
  return Ec2Error{400, "UnknownParameter",
                  fmt::format("The parameter {} is not recognized", quote_value_for_message(name))};
}

Ec2Error invalid_parameter_combination(std::string message) {
  return Ec2Error{400, "InvalidParameterCombination", std::move(message)};
}

}  // namespace nimbus::cloud
