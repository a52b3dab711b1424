#include "config/json_fields.h"

#include <fmt/format.h>

#include <cctype>

namespace nimbus::config {

namespace {
std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}
}  // namespace

Status check_object(const json& j, const std::string& what,
                    const std::vector<std::string>& allowed) {
  if (!j.is_object()) return Status::error(fmt::format("{} must be a JSON object", what));
  for (const auto& [key, value] : j.items()) {
    bool known = false;
    for (const std::string& a : allowed) known = known || a == key;
    if (!known) {
      return Status::error(
          fmt::format("unknown field '{}' in {} (accepted: {})", key, what, join(allowed)));
    }
  }
  return {};
}

Status get_string(const json& j, const char* key, const std::string& what, std::string& out,
                  bool required, size_t max_len) {
  if (!j.contains(key)) {
    return required ? Status::error(fmt::format("{}: '{}' is required", what, key)) : Status();
  }
  const json& v = j.at(key);
  if (!v.is_string()) return Status::error(fmt::format("{}: '{}' must be a string", what, key));
  out = v.get<std::string>();
  if (out.size() > max_len)
    return Status::error(fmt::format("{}: '{}' is longer than {} bytes", what, key, max_len));
  if (out.find('\0') != std::string::npos)
    return Status::error(fmt::format("{}: '{}' contains a NUL byte", what, key));
  return {};
}

Status get_bool(const json& j, const char* key, const std::string& what, bool& out) {
  if (!j.contains(key)) return {};
  if (!j.at(key).is_boolean())
    return Status::error(fmt::format("{}: '{}' must be true or false", what, key));
  out = j.at(key).get<bool>();
  return {};
}

Status get_uint(const json& j, const char* key, const std::string& what, uint64_t lo, uint64_t hi,
                uint64_t& out, bool required) {
  if (!j.contains(key)) {
    return required ? Status::error(fmt::format("{}: '{}' is required", what, key)) : Status();
  }
  const json& v = j.at(key);
  if (!v.is_number_integer() || (!v.is_number_unsigned() && v.get<int64_t>() < 0) ||
      v.get<uint64_t>() < lo || v.get<uint64_t>() > hi) {
    return Status::error(
        fmt::format("{}: '{}' must be an integer from {} to {}", what, key, lo, hi));
  }
  out = v.get<uint64_t>();
  return {};
}

bool valid_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      return false;
  }
  return true;
}

}  // namespace nimbus::config
